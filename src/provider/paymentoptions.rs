//! PaymentOptions server-to-server refunds (seed 004).
//!
//! `POST {base}/server-to-server-interface/refund` with `Authorization: Basic <key>`
//! and `x-api-key: <key>`, the amount as an integer in minor units. HTTP 201 with
//! `success: true` and `gateway_response.code` `INFO0002` is success; any other
//! answer is a failure carrying its message, except the HTTP statuses that say nothing
//! about the refund (see [`classify::HTTP_STATUS_NOT_IDEMPOTENT`]). There is no
//! idempotency key and no status API.

use std::path::PathBuf;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::Deserialize;

use super::classify::{self, CodeClass};
use super::config::{self, ConfigError};
use super::http::{self, Call, HttpSettings};
use super::{InquiryRequest, Outcome, Provider, RefundRequest, Secret};
use crate::money::{Amount, Currency, MAX_AMOUNT};

const NAME: &str = "paymentoptions";
const REFUND_PATH: &str = "/server-to-server-interface/refund";

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
    refund_url: String,
    api_key: Secret,
    merchant_id: String,
    max_body: usize,
}

impl PaymentOptionsProvider {
    /// Builds the client.
    pub fn new(config: &PaymentOptionsConfig) -> Result<PaymentOptionsProvider, ConfigError> {
        let base = config::base_url("base_url", &config.base_url)?;
        let api_key = config::resolve_secret(
            "api_key",
            config.api_key.as_ref(),
            config.api_key_file.as_ref(),
        )?;
        if api_key.expose().chars().any(|c| c.is_control() || c == ' ') {
            return Err(ConfigError::invalid(
                "api_key",
                "contains spaces or control characters",
            ));
        }
        if config.merchant_id.trim().is_empty() {
            return Err(ConfigError::invalid("merchant_id", "is empty"));
        }
        Ok(PaymentOptionsProvider {
            client: config.http.client()?,
            refund_url: format!("{base}{REFUND_PATH}"),
            api_key,
            merchant_id: config.merchant_id.trim().to_string(),
            max_body: config.http.max_response_bytes,
        })
    }

    async fn do_refund(&self, request: &RefundRequest) -> Outcome {
        let call = Call {
            provider: NAME,
            api: "refund",
        };
        let Some(amount) = request.amount else {
            return Outcome::FailedFinal {
                code: "POSBRIDGE_AMOUNT_REQUIRED".into(),
                message: "PaymentOptions refunds need an amount; nothing was sent".into(),
            };
        };
        if !(1..=MAX_AMOUNT).contains(&amount.value) {
            return Outcome::FailedFinal {
                code: "POSBRIDGE_INVALID_AMOUNT".into(),
                message: format!("amount {} is out of range; nothing was sent", amount.value),
            };
        }
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
            Err(outcome) => outcome,
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

#[derive(Debug, Default, Deserialize)]
struct Answer {
    #[serde(default)]
    success: Option<bool>,
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
}

/// Classifies a refund reply (HTTP status and body) into an outcome: HTTP 201 with
/// `success: true` and a success `gateway_response.code` is success, any other
/// answer a failure carrying its code and message, except the statuses that say
/// nothing about the refund. Never panics, whatever the body.
pub fn classify_refund_reply(status: u16, body: &[u8]) -> Outcome {
    let call = Call {
        provider: NAME,
        api: "refund",
    };
    let answer: Option<Answer> = serde_json::from_slice(body).ok();
    if !(200..300).contains(&status) {
        let detail = format!("HTTP {status} {}", http::excerpt(body));
        return match classify::http_status(status, false) {
            CodeClass::RetrySameRequest => call.retry(detail),
            CodeClass::FailedFinal => failure(status, body, answer.as_ref()),
            _ => call.unknown(detail),
        };
    }
    let Some(answer) = answer else {
        return call.unknown(format!(
            "HTTP {status} with an unreadable body: {}",
            http::excerpt(body)
        ));
    };
    let succeeded = status == 201
        && answer.success == Some(true)
        && answer
            .code()
            .is_some_and(|c| classify::PAYMENTOPTIONS_SUCCESS_CODES.contains(&c));
    if !succeeded {
        return failure(status, body, Some(&answer));
    }
    let details = answer.transaction_details.as_ref();
    Outcome::Succeeded {
        refund_id: details.and_then(|d| d.id.clone()).unwrap_or_default(),
        refund_time: details
            .and_then(|d| d.timestamp.as_deref())
            .and_then(|t| t.parse::<Timestamp>().ok())
            .unwrap_or_else(Timestamp::now),
        amount: answer.payment_details.as_ref().and_then(|p| {
            let currency = Currency::parse(p.currency.as_deref()?).ok()?;
            let value = p.amount.filter(|v| (0..=MAX_AMOUNT).contains(v))?;
            Some(Amount::new(value, currency))
        }),
    }
}

fn failure(status: u16, body: &[u8], answer: Option<&Answer>) -> Outcome {
    let code = answer
        .and_then(Answer::code)
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP_{status}"));
    let message = answer
        .map(Answer::message)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| http::excerpt(body));
    Outcome::FailedFinal { code, message }
}
