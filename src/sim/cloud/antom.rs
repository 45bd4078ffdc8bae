//! The simulated Antom: signed refund and inquiryRefund, v2 and v1, and notifyRefund.
//!
//! Requests must be signed by the merchant key over the path as received; a missing or
//! bad signature is answered `F INVALID_SIGNATURE` (unsigned, as a gateway would).
//! Answers are signed with the simulator's key, `Response-Time` in epoch ms. Result
//! codes carry the `DPOS_` prefixes on v2 paths and none on v1. Refunds of payments
//! seeded `async` answer `U REFUND_IN_PROCESS` until the delay passes; then inquiry
//! answers the final state and a signed notifyRefund is posted when a notify URL is set.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use jiff::Timestamp;

use super::books::{Decision, RefundAsk, RefundRecord, RefundState, Rejection};
use super::faults::{Fault, FaultTarget, Variant};
use super::{InFlight, Shared, after, before, lock};
use crate::money::{Amount, Currency};
use crate::provider::antom::signing;
use crate::provider::serve::ConnectionHandle;

/// Which Antom API a path is, and in which family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AntomCall {
    /// inquiryRefund rather than refund.
    pub inquiry: bool,
    /// v1 paths (bare codes, string amounts, v1 status names).
    pub v1: bool,
}

/// Recognises an Antom path (with any prefix).
pub fn route(path: &str) -> Option<AntomCall> {
    const ROUTES: &[(&str, bool, bool)] = &[
        ("/v2/payments/refund", false, false),
        ("/v2/payments/inquiryRefund", true, false),
        ("/api/v1/payments/refund", false, true),
        ("/api/v1/payments/inquiryRefund", true, true),
    ];
    ROUTES
        .iter()
        .find(|(suffix, _, _)| path.ends_with(suffix))
        .map(|&(_, inquiry, v1)| AntomCall { inquiry, v1 })
}

/// The code as the family spells it.
fn code(call: AntomCall, bare: &str) -> String {
    if call.v1 || bare == "SUCCESS" {
        return bare.to_string();
    }
    let prefix = match bare {
        "ACCESS_DENIED"
        | "CURRENCY_NOT_SUPPORT"
        | "ORDER_NOT_EXIST"
        | "ORDER_STATUS_INVALID"
        | "REPEAT_REQ_INCONSISTENT"
        | "PARAM_ILLEGAL" => "DPOS_PAYMENT_",
        _ => "DPOS_",
    };
    format!("{prefix}{bare}")
}

fn rejection(rejection: Rejection) -> (&'static str, &'static str) {
    match rejection {
        Rejection::PaymentNotFound => ("ORDER_NOT_EXIST", "The order does not exist."),
        Rejection::RefundNotSupported => (
            "REFUND_NOT_SUPPORTED",
            "Refunds are not supported for this transaction.",
        ),
        Rejection::CurrencyMismatch => ("CURRENCY_NOT_SUPPORT", "The currency is not supported."),
        Rejection::InvalidAmount => ("PARAM_ILLEGAL", "The refund amount is illegal."),
        Rejection::PartialNotSupported => (
            "PARTIAL_REFUND_NOT_SUPPORTED",
            "A partial refund is not supported for this transaction.",
        ),
        Rejection::AmountExceeded | Rejection::FullyRefunded => (
            "REFUND_AMOUNT_EXCEED",
            "The total refund amount exceeds the payment amount.",
        ),
        // The real code for this is not public; the order is "under process".
        Rejection::Busy => (
            "ORDER_STATUS_INVALID",
            "Another refund of this payment is being processed.",
        ),
        Rejection::RepeatInconsistent => (
            "REPEAT_REQ_INCONSISTENT",
            "The amount or currency is different from the previous request.",
        ),
    }
}

fn result(status: &str, code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"resultStatus": status, "resultCode": code, "resultMessage": message})
}

/// Handles one Antom call.
pub(crate) async fn handle(
    shared: &Shared,
    conn: &ConnectionHandle,
    call: AntomCall,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let name = match (call.inquiry, call.v1) {
        (false, false) => "antom_v2_refund",
        (true, false) => "antom_v2_inquiry",
        (false, true) => "antom_v1_refund",
        (true, true) => "antom_v1_inquiry",
    };
    shared.count(name);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let client_id = header("client-id").unwrap_or_default().to_string();
    let verified = match (header("signature"), header("request-time")) {
        (Some(signature), Some(time)) if !client_id.is_empty() => signing::verify(
            &shared.config.merchant_public_key,
            signature,
            path,
            &client_id,
            time,
            body,
        )
        .map_err(|e| e.to_string()),
        _ => Err("Client-Id, Request-Time and Signature are required".to_string()),
    };
    if let Err(why) = verified {
        // Antom's own answer, signed like every other: the request was refused.
        let answer = serde_json::json!({"result": result("F", "INVALID_SIGNATURE", &why)});
        return signed(shared, path, &client_id, &answer, None);
    }
    let request: serde_json::Value =
        serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let target = if call.inquiry {
        FaultTarget::AntomInquiry
    } else {
        FaultTarget::AntomRefund
    };
    let payment_id = request
        .get("paymentId")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    // Held for the whole call, slow faults included: one refund per payment at a time.
    let _in_flight = (!call.inquiry).then(|| InFlight::begin(shared, &payment_id));
    let rule = shared.take_fault(target, &payment_id);
    if let Some(response) = before(shared, conn, rule.as_ref()).await {
        return response;
    }
    let answer = match rule.as_ref().map(|r| &r.fault) {
        Some(Fault::AntomResult {
            status,
            code,
            message,
        }) if !rule.as_ref().is_some_and(|r| r.after_execute) => {
            let mut answer = serde_json::json!({"result": result(status, code, message)});
            if let Some(id) = request.get("refundRequestId") {
                answer["refundRequestId"] = id.clone();
            }
            answer
        }
        _ if call.inquiry => inquire(shared, call, &request),
        _ => refund(shared, call, &client_id, &request),
    };
    let mut answer = answer;
    let mut status = StatusCode::OK;
    if let Some(Fault::Variant { variant }) = rule.as_ref().map(|r| &r.fault) {
        match variant {
            Variant::NoRefundId
                if answer
                    .pointer("/result/resultStatus")
                    .and_then(|s| s.as_str())
                    == Some("U") =>
            {
                if let Some(fields) = answer.as_object_mut() {
                    fields.remove("refundId");
                }
            }
            Variant::SuccessStatus { status: s } => {
                status = StatusCode::from_u16(*s).unwrap_or(StatusCode::OK);
            }
            _ => {}
        }
    }
    let signing_fault = rule.as_ref().map(|r| &r.fault);
    let response = signed_with_status(shared, path, &client_id, &answer, signing_fault, status);
    after(shared, conn, rule.as_ref(), response).await
}

/// Serialises and signs an answer (or mis-signs it, for the signature faults).
fn signed(
    shared: &Shared,
    path: &str,
    client_id: &str,
    answer: &serde_json::Value,
    fault: Option<&Fault>,
) -> Response {
    signed_with_status(shared, path, client_id, answer, fault, StatusCode::OK)
}

/// [`signed`], with an HTTP status of its own.
fn signed_with_status(
    shared: &Shared,
    path: &str,
    client_id: &str,
    answer: &serde_json::Value,
    fault: Option<&Fault>,
    status: StatusCode,
) -> Response {
    let body = answer.to_string();
    let time = Timestamp::now().as_millisecond().to_string();
    let key = &shared.config.sim_private_key;
    let signature = match fault {
        Some(Fault::Unsigned) => None,
        // Signed, but over something else: a tampered or forged answer.
        Some(Fault::BadSignature) => {
            signing::signature_header(key, 1, path, client_id, &time, b"{}").ok()
        }
        _ => signing::signature_header(key, 1, path, client_id, &time, body.as_bytes()).ok(),
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=UTF-8")
        .header("client-id", client_id)
        .header("response-time", &time);
    if let Some(signature) = signature {
        response = response.header("signature", signature);
    }
    response
        .body(body.into())
        .unwrap_or_else(|_| Response::new("simulator could not build its answer".into()))
}

fn amount_json(call: AntomCall, amount: Amount) -> serde_json::Value {
    if call.v1 {
        serde_json::json!({"value": amount.value.to_string(), "currency": amount.currency})
    } else {
        serde_json::json!({"value": amount.value, "currency": amount.currency})
    }
}

/// Reads `refundAmount`: absent/null, or `{value: number|string, currency}`.
fn read_amount(value: Option<&serde_json::Value>) -> Result<Option<Amount>, ()> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let currency = value
        .get("currency")
        .and_then(|c| c.as_str())
        .and_then(|c| Currency::parse(c).ok())
        .ok_or(())?;
    let minor = match value.get("value") {
        Some(serde_json::Value::Number(n)) => n.as_i64().ok_or(())?,
        Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().map_err(|_| ())?,
        _ => return Err(()),
    };
    Amount::new(minor, currency).map(Some).map_err(|_| ())
}

fn refund(
    shared: &Shared,
    call: AntomCall,
    client_id: &str,
    request: &serde_json::Value,
) -> serde_json::Value {
    let text = |key: &str| {
        request
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    };
    let request_id = text("refundRequestId");
    let payment_id = text("paymentId");
    let illegal = |why: &str| serde_json::json!({"refundRequestId": request_id, "result": result("F", &code(call, "PARAM_ILLEGAL"), why)});
    if request_id.is_empty() || request_id.len() > 64 || payment_id.is_empty() {
        return illegal("refundRequestId (1..64 characters) and paymentId are required");
    }
    let Ok(amount) = read_amount(request.get("refundAmount")) else {
        return illegal("refundAmount is malformed");
    };
    if call.v1 && amount.is_none() {
        return illegal("refundAmount is required");
    }
    let ask = RefundAsk {
        refund_request_id: Some(request_id),
        client_id: Some(client_id),
        payment_id,
        amount,
        currency_given: true,
    };
    let decision = shared
        .books()
        .decide(&ask, Instant::now(), shared.config.async_delay);
    let record = match decision {
        Decision::Executed(record) | Decision::Replayed(record) => record,
        Decision::Rejected(why) => {
            let (bare, message) = rejection(why);
            return serde_json::json!({"refundRequestId": request_id, "result": result("F", &code(call, bare), message)});
        }
    };
    let mut answer = serde_json::json!({
        "refundRequestId": request_id,
        "refundId": record.refund_id,
    });
    match record.state {
        RefundState::Succeeded { at } => {
            answer["result"] = result("S", "SUCCESS", "Success.");
            answer["refundTime"] = serde_json::json!(at.to_string());
            if call.v1 {
                answer["refundAmount"] = amount_json(call, record.amount);
            }
        }
        RefundState::Pending => {
            answer["result"] = result(
                "U",
                &code(call, "REFUND_IN_PROCESS"),
                "The refund is being processed.",
            );
        }
        RefundState::Failed => {
            answer["result"] = result("F", &code(call, "PROCESS_FAIL"), "The refund failed.");
        }
    }
    answer
}

fn inquire(shared: &Shared, call: AntomCall, request: &serde_json::Value) -> serde_json::Value {
    let text = |key: &str| {
        request
            .get(key)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    let record = {
        let ledger = shared.books();
        match (text("refundId"), text("refundRequestId")) {
            (Some(id), _) => ledger.refund(id),
            (None, Some(id)) if call.v1 => ledger.refund_by_request_id(id),
            _ => {
                return serde_json::json!({"result": result("F", &code(call, "PARAM_ILLEGAL"), "refundId is required")});
            }
        }
    };
    let Some(record) = record else {
        return serde_json::json!({"result": result("F", &code(call, "ORDER_NOT_EXIST"), "The refund does not exist.")});
    };
    let status = match (&record.state, call.v1) {
        (RefundState::Succeeded { .. }, _) => "SUCCESS",
        (RefundState::Pending, false) => "PENDING",
        (RefundState::Pending, true) => "PROCESSING",
        (RefundState::Failed, false) => "FAILED",
        (RefundState::Failed, true) => "FAIL",
    };
    let mut answer = serde_json::json!({
        "result": result("S", "SUCCESS", "Success."),
        "refundId": record.refund_id,
        "refundRequestId": record.refund_request_id,
        "paymentId": record.payment_id,
        "refundStatus": status,
        "refundAmount": amount_json(call, record.amount),
    });
    if let RefundState::Succeeded { at } = record.state {
        answer["refundTime"] = serde_json::json!(at.to_string());
    }
    answer
}

/// Finishes due refunds and posts their notifications.
pub(crate) fn settle(shared: &Arc<Shared>, force: bool) {
    let settled = shared.books().settle(Instant::now(), force);
    let url = lock(&shared.notify_url).clone();
    let Some(url) = url else { return };
    for record in settled
        .into_iter()
        .filter(|r| r.refund_request_id.is_some())
    {
        let shared = shared.clone();
        let url = url.clone();
        tokio::spawn(async move { notify(&shared, &url, &record).await });
    }
}

/// Runs [`settle`] every few milliseconds until the simulator stops.
pub(crate) async fn settle_loop(shared: Arc<Shared>) {
    let tick =
        (shared.config.async_delay / 4).clamp(Duration::from_millis(5), Duration::from_millis(200));
    let mut interval = tokio::time::interval(tick);
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = interval.tick() => settle(&shared, false),
        }
    }
}

/// Posts one signed notifyRefund, trying a few times like Antom's resends (quickly).
async fn notify(shared: &Shared, url: &str, record: &RefundRecord) {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        shared.notifications_failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let client_id = record.client_id.clone().unwrap_or_default();
    let (status, result_code) = match record.state {
        RefundState::Succeeded { .. } => ("SUCCESS", result("S", "SUCCESS", "success")),
        _ => ("FAIL", result("F", "PROCESS_FAIL", "The refund failed.")),
    };
    let mut body = serde_json::json!({
        "notifyType": "REFUND_RESULT",
        "result": result_code,
        "refundStatus": status,
        "refundRequestId": record.refund_request_id,
        "refundId": record.refund_id,
        "refundAmount": {"value": record.amount.value, "currency": record.amount.currency},
    });
    if let RefundState::Succeeded { at } = record.state {
        body["refundTime"] = serde_json::json!(at.to_string());
    }
    let body = body.to_string();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
        }
        let time = Timestamp::now().as_millisecond().to_string();
        let Ok(signature) = signing::signature_header(
            &shared.config.sim_private_key,
            1,
            &path,
            &client_id,
            &time,
            body.as_bytes(),
        ) else {
            break;
        };
        let sent = shared
            .notifier
            .post(url)
            .header("content-type", "application/json; charset=UTF-8")
            .header("client-id", &client_id)
            .header("request-time", &time)
            .header("signature", signature)
            .body(body.clone())
            .send()
            .await;
        let acknowledged = match sent {
            Ok(response) if response.status().is_success() => response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| {
                    v.pointer("/result/resultStatus")
                        .and_then(|s| s.as_str())
                        .map(|s| s == "S")
                })
                .unwrap_or(false),
            _ => false,
        };
        if acknowledged {
            shared
                .notifications_acknowledged
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    shared.notifications_failed.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_codes() {
        assert_eq!(
            route("/v2/payments/refund"),
            Some(AntomCall {
                inquiry: false,
                v1: false
            })
        );
        assert_eq!(
            route("/openapi/v2/payments/inquiryRefund"),
            Some(AntomCall {
                inquiry: true,
                v1: false
            })
        );
        assert_eq!(
            route("/ams/sandbox/api/v1/payments/refund"),
            Some(AntomCall {
                inquiry: false,
                v1: true
            })
        );
        assert_eq!(route("/v2/payments/pay"), None);
        let v2 = AntomCall {
            inquiry: false,
            v1: false,
        };
        let v1 = AntomCall {
            inquiry: false,
            v1: true,
        };
        assert_eq!(code(v2, "ORDER_NOT_EXIST"), "DPOS_PAYMENT_ORDER_NOT_EXIST");
        assert_eq!(code(v2, "REFUND_IN_PROCESS"), "DPOS_REFUND_IN_PROCESS");
        assert_eq!(code(v1, "REFUND_IN_PROCESS"), "REFUND_IN_PROCESS");
        assert_eq!(code(v2, "SUCCESS"), "SUCCESS");
    }
}
