//! Reading Antom's answers: what a refund or inquiryRefund answer says, once its
//! signature is checked. The HTTP status and the rule of [`crate::provider::answer`]
//! do the rest.
//!
//! - A refund answer's `resultStatus` decides: `S` the refund succeeded; `F` it was
//!   refused (the code may say a later attempt needs a new refundRequestId, or, for
//!   `REPEAT_REQ_INCONSISTENT`, that an earlier request under the same id exists, which
//!   proves nothing); `U` in progress (`REFUND_IN_PROCESS`) or "call again".
//! - An inquiryRefund answer's `result` only says whether the look-up worked; the
//!   refund's own state is `refundStatus`. A failed look-up is never a failed refund.
//! - Only a signed answer is believed, except `U` ("call again" or "in progress"), which
//!   costs nothing to believe: an unsigned `S` or `F` may come from anyone on the way.

use jiff::Timestamp;

use super::wire::{AntomAnswer, AntomResult, NAME, ResultStatus, parse_time, truncate};
use crate::provider::Outcome;
use crate::provider::answer;
use crate::provider::classify::{self, CodeClass};
use crate::provider::http::Call;

/// What a reply's signature check found. The check needs Antom's public key and the
/// reply's headers, so the client makes it; the readers ask for it once the body
/// parses as an Antom answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplySignature {
    /// A `Signature` header is present and verifies over the body.
    Verified,
    /// There is no `Signature` header.
    Absent,
    /// The signature cannot be checked or does not match; the text says why.
    Rejected(String),
}

const REFUND: Call = Call {
    provider: NAME,
    api: "refund",
};

const INQUIRY: Call = Call {
    provider: NAME,
    api: "inquiryRefund",
};

/// Classifies a refund reply (HTTP status and body) into an outcome.
///
/// `signature` is called once the body parses as an Antom answer. An answer echoing a
/// `refundRequestId` other than `refund_request_id` proves nothing. Never panics,
/// whatever the body.
pub fn classify_refund_reply(
    status: u16,
    body: &[u8],
    refund_request_id: &str,
    signature: impl FnOnce() -> ReplySignature,
) -> Outcome {
    answer::judge(REFUND, status, body, |body| {
        let parsed = trusted(REFUND, body, signature)?;
        let parsed = match parsed {
            Trusted::Answer(parsed) => parsed,
            Trusted::Doubtful(outcome) => return Ok(outcome),
        };
        if let Some(echoed) = &parsed.refund_request_id
            && !echoed.is_empty()
            && echoed != refund_request_id
        {
            return Ok(REFUND.unknown(format!(
                "answer is for refundRequestId {echoed:?}, not {refund_request_id:?}"
            )));
        }
        Ok(refund_result(&parsed))
    })
}

/// Classifies an inquiryRefund reply (HTTP status and body) into the refund's state.
///
/// `signature` is used as in [`classify_refund_reply`]. A look-up that itself failed
/// is `RetrySameRequest` or `OutcomeUnknown`, never `FailedFinal`; `refund_id` (the id
/// that was looked up) fills an in-progress answer that names none. Never panics,
/// whatever the body.
pub fn classify_inquiry_reply(
    status: u16,
    body: &[u8],
    refund_id: Option<&str>,
    signature: impl FnOnce() -> ReplySignature,
) -> Outcome {
    answer::judge(INQUIRY, status, body, |body| {
        let parsed = match trusted(INQUIRY, body, signature)? {
            Trusted::Answer(parsed) => parsed,
            Trusted::Doubtful(outcome) => return Ok(outcome),
        };
        Ok(inquiry_result(&parsed, refund_id))
    })
}

enum Trusted {
    /// A signed answer (or an unsigned `U`).
    Answer(AntomAnswer),
    /// An answer that cannot be believed; the outcome says why.
    Doubtful(Outcome),
}

/// Parses the body and checks its signature.
fn trusted(
    call: Call,
    body: &[u8],
    signature: impl FnOnce() -> ReplySignature,
) -> Result<Trusted, String> {
    let parsed: AntomAnswer =
        serde_json::from_slice(body).map_err(|e| format!("not an Antom result: {e}"))?;
    Ok(match signature() {
        ReplySignature::Verified => Trusted::Answer(parsed),
        ReplySignature::Rejected(why) => Trusted::Doubtful(call.unknown(why)),
        ReplySignature::Absent if parsed.result.result_status == ResultStatus::Unknown => {
            tracing::warn!(
                provider = NAME,
                api = call.api,
                code = %crate::text::visible(&parsed.result.result_code),
                "believing an unsigned U answer (it only asks to call again)"
            );
            Trusted::Answer(parsed)
        }
        ReplySignature::Absent => Trusted::Doubtful(call.unknown(format!(
            "unsigned answer with resultStatus {:?}; not trusted",
            parsed.result.result_status.as_str()
        ))),
    })
}

/// What a trusted refund answer says.
fn refund_result(parsed: &AntomAnswer) -> Outcome {
    let result = &parsed.result;
    match classify::antom_result(&result.result_status, &result.result_code) {
        CodeClass::Success => success(parsed),
        CodeClass::InProgress => Outcome::InProgress {
            refund_id: parsed.refund_id.clone().filter(|id| !id.is_empty()),
        },
        CodeClass::RetrySameRequest => REFUND.retry(describe(result)),
        CodeClass::NeedsNewRequestId => Outcome::NeedsNewRequestId {
            code: result.result_code.clone(),
            message: result.result_message.clone(),
        },
        CodeClass::FailedFinal => Outcome::FailedFinal {
            code: result.result_code.clone(),
            message: result.result_message.clone(),
        },
        CodeClass::AcceptedLater | CodeClass::OutcomeUnknown => REFUND.unknown(describe(result)),
    }
}

/// What a trusted inquiryRefund answer says about the refund.
fn inquiry_result(parsed: &AntomAnswer, looked_up: Option<&str>) -> Outcome {
    let result = &parsed.result;
    if result.result_status != ResultStatus::Success {
        // The look-up failed; that says nothing about the refund itself.
        return match classify::antom_result(&result.result_status, &result.result_code) {
            CodeClass::RetrySameRequest => INQUIRY.retry(describe(result)),
            _ => INQUIRY.unknown(format!(
                "the look-up itself failed, refund state unknown: {}",
                describe(result)
            )),
        };
    }
    let status = parsed.refund_status.as_deref().unwrap_or("");
    match classify::antom_refund_status(status) {
        Some(CodeClass::Success) => success(parsed),
        Some(CodeClass::InProgress) => Outcome::InProgress {
            refund_id: parsed
                .refund_id
                .clone()
                .filter(|id| !id.is_empty())
                .or_else(|| looked_up.map(str::to_owned)),
        },
        Some(CodeClass::FailedFinal) => Outcome::FailedFinal {
            code: format!("REFUND_{}", status.trim()),
            message: "the refund failed (inquiryRefund refundStatus)".to_string(),
        },
        _ => INQUIRY.unknown(format!("unknown refundStatus {status:?}")),
    }
}

/// A success, with what the answer tells of it: v1 answers (and inquiryRefund in v1)
/// carry the amount refunded, v2 answers do not.
pub(super) fn success(answer: &AntomAnswer) -> Outcome {
    Outcome::Succeeded {
        refund_id: answer.refund_id.clone().unwrap_or_default(),
        refund_time: answer
            .refund_time
            .as_deref()
            .and_then(parse_time)
            .unwrap_or_else(Timestamp::now),
        amount: answer.refund_amount.as_ref().and_then(|a| a.to_amount()),
        code: Some(answer.result.result_code.clone()).filter(|c| !c.is_empty()),
        message: Some(answer.result.result_message.clone()).filter(|m| !m.is_empty()),
    }
}

fn describe(result: &AntomResult) -> String {
    format!(
        "resultStatus={} resultCode={} resultMessage={:?}",
        result.result_status.as_str(),
        result.result_code,
        truncate(&result.result_message, 256)
    )
}
