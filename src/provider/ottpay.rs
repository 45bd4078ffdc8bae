//! OTT Pay local-card refunds (seed 003) with token authentication.
//!
//! A token comes from `POST /api/v1/auth/token` (`appId`, `appKey`) and is cached
//! until shortly before it expires; an answer that says the token is no good (HTTP
//! 401, codes 10003/90000) fetches a new one and sends the refund once more, which is
//! safe because such a request was refused before any processing. Amounts go out as a
//! string of cents. OTT Pay has no idempotency key: an answer that proves nothing goes
//! to a person. It documents no way to ask about a local-card refund either, so a
//! refund it accepted and finishes later (`refundStatus` `init`, or `processing` as in
//! its sample) is [`Outcome::AcceptedLater`], which reconciliation against OTT Pay's
//! report settles.

use std::path::PathBuf;

use futures::future::BoxFuture;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::answer;
use super::classify::{self, CodeClass};
use super::http::{self, Call, HttpSettings};
use super::probe::{self, Probe};
use super::settings::{self, SettingsError};
use super::{InquiryRequest, Outcome, Provider, RefundRequest, Secret};
use crate::money::Amount;

const NAME: &str = "ottpay";
const TOKEN_PATH: &str = "/api/v1/auth/token";
const REFUND_PATH: &str = "/api/v1/payment/local-card/refund";

/// `kind = "ottpay"` settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OttPayConfig {
    /// Scheme and host (and any path prefix), e.g. `https://ecom-api.ottpay.com`.
    pub base_url: String,
    /// The merchant's appId.
    pub app_id: String,
    /// The appKey inline.
    #[serde(default)]
    pub app_key: Option<Secret>,
    /// A file holding the appKey (preferred over inline).
    #[serde(default)]
    pub app_key_file: Option<PathBuf>,
    /// The time zone of `tradeTime` (OTT Pay reports Eastern time).
    #[serde(default = "default_zone")]
    pub trade_time_zone: String,
    /// Fetch a new token this long before the old one expires.
    #[serde(default = "default_margin")]
    pub token_refresh_margin_ms: u64,
    /// Timeouts and connection reuse.
    #[serde(default)]
    pub http: HttpSettings,
}

fn default_zone() -> String {
    "America/Toronto".to_string()
}

fn default_margin() -> u64 {
    60_000
}

impl OttPayConfig {
    /// Defaults for everything but endpoint and credentials.
    pub fn new(
        base_url: impl Into<String>,
        app_id: impl Into<String>,
        app_key: Secret,
    ) -> OttPayConfig {
        OttPayConfig {
            base_url: base_url.into(),
            app_id: app_id.into(),
            app_key: Some(app_key),
            app_key_file: None,
            trade_time_zone: default_zone(),
            token_refresh_margin_ms: default_margin(),
            http: HttpSettings::default(),
        }
    }
}

/// The OTT Pay refund client.
#[derive(Debug)]
pub struct OttPayProvider {
    client: reqwest::Client,
    token_url: String,
    refund_url: String,
    app_id: String,
    app_key: Secret,
    zone: TimeZone,
    margin: jiff::SignedDuration,
    max_body: usize,
    token: Mutex<Option<Token>>,
}

/// A token from `auth/token`.
#[derive(Debug, Clone)]
pub struct Token {
    /// The bearer token.
    pub value: Secret,
    /// When OTT Pay says it expires.
    pub expires: Timestamp,
}

impl OttPayProvider {
    /// Builds the client; the first refund fetches a token.
    pub fn new(config: &OttPayConfig) -> Result<OttPayProvider, SettingsError> {
        let base = settings::base_url("base_url", &config.base_url)?;
        let app_key = settings::resolve_secret(
            "app_key",
            config.app_key.as_ref(),
            config.app_key_file.as_ref(),
        )?;
        if config.app_id.trim().is_empty() {
            return Err(SettingsError::invalid("app_id", "is empty"));
        }
        let zone = TimeZone::get(&config.trade_time_zone).map_err(|e| {
            SettingsError::invalid("trade_time_zone", format!("unknown time zone: {e}"))
        })?;
        let margin = i64::try_from(config.token_refresh_margin_ms)
            .map(jiff::SignedDuration::from_millis)
            .map_err(|_| SettingsError::invalid("token_refresh_margin_ms", "too large"))?;
        Ok(OttPayProvider {
            client: config.http.client()?,
            token_url: format!("{base}{TOKEN_PATH}"),
            refund_url: format!("{base}{REFUND_PATH}"),
            app_id: config.app_id.trim().to_string(),
            app_key,
            zone,
            margin,
            max_body: config.http.max_response_bytes,
            token: Mutex::new(None),
        })
    }

    /// A valid token: the cached one, or a new one when it is missing, about to
    /// expire, or `force`d. One fetch at a time.
    async fn token(&self, force: bool) -> Result<Secret, Outcome> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            let fresh = Timestamp::now()
                .checked_add(self.margin)
                .is_ok_and(|soon| soon < token.expires);
            if fresh && !force {
                return Ok(token.value.clone());
            }
        }
        *cached = None;
        let token = self.fetch_token().await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    async fn fetch_token(&self) -> Result<Token, Outcome> {
        let call = Call {
            provider: NAME,
            api: "auth/token",
        };
        // Whatever happens here, the refund itself has not been sent.
        let never_sent = |outcome: Outcome| match outcome {
            Outcome::RetrySameRequest { reason } | Outcome::OutcomeUnknown { reason } => {
                Outcome::RetrySameRequest {
                    reason: format!("{reason} (refund not sent)"),
                }
            }
            other => other,
        };
        let body = serde_json::json!({ "appId": self.app_id, "appKey": self.app_key.expose() });
        let request = self.client.post(&self.token_url).json(&body);
        let reply = http::send(call, request, self.max_body)
            .await
            .map_err(never_sent)?;
        parse_token_reply(reply.status, &reply.body)
            .map_err(|what| call.retry(format!("{what} (refund not sent)")))
    }

    /// Asks for a token, judged for what it proves about appId and appKey (see
    /// [`super::probe`]); the token is not kept.
    pub async fn probe(&self) -> Probe {
        let call = Call {
            provider: NAME,
            api: "auth/token",
        };
        let body = serde_json::json!({ "appId": self.app_id, "appKey": self.app_key.expose() });
        let request = self.client.post(&self.token_url).json(&body);
        match http::send(call, request, self.max_body).await {
            Ok(reply) => probe::judge_ottpay(&reply),
            Err(outcome) => Probe::no_answer("auth/token", &outcome),
        }
    }

    async fn do_refund(&self, request: &RefundRequest) -> Outcome {
        let call = Call {
            provider: NAME,
            api: "refund",
        };
        let amount = match request.amount_to_send("OTT Pay", true) {
            Ok(Some(amount)) => amount,
            Ok(None) => return call.unknown("no amount"),
            Err(refusal) => return refusal,
        };
        let body = serde_json::json!({
            "oriPaymentId": request.payment_id,
            "refundAmount": amount.value.to_string(),
        });
        let mut refreshed = false;
        loop {
            let token = match self.token(refreshed).await {
                Ok(token) => token,
                Err(outcome) => return outcome,
            };
            let sent = self
                .client
                .post(&self.refund_url)
                .bearer_auth(token.expose())
                .json(&body);
            let reply = match http::send(call, sent, self.max_body).await {
                Ok(reply) => reply,
                Err(outcome) => return outcome,
            };
            if is_token_refusal(reply.status, &reply.body) && !refreshed {
                tracing::info!(
                    provider = NAME,
                    "token refused; fetching a new one and resending once"
                );
                refreshed = true;
                continue;
            }
            return classify_refund_reply(reply.status, &reply.body, amount, &self.zone);
        }
    }
}

impl Provider for OttPayProvider {
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
                reason: "ottpay inquiry: OTT Pay has no refund status API; check the OTT Pay \
                         merchant portal"
                    .into(),
            }
        })
    }
}

/// Classifies a refund reply (HTTP status and body) into an outcome. OTT Pay's
/// answer carries no currency, so a refunded amount takes `requested`'s; `tradeTime`
/// is read in `zone`. Never panics, whatever the body.
pub fn classify_refund_reply(
    status: u16,
    body: &[u8],
    requested: Amount,
    zone: &TimeZone,
) -> Outcome {
    let call = Call {
        provider: NAME,
        api: "refund",
    };
    answer::judge(call, status, body, |body| {
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|e| format!("not an OTT Pay answer: {e}"))?;
        Ok(match envelope.status.as_str() {
            "SUCCESS" => classify_success(call, &envelope.result, requested, zone),
            "ERROR" => match envelope.error() {
                Some((code, message)) => match classify::ottpay_code(code) {
                    CodeClass::FailedFinal => Outcome::FailedFinal {
                        code: code.to_string(),
                        message,
                    },
                    CodeClass::NeedsNewRequestId => Outcome::NeedsNewRequestId {
                        code: code.to_string(),
                        message,
                    },
                    CodeClass::RetrySameRequest => call.retry(format!("error {code}: {message}")),
                    _ => call.unknown(format!("error {code}: {message}")),
                },
                None => call.unknown(format!("ERROR without a code: {}", http::excerpt(body))),
            },
            other => call.unknown(format!("unknown envelope status {other:?}")),
        })
    })
}

fn classify_success(
    call: Call,
    result: &serde_json::Value,
    requested: Amount,
    zone: &TimeZone,
) -> Outcome {
    let text = |key: &str| -> Option<String> {
        match result.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let refund_id = text("refundId").filter(|s| !s.is_empty());
    let status = text("refundStatus").unwrap_or_default();
    match classify::ottpay_refund_status(&status) {
        Some(CodeClass::Success) => Outcome::Succeeded {
            refund_id: refund_id.unwrap_or_default(),
            refund_time: text("tradeTime")
                .and_then(|t| parse_trade_time(&t, zone))
                .unwrap_or_else(Timestamp::now),
            amount: text("refundAmount")
                .and_then(|v| v.trim().parse::<i64>().ok())
                .and_then(|value| Amount::new(value, requested.currency).ok()),
            code: Some(status.trim().to_owned()),
            message: None,
        },
        Some(CodeClass::AcceptedLater) => Outcome::AcceptedLater { refund_id },
        Some(CodeClass::FailedFinal) => Outcome::FailedFinal {
            code: "failure".into(),
            message: "OTT Pay reports refundStatus failure".into(),
        },
        _ if result.is_null() => call.unknown("SUCCESS without a result"),
        _ => call.unknown(format!("unknown refundStatus {status:?}")),
    }
}

/// `{"status": ..., "result": {...}}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    status: String,
    #[serde(default)]
    result: serde_json::Value,
}

impl Envelope {
    /// `(code, message)` of an error result.
    fn error(&self) -> Option<(i64, String)> {
        let code = match self.result.get("code")? {
            serde_json::Value::Number(n) => n.as_i64()?,
            serde_json::Value::String(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        let message = self
            .result
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_string();
        Some((code, message))
    }
}

/// Whether a reply says the token is no good (HTTP 401, or an `ERROR` with one of
/// [`classify::OTTPAY_AUTH_CODES`]): such a request was refused before any
/// processing, so a new token may be fetched and the refund sent once more.
pub fn is_token_refusal(status: u16, body: &[u8]) -> bool {
    if status == 401 {
        return true;
    }
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .filter(|e| e.status == "ERROR")
        .and_then(|e| e.error())
        .is_some_and(|(code, _)| classify::OTTPAY_AUTH_CODES.contains(&code))
}

/// Reads an `auth/token` reply (HTTP status and body): `{token, expired}` (epoch
/// ms), bare or inside the envelope's `result`. The error says what was missing or
/// wrong.
pub fn parse_token_reply(status: u16, body: &[u8]) -> Result<Token, String> {
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {}", http::excerpt(body)));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "token answer is not JSON".to_string())?;
    if value.get("status").and_then(|s| s.as_str()) == Some("ERROR") {
        let message = value
            .pointer("/result/message")
            .and_then(|m| m.as_str())
            .unwrap_or("no message");
        return Err(format!("token refused: {message}"));
    }
    let inner = value
        .get("result")
        .filter(|r| r.is_object())
        .unwrap_or(&value);
    let token = inner
        .get("token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or("token answer has no token")?;
    let expired = match inner.get("expired") {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or("token answer has no `expired` time")?;
    let expires =
        Timestamp::from_millisecond(expired).map_err(|_| "token `expired` is out of range")?;
    Ok(Token {
        value: Secret::new(token),
        expires,
    })
}

/// `YYYY-MM-DD HH:MM:SS` in the given zone.
pub fn parse_trade_time(text: &str, zone: &TimeZone) -> Option<Timestamp> {
    let civil = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", text.trim()).ok()?;
    zone.to_timestamp(civil).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trade_time_is_eastern_with_bundled_tzdb() {
        // The zone is compiled in, so a box without /usr/share/zoneinfo still has it.
        let bundled = jiff::tz::TimeZoneDatabase::bundled();
        assert!(bundled.get("America/Toronto").is_ok());
        let zone = TimeZone::get("America/Toronto").unwrap();
        let winter = parse_trade_time("2026-01-15 12:00:04", &zone).unwrap();
        assert_eq!(winter.to_string(), "2026-01-15T17:00:04Z");
        let summer = parse_trade_time("2026-07-15 12:00:04", &zone).unwrap();
        assert_eq!(summer.to_string(), "2026-07-15T16:00:04Z");
        assert!(parse_trade_time("refund time", &zone).is_none());
        assert!(parse_trade_time("2026-13-01 00:00:00", &zone).is_none());
    }

    #[test]
    fn config_errors_are_specific() {
        let mut c = OttPayConfig::new("https://x.example", "app", Secret::new("k"));
        c.trade_time_zone = "Mars/Olympus".into();
        let err = OttPayProvider::new(&c).unwrap_err().to_string();
        assert!(err.contains("trade_time_zone"), "{err}");
        let c = OttPayConfig::new("https://x.example", " ", Secret::new("k"));
        assert!(OttPayProvider::new(&c).is_err());
    }
}
