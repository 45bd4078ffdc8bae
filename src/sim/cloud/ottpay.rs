//! The simulated OTT Pay: token issue and local-card refunds (seed 003).
//!
//! Tokens live for the configured time and can be revoked at run time; a refund with
//! a missing, unknown or expired token gets `ERROR 90000`. Amounts are cents, as a
//! string or a number. Errors use the seed's numeric codes. Payments seeded `async`
//! answer `refundStatus: init` (OTT Pay has no status API to ask later).

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::books::{Decision, RefundAsk, RefundState, Rejection};
use super::faults::{Fault, FaultTarget, Variant};
use super::{InFlight, Shared, after, before, json, lock};
use crate::money::Amount;
use crate::provider::serve::ConnectionHandle;

/// The token path.
pub const TOKEN_PATH: &str = "/api/v1/auth/token";
/// The refund path.
pub const REFUND_PATH: &str = "/api/v1/payment/local-card/refund";

fn error(code: i64, message: &str) -> Response {
    json(
        StatusCode::OK,
        &serde_json::json!({"status": "ERROR", "result": {"code": code, "message": message}}),
    )
}

/// `POST /api/v1/auth/token`.
pub(crate) async fn token(shared: &Shared, conn: &ConnectionHandle, body: &[u8]) -> Response {
    shared.count("ottpay_token");
    let rule = shared.take_fault(FaultTarget::OttpayToken, "");
    if let Some(response) = before(shared, conn, rule.as_ref()).await {
        return response;
    }
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let app_id = request
        .get("appId")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let app_key = request
        .get("appKey")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let answer = if app_id == shared.config.ottpay_app_id
        && app_key == shared.config.ottpay_app_key.expose()
    {
        let serial = shared.next_token.fetch_add(1, Ordering::Relaxed);
        let token = format!(
            "simtoken-{serial}-{}",
            jiff::Timestamp::now().as_nanosecond()
        );
        let ttl = shared.config.ottpay_token_ttl;
        lock(&shared.tokens).insert(token.clone(), Instant::now() + ttl);
        lock(&shared.issued_tokens).push(token.clone());
        shared.tokens_issued.fetch_add(1, Ordering::Relaxed);
        let expired = jiff::Timestamp::now().as_millisecond()
            + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        json(
            StatusCode::OK,
            &serde_json::json!({"status": "SUCCESS", "result": {"token": token, "expired": expired}}),
        )
    } else {
        error(10003, "Authorization failed")
    };
    after(shared, conn, rule.as_ref(), answer).await
}

/// `POST /api/v1/payment/local-card/refund`.
pub(crate) async fn refund(
    shared: &Shared,
    conn: &ConnectionHandle,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    shared.count("ottpay_refund");
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let valid = lock(&shared.tokens)
        .get(bearer)
        .is_some_and(|expiry| *expiry > Instant::now());
    if !valid {
        return error(90000, "Unauthorized");
    }
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let payment_id = request
        .get("oriPaymentId")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let _in_flight = InFlight::begin(shared, &payment_id);
    let rule = shared.take_fault(FaultTarget::OttpayRefund, &payment_id);
    if let Some(response) = before(shared, conn, rule.as_ref()).await {
        return response;
    }
    if let Some(Fault::OttpayError { code, message }) = rule.as_ref().map(|r| &r.fault) {
        return error(*code, message);
    }
    let cents = match request.get("refundAmount") {
        Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    let answer = match (payment_id.is_empty(), cents) {
        (false, Some(cents)) if (1..=crate::money::MAX_AMOUNT).contains(&cents) => {
            let variant = match rule.as_ref().map(|r| &r.fault) {
                Some(Fault::Variant { variant }) => Some(variant),
                _ => None,
            };
            execute(shared, &payment_id, cents, variant)
        }
        _ => error(10005, "Invalid parameter"),
    };
    after(shared, conn, rule.as_ref(), answer).await
}

fn execute(shared: &Shared, payment_id: &str, cents: i64, variant: Option<&Variant>) -> Response {
    // OTT Pay sends no currency: the refund is in the payment's.
    let Some(currency) = shared
        .books()
        .payment(payment_id)
        .map(|p| p.seed.amount.currency)
    else {
        return error(20019, "Original payment not exist");
    };
    let ask = RefundAsk {
        refund_request_id: None,
        client_id: None,
        payment_id,
        amount: Some(Amount::saturating(cents, currency)),
        currency_given: false,
    };
    let decision = shared
        .books()
        .decide(&ask, Instant::now(), shared.config.async_delay);
    let record = match decision {
        Decision::Executed(record) | Decision::Replayed(record) => record,
        Decision::Rejected(why) => {
            let (code, message) = match why {
                Rejection::PaymentNotFound => (20019, "Original payment not exist"),
                Rejection::AmountExceeded => (20014, "Refund amount greater than the amount paid"),
                Rejection::FullyRefunded => (20041, "The payment cannot be refunded"),
                Rejection::RefundNotSupported => {
                    (20021, "Original payment does not support revocation")
                }
                Rejection::InvalidAmount | Rejection::CurrencyMismatch => {
                    (10005, "Invalid parameter")
                }
                Rejection::PartialNotSupported
                | Rejection::Busy
                | Rejection::RepeatInconsistent => (20034, "Other case"),
            };
            return error(code, message);
        }
    };
    let status = match record.state {
        RefundState::Succeeded { .. } => "success",
        RefundState::Pending if variant == Some(&Variant::Processing) => "processing",
        RefundState::Pending => "init",
        RefundState::Failed => "failure",
    };
    let trade_time = jiff::tz::TimeZone::get("America/Toronto")
        .map(|zone| {
            zone.to_datetime(jiff::Timestamp::now())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default();
    let http = match variant {
        Some(Variant::SuccessStatus { status }) => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::OK)
        }
        _ => StatusCode::OK,
    };
    json(
        http,
        &serde_json::json!({"status": "SUCCESS", "result": {
            "refundId": record.refund_id,
            "refundAmount": record.amount.value.to_string(),
            "refundStatus": status,
            "tradeTime": trade_time,
            "exchangeRate": "",
        }}),
    )
}
