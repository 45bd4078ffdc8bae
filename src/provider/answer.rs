//! The one rule that turns a provider's HTTP answer into an [`Outcome`], the same for
//! every provider:
//!
//! - **FAILED only when the answer itself says no money moved** (a documented refusal:
//!   Antom `resultStatus` `F`, an OTT Pay error code its table names as a refusal, a
//!   PaymentOptions `success: false` with a refusal code). Only such an answer becomes
//!   [`Outcome::FailedFinal`] or [`Outcome::NeedsNewRequestId`], whatever its HTTP
//!   status.
//! - **SUCCEEDED whenever a 2xx answer says the money moved**, whatever the 2xx status
//!   (200, 201, 202...).
//! - **Everything else is not a failure.** An answer that says the request was not
//!   processed (HTTP 408, 429, 503; 401 and 403, an authentication refusal; a
//!   provider's own "call again" codes) is [`Outcome::RetrySameRequest`]. Anything
//!   that proves nothing either way — a 2xx body that cannot be read, an HTML error
//!   page, an empty body, a 5xx, a 404 or 409 without a documented refusal, an unknown
//!   status value — is [`Outcome::OutcomeUnknown`]. The bridge's policy then sends
//!   it again with the same `refundRequestId` or asks about it (Antom, idempotent), or
//!   hands it to a person (OTT Pay, PaymentOptions): never a second refund.
//!
//! Each provider only reads its own body format ([`judge`]'s `read`); this module
//! decides what the HTTP status allows, and cleans every string that came from the
//! provider ([`clean`]) before anything else sees it.

use super::Outcome;
use super::http::{self, Call};
use crate::text;

/// What a provider's body reader found in an answer.
pub type Reading = Result<Outcome, String>;

/// Judges an HTTP answer: `read` turns the body into what the provider says (or says
/// why the body is not an answer of this API), and the rule above decides what of
/// that the HTTP status allows. Every string in the result is cleaned.
pub fn judge(call: Call, status: u16, body: &[u8], read: impl FnOnce(&[u8]) -> Reading) -> Outcome {
    let reading = read(body);
    clean(decide(call, status, body, reading))
}

fn decide(call: Call, status: u16, body: &[u8], reading: Reading) -> Outcome {
    if (200..300).contains(&status) {
        return match reading {
            Ok(said) => said,
            Err(why) => call.unknown(format!(
                "HTTP {status} with a body that is not a {} {} answer ({why}): {}",
                call.provider,
                call.api,
                http::excerpt(body)
            )),
        };
    }
    // Not 2xx: only a documented refusal or "call again" in the body is believed; a
    // success claimed under an error status is a contradiction and proves nothing.
    match reading {
        Ok(refusal @ (Outcome::FailedFinal { .. } | Outcome::NeedsNewRequestId { .. })) => refusal,
        Ok(again @ Outcome::RetrySameRequest { .. }) => again,
        _ => by_status(call, status, body),
    }
}

/// How an HTTP status that is not 2xx is read when the body documents nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMeaning {
    /// The request was not processed; the same request may be sent again.
    NotProcessed,
    /// Nothing is known about what the request did.
    Unknown,
}

/// Non-2xx statuses that say the request was not processed (RFC 9110): a request
/// timeout (408), too many requests (429), service unavailable (503), and an
/// authentication refusal (401, 403), which is decided before any work is done.
pub const NOT_PROCESSED_STATUSES: &[u16] = &[401, 403, 408, 429, 503];

/// What a non-2xx status says on its own.
pub fn status_meaning(status: u16) -> StatusMeaning {
    if NOT_PROCESSED_STATUSES.contains(&status) {
        StatusMeaning::NotProcessed
    } else {
        StatusMeaning::Unknown
    }
}

fn by_status(call: Call, status: u16, body: &[u8]) -> Outcome {
    let detail = format!("HTTP {status} {}", http::excerpt(body));
    match status_meaning(status) {
        StatusMeaning::NotProcessed => call.retry(format!("{detail} (not processed)")),
        StatusMeaning::Unknown => call.unknown(format!(
            "{detail}; nothing in the answer says whether the refund was made"
        )),
    }
}

/// Cleans every string of an outcome that came from a provider: result codes to
/// visible ASCII, refund ids kept or percent-encoded, messages and reasons stripped of
/// control, bidirectional and invisible characters and bounded in length.
pub fn clean(outcome: Outcome) -> Outcome {
    let code = |c: String| text::clean_code(&c, CODE_CHARS);
    let message = |m: String| text::clean_text(&m, MESSAGE_CHARS);
    let reason = |r: String| text::clean_text(&r, REASON_CHARS);
    match outcome {
        Outcome::Succeeded {
            refund_id,
            refund_time,
            amount,
            code: c,
            message: m,
        } => Outcome::Succeeded {
            refund_id: text::clean_id(&refund_id),
            refund_time,
            amount,
            code: c.map(code),
            message: m.map(message),
        },
        Outcome::FailedFinal {
            code: c,
            message: m,
        } => Outcome::FailedFinal {
            code: code(c),
            message: message(m),
        },
        Outcome::NeedsNewRequestId {
            code: c,
            message: m,
        } => Outcome::NeedsNewRequestId {
            code: code(c),
            message: message(m),
        },
        Outcome::InProgress { refund_id } => Outcome::InProgress {
            refund_id: refund_id.map(|id| text::clean_id(&id)),
        },
        Outcome::AcceptedLater { refund_id } => Outcome::AcceptedLater {
            refund_id: refund_id.map(|id| text::clean_id(&id)),
        },
        Outcome::RetrySameRequest { reason: r } => Outcome::RetrySameRequest { reason: reason(r) },
        Outcome::OutcomeUnknown { reason: r } => Outcome::OutcomeUnknown { reason: reason(r) },
    }
}

/// Longest result code kept: Antom documents at most 64 characters, and the link
/// protocol's `resultCode` holds as many.
pub const CODE_CHARS: usize = 64;

/// Longest result message kept: Antom documents at most 256 characters, and the link
/// protocol's `resultMessage` holds as many.
pub const MESSAGE_CHARS: usize = 256;

/// Longest reason kept (they name the provider, the call and an excerpt of the body).
const REASON_CHARS: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    const CALL: Call = Call {
        provider: "p",
        api: "refund",
    };

    fn ok() -> Outcome {
        Outcome::Succeeded {
            refund_id: "R1".into(),
            refund_time: jiff::Timestamp::UNIX_EPOCH,
            amount: None,
            code: None,
            message: None,
        }
    }

    fn refused() -> Outcome {
        Outcome::FailedFinal {
            code: "NO".into(),
            message: "refused".into(),
        }
    }

    #[test]
    fn any_2xx_that_says_the_money_moved_is_a_success() {
        for status in [200, 201, 202, 204] {
            assert_eq!(judge(CALL, status, b"{}", |_| Ok(ok())), ok(), "{status}");
        }
    }

    #[test]
    fn a_success_under_an_error_status_proves_nothing() {
        for status in [400, 404, 409, 500, 502] {
            let got = judge(CALL, status, b"{}", |_| Ok(ok()));
            assert_eq!(got.class_name(), "OUTCOME_UNKNOWN", "{status}");
        }
        let got = judge(CALL, 429, b"{}", |_| Ok(ok()));
        assert_eq!(got.class_name(), "RETRY_SAME_REQUEST");
    }

    #[test]
    fn a_documented_refusal_is_believed_under_any_status() {
        for status in [200, 400, 403, 404, 422, 500] {
            assert_eq!(
                judge(CALL, status, b"{}", |_| Ok(refused())),
                refused(),
                "{status}"
            );
        }
    }

    #[test]
    fn an_unreadable_body_is_never_a_failure() {
        for status in [200, 201, 400, 404, 409, 500, 502, 504] {
            let got = judge(CALL, status, b"<html>Bad Gateway</html>", |_| {
                Err("not JSON".into())
            });
            assert_eq!(got.class_name(), "OUTCOME_UNKNOWN", "{status}");
        }
        for status in [401, 403, 408, 429, 503] {
            let got = judge(CALL, status, b"", |_| Err("empty".into()));
            assert_eq!(got.class_name(), "RETRY_SAME_REQUEST", "{status}");
        }
    }

    #[test]
    fn provider_strings_are_cleaned_once_here() {
        let got = judge(CALL, 200, b"", |_| {
            Ok(Outcome::FailedFinal {
                code: "BAD CODE".into(),
                message: "line one\nline\ttwo \u{202e}x\u{1b}[2J".into(),
            })
        });
        assert_eq!(
            got,
            Outcome::FailedFinal {
                code: "BAD_CODE".into(),
                message: "line one line two x[2J".into(),
            }
        );
        let got = judge(CALL, 200, b"", |_| {
            Ok(Outcome::InProgress {
                refund_id: Some("R 1".into()),
            })
        });
        assert_eq!(
            got,
            Outcome::InProgress {
                refund_id: Some("R%201".into())
            }
        );
    }
}
