//! Classification tables: provider result codes and HTTP statuses to outcome classes.
//!
//! The tables are data so they can be read, reviewed against the providers' documents
//! and tested row by row. The providers' modules look codes up here and only add the
//! details (refund id, message) that turn a [`CodeClass`] into an
//! [`Outcome`](super::Outcome).
//!
//! Antom result codes come with a prefix in v2 (`DPOS_PAYMENT_`, `DPOS_REFUND_`,
//! `DPOS_`) and without one in v1; the table holds the bare codes and a lookup tries
//! the code as given, then with each prefix removed. Where Antom's code is not in the
//! table, the status letter decides: `S` succeeded, `F` final, `U` retry with the same
//! refundRequestId.

/// The class of an outcome, without its details.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeClass {
    /// The refund succeeded.
    Success,
    /// Accepted, not final yet: poll, do not resubmit.
    InProgress,
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
    // F: final. Listed so a wrong status letter on them cannot make them retried.
    ("ACCESS_DENIED", FailedFinal),
    ("CURRENCY_NOT_SUPPORT", FailedFinal),
    ("INVALID_MERCHANT_STATUS", FailedFinal),
    ("ORDER_NOT_EXIST", FailedFinal),
    ("ORDER_STATUS_INVALID", FailedFinal),
    // Same id, different fields: a second request must not reuse or replace the first.
    ("REPEAT_REQ_INCONSISTENT", FailedFinal),
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
];

/// Antom `refundStatus` values of inquiryRefund (v2 and v1) and notifyRefund.
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

/// Classifies an Antom `result`: the status letter is authoritative for `S`; for `F`
/// and `U` a known code decides, else the letter. `None` for an unknown letter.
pub fn antom_result(status: &str, code: &str) -> Option<CodeClass> {
    let by_letter = match status {
        "S" => return Some(Success),
        "F" => FailedFinal,
        "U" => RetrySameRequest,
        _ => return None,
    };
    match antom_code(code) {
        // A success code under F or U is contradictory: trust the letter.
        Some(Success) | None => Some(by_letter),
        Some(class) => Some(class),
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
    (20034, FailedFinal),       // other case
    (20041, FailedFinal),       // already fully refunded
    (50001, FailedFinal),       // failure
    (50002, FailedFinal),       // timeout: declined and reversed
    (50003, OutcomeUnknown),    // system error: no response received downstream
    (10003, RetrySameRequest),  // authorization failed: rejected before processing
    (90000, RetrySameRequest),  // unauthorized: rejected before processing
];

/// OTT Pay codes that mean the token is no good: fetch a new one and retry once.
pub const OTTPAY_AUTH_CODES: &[i64] = &[10003, 90000];

/// OTT Pay `refundStatus` values.
pub static OTTPAY_REFUND_STATUSES: &[(&str, CodeClass)] = &[
    ("success", Success),
    ("init", InProgress),
    ("processing", InProgress),
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

/// PaymentOptions `gateway_response.code` values that mean the refund succeeded (with
/// HTTP 201 and `success: true`); anything else is a failure carrying its message.
pub const PAYMENTOPTIONS_SUCCESS_CODES: &[&str] = &["INFO0002"];

/// HTTP statuses (inclusive ranges, first match wins) of a provider that refunds at
/// most once per request id: anything transient may be resent.
pub static HTTP_STATUS_IDEMPOTENT: &[(u16, u16, CodeClass)] = &[
    (408, 408, RetrySameRequest),
    (429, 429, RetrySameRequest),
    (400, 499, FailedFinal),
    (500, 599, RetrySameRequest),
];

/// HTTP statuses of a provider without idempotency. Only statuses that say the request
/// was not processed (timeout waiting for it, rate limit, service unavailable) may be
/// resent; other 5xx may come from a gateway after the work was done.
pub static HTTP_STATUS_NOT_IDEMPOTENT: &[(u16, u16, CodeClass)] = &[
    (408, 408, RetrySameRequest),
    (429, 429, RetrySameRequest),
    (503, 503, RetrySameRequest),
    (400, 499, FailedFinal),
    (500, 599, OutcomeUnknown),
];

/// Classifies a non-success HTTP status; statuses in no row (1xx, 3xx) are unknown.
pub fn http_status(status: u16, idempotent: bool) -> CodeClass {
    let table = if idempotent {
        HTTP_STATUS_IDEMPOTENT
    } else {
        HTTP_STATUS_NOT_IDEMPOTENT
    };
    table
        .iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&status))
        .map(|(_, _, class)| *class)
        .unwrap_or(OutcomeUnknown)
}

fn lookup(table: &[(&str, CodeClass)], key: &str) -> Option<CodeClass> {
    table.iter().find(|(k, _)| *k == key).map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of the Antom table, bare and with each v2 prefix.
    #[test]
    fn antom_codes_row_by_row_with_and_without_prefixes() {
        for (code, class) in ANTOM_CODES {
            assert_eq!(antom_code(code), Some(*class), "{code}");
            for prefix in ANTOM_CODE_PREFIXES {
                let prefixed = format!("{prefix}{code}");
                assert_eq!(antom_code(&prefixed), Some(*class), "{prefixed}");
            }
        }
    }

    #[test]
    fn antom_v2_names_from_the_seed() {
        let rows = [
            ("DPOS_PAYMENT_ACCESS_DENIED", FailedFinal),
            ("DPOS_PAYMENT_CURRENCY_NOT_SUPPORT", FailedFinal),
            ("DPOS_PAYMENT_INVALID_MERCHANT_STATUS", FailedFinal),
            ("DPOS_PAYMENT_ORDER_IS_CLOSED", NeedsNewRequestId),
            ("DPOS_PAYMENT_ORDER_NOT_EXIST", FailedFinal),
            ("DPOS_PAYMENT_ORDER_STATUS_INVALID", FailedFinal),
            ("DPOS_PAYMENT_REPEAT_REQ_INCONSISTENT", FailedFinal),
            ("DPOS_PAYMENT_RISK_REJECT", FailedFinal),
            ("DPOS_PAYMENT_ORDER_IS_CANCELED", FailedFinal),
            ("DPOS_SYSTEM_ERROR", FailedFinal),
            ("DPOS_REFUND_KEY_NOT_FOUND", FailedFinal),
            ("DPOS_REFUND_IN_PROCESS", InProgress),
            ("DPOS_MERCHANT_BALANCE_NOT_ENOUGH", NeedsNewRequestId),
            ("DPOS_REQUEST_TRAFFIC_EXCEED_LIMIT", RetrySameRequest),
            ("DPOS_UNKNOWN_EXCEPTION", RetrySameRequest),
            ("DPOS_REFUND_AMOUNT_EXCEED", FailedFinal),
        ];
        for (code, class) in rows {
            assert_eq!(antom_code(code), Some(class), "{code}");
        }
        assert_eq!(antom_code("SOMETHING_NEW"), None);
        assert_eq!(antom_code("DPOS_"), None);
        assert_eq!(antom_code(""), None);
    }

    #[test]
    fn antom_status_letter_decides_for_unknown_codes() {
        assert_eq!(antom_result("S", "ANYTHING"), Some(Success));
        assert_eq!(antom_result("S", "SUCCESS"), Some(Success));
        assert_eq!(antom_result("F", "SOMETHING_NEW"), Some(FailedFinal));
        assert_eq!(antom_result("U", "SOMETHING_NEW"), Some(RetrySameRequest));
        assert_eq!(antom_result("U", "REFUND_IN_PROCESS"), Some(InProgress));
        assert_eq!(
            antom_result("F", "MERCHANT_BALANCE_NOT_ENOUGH"),
            Some(NeedsNewRequestId)
        );
        assert_eq!(antom_result("F", "SUCCESS"), Some(FailedFinal));
        assert_eq!(antom_result("U", "SUCCESS"), Some(RetrySameRequest));
        assert_eq!(antom_result("X", "SUCCESS"), None);
        assert_eq!(antom_result("", ""), None);
    }

    #[test]
    fn antom_refund_statuses_row_by_row() {
        for (status, class) in ANTOM_REFUND_STATUSES {
            assert_eq!(antom_refund_status(status), Some(*class), "{status}");
        }
        assert_eq!(
            antom_refund_status("success"),
            None,
            "Antom's statuses are upper-case"
        );
    }

    #[test]
    fn ottpay_codes_row_by_row() {
        for (code, class) in OTTPAY_CODES {
            assert_eq!(ottpay_code(*code), *class, "{code}");
        }
        assert_eq!(ottpay_code(12345), OutcomeUnknown);
        for code in OTTPAY_AUTH_CODES {
            assert_eq!(ottpay_code(*code), RetrySameRequest);
        }
    }

    #[test]
    fn ottpay_statuses_row_by_row() {
        for (status, class) in OTTPAY_REFUND_STATUSES {
            assert_eq!(ottpay_refund_status(status), Some(*class), "{status}");
            let upper = status.to_ascii_uppercase();
            assert_eq!(ottpay_refund_status(&upper), Some(*class), "{upper}");
        }
        assert_eq!(ottpay_refund_status("weird"), None);
    }

    #[test]
    fn http_status_rows() {
        let rows = [
            (408, true, RetrySameRequest),
            (429, true, RetrySameRequest),
            (400, true, FailedFinal),
            (404, true, FailedFinal),
            (500, true, RetrySameRequest),
            (502, true, RetrySameRequest),
            (503, true, RetrySameRequest),
            (504, true, RetrySameRequest),
            (302, true, OutcomeUnknown),
            (408, false, RetrySameRequest),
            (429, false, RetrySameRequest),
            (503, false, RetrySameRequest),
            (400, false, FailedFinal),
            (401, false, FailedFinal),
            (500, false, OutcomeUnknown),
            (502, false, OutcomeUnknown),
            (504, false, OutcomeUnknown),
            (301, false, OutcomeUnknown),
            (100, false, OutcomeUnknown),
        ];
        for (status, idempotent, class) in rows {
            assert_eq!(
                http_status(status, idempotent),
                class,
                "{status} {idempotent}"
            );
        }
    }
}
