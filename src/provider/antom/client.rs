//! The Antom client: signed refund and inquiryRefund calls over the configured API
//! family's paths.

use futures::future::BoxFuture;
use jiff::Timestamp;

use super::config::{AntomApi, AntomConfig, RequestTimeFormat};
use super::keys::{PrivateKey, PublicKey};
use super::reply::{ReplySignature, classify_inquiry_reply, classify_refund_reply};
use super::signing;
use super::wire::{AmountOut, AmountV1Out, NAME, RefundBodyV1, RefundBodyV2, truncate};
use crate::provider::http::{self, Call, Reply};
use crate::provider::probe::{self, Probe};
use crate::provider::settings::{self, SettingsError};
use crate::provider::{InquiryRequest, LocalRefusal, Outcome, Provider, RefundRequest};

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
    pub fn new(config: &AntomConfig) -> Result<AntomProvider, SettingsError> {
        let private = config.load_private_key()?;
        let public = config.load_antom_public_key()?;
        AntomProvider::with_keys(config, private, public)
    }

    /// Builds the client with keys given directly (key fields of `config` ignored).
    pub fn with_keys(
        config: &AntomConfig,
        private_key: PrivateKey,
        antom_public_key: PublicKey,
    ) -> Result<AntomProvider, SettingsError> {
        let base = settings::base_url("base_url", &config.base_url)?;
        let client_id = config.client_id.trim();
        if client_id.is_empty() || client_id.len() > 128 || !client_id.is_ascii() {
            return Err(SettingsError::invalid(
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
            request_time: config
                .request_time
                .unwrap_or_else(|| RequestTimeFormat::documented_for(config.api)),
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
            // v2 looks refunds up by refundId only, and no answer has given one yet:
            // asking is sending the same refund again, which Antom answers for the
            // same refundRequestId without refunding twice.
            (AntomApi::V2, None) => {
                return match &request.resend {
                    Some(refund) => self.do_refund(refund).await,
                    None => call.unknown(
                        "v2 inquiryRefund needs the refundId, and no answer has given one yet",
                    ),
                };
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

    /// A signed inquiryRefund for a made-up refundId, judged for what it proves about
    /// the keys and the client id (see [`crate::provider::probe`]).
    pub async fn probe(&self) -> Probe {
        let call = Call {
            provider: NAME,
            api: "inquiryRefund",
        };
        let body = serde_json::json!({ "refundId": probe::made_up_id() });
        let body = match serde_json::to_vec(&body) {
            Ok(body) => body,
            Err(e) => return Probe::no_answer("signed inquiryRefund", &call.retry(e)),
        };
        match self.post(call, &self.inquiry, body).await {
            Ok(reply) => probe::judge_antom(&reply, || self.check_signature(&self.inquiry, &reply)),
            Err(outcome) => Probe::no_answer("signed inquiryRefund", &outcome),
        }
    }

    fn refund_body(&self, request: &RefundRequest) -> Result<Vec<u8>, Outcome> {
        if request.refund_request_id.is_empty() || request.refund_request_id.len() > 64 {
            return Err(LocalRefusal::InvalidRequestId
                .outcome("refundRequestId must be 1..64 characters; nothing was sent".into()));
        }
        let amount = request.amount_to_send("Antom v1", self.api == AntomApi::V1)?;
        let memo = request.memo.as_deref().map(|m| truncate(m, 256));
        let encoded = match self.api {
            AntomApi::V2 => serde_json::to_vec(&RefundBodyV2 {
                refund_request_id: &request.refund_request_id,
                payment_id: &request.payment_id,
                original_merchant_refund_id: request.original_merchant_refund_id.as_deref(),
                refund_amount: amount.map(|a| AmountOut {
                    value: a.value,
                    currency: a.currency,
                }),
                memo,
            }),
            AntomApi::V1 => {
                let Some(amount) = amount else {
                    return Err(LocalRefusal::AmountRequired
                        .outcome("Antom v1 refunds need an amount; nothing was sent".into()));
                };
                serde_json::to_vec(&RefundBodyV1 {
                    refund_request_id: &request.refund_request_id,
                    payment_id: &request.payment_id,
                    refund_amount: AmountV1Out {
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
        self.request_time.render(Timestamp::now())
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
) -> Result<(Endpoint, Endpoint), SettingsError> {
    let prefix = match api {
        AntomApi::V2 => "/v2/payments",
        AntomApi::V1 if client_id.starts_with("SANDBOX_") => "/ams/sandbox/api/v1/payments",
        AntomApi::V1 => "/ams/api/v1/payments",
    };
    let make = |name: &str| -> Result<Endpoint, SettingsError> {
        let url = format!("{base}{prefix}/{name}");
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            SettingsError::invalid("base_url", format!("cannot form {name} URL: {e}"))
        })?;
        Ok(Endpoint {
            path: parsed.path().to_string(),
            url,
        })
    };
    Ok((make("refund")?, make("inquiryRefund")?))
}
