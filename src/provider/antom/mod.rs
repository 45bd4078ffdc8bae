//! Antom: signed refund and inquiryRefund calls, v2 ("omnichannel") paths by default
//! and v1 ("AMS") paths by configuration, plus the notifyRefund receiver.
//!
//! Every request is signed with the merchant's private key (see [`signing`]) and every
//! response's signature is checked with Antom's public key before anything in it is
//! believed. A response with a bad signature is an error outcome, never a result. As
//! the official SDKs do, an unsigned response is accepted only when its
//! `resultStatus` is `F` or `U` (gateways answer some failures without signing them);
//! an unsigned `S` is never trusted.
//!
//! Antom is idempotent by `refundRequestId`, so transient failures are
//! `RetrySameRequest` and the bridge resends the same request.

pub mod keys;
pub mod notify;
pub mod signing;

use std::path::PathBuf;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use self::keys::{PrivateKey, PublicKey};
use super::classify::{self, CodeClass};
use super::config::{self, ConfigError};
use super::http::{self, Call, HttpSettings, Reply};
use super::{InquiryRequest, Outcome, Provider, RefundRequest, Secret};
use crate::money::{Amount, Currency, MAX_AMOUNT};

const NAME: &str = "antom";

/// Which of Antom's API families the paths follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AntomApi {
    /// In-store omnichannel API: `/v2/payments/refund`, result codes with `DPOS_`.
    #[default]
    V2,
    /// Online API: `/ams/api/v1/payments/refund` (`/ams/sandbox/api/...` for a
    /// `SANDBOX_` client id, as the official SDKs do).
    V1,
}

/// What the `Request-Time` header carries. Whatever is sent is what is signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestTimeFormat {
    /// Milliseconds since the epoch, as the Java SDK sends.
    #[default]
    EpochMillis,
    /// RFC 3339 with offset, as the Python SDK sends.
    Rfc3339,
}

/// `kind = "antom"` settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AntomConfig {
    /// Scheme, host and any path prefix, e.g. `https://open-na-global.alipay.com`.
    pub base_url: String,
    /// `v2` (default) or `v1`.
    #[serde(default)]
    pub api: AntomApi,
    /// The merchant's client id.
    pub client_id: String,
    /// The `keyVersion` in the Signature header.
    #[serde(default = "default_key_version")]
    pub key_version: u32,
    /// The merchant private key inline (PEM or bare Base64 PKCS#8).
    #[serde(default)]
    pub private_key: Option<Secret>,
    /// A file with the merchant private key (preferred over inline).
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// Antom's public key inline (PEM or bare Base64 X.509 SPKI).
    #[serde(default)]
    pub antom_public_key: Option<String>,
    /// A file with Antom's public key.
    #[serde(default)]
    pub antom_public_key_file: Option<PathBuf>,
    /// The merchant's own public key, as uploaded to the Antom dashboard; optional,
    /// only `posbridge doctor` reads it, to check it matches the private key.
    #[serde(default)]
    pub merchant_public_key_file: Option<PathBuf>,
    /// The `Request-Time` format.
    #[serde(default)]
    pub request_time: RequestTimeFormat,
    /// Timeouts and connection reuse.
    #[serde(default)]
    pub http: HttpSettings,
    /// The notifyRefund receiver; absent means off.
    #[serde(default)]
    pub notify: Option<notify::NotifyConfig>,
}

fn default_key_version() -> u32 {
    1
}

impl AntomConfig {
    /// A configuration with defaults for everything but the endpoint and client id
    /// (keys are then given to [`AntomProvider::with_keys`]).
    pub fn new(base_url: impl Into<String>, client_id: impl Into<String>) -> AntomConfig {
        AntomConfig {
            base_url: base_url.into(),
            api: AntomApi::V2,
            client_id: client_id.into(),
            key_version: 1,
            private_key: None,
            private_key_file: None,
            antom_public_key: None,
            antom_public_key_file: None,
            merchant_public_key_file: None,
            request_time: RequestTimeFormat::EpochMillis,
            http: HttpSettings::default(),
            notify: None,
        }
    }

    /// Loads the merchant private key named by the configuration.
    pub fn load_private_key(&self) -> Result<PrivateKey, ConfigError> {
        let text = config::resolve_secret(
            "private_key",
            self.private_key.as_ref(),
            self.private_key_file.as_ref(),
        )?;
        Ok(PrivateKey::parse(text.expose())?)
    }

    /// Loads Antom's public key named by the configuration.
    pub fn load_antom_public_key(&self) -> Result<PublicKey, ConfigError> {
        match (&self.antom_public_key, &self.antom_public_key_file) {
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                "antom_public_key",
                "give either `antom_public_key` or `antom_public_key_file`, not both",
            )),
            (Some(text), None) => Ok(PublicKey::parse(text)?),
            (None, Some(path)) => Ok(PublicKey::from_file(path)?),
            (None, None) => Err(ConfigError::invalid(
                "antom_public_key",
                "missing: give `antom_public_key_file` or `antom_public_key`",
            )),
        }
    }
}

/// The Antom refund client.
#[derive(Debug)]
pub struct AntomProvider {
    client: reqwest::Client,
    client_id: String,
    key_version: u32,
    api: AntomApi,
    request_time: RequestTimeFormat,
    private_key: PrivateKey,
    antom_public_key: PublicKey,
    refund: Endpoint,
    inquiry: Endpoint,
    max_body: usize,
}

/// A full URL and the path part that is signed.
#[derive(Debug, Clone)]
struct Endpoint {
    url: String,
    path: String,
}

impl AntomProvider {
    /// Builds the client, loading both keys named in the configuration.
    pub fn new(config: &AntomConfig) -> Result<AntomProvider, ConfigError> {
        let private = config.load_private_key()?;
        let public = config.load_antom_public_key()?;
        AntomProvider::with_keys(config, private, public)
    }

    /// Builds the client with keys given directly (key fields of `config` ignored).
    pub fn with_keys(
        config: &AntomConfig,
        private_key: PrivateKey,
        antom_public_key: PublicKey,
    ) -> Result<AntomProvider, ConfigError> {
        let base = config::base_url("base_url", &config.base_url)?;
        let client_id = config.client_id.trim();
        if client_id.is_empty() || client_id.len() > 128 || !client_id.is_ascii() {
            return Err(ConfigError::invalid(
                "client_id",
                "must be 1..128 ASCII characters",
            ));
        }
        let (refund, inquiry) = endpoints(&base, config.api, client_id)?;
        Ok(AntomProvider {
            client: config.http.client()?,
            client_id: client_id.to_string(),
            key_version: config.key_version,
            api: config.api,
            request_time: config.request_time,
            private_key,
            antom_public_key,
            refund,
            inquiry,
            max_body: config.http.max_response_bytes,
        })
    }

    /// Which API family the paths follow.
    pub fn api(&self) -> AntomApi {
        self.api
    }

    async fn do_refund(&self, request: &RefundRequest) -> Outcome {
        let call = Call {
            provider: NAME,
            api: "refund",
        };
        let body = match self.refund_body(request) {
            Ok(body) => body,
            Err(outcome) => return outcome,
        };
        let reply = match self.post(call, &self.refund, body).await {
            Ok(reply) => reply,
            Err(outcome) => return outcome,
        };
        classify_refund_reply(
            reply.status,
            &reply.body,
            &request.refund_request_id,
            || self.check_signature(&self.refund, &reply),
        )
    }

    async fn do_inquire(&self, request: &InquiryRequest) -> Outcome {
        let call = Call {
            provider: NAME,
            api: "inquiryRefund",
        };
        let body = match (self.api, &request.refund_id) {
            (_, Some(refund_id)) => serde_json::json!({ "refundId": refund_id }),
            (AntomApi::V1, None) => {
                serde_json::json!({ "refundRequestId": request.refund_request_id })
            }
            (AntomApi::V2, None) => {
                return call.unknown(
                    "v2 inquiryRefund needs the refundId, and no answer has given one yet; \
                     resend the refund with the same refundRequestId instead",
                );
            }
        };
        let body = match serde_json::to_vec(&body) {
            Ok(body) => body,
            Err(e) => return call.retry(format!("cannot encode the request: {e}")),
        };
        let reply = match self.post(call, &self.inquiry, body).await {
            Ok(reply) => reply,
            Err(outcome) => return outcome,
        };
        classify_inquiry_reply(
            reply.status,
            &reply.body,
            request.refund_id.as_deref(),
            || self.check_signature(&self.inquiry, &reply),
        )
    }

    fn refund_body(&self, request: &RefundRequest) -> Result<Vec<u8>, Outcome> {
        let refuse = |code: &str, message: String| Outcome::FailedFinal {
            code: format!("POSBRIDGE_{code}"),
            message,
        };
        if request.refund_request_id.is_empty() || request.refund_request_id.len() > 64 {
            return Err(refuse(
                "INVALID_REQUEST_ID",
                "refundRequestId must be 1..64 characters; nothing was sent".into(),
            ));
        }
        if let Some(amount) = request.amount {
            if !(0..=MAX_AMOUNT).contains(&amount.value) {
                return Err(refuse(
                    "INVALID_AMOUNT",
                    format!("amount {} is out of range; nothing was sent", amount.value),
                ));
            }
        }
        let memo = request.memo.as_deref().map(|m| truncate(m, 256));
        let encoded = match self.api {
            AntomApi::V2 => serde_json::to_vec(&RefundBodyV2 {
                refund_request_id: &request.refund_request_id,
                payment_id: &request.payment_id,
                original_merchant_refund_id: request.original_merchant_refund_id.as_deref(),
                refund_amount: request.amount.map(|a| WireAmountOut {
                    value: a.value,
                    currency: a.currency,
                }),
                memo,
            }),
            AntomApi::V1 => {
                let Some(amount) = request.amount else {
                    return Err(refuse(
                        "AMOUNT_REQUIRED",
                        "Antom v1 refunds need an amount; nothing was sent".into(),
                    ));
                };
                serde_json::to_vec(&RefundBodyV1 {
                    refund_request_id: &request.refund_request_id,
                    payment_id: &request.payment_id,
                    refund_amount: WireAmountV1Out {
                        value: amount.value.to_string(),
                        currency: amount.currency,
                    },
                    refund_reason: memo,
                })
            }
        };
        encoded.map_err(|e| Outcome::RetrySameRequest {
            reason: format!("antom refund: cannot encode the request: {e}"),
        })
    }

    fn request_time(&self) -> String {
        let now = Timestamp::now();
        match self.request_time {
            RequestTimeFormat::EpochMillis => now.as_millisecond().to_string(),
            RequestTimeFormat::Rfc3339 => now.to_string(),
        }
    }

    async fn post(&self, call: Call, endpoint: &Endpoint, body: Vec<u8>) -> Result<Reply, Outcome> {
        let time = self.request_time();
        // RSA signing takes milliseconds of CPU: off the async threads, so terminal
        // lines and the ledger stay responsive while it runs.
        let (key, key_version, path, client_id, signed_time, signed_body) = (
            self.private_key.clone(),
            self.key_version,
            endpoint.path.clone(),
            self.client_id.clone(),
            time.clone(),
            body.clone(),
        );
        let signature = tokio::task::spawn_blocking(move || {
            signing::signature_header(
                &key,
                key_version,
                &path,
                &client_id,
                &signed_time,
                &signed_body,
            )
        })
        .await
        .map_err(|e| call.retry(format!("cannot sign, nothing sent: {e}")))?
        .map_err(|e| call.retry(format!("cannot sign, nothing sent: {e}")))?;
        let request = self
            .client
            .post(&endpoint.url)
            .header("Content-Type", "application/json; charset=UTF-8")
            .header("Client-Id", &self.client_id)
            .header("Request-Time", &time)
            .header("Signature", signature)
            // The v2 `Encrypt` header's specification is not public; bodies go in clear.
            .body(body);
        http::send(call, request, self.max_body).await
    }

    /// Checks a reply's `Signature` header over the endpoint's path with Antom's
    /// public key.
    fn check_signature(&self, endpoint: &Endpoint, reply: &Reply) -> ReplySignature {
        let Some(signature) = reply.header("signature") else {
            return ReplySignature::Absent;
        };
        let Some(time) = reply.header("response-time") else {
            return ReplySignature::Rejected(
                "response signature not verifiable: no Response-Time header; answer ignored"
                    .to_string(),
            );
        };
        match signing::verify(
            &self.antom_public_key,
            signature,
            &endpoint.path,
            &self.client_id,
            time,
            &reply.body,
        ) {
            Ok(()) => ReplySignature::Verified,
            Err(e) => ReplySignature::Rejected(format!(
                "response signature rejected ({e}); answer ignored"
            )),
        }
    }
}

impl Provider for AntomProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn is_idempotent(&self) -> bool {
        true
    }

    fn supports_inquiry(&self) -> bool {
        true
    }

    fn refund<'a>(&'a self, request: &'a RefundRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(self.do_refund(request))
    }

    fn inquire<'a>(&'a self, request: &'a InquiryRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(self.do_inquire(request))
    }
}

/// The two endpoints for a base URL and API family.
fn endpoints(
    base: &str,
    api: AntomApi,
    client_id: &str,
) -> Result<(Endpoint, Endpoint), ConfigError> {
    let prefix = match api {
        AntomApi::V2 => "/v2/payments",
        AntomApi::V1 if client_id.starts_with("SANDBOX_") => "/ams/sandbox/api/v1/payments",
        AntomApi::V1 => "/ams/api/v1/payments",
    };
    let make = |name: &str| -> Result<Endpoint, ConfigError> {
        let url = format!("{base}{prefix}/{name}");
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            ConfigError::invalid("base_url", format!("cannot form {name} URL: {e}"))
        })?;
        Ok(Endpoint {
            path: parsed.path().to_string(),
            url,
        })
    };
    Ok((make("refund")?, make("inquiryRefund")?))
}

/// What a reply's signature check found. The check needs Antom's public key and the
/// reply's headers, so the client makes it; [`classify_refund_reply`] and
/// [`classify_inquiry_reply`] ask for it only when a 2xx reply's body is an Antom
/// result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplySignature {
    /// A `Signature` header is present and verifies over the body.
    Verified,
    /// There is no `Signature` header.
    Absent,
    /// The signature cannot be checked or does not match; the text says why.
    Rejected(String),
}

/// Classifies a refund reply (HTTP status and body) into an outcome.
///
/// `signature` is called once, only for a 2xx reply whose body parses as an Antom
/// result: a rejected signature, or an unsigned answer other than `F` or `U`, is
/// `OutcomeUnknown`. An answer echoing a `refundRequestId` other than
/// `refund_request_id` is `OutcomeUnknown` too. Never panics, whatever the body.
pub fn classify_refund_reply(
    status: u16,
    body: &[u8],
    refund_request_id: &str,
    signature: impl FnOnce() -> ReplySignature,
) -> Outcome {
    let call = Call {
        provider: NAME,
        api: "refund",
    };
    let parsed = match read_answer(call, status, body, signature) {
        Ok(parsed) => parsed,
        Err(outcome) => return outcome,
    };
    if let Some(echoed) = &parsed.refund_request_id {
        if !echoed.is_empty() && echoed != refund_request_id {
            return call.unknown(format!(
                "answer is for refundRequestId {echoed:?}, not {refund_request_id:?}"
            ));
        }
    }
    classify_result(call, &parsed, |class| match class {
        CodeClass::Success => Some(success(&parsed)),
        CodeClass::InProgress => Some(Outcome::InProgress {
            refund_id: parsed.refund_id.clone().filter(|id| !id.is_empty()),
        }),
        _ => None,
    })
}

/// Classifies an inquiryRefund reply (HTTP status and body) into the refund's state.
///
/// `signature` is used as in [`classify_refund_reply`]. A look-up that itself failed
/// is `RetrySameRequest` or `OutcomeUnknown`, never `FailedFinal`; `refund_id` (the
/// id that was looked up) fills an in-progress answer that names none. Never panics,
/// whatever the body.
pub fn classify_inquiry_reply(
    status: u16,
    body: &[u8],
    refund_id: Option<&str>,
    signature: impl FnOnce() -> ReplySignature,
) -> Outcome {
    let call = Call {
        provider: NAME,
        api: "inquiryRefund",
    };
    let parsed = match read_answer(call, status, body, signature) {
        Ok(parsed) => parsed,
        Err(outcome) => return outcome,
    };
    if parsed.result.result_status != "S" {
        // The look-up failed; that says nothing about the refund itself.
        return match classify::antom_result(
            &parsed.result.result_status,
            &parsed.result.result_code,
        ) {
            Some(CodeClass::RetrySameRequest) => call.retry(describe_result(&parsed.result)),
            _ => call.unknown(format!(
                "the look-up itself failed, refund state unknown: {}",
                describe_result(&parsed.result)
            )),
        };
    }
    let status = parsed.refund_status.as_deref().unwrap_or("");
    match classify::antom_refund_status(status) {
        Some(CodeClass::Success) => success(&parsed),
        Some(CodeClass::InProgress) => Outcome::InProgress {
            refund_id: parsed
                .refund_id
                .clone()
                .or_else(|| refund_id.map(str::to_owned)),
        },
        Some(CodeClass::FailedFinal) => Outcome::FailedFinal {
            code: format!("REFUND_{status}"),
            message: "the refund failed (inquiryRefund refundStatus)".to_string(),
        },
        _ => call.unknown(format!("unknown refundStatus {status:?}")),
    }
}

/// Checks the status, the body and the signature; returns a trusted answer.
fn read_answer(
    call: Call,
    status: u16,
    body: &[u8],
    signature: impl FnOnce() -> ReplySignature,
) -> Result<AntomAnswer, Outcome> {
    let parsed: Option<AntomAnswer> = serde_json::from_slice(body).ok();
    if !(200..300).contains(&status) {
        let class = classify::http_status(status, true);
        let detail = format!("HTTP {status} {}", http::excerpt(body));
        return Err(match class {
            CodeClass::FailedFinal => match parsed {
                Some(answer) if answer.result.result_status == "F" => Outcome::FailedFinal {
                    code: answer.result.result_code,
                    message: answer.result.result_message,
                },
                _ => Outcome::FailedFinal {
                    code: format!("HTTP_{status}"),
                    message: http::excerpt(body),
                },
            },
            CodeClass::RetrySameRequest => call.retry(detail),
            _ => call.unknown(detail),
        });
    }
    let Some(answer) = parsed else {
        return Err(call.unknown(format!(
            "HTTP {status} with a body that is not an Antom result: {}",
            http::excerpt(body)
        )));
    };
    match signature() {
        ReplySignature::Verified => {}
        ReplySignature::Rejected(why) => return Err(call.unknown(why)),
        ReplySignature::Absent if matches!(answer.result.result_status.as_str(), "F" | "U") => {
            tracing::warn!(
                provider = NAME,
                api = call.api,
                code = %answer.result.result_code,
                "accepting an unsigned {} answer, as Antom's SDKs do",
                answer.result.result_status
            );
        }
        ReplySignature::Absent => {
            return Err(call.unknown(format!(
                "unsigned response with resultStatus {:?}; not trusted",
                answer.result.result_status
            )));
        }
    }
    Ok(answer)
}

/// Classifies a trusted `result`; `special` turns success and in-progress into
/// outcomes with the call's details.
fn classify_result(
    call: Call,
    answer: &AntomAnswer,
    special: impl Fn(CodeClass) -> Option<Outcome>,
) -> Outcome {
    let result = &answer.result;
    let Some(class) = classify::antom_result(&result.result_status, &result.result_code) else {
        return call.unknown(format!("unknown resultStatus: {}", describe_result(result)));
    };
    if let Some(outcome) = special(class) {
        return outcome;
    }
    match class {
        CodeClass::RetrySameRequest => call.retry(describe_result(result)),
        CodeClass::NeedsNewRequestId => Outcome::NeedsNewRequestId {
            code: result.result_code.clone(),
            message: result.result_message.clone(),
        },
        CodeClass::FailedFinal => Outcome::FailedFinal {
            code: result.result_code.clone(),
            message: result.result_message.clone(),
        },
        CodeClass::Success | CodeClass::InProgress | CodeClass::OutcomeUnknown => {
            call.unknown(describe_result(result))
        }
    }
}

fn success(answer: &AntomAnswer) -> Outcome {
    Outcome::Succeeded {
        refund_id: answer.refund_id.clone().unwrap_or_default(),
        refund_time: answer
            .refund_time
            .as_deref()
            .and_then(parse_time)
            .unwrap_or_else(Timestamp::now),
        amount: answer
            .refund_amount
            .as_ref()
            .and_then(WireAmountIn::to_amount),
    }
}

/// Antom times: RFC 3339 with `Z` or an offset.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    text.trim().parse::<Timestamp>().ok()
}

fn describe_result(result: &AntomResult) -> String {
    format!(
        "resultStatus={} resultCode={} resultMessage={:?}",
        result.result_status,
        result.result_code,
        truncate(&result.result_message, 256)
    )
}

fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((index, _)) => text.get(..index).unwrap_or(text),
        None => text,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefundBodyV2<'a> {
    refund_request_id: &'a str,
    payment_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_merchant_refund_id: Option<&'a str>,
    // Absent means a full refund in v2.
    #[serde(skip_serializing_if = "Option::is_none")]
    refund_amount: Option<WireAmountOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memo: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefundBodyV1<'a> {
    refund_request_id: &'a str,
    payment_id: &'a str,
    refund_amount: WireAmountV1Out,
    #[serde(skip_serializing_if = "Option::is_none")]
    refund_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct WireAmountOut {
    currency: Currency,
    value: i64,
}

/// v1 sends the value as a string.
#[derive(Serialize)]
struct WireAmountV1Out {
    currency: Currency,
    value: String,
}

/// An amount in an answer: value as a number (v2) or a string (v1).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireAmountIn {
    #[serde(default)]
    currency: String,
    #[serde(default)]
    value: serde_json::Value,
}

impl WireAmountIn {
    pub(crate) fn to_amount(&self) -> Option<Amount> {
        let currency = Currency::parse(&self.currency).ok()?;
        let value = match &self.value {
            serde_json::Value::Number(n) => n.as_i64()?,
            serde_json::Value::String(s) => s.trim().parse::<i64>().ok()?,
            _ => return None,
        };
        (0..=MAX_AMOUNT)
            .contains(&value)
            .then_some(Amount::new(value, currency))
    }
}

/// Antom's `result` object.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AntomResult {
    pub(crate) result_status: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) result_code: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) result_message: String,
}

/// The fields posbridge reads from refund and inquiryRefund answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AntomAnswer {
    pub(crate) result: AntomResult,
    #[serde(default)]
    pub(crate) refund_id: Option<String>,
    #[serde(default)]
    pub(crate) refund_request_id: Option<String>,
    #[serde(default)]
    pub(crate) refund_time: Option<String>,
    #[serde(default)]
    pub(crate) refund_status: Option<String>,
    #[serde(default)]
    pub(crate) refund_amount: Option<WireAmountIn>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_paths() {
        let (r, i) = endpoints("https://h.example/openapi", AntomApi::V2, "C").unwrap();
        assert_eq!(r.path, "/openapi/v2/payments/refund");
        assert_eq!(i.url, "https://h.example/openapi/v2/payments/inquiryRefund");
        let (r, _) = endpoints("https://h.example", AntomApi::V1, "C").unwrap();
        assert_eq!(r.path, "/ams/api/v1/payments/refund");
        let (r, _) = endpoints("https://h.example", AntomApi::V1, "SANDBOX_C").unwrap();
        assert_eq!(r.path, "/ams/sandbox/api/v1/payments/refund");
    }

    #[test]
    fn amounts_in_answers() {
        let v2: WireAmountIn = serde_json::from_str(r#"{"value":1250,"currency":"USD"}"#).unwrap();
        let v1: WireAmountIn =
            serde_json::from_str(r#"{"value":"1250","currency":"USD"}"#).unwrap();
        assert_eq!(v2.to_amount(), v1.to_amount());
        assert!(v1.to_amount().is_some());
        for bad in [
            r#"{"value":-1,"currency":"USD"}"#,
            r#"{"value":"12.5","currency":"USD"}"#,
            r#"{"value":1,"currency":"usd"}"#,
            r#"{"value":null,"currency":"USD"}"#,
        ] {
            let a: WireAmountIn = serde_json::from_str(bad).unwrap();
            assert_eq!(a.to_amount(), None, "{bad}");
        }
    }

    #[test]
    fn times_and_truncation() {
        assert!(parse_time("2026-04-10T11:32:54Z").is_some());
        assert!(parse_time("2019-06-01T12:01:01+08:30").is_some());
        assert!(parse_time("yesterday").is_none());
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
