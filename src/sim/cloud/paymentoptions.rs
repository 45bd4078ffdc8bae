//! The simulated PaymentOptions server-to-server refund (seed 004).
//!
//! Both auth headers must carry the configured key (`Authorization: Basic <key>`,
//! `x-api-key: <key>`) and `merchant_id` must match. Success is HTTP 201 with the
//! seed's body and `INFO0002`. PaymentOptions publishes no error format, so the
//! simulator's failures are its own choice: HTTP 400 (401 for auth) with
//! `success: false` and a `gateway_response` whose codes start with `SIM_`. Refunds
//! here are always synchronous.

use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::books::{Decision, RefundAsk, Rejection};
use super::faults::{Fault, FaultTarget, Variant};
use super::{InFlight, Shared, after, before, json};
use crate::money::Amount;
use crate::provider::serve::ConnectionHandle;

/// The refund path (after the configurable base path).
pub const REFUND_PATH: &str = "/server-to-server-interface/refund";
/// The transaction-status path, before the transaction's id.
pub const STATUS_PATH: &str = "/server-to-server-interface/transaction/status/";

fn failure(status: StatusCode, code: &str, message: &str) -> Response {
    json(
        status,
        &serde_json::json!({
            "success": false,
            "status_code": status.as_u16(),
            "transaction_type": "REFUND",
            "gateway_response": {"version": "1", "type": "ERROR", "message": message, "code": code},
        }),
    )
}

/// Whether both auth headers carry the configured key.
fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let key = shared.config.paymentoptions_api_key.expose();
    header("authorization").strip_prefix("Basic ") == Some(key) && header("x-api-key") == key
}

/// `GET .../server-to-server-interface/transaction/status/{transactionId}`: a
/// payment or a refund made here, in the documented status answer's shape (HTTP 200,
/// `INFO0000`); 401 for a wrong key and 404 for an unknown id, as the documented
/// HTTP table names them.
pub(crate) fn status(shared: &Shared, headers: &HeaderMap, id: &str) -> Response {
    shared.count("paymentoptions_status");
    if !authorized(shared, headers) {
        return failure(
            StatusCode::UNAUTHORIZED,
            "SIM_UNAUTHORIZED",
            "Invalid API key.",
        );
    }
    let ledger = shared.books();
    let (kind, amount) = if let Some(payment) = ledger.payment(id) {
        ("CAPTURE", payment.seed.amount)
    } else if let Some(refund) = ledger.refund(id) {
        ("REFUND", refund.amount)
    } else {
        return failure(
            StatusCode::NOT_FOUND,
            "SIM_TRANSACTION_NOT_FOUND",
            "Transaction not found.",
        );
    };
    json(
        StatusCode::OK,
        &serde_json::json!({
            "success": true,
            "status_code": 200,
            "is_live": false,
            "transaction_type": kind,
            "gateway_response": {"version": "1", "type": "INFO", "message": "Payment Successful.", "code": "INFO0000"},
            "payment_details": {"amount": amount.value, "currency": amount.currency},
            "transaction_details": {"id": id},
        }),
    )
}

/// `POST .../server-to-server-interface/refund`.
pub(crate) async fn refund(
    shared: &Shared,
    conn: &ConnectionHandle,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    shared.count("paymentoptions_refund");
    if !authorized(shared, headers) {
        return failure(
            StatusCode::UNAUTHORIZED,
            "SIM_UNAUTHORIZED",
            "Invalid API key.",
        );
    }
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let payment_id = request
        .get("transactionId")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let _in_flight = InFlight::begin(shared, &payment_id);
    let rule = shared.take_fault(FaultTarget::PaymentoptionsRefund, &payment_id);
    if let Some(response) = before(shared, conn, rule.as_ref()).await {
        return response;
    }
    let merchant = request
        .get("merchant_id")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let amount = request.get("amount").and_then(|v| v.as_i64());
    let answer = match amount {
        _ if merchant != shared.config.paymentoptions_merchant_id => failure(
            StatusCode::BAD_REQUEST,
            "SIM_MERCHANT_MISMATCH",
            "Unknown merchant_id.",
        ),
        Some(value)
            if !payment_id.is_empty() && (1..=crate::money::MAX_AMOUNT).contains(&value) =>
        {
            let variant = match rule.as_ref().map(|r| &r.fault) {
                Some(Fault::Variant { variant }) => Some(variant),
                _ => None,
            };
            execute(shared, &payment_id, value, &request, variant)
        }
        _ => failure(
            StatusCode::BAD_REQUEST,
            "SIM_INVALID_REQUEST",
            "transactionId and an integer amount are required.",
        ),
    };
    after(shared, conn, rule.as_ref(), answer).await
}

fn execute(
    shared: &Shared,
    payment_id: &str,
    value: i64,
    request: &serde_json::Value,
    variant: Option<&Variant>,
) -> Response {
    let Some(currency) = shared
        .books()
        .payment(payment_id)
        .map(|p| p.seed.amount.currency)
    else {
        return failure(
            StatusCode::BAD_REQUEST,
            "SIM_TRANSACTION_NOT_FOUND",
            "Transaction not found.",
        );
    };
    let ask = RefundAsk {
        refund_request_id: None,
        client_id: None,
        payment_id,
        amount: Some(Amount::saturating(value, currency)),
        currency_given: false,
    };
    let decision = shared
        .books()
        .decide(&ask, Instant::now(), std::time::Duration::ZERO);
    let record = match decision {
        Decision::Executed(record) | Decision::Replayed(record) => record,
        Decision::Rejected(why) => {
            let (code, message) = match why {
                Rejection::PaymentNotFound => {
                    ("SIM_TRANSACTION_NOT_FOUND", "Transaction not found.")
                }
                Rejection::AmountExceeded | Rejection::FullyRefunded => (
                    "SIM_AMOUNT_EXCEEDED",
                    "Refund amount exceeds the refundable amount.",
                ),
                Rejection::PartialNotSupported => (
                    "SIM_PARTIAL_NOT_ALLOWED",
                    "Partial refunds are not allowed.",
                ),
                Rejection::RefundNotSupported => {
                    ("SIM_NOT_REFUNDABLE", "Transaction cannot be refunded.")
                }
                Rejection::InvalidAmount | Rejection::CurrencyMismatch => {
                    ("SIM_INVALID_AMOUNT", "Invalid amount.")
                }
                Rejection::Busy | Rejection::RepeatInconsistent => {
                    ("SIM_BUSY", "Another refund is in progress.")
                }
            };
            return failure(StatusCode::BAD_REQUEST, code, message);
        }
    };
    let merchant = shared.config.paymentoptions_merchant_id.clone();
    let (status, code) = match variant {
        Some(Variant::SuccessStatus { status }) => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::CREATED),
            "INFO0002".to_string(),
        ),
        Some(Variant::SuccessCode { code }) => (StatusCode::CREATED, code.clone()),
        _ => (StatusCode::CREATED, "INFO0002".to_string()),
    };
    json(
        status,
        &serde_json::json!({
            "success": true,
            "status_code": status.as_u16(),
            "is_live": false,
            "transaction_type": "REFUND",
            "gateway_response": {"version": "1", "type": "INFO", "message": "Amount successfully refunded.", "code": code},
            "merchant_details": {"legal_name": "posbridge simulator", "mid": merchant, "merchant_txn_ref": request.get("notes")},
            "payment_details": {"amount": record.amount.value, "response_code": 0, "currency": record.amount.currency},
            "transaction_details": {"id": record.refund_id, "ref": 0, "timestamp": jiff::Timestamp::now().to_string()},
        }),
    )
}
