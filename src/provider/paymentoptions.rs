//! PaymentOptions server-to-server refunds (seed 004).
//!
//! `POST {base}/server-to-server-interface/refund` with `Authorization: Basic <key>`
//! and `x-api-key: <key>`, the amount as an integer in minor units.
//!
//! What an answer says, by PaymentOptions' documents:
//! - `success: true` in a 2xx answer (the example is HTTP 201 with `status_code` 201,
//!   `gateway_response.code` `INFO0002`, "Amount successfully refunded.") is a success,
//!   whatever the success code, which is recorded; a `status_code` in the body that is
//!   not 2xx, or a `transaction_type` other than `REFUND`, contradicts it and proves
//!   nothing.
//! - `success: false` is a refusal only when the HTTP status is one PaymentOptions'
//!   table documents as a request it did not process (400 "could not process the
//!   request due to a client error", 404, 406 "Invalid Card", 412 "Precondition
//!   Failed") and the body's `status_code` agrees; PaymentOptions publishes no error
//!   codes. A `success: false` with a gateway or timeout kind of status (5xx), or any
//!   other shape, proves nothing.
//!
//! There is no idempotency key, so an answer that proves nothing goes to a person. A
//! transaction-status API is documented, but only for payments; it is not used.

use std::path::PathBuf;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::Deserialize;

use super::answer;
use super::http::{self, Call, HttpSettings};
use super::probe::{self, Probe};
use super::settings::{self, SettingsError};
use super::{InquiryRequest, Outcome, Provider, RefundRequest, Secret};
use crate::money::{Amount, Currency};

const NAME: &str = "paymentoptions";
const REFUND_PATH: &str = "/server-to-server-interface/refund";
/// The documented transaction look-up, before the transaction's id
/// (…/server-to-server/transaction-status).
const STATUS_PATH: &str = "/server-to-server-interface/transaction/status/";

/// `kind = "paymentoptions"` settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentOptionsConfig {
    /// Everything before `/server-to-server-interface/refund`, e.g.
    /// `https://api-dev.paymentoptions.com/api/v1/api/v1` (the documented URL repeats
    /// `/api/v1`).
    pub base_url: String,
    /// The API key inline.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// A file holding the API key (preferred over inline).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// The merchant id sent as `merchant_id`.
    pub merchant_id: String,
    /// Timeouts and connection reuse.
    #[serde(default)]
    pub http: HttpSettings,
}

impl PaymentOptionsConfig {
    /// Defaults for everything but endpoint and credentials.
    pub fn new(
        base_url: impl Into<String>,
        api_key: Secret,
        merchant_id: impl Into<String>,
    ) -> PaymentOptionsConfig {
        PaymentOptionsConfig {
            base_url: base_url.into(),
            api_key: Some(api_key),
            api_key_file: None,
            merchant_id: merchant_id.into(),
            http: HttpSettings::default(),
        }
    }
}

/// The PaymentOptions refund client.
#[derive(Debug)]
pub struct PaymentOptionsProvider {
    client: reqwest::Client,
    base: String,
    refund_url: String,
    api_key: Secret,
    merchant_id: String,
    max_body: usize,
}

impl PaymentOptionsProvider {
    /// Builds the client.
    pub fn new(config: &PaymentOptionsConfig) -> Result<PaymentOptionsProvider, SettingsError> {
        let base = settings::base_url("base_url", &config.base_url)?;
        let api_key = settings::resolve_secret(
            "api_key",
            config.api_key.as_ref(),
            config.api_key_file.as_ref(),
        )?;
        if api_key.expose().chars().any(|c| c.is_control() || c == ' ') {
            return Err(SettingsError::invalid(
                "api_key",
                "contains spaces or control characters",
            ));
        }
        if config.merchant_id.trim().is_empty() {
            return Err(SettingsError::invalid("merchant_id", "is empty"));
        }
        Ok(PaymentOptionsProvider {
            client: config.http.client()?,
            refund_url: format!("{base}{REFUND_PATH}"),
            base,
            api_key,
            merchant_id: config.merchant_id.trim().to_string(),
            max_body: config.http.max_response_bytes,
        })
    }

    /// Looks up a made-up transaction's status, judged for what it proves about the
    /// API key (see [`super::probe`]).
    pub async fn probe(&self) -> Probe {
        let call = Call {
            provider: NAME,
            api: "transaction/status",
        };
        let url = format!("{}{STATUS_PATH}{}", self.base, probe::made_up_id());
        let sent = self
            .client
            .get(url)
            .header("Authorization", format!("Basic {}", self.api_key.expose()))
            .header("x-api-key", self.api_key.expose());
        match http::send(call, sent, self.max_body).await {
            Ok(reply) => probe::judge_paymentoptions(&reply),
            Err(outcome) => Probe::no_answer("transaction/status", &outcome),
        }
    }

    async fn do_refund(&self, request: &RefundRequest) -> Outcome {
        let call = Call {
            provider: NAME,
            api: "refund",
        };
        let amount = match request.amount_to_send("PaymentOptions", true) {
            Ok(Some(amount)) => amount,
            Ok(None) => return call.unknown("no amount"),
            Err(refusal) => return refusal,
        };
        let body = serde_json::json!({
            "transactionId": request.payment_id,
            "amount": amount.value,
            "merchant_id": self.merchant_id,
            "notes": request.memo.clone().unwrap_or_default(),
        });
        let sent = self
            .client
            .post(&self.refund_url)
            .header("Authorization", format!("Basic {}", self.api_key.expose()))
            .header("x-api-key", self.api_key.expose())
            .json(&body);
        match http::send(call, sent, self.max_body).await {
            Ok(reply) => classify_refund_reply(reply.status, &reply.body),
            Err(outcome) => answer::clean(outcome),
        }
    }
}

impl Provider for PaymentOptionsProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn is_idempotent(&self) -> bool {
        false
    }

    fn supports_inquiry(&self) -> bool {
        false
    }

    fn refund<'a>(&'a self, request: &'a RefundRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(self.do_refund(request))
    }

    fn inquire<'a>(&'a self, _request: &'a InquiryRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(async {
            Outcome::OutcomeUnknown {
                reason: "paymentoptions inquiry: PaymentOptions has no refund status API; check \
                         the PaymentOptions dashboard"
                    .into(),
            }
        })
    }
}

/// HTTP statuses PaymentOptions documents as requests it did not process, and which
/// a `success: false` answer makes a refusal.
pub const REFUSAL_STATUSES: &[u16] = &[400, 404, 406, 412];

#[derive(Debug, Default, Deserialize)]
struct Answer {
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    status_code: Option<i64>,
    #[serde(default)]
    transaction_type: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    gateway_response: Option<Gateway>,
    #[serde(default)]
    payment_details: Option<PaymentDetails>,
    #[serde(default)]
    transaction_details: Option<TransactionDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct Gateway {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct PaymentDetails {
    #[serde(default)]
    amount: Option<i64>,
    #[serde(default)]
    currency: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct TransactionDetails {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.gateway_response.as_ref()?.code.as_deref()
    }

    fn message(&self) -> String {
        self.gateway_response
            .as_ref()
            .and_then(|g| g.message.clone())
            .or_else(|| self.message.clone())
            .unwrap_or_default()
    }

    fn describe(&self) -> String {
        format!(
            "success={:?} status_code={:?} code={:?} message={:?}",
            self.success,
            self.status_code,
            self.code().unwrap_or(""),
            self.message()
        )
    }
}

/// Classifies a refund reply (HTTP status and body) into an outcome, as the module
/// documentation says. Never panics, whatever the body.
pub fn classify_refund_reply(status: u16, body: &[u8]) -> Outcome {
    let call = Call {
        provider: NAME,
        api: "refund",
    };
    answer::judge(call, status, body, |body| {
        let answer: Answer =
            serde_json::from_slice(body).map_err(|e| format!("not JSON of this API: {e}"))?;
        Ok(read(call, status, &answer))
    })
}

fn read(call: Call, status: u16, answer: &Answer) -> Outcome {
    let body_status_2xx = answer
        .status_code
        .is_none_or(|code| (200..300).contains(&code));
    match answer.success {
        Some(true) if !body_status_2xx => call.unknown(format!(
            "success is claimed with a failing status_code: {}",
            answer.describe()
        )),
        Some(true)
            if answer
                .transaction_type
                .as_deref()
                .is_some_and(|t| !t.eq_ignore_ascii_case("REFUND")) =>
        {
            call.unknown(format!(
                "the answer is about a {:?} transaction, not a refund",
                answer.transaction_type.as_deref().unwrap_or("")
            ))
        }
        Some(true) => success(answer),
        Some(false) if says_refunded(answer) => call.unknown(format!(
            "success is false, yet the gateway says the amount was refunded: {}",
            answer.describe()
        )),
        Some(false)
            if REFUSAL_STATUSES.contains(&status)
                && answer
                    .status_code
                    .is_none_or(|code| code == i64::from(status)) =>
        {
            Outcome::FailedFinal {
                code: answer
                    .code()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("HTTP_{status}")),
                message: Some(answer.message())
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| format!("HTTP {status}")),
            }
        }
        Some(false) => call.unknown(format!(
            "a failure the documents do not name as a refusal: {}",
            answer.describe()
        )),
        None => call.unknown(format!("no `success` in the answer: {}", answer.describe())),
    }
}

/// Whether the gateway's words say the money moved (the documented success code or
/// an INFO answer), whatever `success` says.
fn says_refunded(answer: &Answer) -> bool {
    answer.gateway_response.as_ref().is_some_and(|g| {
        g.code.as_deref() == Some(SUCCESS_CODE)
            || g.kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("INFO"))
    })
}

/// The documented refund success code ("Amount successfully refunded.").
pub const SUCCESS_CODE: &str = "INFO0002";

fn success(answer: &Answer) -> Outcome {
    let details = answer.transaction_details.as_ref();
    Outcome::Succeeded {
        refund_id: details.and_then(|d| d.id.clone()).unwrap_or_default(),
        refund_time: details
            .and_then(|d| d.timestamp.as_deref())
            .and_then(|t| t.parse::<Timestamp>().ok())
            .unwrap_or_else(Timestamp::now),
        amount: answer.payment_details.as_ref().and_then(|p| {
            let currency = Currency::parse(p.currency.as_deref()?).ok()?;
            Amount::new(p.amount?, currency).ok()
        }),
        code: answer.code().map(str::to_owned),
        message: Some(answer.message()).filter(|m| !m.is_empty()),
    }
}
