//! The simulator's HTTP admin API under `/_sim/`, for the CLI, the demo and
//! out-of-process tests. Everything here is also a method on
//! [`CloudSim`](super::CloudSim).
//!
//! | call | does |
//! | --- | --- |
//! | `GET /_sim/stats` | request counters, tokens issued, notifications |
//! | `GET /_sim/payments`, `GET /_sim/payments/{id}` | books, incl. `executed` |
//! | `POST /_sim/payments` | add a payment (a [`PaymentSeed`] as JSON) |
//! | `GET /_sim/refunds/{refundId}` | one refund |
//! | `GET /_sim/report/{antom,ottpay,paymentoptions}` | the books as that provider's report of its refunds (what `posbridge reconcile` reads) |
//! | `GET`, `POST`, `DELETE /_sim/faults` | list, add (a [`FaultRule`]), clear |
//! | `POST /_sim/down` `{"for_ms": N}` | the provider APIs are down for N ms from the answer on: 503 at once, connections refused from ~50 ms on |
//! | `POST /_sim/settle` | finish every pending async refund now |
//! | `POST /_sim/notify-url` `{"url": "http://..."}` | where notifyRefund goes (`null`: nowhere) |
//! | `POST /_sim/revoke-tokens` | invalidate every OTT Pay token |

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::books::PaymentSeed;
use super::faults::FaultRule;
use super::{Shared, json, lock, stats};

/// Handles `/_sim/<rest>`.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    method: &Method,
    rest: &str,
    body: &[u8],
) -> Response {
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let ok = || json(StatusCode::OK, &serde_json::json!({"ok": true}));
    let bad = |why: String| json(StatusCode::BAD_REQUEST, &serde_json::json!({"error": why}));
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["stats"]) => json(StatusCode::OK, &serde_json::json!(stats(shared))),
        ("GET", ["payments"]) => json(
            StatusCode::OK,
            &serde_json::json!(shared.books().payments()),
        ),
        ("GET", ["payments", id]) => match shared.books().payment(id) {
            Some(view) => json(StatusCode::OK, &serde_json::json!(view)),
            None => (StatusCode::NOT_FOUND, "no such payment").into_response(),
        },
        ("POST", ["payments"]) => match serde_json::from_slice::<PaymentSeed>(body) {
            Ok(seed) => {
                shared.books().add_payment(seed);
                ok()
            }
            Err(e) => bad(format!("not a payment: {e}")),
        },
        ("GET", ["refunds", id]) => match shared.books().refund(id) {
            Some(record) => json(StatusCode::OK, &serde_json::json!(record)),
            None => (StatusCode::NOT_FOUND, "no such refund").into_response(),
        },
        ("GET", ["report", provider]) => match super::report::ReportFormat::parse(provider) {
            Some(format) => (
                StatusCode::OK,
                [("content-type", "text/csv; charset=utf-8")],
                super::report::render(&shared.books(), format),
            )
                .into_response(),
            None => bad(format!(
                "no report format {provider:?}: antom, ottpay or paymentoptions"
            )),
        },
        ("GET", ["faults"]) => json(
            StatusCode::OK,
            &serde_json::json!(lock(&shared.faults).rules()),
        ),
        ("POST", ["faults"]) => match serde_json::from_slice::<FaultRule>(body) {
            Ok(rule) => {
                lock(&shared.faults).push(rule);
                ok()
            }
            Err(e) => bad(format!("not a fault rule: {e}")),
        },
        ("DELETE", ["faults"]) => {
            lock(&shared.faults).clear();
            ok()
        }
        ("POST", ["down"]) => {
            let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let Some(ms) = value.get("for_ms").and_then(|v| v.as_u64()) else {
                return bad("give {\"for_ms\": N}: the admin API is unreachable while down".into());
            };
            // Down at once for every provider call (503, nothing done); the listener
            // closes a moment later, once this answer has reached its caller.
            shared
                .going_down
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let shared = shared.clone();
            tokio::spawn(async move {
                let Some(switch) = shared.switch.get() else {
                    return;
                };
                tokio::time::sleep(Duration::from_millis(50)).await;
                switch.set_down(true).await;
                tokio::select! {
                    _ = shared.stop.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => {
                        switch.set_down(false).await;
                        shared
                            .going_down
                            .store(false, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
            ok()
        }
        ("POST", ["settle"]) => {
            super::antom::settle(shared, true);
            ok()
        }
        ("POST", ["notify-url"]) => {
            let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            match value.get("url") {
                Some(serde_json::Value::String(url)) => {
                    *lock(&shared.notify_url) = Some(url.clone())
                }
                Some(serde_json::Value::Null) => *lock(&shared.notify_url) = None,
                _ => return bad("give {\"url\": \"http://...\"} or {\"url\": null}".into()),
            }
            ok()
        }
        ("POST", ["revoke-tokens"]) => {
            lock(&shared.tokens).clear();
            ok()
        }
        _ => (
            StatusCode::NOT_FOUND,
            "no such admin call; see the simulator's docs",
        )
            .into_response(),
    }
}
