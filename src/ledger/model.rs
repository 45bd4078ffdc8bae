//! What the ledger holds: refunds, their attempts and their transitions.

use std::fmt;

use serde::Serialize;

use crate::money::Amount;
use crate::state::RefundState;

/// Where one attempt (one `refundRequestId`) stands with the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptStatus {
    /// Never sent.
    New,
    /// About to be sent, or sent with no outcome recorded: after a crash, whether
    /// the provider has it is unknown.
    Sending,
    /// The last send provably did not take effect, or the provider asked for the
    /// same request again: safe to send again with the same id.
    Retry,
    /// The provider accepted it and is processing it.
    Processing,
    /// Finished (succeeded, failed, or handed to a person).
    Done,
}

impl AttemptStatus {
    /// The status as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::New => "NEW",
            AttemptStatus::Sending => "SENDING",
            AttemptStatus::Retry => "RETRY",
            AttemptStatus::Processing => "PROCESSING",
            AttemptStatus::Done => "DONE",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<AttemptStatus> {
        Some(match text {
            "NEW" => AttemptStatus::New,
            "SENDING" => AttemptStatus::Sending,
            "RETRY" => AttemptStatus::Retry,
            "PROCESSING" => AttemptStatus::Processing,
            "DONE" => AttemptStatus::Done,
            _ => return None,
        })
    }
}

impl fmt::Display for AttemptStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) fn parse_state(text: &str) -> Option<RefundState> {
    RefundState::ALL.into_iter().find(|s| s.as_str() == text)
}

/// One refund as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRecord {
    /// The ledger's own number, in order of acceptance.
    pub id: i64,
    /// The terminal that asked.
    pub terminal_id: String,
    /// The terminal's id for the refund.
    pub original_merchant_refund_id: String,
    /// The payment refunded.
    pub payment_id: String,
    /// The amount asked for; `None` for a full refund.
    pub amount: Option<Amount>,
    /// The terminal's note.
    pub memo: Option<String>,
    /// The provider it goes to.
    pub provider: String,
    /// Where it stands.
    pub state: RefundState,
    /// The current attempt's number.
    pub attempt_id: i64,
    /// The current attempt's `refundRequestId`.
    pub refund_request_id: String,
    /// The current attempt's status.
    pub attempt_status: AttemptStatus,
    /// The provider's refund id, once known.
    pub provider_refund_id: Option<String>,
    /// When the provider refunded, RFC 3339.
    pub refund_time: Option<String>,
    /// What the provider says it refunded.
    pub refunded: Option<Amount>,
    /// The provider's (or the bridge's) result code.
    pub result_code: Option<String>,
    /// Its message.
    pub result_message: Option<String>,
    /// When it was accepted (ms since the epoch).
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
    /// When the bridge next acts on it (send, retry or poll); `None` when it waits for
    /// nothing the bridge does.
    pub next_action_ms: Option<i64>,
    /// Consecutive retries or polls, which set the backoff.
    pub tries: u32,
    /// The last state the terminal acknowledged.
    pub delivered_state: Option<RefundState>,
    /// The number of the refund's latest transition: it grows with every recorded
    /// change, so of two copies of a refund the one with the higher revision is newer.
    pub revision: i64,
}

impl RefundRecord {
    /// Whether the terminal still has to be told this refund's state (a final one, or
    /// PROVIDER_PENDING).
    pub fn final_undelivered(&self) -> bool {
        self.state.told_until_acknowledged() && self.delivered_state != Some(self.state)
    }
}

/// One `refundRequestId` sent (or to be sent) for a refund.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// The attempt's number.
    pub id: i64,
    /// The id sent to the provider.
    pub refund_request_id: String,
    /// Where it stands.
    pub status: AttemptStatus,
    /// How many times it was sent.
    pub sends: u32,
    /// When it was made.
    pub created_ms: i64,
    /// When it was last sent.
    pub last_sent_ms: Option<i64>,
    /// The last classified outcome, in words.
    pub last_outcome: Option<String>,
}

/// One recorded step of a refund's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitionRecord {
    /// When.
    pub at_ms: i64,
    /// The state before (`None` when the refund was recorded).
    pub from_state: Option<RefundState>,
    /// The state after (the same as before for a retry or a poll).
    pub to_state: RefundState,
    /// Why, in words: who or what caused it.
    pub cause: String,
    /// The result code involved, if any.
    pub result_code: Option<String>,
    /// The attempt involved.
    pub attempt_id: Option<i64>,
}

/// A refund's whole story.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct History {
    /// The refund now.
    pub refund: RefundRecord,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptRecord>,
    /// Every step, oldest first.
    pub transitions: Vec<TransitionRecord>,
}

/// A refund the terminal asks for, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRefund {
    /// The terminal that asks.
    pub terminal_id: String,
    /// The terminal's id for it.
    pub original_merchant_refund_id: String,
    /// The payment.
    pub payment_id: String,
    /// The amount, or `None` for a full refund.
    pub amount: Option<Amount>,
    /// The note.
    pub memo: Option<String>,
}

/// How to record a new refund.
#[derive(Clone, Debug)]
pub struct AcceptPolicy {
    /// The provider's name.
    pub provider: String,
    /// Record it as QUEUED (the cloud is known unreachable) rather than ACCEPTED.
    pub queued: bool,
    /// The first attempt's `refundRequestId`.
    pub refund_request_id: String,
    /// The terminal's daily limit in this refund's currency, and when the day began.
    pub daily_limit: Option<DailyLimit>,
}

/// A cap on what one terminal may refund in one currency since a moment.
#[derive(Clone, Copy, Debug)]
pub struct DailyLimit {
    /// The cap.
    pub max: Amount,
    /// The start of the day (ms since the epoch).
    pub since_ms: i64,
}

/// What became of a REFUND offered to the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// Recorded, durably.
    Recorded {
        /// The new record.
        refund: RefundRecord,
        /// An earlier refund of the same payment is unfinished, so this one waits.
        waits_for_earlier: bool,
    },
    /// The same refund was recorded before with the same fields: nothing changed.
    Duplicate(RefundRecord),
    /// The same id was recorded before with different fields: refused.
    Mismatch(RefundRecord),
    /// Over the terminal's daily limit: refused, nothing recorded.
    OverDailyLimit {
        /// The cap.
        max: Amount,
        /// What the terminal refunded today already, in the same currency.
        used: i64,
    },
}

/// A change to one refund, made in one transaction with its transition row.
#[derive(Clone, Debug, Default)]
pub struct Change {
    /// The new state, if it changes.
    pub state: Option<RefundState>,
    /// The current attempt's new status.
    pub attempt: Option<AttemptStatus>,
    /// The attempt's last outcome, in words.
    pub outcome: Option<String>,
    /// When to act next (`Some(None)` clears it).
    pub next_action_ms: Option<Option<i64>>,
    /// The new retry count.
    pub tries: Option<u32>,
    /// The provider's refund id.
    pub provider_refund_id: Option<String>,
    /// The refund time.
    pub refund_time: Option<String>,
    /// The refunded amount.
    pub refunded: Option<Amount>,
    /// Result code and message.
    pub result: Option<(String, String)>,
    /// Why, for the history.
    pub cause: String,
}

/// How a refund is settled by a person or by a provider's report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// SUCCEEDED or FAILED.
    pub to: RefundState,
    /// The provider's refund id, when the settlement names it.
    pub provider_refund_id: Option<String>,
    /// What the provider refunded, when the settlement says.
    pub refunded: Option<Amount>,
    /// When the provider refunded (RFC 3339), when the settlement says.
    pub refund_time: Option<String>,
    /// Result code and message to record.
    pub result: Option<(String, String)>,
    /// Whether a provider's report proves it (which may also correct a FAILED refund
    /// the report shows carried out).
    pub by_report: bool,
}

impl Settlement {
    /// A person's word: the state only.
    pub fn to(state: RefundState) -> Settlement {
        Settlement {
            to: state,
            provider_refund_id: None,
            refunded: None,
            refund_time: None,
            result: None,
            by_report: false,
        }
    }
}

impl Counts {
    /// Refunds in one state.
    pub fn in_state(&self, state: RefundState) -> u64 {
        self.by_state
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

/// How many refunds stand where, for status reports and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Refunds by state, in [`RefundState::ALL`] order.
    pub by_state: Vec<(RefundState, u64)>,
    /// Refunds not yet final (ACCEPTED, QUEUED, PROCESSING).
    pub unfinished: u64,
    /// When the oldest unfinished refund was accepted.
    pub oldest_unfinished_ms: Option<i64>,
}
