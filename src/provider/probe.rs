//! Harmless authenticated calls, for `posbridge doctor`: each provider is asked
//! something that changes nothing, and its answer is read only for what it proves
//! about the credentials. A check passes only on the provider's own documented
//! answer; an answer of any other shape (a web server's error page, some other JSON)
//! proves nothing and fails with a fix.
//!
//! - Antom: a signed `inquiryRefund` for a made-up refundId. Any well-formed answer
//!   whose signature verifies with Antom's public key, other than a refusal of the
//!   request's signature or client id, proves both keys and the client id right.
//! - OTT Pay: `POST /api/v1/auth/token` with appId and appKey, which its documents give
//!   as the call that checks them (`token` and `expired` on success; error 10003 "API
//!   Authorization failed: The merchant appId and appKey pair you provided cannot be
//!   found", https://apidocs.ottpay.com/api/auth-api/api/).
//! - PaymentOptions: `GET .../server-to-server-interface/transaction/status/{id}` for a
//!   made-up id; its HTTP table documents 401 "Unauthorized … credentials are invalid"
//!   and 404 "Not Found" (…/error-and-response/httpresponse), so a 404 from
//!   PaymentOptions says the key was accepted and the id is unknown.

use jiff::Timestamp;

use super::Outcome;
use super::antom::reply::ReplySignature;
use super::antom::wire::{AntomAnswer, ResultStatus};
use super::http::{Reply, excerpt};

/// What a harmless call proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proof {
    /// The provider's documented answer: the credentials were accepted.
    Accepted,
    /// The provider answered, but with something that proves nothing either way
    /// ("call again", a server error).
    Inconclusive,
    /// Refused, or not the provider's answer, or no answer.
    Failed,
}

/// A harmless call's result.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The call made (`signed inquiryRefund`, `auth/token`...).
    pub call: &'static str,
    /// What it proved.
    pub proof: Proof,
    /// What was seen.
    pub detail: String,
    /// How to fix it, when not accepted.
    pub fix: Option<String>,
    /// The answer's HTTP `Date` header.
    pub date: Option<Timestamp>,
    /// The provider's own time in a signed answer (Antom's `Response-Time`), only when
    /// the signature verified.
    pub signed_time: Option<Timestamp>,
}

impl Probe {
    fn new(call: &'static str, proof: Proof, detail: String, fix: Option<&str>) -> Probe {
        Probe {
            call,
            proof,
            detail,
            fix: fix.map(str::to_owned),
            date: None,
            signed_time: None,
        }
    }

    fn accepted(call: &'static str, detail: String) -> Probe {
        Probe::new(call, Proof::Accepted, detail, None)
    }

    fn failed(call: &'static str, detail: String, fix: &str) -> Probe {
        Probe::new(call, Proof::Failed, detail, Some(fix))
    }

    fn inconclusive(call: &'static str, detail: String, fix: &str) -> Probe {
        Probe::new(call, Proof::Inconclusive, detail, Some(fix))
    }

    /// No answer came: the transport failed (the outcome says how).
    pub(crate) fn no_answer(call: &'static str, outcome: &Outcome) -> Probe {
        let reason = match outcome {
            Outcome::RetrySameRequest { reason } | Outcome::OutcomeUnknown { reason } => {
                reason.clone()
            }
            other => other.to_string(),
        };
        Probe::failed(
            call,
            format!("no answer: {reason}"),
            "check base_url in [provider], the network and the firewall",
        )
    }

    /// Notes the reply's `Date` header.
    pub(crate) fn dated(mut self, reply: &Reply) -> Probe {
        self.date = reply
            .header("date")
            .and_then(|d| jiff::fmt::rfc2822::parse(d).ok())
            .map(|z| z.timestamp());
        self
    }
}

/// A made-up id no provider has: nothing is found, nothing changes. A UUID, the
/// form of PaymentOptions' transaction ids, which suits the others too.
pub(crate) fn made_up_id() -> String {
    let ms = Timestamp::now().as_millisecond().unsigned_abs();
    format!("00000000-0000-4000-8000-{:012x}", ms & 0xffff_ffff_ffff)
}

/// Antom result codes that refuse the request's credentials rather than answer it
/// (common codes of Antom's API, also with the `DPOS_PAYMENT_` prefix of the v2
/// tables; `KEY_NOT_FOUND` and `ACCESS_DENIED` are in the inquiryRefund table).
const ANTOM_CREDENTIAL_REFUSALS: &[&str] = &[
    "SIGNATURE",
    "KEY_NOT_FOUND",
    "ACCESS_DENIED",
    "INVALID_CLIENT",
    "CLIENT_FORBIDDEN",
    "MERCHANT_NOT_REGISTERED",
];

/// Antom result codes saying the URL names no API (the inquiryRefund table's "API is
/// not defined" and "The called API is invalid or not active").
const ANTOM_WRONG_API: &[&str] = &["NO_INTERFACE_DEF", "INVALID_API"];

const ANTOM_CALL: &str = "signed inquiryRefund";

/// Judges Antom's answer to a signed inquiry about a made-up refund.
pub(crate) fn judge_antom(reply: &Reply, signature: impl FnOnce() -> ReplySignature) -> Probe {
    let wrong_server = "check base_url (Antom's host for your region, such as \
                        https://open-na-global.alipay.com) and api (v1 or v2) in [provider]";
    let parsed = serde_json::from_slice::<AntomAnswer>(&reply.body)
        .ok()
        .filter(|a| !matches!(a.result.result_status, ResultStatus::Other(_)));
    let Some(parsed) = parsed else {
        return Probe::failed(
            ANTOM_CALL,
            format!(
                "HTTP {} with a body that is not an Antom answer (no result.resultStatus S, F \
                 or U): {}",
                reply.status,
                excerpt(&reply.body)
            ),
            wrong_server,
        )
        .dated(reply);
    };
    let result = &parsed.result;
    let code = crate::text::clean_code(&result.result_code, 64);
    let said = format!(
        "resultStatus {} resultCode {code} ({})",
        result.result_status.as_str(),
        crate::text::clean_text(&result.result_message, 120)
    );
    if ANTOM_CREDENTIAL_REFUSALS.iter().any(|c| code.contains(c)) {
        return Probe::failed(
            ANTOM_CALL,
            format!("Antom refused the request: {said}"),
            "private_key_file must hold the private key whose public key is uploaded to the \
             Antom dashboard, and client_id must be the dashboard's client id",
        )
        .dated(reply);
    }
    if ANTOM_WRONG_API.iter().any(|c| code.contains(c)) {
        return Probe::failed(
            ANTOM_CALL,
            format!("Antom does not know this API: {said}"),
            wrong_server,
        )
        .dated(reply);
    }
    // Antom's SDKs take only HTTP 200 as an answer.
    if reply.status != 200 {
        return Probe::failed(
            ANTOM_CALL,
            format!(
                "HTTP {} (Antom answers with HTTP 200): {}",
                reply.status,
                excerpt(&reply.body)
            ),
            wrong_server,
        )
        .dated(reply);
    }
    match signature() {
        ReplySignature::Verified => {}
        ReplySignature::Absent => {
            return Probe::failed(
                ANTOM_CALL,
                format!("the answer ({said}) carries no Signature header, and Antom signs its answers"),
                "something other than Antom answered: check base_url, and any proxy between the box and Antom",
            )
            .dated(reply);
        }
        ReplySignature::Rejected(why) => {
            return Probe::failed(
                ANTOM_CALL,
                format!(
                    "the answer ({said}) is not signed by the key in antom_public_key_file: {why}"
                ),
                "antom_public_key_file must hold Antom's public key for your client id (from the \
                 Antom dashboard)",
            )
            .dated(reply);
        }
    }
    let signed_time = reply.header("response-time").and_then(parse_response_time);
    let probe = if result.result_status == ResultStatus::Unknown {
        Probe::inconclusive(
            ANTOM_CALL,
            format!("Antom answered U, the look-up did not run: {said}"),
            "run posbridge doctor again in a minute",
        )
    } else {
        Probe::accepted(
            ANTOM_CALL,
            format!(
                "Antom answered a signed inquiry about a made-up refund ({said}), and the \
                 answer's signature verified with antom_public_key_file"
            ),
        )
    };
    Probe {
        signed_time,
        ..probe.dated(reply)
    }
}

/// Antom's `Response-Time`: epoch milliseconds (v1) or ISO 8601 (v2).
fn parse_response_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    match text.parse::<i64>() {
        Ok(ms) => Timestamp::from_millisecond(ms).ok(),
        Err(_) => super::antom::parse_time(text),
    }
}

const OTTPAY_CALL: &str = "auth/token";

/// Judges OTT Pay's answer to `auth/token`.
pub(crate) fn judge_ottpay(reply: &Reply) -> Probe {
    let wrong_server = "check base_url in [provider] (OTT Pay's is https://ecom-api.ottpay.com)";
    let credentials =
        "check app_id and app_key (or app_key_file) against the OTT Pay merchant portal";
    let value: Option<serde_json::Value> = serde_json::from_slice(&reply.body).ok();
    let status = value
        .as_ref()
        .and_then(|v| v.get("status"))
        .and_then(|s| s.as_str());
    let result = value.as_ref().and_then(|v| v.get("result"));
    let probe = match (status, result) {
        (Some("SUCCESS"), Some(result))
            if (200..300).contains(&reply.status)
                && result
                    .get("token")
                    .and_then(|t| t.as_str())
                    .is_some_and(|t| !t.is_empty())
                && result.get("expired").is_some() =>
        {
            Probe::accepted(
                OTTPAY_CALL,
                "OTT Pay accepted app_id and app_key and issued a token".into(),
            )
        }
        (Some("ERROR"), Some(result)) => {
            let code = match result.get("code") {
                Some(serde_json::Value::Number(n)) => n.as_i64(),
                Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            };
            let message = result
                .get("message")
                .and_then(|m| m.as_str())
                .map(|m| crate::text::clean_text(m, 120))
                .unwrap_or_default();
            match code {
                // 10003: "API Authorization failed: The merchant appId and appKey pair
                // you provided cannot be found"; 10005: "Invalid parameter".
                Some(code @ (10003 | 10005 | 90000)) => Probe::failed(
                    OTTPAY_CALL,
                    format!("OTT Pay refused the credentials: error {code} ({message})"),
                    credentials,
                ),
                Some(code) => Probe::inconclusive(
                    OTTPAY_CALL,
                    format!(
                        "OTT Pay answered error {code} ({message}); the credentials were not checked"
                    ),
                    "run posbridge doctor again later; if it stays, ask OTT Pay",
                ),
                None => Probe::failed(
                    OTTPAY_CALL,
                    format!(
                        "HTTP {} with an ERROR that has no code: {}",
                        reply.status,
                        excerpt(&reply.body)
                    ),
                    wrong_server,
                ),
            }
        }
        _ if reply.status == 401 || reply.status == 403 => Probe::failed(
            OTTPAY_CALL,
            format!(
                "HTTP {} refusing the credentials: {}",
                reply.status,
                excerpt(&reply.body)
            ),
            credentials,
        ),
        _ => Probe::failed(
            OTTPAY_CALL,
            format!(
                "HTTP {} with a body that is not an OTT Pay token answer: {}",
                reply.status,
                excerpt(&reply.body)
            ),
            wrong_server,
        ),
    };
    probe.dated(reply)
}

const PAYMENTOPTIONS_CALL: &str = "transaction/status";

/// Judges PaymentOptions' answer to a status look-up of a made-up transaction.
pub(crate) fn judge_paymentoptions(reply: &Reply) -> Probe {
    let wrong_server = "check base_url in [provider]: everything before \
                        /server-to-server-interface, such as https://api.paymentoptions.com/api/v1/api/v1";
    let object = serde_json::from_slice::<serde_json::Value>(&reply.body)
        .ok()
        .filter(|v| v.is_object());
    // PaymentOptions publishes no error body; its documented answers all carry
    // `success` and `status_code`, so an answer of its own is an object with them,
    // agreeing with the HTTP status.
    let its_own = object.as_ref().is_some_and(|v| {
        v.get("success").is_some_and(|s| s.is_boolean())
            && v.get("status_code")
                .and_then(|c| c.as_i64())
                .is_none_or(|c| c == i64::from(reply.status))
    });
    let probe = match reply.status {
        401 => Probe::failed(
            PAYMENTOPTIONS_CALL,
            format!(
                "HTTP 401 Unauthorized (\"credentials are invalid\"): {}",
                excerpt(&reply.body)
            ),
            "check api_key (or api_key_file) against the PaymentOptions dashboard",
        ),
        404 if its_own => Probe::accepted(
            PAYMENTOPTIONS_CALL,
            "PaymentOptions accepted the API key and answered 404 Not Found for a made-up \
             transaction"
                .into(),
        ),
        200 if its_own => Probe::accepted(
            PAYMENTOPTIONS_CALL,
            "PaymentOptions accepted the API key and answered a transaction status".into(),
        ),
        500 | 502 | 504 if its_own => Probe::inconclusive(
            PAYMENTOPTIONS_CALL,
            format!(
                "HTTP {} from PaymentOptions; the API key was not checked",
                reply.status
            ),
            "run posbridge doctor again later",
        ),
        status => Probe::failed(
            PAYMENTOPTIONS_CALL,
            format!(
                "HTTP {status} with a body that is not a PaymentOptions answer: {}",
                excerpt(&reply.body)
            ),
            wrong_server,
        ),
    };
    probe.dated(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: reqwest::header::HeaderMap::new(),
            body: bytes::Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    #[test]
    fn antom_passes_only_a_signed_answer_of_its_shape() {
        let not_found = r#"{"result":{"resultStatus":"F","resultCode":"DPOS_PAYMENT_ORDER_NOT_EXIST","resultMessage":"x"}}"#;
        let ok = judge_antom(&reply(200, not_found), || ReplySignature::Verified);
        assert_eq!(ok.proof, Proof::Accepted, "{}", ok.detail);
        for (r, sig) in [
            (
                reply(404, "<html>Not Found</html>"),
                ReplySignature::Verified,
            ),
            (reply(200, r#"{"status":"ok"}"#), ReplySignature::Verified),
            (
                reply(200, r#"{"result":{"resultStatus":"X"}}"#),
                ReplySignature::Verified,
            ),
            (reply(200, not_found), ReplySignature::Absent),
            (
                reply(200, not_found),
                ReplySignature::Rejected("bad".into()),
            ),
            (reply(500, not_found), ReplySignature::Verified),
            (
                reply(
                    200,
                    r#"{"result":{"resultStatus":"F","resultCode":"INVALID_SIGNATURE"}}"#,
                ),
                ReplySignature::Absent,
            ),
        ] {
            let probe = judge_antom(&r, || sig.clone());
            assert_eq!(probe.proof, Proof::Failed, "{}", probe.detail);
            assert!(probe.fix.is_some());
        }
        let u = r#"{"result":{"resultStatus":"U","resultCode":"UNKNOWN_EXCEPTION"}}"#;
        let probe = judge_antom(&reply(200, u), || ReplySignature::Verified);
        assert_eq!(probe.proof, Proof::Inconclusive);
    }

    #[test]
    fn ottpay_and_paymentoptions_need_their_documented_answers() {
        let token = r#"{"status":"SUCCESS","result":{"token":"t","expired":1}}"#;
        assert_eq!(judge_ottpay(&reply(200, token)).proof, Proof::Accepted);
        let refused =
            r#"{"status":"ERROR","result":{"code":10003,"message":"API Authorization failed"}}"#;
        assert_eq!(judge_ottpay(&reply(200, refused)).proof, Proof::Failed);
        assert_eq!(judge_ottpay(&reply(404, "<html/>")).proof, Proof::Failed);
        assert_eq!(judge_ottpay(&reply(200, "{}")).proof, Proof::Failed);

        let missing = r#"{"success":false,"status_code":404}"#;
        assert_eq!(
            judge_paymentoptions(&reply(404, missing)).proof,
            Proof::Accepted
        );
        assert_eq!(
            judge_paymentoptions(&reply(401, missing)).proof,
            Proof::Failed
        );
        assert_eq!(
            judge_paymentoptions(&reply(404, "<html/>")).proof,
            Proof::Failed
        );
        assert_eq!(
            judge_paymentoptions(&reply(404, r#"{"a":1}"#)).proof,
            Proof::Failed
        );
        assert_eq!(
            judge_paymentoptions(&reply(404, r#"{"success":false,"status_code":200}"#)).proof,
            Proof::Failed
        );
        assert_eq!(made_up_id().len(), 36);
    }
}
