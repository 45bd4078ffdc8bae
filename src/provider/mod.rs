//! The provider side: refund calls to the payment provider's cloud.
//!
//! The bridge drives every provider through one object-safe trait, [`Provider`],
//! usually held as `Arc<dyn Provider>`. A provider turns a [`RefundRequest`] or an
//! [`InquiryRequest`] into an HTTP call and classifies whatever happens — an answer,
//! an error code, a timeout, a refused connection — into exactly one [`Outcome`].
//! Nothing escapes as an error: the bridge only ever sees outcomes, and every outcome
//! that is not a provider's answer carries a reason naming the provider, the call and
//! what happened, and never a secret.
//!
//! - [`answer`]: the one rule that turns any provider's HTTP answer into an outcome,
//!   and the cleaning of every string a provider sends.
//! - [`classify`]: the result-code tables, as data.
//! - [`http`]: client settings (timeouts, keep-alive) and how transport errors fold
//!   into outcomes.
//! - [`settings`]: what every provider's settings share (errors, secrets, base URLs).
//! - [`config`]: the `[provider]` TOML table, building a provider from it, and making
//!   its harmless call for `doctor`.
//! - [`antom`]: Antom (signed requests, v2 and v1 paths, notifyRefund receiver).
//! - [`ottpay`]: OTT Pay local-card refunds with token auth.
//! - [`paymentoptions`]: PaymentOptions server-to-server refunds.
//! - [`probe`]: judging the answers of harmless authenticated calls, for what they
//!   prove about the credentials.
//! - [`secret`]: the wrapper that keeps secrets out of logs.
//! - [`serve`]: serving HTTP with bounded header time (notify receiver, simulator).

pub mod answer;
pub mod antom;
pub mod classify;
pub mod config;
pub mod http;
pub mod ottpay;
pub mod paymentoptions;
pub mod probe;
pub mod secret;
pub mod serve;
pub mod settings;

use std::fmt;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::Serialize;

use crate::money::Amount;

pub use config::{ProviderConfig, build_provider};
pub use secret::Secret;
pub use settings::SettingsError;

/// One refund to submit. The same `refund_request_id` is sent on every retry of one
/// attempt; idempotent providers use it to avoid refunding twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundRequest {
    /// Our id for this attempt, unique, at most 64 characters.
    pub refund_request_id: String,
    /// The terminal's own refund id (Antom's USB cable mode wants it).
    pub original_merchant_refund_id: Option<String>,
    /// The provider's id of the payment being refunded.
    pub payment_id: String,
    /// The amount; `None` asks for a full refund where the provider allows that.
    pub amount: Option<Amount>,
    /// A note for the provider's records.
    pub memo: Option<String>,
}

impl RefundRequest {
    /// The amount to send, checked once for every provider: present where the
    /// provider needs one (`required`; otherwise `None` asks for the whole payment), and
    /// at least one minor unit. `Err` is the refusal, made before anything was sent.
    pub fn amount_to_send(
        &self,
        provider: &str,
        required: bool,
    ) -> Result<Option<Amount>, Outcome> {
        match self.amount {
            None if required => Err(LocalRefusal::AmountRequired.outcome(format!(
                "{provider} refunds need an amount; nothing was sent"
            ))),
            Some(amount) if amount.value < 1 => Err(LocalRefusal::InvalidAmount.outcome(format!(
                "amount {} is out of range; nothing was sent",
                amount.value
            ))),
            other => Ok(other),
        }
    }
}

/// A status look-up for an earlier refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InquiryRequest {
    /// Our id of the attempt being looked up.
    pub refund_request_id: String,
    /// The provider's refund id, when an earlier answer gave one.
    pub refund_id: Option<String>,
    /// The refund as it was sent, when known: where the provider's look-up needs an id
    /// no answer has given yet, asking is sending this same request again (only for an
    /// idempotent provider).
    pub resend: Option<RefundRequest>,
}

/// What became of a refund call: exactly one of seven classes.
///
/// For [`Provider::inquire`], `Succeeded`, `FailedFinal` and `InProgress` describe the
/// refund itself; an inquiry that itself failed is `RetrySameRequest` or
/// `OutcomeUnknown`, never `FailedFinal`, because a failed look-up says nothing about
/// the money.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// The money went back.
    Succeeded {
        /// The provider's refund id.
        refund_id: String,
        /// When the provider says it was refunded; the time the answer arrived when
        /// the provider does not say.
        refund_time: Timestamp,
        /// The refunded amount, when the provider states it.
        amount: Option<Amount>,
        /// The provider's success code (`SUCCESS`, `INFO0002`...), when it gives one.
        code: Option<String>,
        /// The provider's message, when it gives one.
        message: Option<String>,
    },
    /// The provider refused for good; sending again will not help.
    FailedFinal {
        /// The provider's result code (or a [`LocalRefusal`]'s code).
        code: String,
        /// The provider's message.
        message: String,
    },
    /// Accepted and still being processed: poll or wait for a notification, do not
    /// resubmit.
    InProgress {
        /// The provider's refund id, when given.
        refund_id: Option<String>,
    },
    /// Accepted by a provider that finishes the refund later and offers no way to ask
    /// about it (OTT Pay's `init`): not a failure, not a person's job; reconciliation
    /// against the provider's report settles it.
    AcceptedLater {
        /// The provider's refund id, when given.
        refund_id: Option<String>,
    },
    /// Safe to send the very same request again later (same refundRequestId): the
    /// provider asked for it, or the request provably never left.
    RetrySameRequest {
        /// Which provider, which call, what happened.
        reason: String,
    },
    /// The request was sent and no trustworthy answer came back: it may or may not
    /// have been carried out.
    OutcomeUnknown {
        /// Which provider, which call, what happened.
        reason: String,
    },
    /// Refused for now; a later attempt needs a new refundRequestId (e.g. merchant
    /// balance too low).
    NeedsNewRequestId {
        /// The provider's result code.
        code: String,
        /// The provider's message.
        message: String,
    },
}

/// Why posbridge refused a refund itself, before anything was sent: the only
/// `FailedFinal` outcomes that say nothing about the provider's cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalRefusal {
    /// The provider needs an amount and the refund has none.
    AmountRequired,
    /// The amount is below one minor unit.
    InvalidAmount,
    /// The refundRequestId is empty or too long for the provider.
    InvalidRequestId,
}

impl LocalRefusal {
    /// Every local refusal.
    pub const ALL: [LocalRefusal; 3] = [
        LocalRefusal::AmountRequired,
        LocalRefusal::InvalidAmount,
        LocalRefusal::InvalidRequestId,
    ];

    /// Its result code, as the ledger records it and the cashier texts look it up.
    pub const fn code(self) -> &'static str {
        match self {
            LocalRefusal::AmountRequired => "POSBRIDGE_AMOUNT_REQUIRED",
            LocalRefusal::InvalidAmount => "POSBRIDGE_INVALID_AMOUNT",
            LocalRefusal::InvalidRequestId => "POSBRIDGE_INVALID_REQUEST_ID",
        }
    }

    /// The local refusal a result code names, if it is one.
    pub fn from_code(code: &str) -> Option<LocalRefusal> {
        LocalRefusal::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The outcome: failed for good, `message` saying why.
    pub fn outcome(self, message: String) -> Outcome {
        Outcome::FailedFinal {
            code: self.code().into(),
            message,
        }
    }
}

impl Outcome {
    /// Whether this is posbridge's own refusal, made before anything was sent.
    pub fn refused_locally(&self) -> Option<LocalRefusal> {
        match self {
            Outcome::FailedFinal { code, .. } => LocalRefusal::from_code(code),
            _ => None,
        }
    }

    /// A short upper-case name of the class, for logs and exit codes.
    pub fn class_name(&self) -> &'static str {
        match self {
            Outcome::Succeeded { .. } => "SUCCEEDED",
            Outcome::FailedFinal { .. } => "FAILED_FINAL",
            Outcome::InProgress { .. } => "IN_PROGRESS",
            Outcome::AcceptedLater { .. } => "ACCEPTED_LATER",
            Outcome::RetrySameRequest { .. } => "RETRY_SAME_REQUEST",
            Outcome::OutcomeUnknown { .. } => "OUTCOME_UNKNOWN",
            Outcome::NeedsNewRequestId { .. } => "NEEDS_NEW_REQUEST_ID",
        }
    }

    /// Whether the refund has reached a final state (succeeded or failed for good).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Outcome::Succeeded { .. } | Outcome::FailedFinal { .. }
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Succeeded {
                refund_id,
                refund_time,
                amount,
                code,
                ..
            } => {
                write!(
                    f,
                    "SUCCEEDED refund_id={refund_id} refund_time={refund_time}"
                )?;
                if let Some(amount) = amount {
                    write!(f, " amount={amount}")?;
                }
                if let Some(code) = code {
                    write!(f, " code={code}")?;
                }
                Ok(())
            }
            Outcome::FailedFinal { code, message } => {
                write!(f, "FAILED_FINAL code={code} message={message:?}")
            }
            Outcome::InProgress { refund_id } => match refund_id {
                Some(id) => write!(f, "IN_PROGRESS refund_id={id}"),
                None => write!(f, "IN_PROGRESS"),
            },
            Outcome::AcceptedLater { refund_id } => match refund_id {
                Some(id) => write!(f, "ACCEPTED_LATER refund_id={id}"),
                None => write!(f, "ACCEPTED_LATER"),
            },
            Outcome::RetrySameRequest { reason } => write!(f, "RETRY_SAME_REQUEST: {reason}"),
            Outcome::OutcomeUnknown { reason } => write!(f, "OUTCOME_UNKNOWN: {reason}"),
            Outcome::NeedsNewRequestId { code, message } => {
                write!(f, "NEEDS_NEW_REQUEST_ID code={code} message={message:?}")
            }
        }
    }
}

/// A payment provider's refund API, as the bridge sees it.
///
/// Object safe: hold it as `Arc<dyn Provider>`. The futures are boxed so the trait
/// needs no macro.
pub trait Provider: Send + Sync + fmt::Debug {
    /// A short lower-case name (`antom`, `ottpay`, `paymentoptions`).
    fn name(&self) -> &'static str;

    /// Whether sending the same request twice refunds at most once (Antom: yes, by
    /// refundRequestId). When false, an `OutcomeUnknown` must never be resent
    /// automatically.
    fn is_idempotent(&self) -> bool;

    /// Whether [`Provider::inquire`] can look a refund up.
    fn supports_inquiry(&self) -> bool;

    /// Submits a refund and classifies what happened.
    fn refund<'a>(&'a self, request: &'a RefundRequest) -> BoxFuture<'a, Outcome>;

    /// Looks an earlier refund up and classifies its state.
    fn inquire<'a>(&'a self, request: &'a InquiryRequest) -> BoxFuture<'a, Outcome>;
}
