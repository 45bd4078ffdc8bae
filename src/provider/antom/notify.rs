//! The notifyRefund receiver: an HTTP endpoint Antom posts final refund results to.
//!
//! Off unless configured. Each notification's signature is verified with Antom's
//! public key over the receiving path, its `Client-Id` must be ours, and only then is
//! it handed to the caller through a channel. Antom is answered
//! `{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}}`
//! only after the caller has accepted the notification ([`NotifyDelivery::accept`]),
//! so a notification the bridge could not record is answered with an error and Antom
//! sends it again (up to 8 times in 24 h). Request headers and bodies are bounded in
//! time, bodies in size, and connections in number (with the memory each may take);
//! every refusal is counted for the metrics, and logged at most a few times per
//! interval. The reply is not signed, as Antom expects.
//!
//! Antom posts to a public HTTPS URL: put this listener behind the shop's TLS
//! terminating proxy, forwarding the same path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use jiff::Timestamp;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::keys::PublicKey;
use super::reply;
use super::signing;
use super::wire::AntomAnswer;
use crate::bounds::{self, BadSetting};
use crate::provider::Outcome;
use crate::provider::answer;
use crate::provider::classify::{self, CodeClass};
use crate::provider::serve::{ServeLimits, serve_bounded};
use crate::text;
use crate::throttle::Throttle;

/// `[provider.notify]` settings; the table's presence turns the receiver on.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Where to listen (the TLS proxy forwards here).
    pub listen: SocketAddr,
    /// The path Antom posts to; it is part of what Antom signs.
    pub path: String,
    /// Largest body accepted (Antom's notifications are about 1 KiB).
    pub max_body_bytes: usize,
    /// Time a client gets to send its request headers.
    pub header_read_timeout_ms: u64,
    /// Time a client gets to send its body, once the headers are in.
    pub body_read_timeout_ms: u64,
    /// Connections served at once; more wait in the kernel's queue until one ends.
    pub max_connections: usize,
    /// Time the caller gets to accept a notification before Antom is told to resend.
    pub accept_timeout_ms: u64,
    /// How far a notification's `Request-Time` may lie from this machine's clock, either
    /// way: an older one is refused (a replay), and Antom sends a fresh one.
    pub max_age_ms: u64,
}

impl Default for NotifyConfig {
    fn default() -> NotifyConfig {
        NotifyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8470)),
            path: "/antom/notifyRefund".to_string(),
            max_body_bytes: 64 * 1024,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            max_connections: 64,
            accept_timeout_ms: 10_000,
            max_age_ms: 600_000,
        }
    }
}

impl NotifyConfig {
    /// Checks the path and every limit's range.
    pub fn validate(&self) -> Result<(), BadSetting> {
        if !self.path.starts_with('/') {
            return Err(BadSetting::new(
                "path",
                "must start with `/` (it is the path Antom posts to, as it signs it)",
            ));
        }
        bounds::check(
            "max_body_bytes",
            self.max_body_bytes,
            1024..=1 << 20,
            " bytes",
        )?;
        for (key, value) in [
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("accept_timeout_ms", self.accept_timeout_ms),
        ] {
            bounds::check(key, value, 100..=60_000, " ms")?;
        }
        bounds::check("max_age_ms", self.max_age_ms, 1000..=86_400_000, " ms")?;
        bounds::check("max_connections", self.max_connections, 1..=1024, "")
    }
}

/// A verified refund notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundNotification {
    /// Our refundRequestId.
    pub refund_request_id: String,
    /// Antom's refundId (empty when the notification has none).
    pub refund_id: String,
    /// `SUCCESS` or `FAIL` as Antom sent it.
    pub refund_status: String,
    /// The amount refunded, as the notification states it.
    pub amount: Option<crate::money::Amount>,
    /// The refund's outcome: `Succeeded`, `FailedFinal`, or `OutcomeUnknown` for a
    /// status Antom does not document.
    pub outcome: Outcome,
}

/// A notification waiting for the caller to accept it.
#[derive(Debug)]
pub struct NotifyDelivery {
    /// The verified notification.
    pub notification: RefundNotification,
    accepted: oneshot::Sender<()>,
}

impl NotifyDelivery {
    /// Tells the receiver the notification is recorded; Antom then gets its SUCCESS.
    /// Dropping the delivery instead makes Antom send it again later.
    pub fn accept(self) {
        // The receiver may have given up waiting; Antom then resends, which is fine.
        let _ = self.accepted.send(());
    }
}

/// A running receiver.
#[derive(Debug)]
pub struct NotifyReceiver {
    local_addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<NotifyStats>,
}

/// Why a notification was refused; each is counted, and shown by the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `Signature`, `Request-Time` or `Client-Id` missing.
    Headers,
    /// Another client's id.
    ClientId,
    /// The signature does not verify with Antom's key.
    Signature,
    /// `Request-Time` outside the window (a replay) or unreadable.
    RequestTime,
    /// Not a REFUND_RESULT notification, or a body that could not be read.
    Body,
    /// A body over `max_body_bytes`.
    TooLarge,
    /// A body not sent within `body_read_timeout_ms`.
    SlowBody,
    /// The bridge was busy or did not record it in time; Antom sends it again.
    NotRecorded,
}

impl Refusal {
    /// Every refusal, in the metrics' order.
    pub const ALL: [Refusal; 8] = [
        Refusal::Headers,
        Refusal::ClientId,
        Refusal::Signature,
        Refusal::RequestTime,
        Refusal::Body,
        Refusal::TooLarge,
        Refusal::SlowBody,
        Refusal::NotRecorded,
    ];

    /// Its name in the metrics' `reason` label.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Headers => "headers",
            Refusal::ClientId => "client_id",
            Refusal::Signature => "signature",
            Refusal::RequestTime => "request_time",
            Refusal::Body => "body",
            Refusal::TooLarge => "too_large",
            Refusal::SlowBody => "slow_body",
            Refusal::NotRecorded => "not_recorded",
        }
    }
}

/// The receiver's counters.
#[derive(Debug, Default)]
pub struct NotifyStats {
    refused: [AtomicU64; Refusal::ALL.len()],
    accepted: AtomicU64,
}

impl NotifyStats {
    /// Notifications refused for `why` since the start.
    pub fn refused(&self, why: Refusal) -> u64 {
        self.refused[why as usize].load(Ordering::Relaxed)
    }

    /// Notifications the bridge recorded and Antom was told SUCCESS for.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

/// Refusals an outsider can cause are logged at most this many times per interval.
const WARNINGS_PER_INTERVAL: u32 = 5;
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

struct Shared {
    client_id: String,
    antom_public_key: PublicKey,
    deliveries: mpsc::Sender<NotifyDelivery>,
    accept_timeout: Duration,
    body_timeout: Duration,
    max_age: Duration,
    stats: Arc<NotifyStats>,
    warnings: Throttle,
}

impl Shared {
    /// Counts the refusal, logs it within the warning budget, and answers it.
    fn refuse(&self, why: Refusal, status: StatusCode, message: &str, detail: &str) -> Response {
        self.stats.refused[why as usize].fetch_add(1, Ordering::Relaxed);
        if why != Refusal::NotRecorded
            && let Some(left_out) = self.warnings.admit()
        {
            tracing::warn!(
                reason = why.name(),
                detail,
                refused_unlogged_before = left_out,
                "notifyRefund refused: {message}"
            );
        }
        reject(status, message)
    }
}

impl NotifyReceiver {
    /// Binds the listener and starts serving; verified notifications go to
    /// `deliveries`.
    pub async fn start(
        config: &NotifyConfig,
        client_id: &str,
        antom_public_key: PublicKey,
        deliveries: mpsc::Sender<NotifyDelivery>,
    ) -> std::io::Result<NotifyReceiver> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        NotifyReceiver::serve(listener, config, client_id, antom_public_key, deliveries)
    }

    /// Starts serving on a listener already bound to `config.listen`.
    pub fn serve(
        listener: tokio::net::TcpListener,
        config: &NotifyConfig,
        client_id: &str,
        antom_public_key: PublicKey,
        deliveries: mpsc::Sender<NotifyDelivery>,
    ) -> std::io::Result<NotifyReceiver> {
        config.validate().map_err(|bad| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, bad.to_string())
        })?;
        let local_addr = listener.local_addr()?;
        let stats = Arc::new(NotifyStats::default());
        let shared = Arc::new(Shared {
            client_id: client_id.to_string(),
            antom_public_key,
            deliveries,
            accept_timeout: Duration::from_millis(config.accept_timeout_ms),
            body_timeout: Duration::from_millis(config.body_read_timeout_ms),
            max_age: Duration::from_millis(config.max_age_ms),
            stats: stats.clone(),
            warnings: Throttle::new(WARNING_INTERVAL, WARNINGS_PER_INTERVAL),
        });
        let router = Router::new()
            .route(&config.path, post(receive))
            .layer(DefaultBodyLimit::max(config.max_body_bytes))
            .with_state(shared);
        let stop = CancellationToken::new();
        let limits = ServeLimits {
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
            max_connections: config.max_connections,
        };
        let task = tokio::spawn(serve_bounded(listener, router, limits, stop.clone()));
        Ok(NotifyReceiver {
            local_addr,
            stop,
            task,
            stats,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The receiver's counters.
    pub fn stats(&self) -> Arc<NotifyStats> {
        self.stats.clone()
    }

    /// Stops accepting and waits for the accept loop to end.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn receive(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let uri = request.uri().clone();
    let headers = request.headers().clone();
    // The headers came within their own limit; the body gets one too, so a client
    // sending a byte at a time cannot hold the connection.
    let body =
        match tokio::time::timeout(shared.body_timeout, Bytes::from_request(request, &())).await {
            Ok(Ok(body)) => body,
            Ok(Err(rejection)) => {
                let why = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Refusal::TooLarge
                } else {
                    Refusal::Body
                };
                let status = rejection.status();
                return shared.refuse(
                    why,
                    status,
                    "the body could not be read",
                    &rejection.body_text(),
                );
            }
            Err(_) => {
                let mut response = shared.refuse(
                    Refusal::SlowBody,
                    StatusCode::REQUEST_TIMEOUT,
                    "the body did not arrive in time",
                    "",
                );
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return response;
            }
        };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let (Some(signature), Some(time), Some(client_id)) = (
        header("signature"),
        header("request-time"),
        header("client-id"),
    ) else {
        return shared.refuse(
            Refusal::Headers,
            StatusCode::UNAUTHORIZED,
            "Signature, Request-Time and Client-Id are required",
            "",
        );
    };
    if client_id != shared.client_id {
        return shared.refuse(
            Refusal::ClientId,
            StatusCode::UNAUTHORIZED,
            "unknown Client-Id",
            "",
        );
    }
    if let Err(e) = signing::verify(
        &shared.antom_public_key,
        signature,
        path,
        client_id,
        time,
        &body,
    ) {
        return shared.refuse(
            Refusal::Signature,
            StatusCode::UNAUTHORIZED,
            "signature verification failed",
            &e.to_string(),
        );
    }
    if let Err(why) = within_window(time, Timestamp::now(), shared.max_age) {
        return shared.refuse(
            Refusal::RequestTime,
            StatusCode::BAD_REQUEST,
            "Request-Time outside the accepted window",
            &why,
        );
    }
    let Some(notification) = parse_notification(&body) else {
        return shared.refuse(
            Refusal::Body,
            StatusCode::BAD_REQUEST,
            "not a REFUND_RESULT notification",
            "",
        );
    };
    let (accepted, wait) = oneshot::channel();
    let delivery = NotifyDelivery {
        notification,
        accepted,
    };
    if shared.deliveries.try_send(delivery).is_err() {
        return shared.refuse(
            Refusal::NotRecorded,
            StatusCode::SERVICE_UNAVAILABLE,
            "busy; send again later",
            "",
        );
    }
    match tokio::time::timeout(shared.accept_timeout, wait).await {
        Ok(Ok(())) => {
            shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                r#"{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}}"#,
            )
                .into_response()
        }
        _ => shared.refuse(
            Refusal::NotRecorded,
            StatusCode::SERVICE_UNAVAILABLE,
            "not recorded; send again later",
            "",
        ),
    }
}

fn reject(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({
        "result": {"resultCode": "PROCESS_FAIL", "resultStatus": "F", "resultMessage": message}
    });
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotifyBody {
    #[serde(default)]
    notify_type: Option<String>,
    #[serde(flatten)]
    answer: AntomAnswer,
}

/// Reads a notifyRefund body; `None` if it is not one.
pub fn parse_notification(body: &[u8]) -> Option<RefundNotification> {
    let parsed: NotifyBody = serde_json::from_slice(body).ok()?;
    if parsed
        .notify_type
        .as_deref()
        .is_some_and(|t| t != "REFUND_RESULT")
    {
        return None;
    }
    let answer = parsed.answer;
    let refund_request_id = answer
        .refund_request_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(text::clean_id)?;
    let refund_id = answer
        .refund_id
        .as_deref()
        .map(text::clean_id)
        .unwrap_or_default();
    let refund_status = text::clean_code(answer.refund_status.as_deref().unwrap_or(""), 32);
    // Antom notifies only final states, SUCCESS or FAIL; anything else is not read as
    // either.
    let outcome = match classify::antom_refund_status(&refund_status) {
        Some(CodeClass::Success) => reply::success(&answer),
        Some(CodeClass::FailedFinal) => Outcome::FailedFinal {
            code: if answer.result.result_code.is_empty() {
                format!("REFUND_{refund_status}")
            } else {
                answer.result.result_code.clone()
            },
            message: answer.result.result_message.clone(),
        },
        _ => Outcome::OutcomeUnknown {
            reason: format!("antom notifyRefund: unknown refundStatus {refund_status:?}"),
        },
    };
    let outcome = answer::clean(outcome);
    Some(RefundNotification {
        refund_request_id,
        refund_id,
        refund_status,
        amount: answer.refund_amount.as_ref().and_then(|a| a.to_amount()),
        outcome,
    })
}

/// Reads a `Request-Time`: epoch milliseconds (v1) or ISO 8601 with an offset (v2).
pub fn parse_request_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Timestamp::from_millisecond(ms).ok();
    }
    text.parse::<Timestamp>().ok()
}

/// Whether a notification's `Request-Time` lies within `max_age` of `now`, either way.
pub fn within_window(request_time: &str, now: Timestamp, max_age: Duration) -> Result<(), String> {
    let Some(sent) = parse_request_time(request_time) else {
        return Err(format!(
            "unreadable Request-Time {:?}",
            text::clean_text(request_time, 40)
        ));
    };
    let apart = now.duration_since(sent).unsigned_abs();
    if apart > max_age {
        return Err(format!(
            "Request-Time {sent} is {} s from this machine's clock (at most {} s allowed)",
            apart.as_secs(),
            max_age.as_secs()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_success_and_failure() {
        let ok = br#"{"notifyType":"REFUND_RESULT","result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"},
            "refundStatus":"SUCCESS","refundRequestId":"R1","refundId":"X1","refundAmount":{"value":100,"currency":"USD"},
            "refundTime":"2026-04-10T11:32:54Z"}"#;
        let n = parse_notification(ok).unwrap();
        assert_eq!(n.refund_request_id, "R1");
        assert!(
            matches!(n.outcome, Outcome::Succeeded { ref refund_id, amount: Some(_), .. } if refund_id == "X1")
        );
        let fail = br#"{"notifyType":"REFUND_RESULT","result":{"resultCode":"PROCESS_FAIL","resultStatus":"F","resultMessage":"no"},
            "refundStatus":"FAIL","refundRequestId":"R1","refundId":"X1"}"#;
        assert!(
            matches!(parse_notification(fail).unwrap().outcome, Outcome::FailedFinal { ref code, .. } if code == "PROCESS_FAIL")
        );
        for bad in [&b"{}"[..], b"null", b"[", br#"{"notifyType":"PAYMENT_RESULT","result":{"resultStatus":"S"},"refundRequestId":"R"}"#] {
            assert!(parse_notification(bad).is_none());
        }
    }

    #[test]
    fn request_time_window() {
        let now: Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let ten_min = Duration::from_secs(600);
        assert!(within_window("2026-12-01T11:55:00.123+00:00", now, ten_min).is_ok());
        assert!(within_window("2026-12-01T19:55:00.123+08:00", now, ten_min).is_ok());
        let ms = now.as_millisecond() - 300_000;
        assert!(within_window(&ms.to_string(), now, ten_min).is_ok());
        let old = within_window("2026-12-01T11:00:00Z", now, ten_min).unwrap_err();
        assert!(old.contains("3600 s"), "{old}");
        assert!(within_window("2026-12-01T12:20:00Z", now, ten_min).is_err());
        assert!(within_window("yesterday", now, ten_min).is_err());
    }
}
