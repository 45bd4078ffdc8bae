//! Classification tables: provider result codes and statuses to outcome classes.
//!
//! The tables are data so they can be read and reviewed against the providers'
//! documents; `tests/provider_conformance.rs` runs the documents' own answers
//! (`tests/fixtures/providers/`) through the readers that use them. The providers'
//! modules look codes up here and only add the details (refund id, message) that turn a
//! [`CodeClass`] into an [`Outcome`](super::Outcome); what an HTTP status allows is
//! decided in [`super::answer`].
//!
//! Antom result codes come with a prefix in v2 (`DPOS_PAYMENT_`, `DPOS_REFUND_`,
//! `DPOS_`) and without one in v1; the table holds the bare codes and a lookup tries
//! the code as given, then with each prefix removed. Where Antom's code is not in the
//! table, the status letter decides: `S` succeeded, `F` refused, `U` send the same
//! refundRequestId again.

use super::antom::wire::ResultStatus;

/// The class of an outcome, without its details.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeClass {
    /// The refund succeeded.
    Success,
    /// Accepted, not final yet: poll, do not resubmit.
    InProgress,
    /// Accepted by a provider that finishes it later and cannot be asked about it.
    AcceptedLater,
    /// Send the same request again later.
    RetrySameRequest,
    /// No trustworthy statement about what happened.
    OutcomeUnknown,
    /// Refused for now; a later attempt needs a new refundRequestId.
    NeedsNewRequestId,
    /// Refused for good.
    FailedFinal,
}

use CodeClass::*;

/// Antom's prefixes on v2 result codes, tried in this order after the code as given.
pub const ANTOM_CODE_PREFIXES: &[&str] = &["DPOS_PAYMENT_", "DPOS_REFUND_", "DPOS_"];

/// Antom result codes (bare, as v1 spells them) and what they mean for a refund.
///
/// Sources: the refund and inquiryRefund result-code tables and the refund guide.
/// Only codes whose meaning changes what posbridge does are listed; every other code
/// falls back to its status letter.
pub static ANTOM_CODES: &[(&str, CodeClass)] = &[
    ("SUCCESS", Success),
    // U: being processed; wait for inquiryRefund or notifyRefund, never resubmit.
    ("REFUND_IN_PROCESS", InProgress),
    // U: Antom or the network hiccuped; the same refundRequestId is safe to resend.
    ("UNKNOWN_EXCEPTION", RetrySameRequest),
    ("REQUEST_TRAFFIC_EXCEED_LIMIT", RetrySameRequest),
    // F: "the refundRequestId field needs to be changed when you try again".
    ("MERCHANT_BALANCE_NOT_ENOUGH", NeedsNewRequestId),
    // "Use a new ... RequestId to initiate the refund again."
    ("ORDER_IS_CLOSED", NeedsNewRequestId),
    // F for this request, but an earlier request under the same refundRequestId exists
    // with other fields, and it may have refunded: nothing proves no money moved.
    ("REPEAT_REQ_INCONSISTENT", OutcomeUnknown),
    // F: final. Listed so a wrong status letter on them cannot make them retried.
    ("ACCESS_DENIED", FailedFinal),
    ("CURRENCY_NOT_SUPPORT", FailedFinal),
    ("INVALID_MERCHANT_STATUS", FailedFinal),
    ("ORDER_NOT_EXIST", FailedFinal),
    ("ORDER_STATUS_INVALID", FailedFinal),
    ("RISK_REJECT", FailedFinal),
    ("ORDER_IS_CANCELED", FailedFinal),
    ("SYSTEM_ERROR", FailedFinal),
    ("PROCESS_FAIL", FailedFinal),
    ("KEY_NOT_FOUND", FailedFinal),
    ("MULTIPLE_REFUNDS_NOT_SUPPORTED", FailedFinal),
    ("REFUND_AMOUNT_EXCEED", FailedFinal),
    ("REFUND_WINDOW_EXCEED", FailedFinal),
    ("REFUND_NOT_SUPPORTED", FailedFinal),
    ("PARTIAL_REFUND_NOT_SUPPORTED", FailedFinal),
    ("PAYMENT_METHOD_NOT_SUPPORTED", FailedFinal),
    ("NO_INTERFACE_DEF", FailedFinal),
    ("INVALID_API", FailedFinal),
];

/// Antom `refundStatus` values of inquiryRefund and notifyRefund. v2 documents
/// `SUCCESS`, `FAILED` and `PENDING`; v1 `SUCCESS`, `PROCESSING` and `FAIL`;
/// notifyRefund `SUCCESS` and `FAIL`. Each spelling means the same in every family, so
/// one table serves all three; anything else is unknown.
pub static ANTOM_REFUND_STATUSES: &[(&str, CodeClass)] = &[
    ("SUCCESS", Success),
    ("FAILED", FailedFinal),
    ("FAIL", FailedFinal),
    ("PENDING", InProgress),
    ("PROCESSING", InProgress),
];

/// Looks an Antom result code up, with or without its v2 prefix.
pub fn antom_code(code: &str) -> Option<CodeClass> {
    let code = code.trim();
    let candidates = std::iter::once(code).chain(
        ANTOM_CODE_PREFIXES
            .iter()
            .filter_map(|prefix| code.strip_prefix(prefix)),
    );
    for candidate in candidates {
        if let Some((_, class)) = ANTOM_CODES.iter().find(|(c, _)| *c == candidate) {
            return Some(*class);
        }
    }
    None
}

/// Classifies an Antom `result`. `S` is a success whatever the code. `F` is a refusal,
/// which a known code may make "needs a new refundRequestId" or "proves nothing"
/// (`REPEAT_REQ_INCONSISTENT`); a success, in-progress or call-again code under `F`
/// contradicts the letter and proves nothing. `U` is in progress for
/// `REFUND_IN_PROCESS` and "call again" otherwise. Any other letter proves nothing.
pub fn antom_result(status: &ResultStatus, code: &str) -> CodeClass {
    let known = antom_code(code);
    match status {
        ResultStatus::Success => Success,
        ResultStatus::Failure => match known {
            None | Some(FailedFinal) => FailedFinal,
            Some(NeedsNewRequestId) => NeedsNewRequestId,
            Some(_) => OutcomeUnknown,
        },
        ResultStatus::Unknown => match known {
            Some(InProgress) => InProgress,
            _ => RetrySameRequest,
        },
        ResultStatus::Other(_) => OutcomeUnknown,
    }
}

/// Looks an Antom `refundStatus` up.
pub fn antom_refund_status(status: &str) -> Option<CodeClass> {
    lookup(ANTOM_REFUND_STATUSES, status.trim())
}

/// OTT Pay numeric error codes (seed 003) and what they mean for a refund.
///
/// OTT Pay has no idempotency key, so a code that does not prove the refund was
/// refused is `OutcomeUnknown`: resending could refund twice.
pub static OTTPAY_CODES: &[(i64, CodeClass)] = &[
    (10005, FailedFinal),       // invalid parameter
    (10200, OutcomeUnknown),    // gateway error: may have reached the processor
    (20004, OutcomeUnknown),    // database error: may be half done
    (20007, NeedsNewRequestId), // insufficient balance: a later, new attempt may pass
    (20008, FailedFinal),       // unsupported card
    (20014, FailedFinal),       // refund greater than the amount paid
    (20019, FailedFinal),       // original payment does not exist
    (20021, FailedFinal),       // original payment does not support revocation
    (20034, OutcomeUnknown),    // other case: "any other errors", no word on the money
    (20041, FailedFinal),       // already fully refunded
    (50001, FailedFinal),       // failure
    (50002, FailedFinal),       // timeout: declined and reversed
    (50003, OutcomeUnknown),    // system error: no response received downstream
    (10003, RetrySameRequest),  // authorization failed: rejected before processing
    (90000, RetrySameRequest),  // unauthorized: rejected before processing
];

/// OTT Pay codes that mean the token is no good: fetch a new one and retry once.
pub const OTTPAY_AUTH_CODES: &[i64] = &[10003, 90000];

/// OTT Pay `refundStatus` values. `init` ("refund initiated") and `processing` (the
/// documented sample's value) are accepted refunds OTT Pay finishes later; it documents
/// no way to ask about a local-card refund, so reconciliation against its report
/// closes them.
pub static OTTPAY_REFUND_STATUSES: &[(&str, CodeClass)] = &[
    ("success", Success),
    ("init", AcceptedLater),
    ("processing", AcceptedLater),
    ("failure", FailedFinal),
];

/// Looks an OTT Pay error code up; unknown codes are `OutcomeUnknown`.
pub fn ottpay_code(code: i64) -> CodeClass {
    OTTPAY_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, class)| *class)
        .unwrap_or(OutcomeUnknown)
}

/// Looks an OTT Pay `refundStatus` up (case-insensitive).
pub fn ottpay_refund_status(status: &str) -> Option<CodeClass> {
    let status = status.trim().to_ascii_lowercase();
    lookup(OTTPAY_REFUND_STATUSES, &status)
}

fn lookup(table: &[(&str, CodeClass)], key: &str) -> Option<CodeClass> {
    table.iter().find(|(k, _)| *k == key).map(|(_, c)| *c)
}
