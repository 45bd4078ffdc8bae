//! The keys a catalogue holds: placeholders, words, the reasons that explain
//! provider result codes, and the ERROR codes with texts of their own.

use crate::message::ErrorCode;
use crate::provider::LocalRefusal;

/// The placeholders a text may hold.
pub(super) const PLACEHOLDERS: [&str; 6] = ["amount", "id", "refundId", "reason", "code", "detail"];

/// The `errors` key for every ERROR code without a text of its own.
pub(super) const OTHER_ERROR: &str = "OTHER";

/// The `words` keys.
pub(super) const WORDS: [&str; 2] = ["FULL_AMOUNT", "UNKNOWN_REASON"];

/// Each `reasons` key and the provider result codes it explains: Antom's (without
/// the `DPOS_` prefixes of v2), OTT Pay's numeric codes and `refundStatus`, the
/// bridge's own (`POSBRIDGE_*`, and `OUTCOME_UNKNOWN` on a refund a person settled
/// as failed), and HTTP statuses that say the merchant's credentials are refused.
pub const REASONS: &[(&str, &[&str])] = &[
    ("BALANCE_LOW", &["MERCHANT_BALANCE_NOT_ENOUGH", "20007"]),
    ("AMOUNT_TOO_HIGH", &["REFUND_AMOUNT_EXCEED", "20014"]),
    ("WINDOW_OVER", &["REFUND_WINDOW_EXCEED"]),
    ("FULL_REFUND_ONLY", &["PARTIAL_REFUND_NOT_SUPPORTED"]),
    (
        "METHOD_NOT_REFUNDABLE",
        &[
            "PAYMENT_METHOD_NOT_SUPPORTED",
            "REFUND_NOT_SUPPORTED",
            "20008",
            "20021",
        ],
    ),
    (
        "ALREADY_REFUNDED",
        &["MULTIPLE_REFUNDS_NOT_SUPPORTED", "20041"],
    ),
    ("PAYMENT_NOT_FOUND", &["ORDER_NOT_EXIST", "20019"]),
    ("NOT_REFUNDABLE_NOW", &["ORDER_STATUS_INVALID"]),
    ("PAYMENT_CLOSED", &["ORDER_IS_CLOSED", "ORDER_IS_CANCELED"]),
    ("RISK_DECLINED", &["RISK_REJECT"]),
    ("CURRENCY_NOT_SUPPORTED", &["CURRENCY_NOT_SUPPORT"]),
    ("REQUEST_MISMATCH", &["REPEAT_REQ_INCONSISTENT"]),
    (
        "MERCHANT_SETUP",
        &[
            "ACCESS_DENIED",
            "INVALID_MERCHANT_STATUS",
            "KEY_NOT_FOUND",
            "INVALID_API",
            "API_INVALID",
            "HTTP_401",
            "HTTP_403",
        ],
    ),
    ("PROVIDER_ERROR", &["SYSTEM_ERROR", "PROCESS_FAIL"]),
    (
        "PROVIDER_FAILED",
        &["REFUND_FAILED", "REFUND_FAIL", "failure", "50001"],
    ),
    ("TIMED_OUT", &["50002"]),
    ("AMOUNT_REQUIRED", &[LocalRefusal::AmountRequired.code()]),
    ("AMOUNT_INVALID", &[LocalRefusal::InvalidAmount.code()]),
    (
        "REQUEST_INVALID",
        &[LocalRefusal::InvalidRequestId.code(), "10005"],
    ),
    (
        "CHECKED_NOT_REFUNDED",
        &["OUTCOME_UNKNOWN", "IN_PROGRESS_NO_INQUIRY"],
    ),
];

pub(super) const ERROR_CODES: [ErrorCode; 13] = [
    ErrorCode::InvalidJson,
    ErrorCode::MissingField,
    ErrorCode::InvalidField,
    ErrorCode::FieldTooLong,
    ErrorCode::AmountOutOfRange,
    ErrorCode::InvalidCurrency,
    ErrorCode::UnknownKind,
    ErrorCode::UnexpectedKind,
    ErrorCode::UnsupportedVersion,
    ErrorCode::DuplicateMismatch,
    ErrorCode::LimitExceeded,
    ErrorCode::UnknownRefund,
    ErrorCode::InternalError,
];

/// Strips the v2 prefixes so one entry serves both API versions.
pub fn bare_code(code: &str) -> &str {
    for prefix in ["DPOS_PAYMENT_", "DPOS_REFUND_", "DPOS_"] {
        if let Some(rest) = code.strip_prefix(prefix) {
            return rest;
        }
    }
    code
}

/// The `reasons` key that explains a result code, if any.
pub fn reason_key(code: &str) -> Option<&'static str> {
    let bare = bare_code(code);
    REASONS
        .iter()
        .find(|(_, codes)| codes.contains(&bare) || codes.contains(&code))
        .map(|(key, _)| *key)
}
