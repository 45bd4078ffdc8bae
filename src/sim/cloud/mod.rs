//! The cloud simulator: Antom, OTT Pay and PaymentOptions refund APIs on loopback.
//!
//! Field techs run it as `posbridge sim-cloud`; the tests and the demo start it as a
//! library ([`CloudSim::start`]). It keeps real books ([`books`]): payments with
//! amounts and refunded totals, Antom idempotency by refundRequestId, one refund per
//! payment at a time, asynchronous refunds that turn final after a delay (with
//! notifyRefund posted, signed), and a count of refunds actually executed per payment
//! so a test can assert "exactly once". Antom requests must carry a valid signature by
//! the merchant key; answers are signed with the simulator's own key. Faults
//! ([`faults`]) and the down switch are driven through this API or over HTTP under
//! `/_sim/` ([`admin`]).
//!
//! Paths served (any prefix before them is accepted, like a base URL's path):
//! - Antom: `/v2/payments/refund`, `/v2/payments/inquiryRefund`, and the v1 forms
//!   `/ams/api/v1/payments/...`, `/ams/sandbox/api/v1/payments/...`;
//! - OTT Pay: `/api/v1/auth/token`, `/api/v1/payment/local-card/refund`;
//! - PaymentOptions: `/server-to-server-interface/refund`, and `GET
//!   /server-to-server-interface/transaction/status/{id}` for its payments and refunds.

pub mod admin;
pub mod antom;
pub mod books;
pub mod demo;
pub mod faults;
pub mod ottpay;
pub mod paymentoptions;
pub mod report;
pub mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use self::books::{Books, PaymentSeed, PaymentView, RefundRecord};
use self::faults::{Fault, FaultRule, FaultTarget, Faults};
use crate::provider::Secret;
use crate::provider::antom::keys::{PrivateKey, PublicKey};
use crate::provider::serve::ConnectionHandle;

/// How the simulator is set up.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Antom: the merchant's public key, to check request signatures.
    pub merchant_public_key: PublicKey,
    /// Antom: the simulator's private key, to sign answers and notifications.
    pub sim_private_key: PrivateKey,
    /// How long an asynchronous refund stays pending.
    pub async_delay: Duration,
    /// Where Antom notifyRefund calls go; `None` sends none.
    pub antom_notify_url: Option<String>,
    /// OTT Pay credentials accepted.
    pub ottpay_app_id: String,
    /// OTT Pay appKey accepted.
    pub ottpay_app_key: Secret,
    /// OTT Pay token lifetime.
    pub ottpay_token_ttl: Duration,
    /// PaymentOptions API key accepted.
    pub paymentoptions_api_key: Secret,
    /// PaymentOptions merchant id accepted.
    pub paymentoptions_merchant_id: String,
    /// Payments known at start.
    pub payments: Vec<PaymentSeed>,
    /// Time a client gets to send request headers.
    pub header_read_timeout: Duration,
    /// Largest request body read.
    pub max_body_bytes: usize,
}

/// Counters a test or tech can read.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SimStats {
    /// Provider API requests received, by endpoint name.
    pub requests: HashMap<String, u64>,
    /// OTT Pay tokens issued.
    pub tokens_issued: u64,
    /// notifyRefund calls answered with Antom's SUCCESS.
    pub notifications_acknowledged: u64,
    /// notifyRefund calls that failed or were refused.
    pub notifications_failed: u64,
}

pub(crate) struct Shared {
    config: SimConfig,
    books: Mutex<Books>,
    faults: Mutex<Faults>,
    struck: Mutex<Vec<faults::Struck>>,
    /// Set the moment `POST /_sim/down` is answered, before the listener closes.
    going_down: std::sync::atomic::AtomicBool,
    notify_url: Mutex<Option<String>>,
    tokens: Mutex<HashMap<String, Instant>>,
    issued_tokens: Mutex<Vec<String>>,
    requests: Mutex<HashMap<String, u64>>,
    tokens_issued: AtomicU64,
    notifications_acknowledged: AtomicU64,
    notifications_failed: AtomicU64,
    next_token: AtomicU64,
    stop: CancellationToken,
    notifier: reqwest::Client,
    switch: std::sync::OnceLock<Arc<server::Switch>>,
}

/// Locks a mutex, carrying on if a panicking thread poisoned it (the books stay
/// consistent: every update is a single step).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn books(&self) -> MutexGuard<'_, Books> {
        lock(&self.books)
    }

    /// The fault for this call, if a rule strikes it; recorded with the payment.
    fn take_fault(&self, target: FaultTarget, payment_id: &str) -> Option<FaultRule> {
        let rule = lock(&self.faults).take(target)?;
        lock(&self.struck).push(faults::Struck {
            at: jiff::Timestamp::now(),
            target,
            payment_id: payment_id.to_owned(),
            fault: rule.fault.clone(),
            after_execute: rule.after_execute,
        });
        Some(rule)
    }

    fn count(&self, endpoint: &str) {
        *lock(&self.requests)
            .entry(endpoint.to_string())
            .or_default() += 1;
    }

    /// Waits until the simulator stops (a hanging answer).
    async fn hang(&self) -> Response {
        self.stop.cancelled().await;
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}

/// Marks a payment as being handled for as long as it lives.
pub(crate) struct InFlight<'a> {
    shared: &'a Shared,
    payment_id: String,
}

impl<'a> InFlight<'a> {
    pub(crate) fn begin(shared: &'a Shared, payment_id: &str) -> InFlight<'a> {
        shared.books().begin(payment_id);
        InFlight {
            shared,
            payment_id: payment_id.to_string(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shared.books().end(&self.payment_id);
    }
}

/// What a fault does before the call is carried out; `Some` ends the call.
pub(crate) async fn before(
    shared: &Shared,
    conn: &ConnectionHandle,
    rule: Option<&FaultRule>,
) -> Option<Response> {
    let rule = rule.filter(|r| !r.after_execute)?;
    strike(shared, conn, &rule.fault).await
}

/// What a fault does after the call was carried out, to its answer.
pub(crate) async fn after(
    shared: &Shared,
    conn: &ConnectionHandle,
    rule: Option<&FaultRule>,
    answer: Response,
) -> Response {
    match rule.filter(|r| r.after_execute) {
        Some(rule) => strike(shared, conn, &rule.fault).await.unwrap_or(answer),
        None => answer,
    }
}

async fn strike(shared: &Shared, conn: &ConnectionHandle, fault: &Fault) -> Option<Response> {
    match fault {
        Fault::Slow { ms } => {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(*ms)) => None,
                response = shared.hang() => Some(response),
            }
        }
        Fault::Hang => Some(shared.hang().await),
        Fault::DropConnection => {
            conn.drop_connection();
            Some(shared.hang().await)
        }
        Fault::HttpStatus { status } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some((status, format!("simulated {status}")).into_response())
        }
        // Provider-specific faults are applied by the provider's handler.
        Fault::AntomResult { .. }
        | Fault::OttpayError { .. }
        | Fault::BadSignature
        | Fault::Unsigned
        | Fault::Variant { .. } => None,
    }
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A running simulator.
pub struct CloudSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    switch: Arc<server::Switch>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for CloudSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudSim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl CloudSim {
    /// Binds and starts serving.
    pub async fn start(config: SimConfig) -> std::io::Result<CloudSim> {
        let listener = server::bind(config.listen)?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let mut books = Books::default();
        for seed in &config.payments {
            books.add_payment(seed.clone());
        }
        let notifier = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            notify_url: Mutex::new(config.antom_notify_url.clone()),
            config,
            books: Mutex::new(books),
            faults: Mutex::new(Faults::default()),
            struck: Mutex::new(Vec::new()),
            going_down: std::sync::atomic::AtomicBool::new(false),
            tokens: Mutex::new(HashMap::new()),
            issued_tokens: Mutex::new(Vec::new()),
            requests: Mutex::new(HashMap::new()),
            tokens_issued: AtomicU64::new(0),
            notifications_acknowledged: AtomicU64::new(0),
            notifications_failed: AtomicU64::new(0),
            next_token: AtomicU64::new(0),
            stop: stop.clone(),
            notifier,
            switch: std::sync::OnceLock::new(),
        });
        let router = Router::new()
            .fallback(dispatch)
            .layer(DefaultBodyLimit::max(shared.config.max_body_bytes))
            .with_state(shared.clone());
        let (switch, accept) = server::start(
            listener,
            router,
            shared.config.header_read_timeout,
            stop.clone(),
        )?;
        let switch = Arc::new(switch);
        let _ = shared.switch.set(switch.clone());
        let settler = tokio::spawn(antom::settle_loop(shared.clone()));
        Ok(CloudSim {
            shared,
            addr,
            switch,
            tasks: vec![accept, settler],
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the base URL for any of the three providers (a loopback
    /// address when listening on all interfaces, since clients accept plain http only
    /// for loopback hosts).
    pub fn base_url(&self) -> String {
        local_base_url(self.addr)
    }

    /// Every OTT Pay access token issued so far, in order, revoked and expired ones
    /// included (for tests that check no token ends up in a log or a file).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared.issued_tokens).clone()
    }

    /// Adds or replaces a payment.
    pub fn add_payment(&self, seed: PaymentSeed) {
        self.shared.books().add_payment(seed);
    }

    /// A payment's books.
    pub fn payment(&self, id: &str) -> Option<PaymentView> {
        self.shared.books().payment(id)
    }

    /// Refunds actually executed against a payment (0 for an unknown one).
    pub fn executed(&self, payment_id: &str) -> u32 {
        self.payment(payment_id).map_or(0, |p| p.executed)
    }

    /// A refund by refund id.
    pub fn refund(&self, refund_id: &str) -> Option<RefundRecord> {
        self.shared.books().refund(refund_id)
    }

    /// A refund by Antom refundRequestId.
    pub fn refund_by_request_id(&self, request_id: &str) -> Option<RefundRecord> {
        self.shared.books().refund_by_request_id(request_id)
    }

    /// Every refund executed so far, in the order they were made.
    pub fn refunds(&self) -> Vec<RefundRecord> {
        self.shared.books().refunds()
    }

    /// The books as a provider's report of its refunds.
    pub fn report(&self, format: report::ReportFormat) -> String {
        report::render(&self.shared.books(), format)
    }

    /// Every fault that struck a call so far, in order.
    pub fn struck(&self) -> Vec<faults::Struck> {
        lock(&self.shared.struck).clone()
    }

    /// Adds a fault rule.
    pub fn push_fault(&self, rule: FaultRule) {
        lock(&self.shared.faults).push(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Refuses connections (down) or accepts them again; returns once in effect.
    pub async fn set_down(&self, down: bool) {
        if down {
            self.shared.going_down.store(true, Ordering::SeqCst);
        }
        self.switch.set_down(down).await;
        if !down {
            self.shared.going_down.store(false, Ordering::SeqCst);
        }
    }

    /// Finishes every pending asynchronous refund now (notifications follow).
    pub fn settle_now(&self) {
        antom::settle(&self.shared, true);
    }

    /// Where notifyRefund calls go from now on.
    pub fn set_notify_url(&self, url: Option<String>) {
        *lock(&self.shared.notify_url) = url;
    }

    /// Makes every OTT Pay token invalid (to exercise the client's refresh).
    pub fn revoke_tokens(&self) {
        lock(&self.shared.tokens).clear();
    }

    /// The counters.
    pub fn stats(&self) -> SimStats {
        stats(&self.shared)
    }

    /// The simulator's public key (what a client configures as Antom's public key).
    pub fn antom_public_key(&self) -> PublicKey {
        self.shared.config.sim_private_key.public_key()
    }

    /// Stops serving and waits for the background tasks.
    pub async fn shutdown(mut self) {
        self.shared.stop.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for CloudSim {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// `http://<addr>` for a simulator listening on `addr`, with an unspecified address
/// (`0.0.0.0`, `::`) replaced by loopback of the same family.
pub fn local_base_url(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        let loopback: std::net::IpAddr = if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        addr.set_ip(loopback);
    }
    format!("http://{addr}")
}

pub(crate) fn stats(shared: &Shared) -> SimStats {
    SimStats {
        requests: lock(&shared.requests).clone(),
        tokens_issued: shared.tokens_issued.load(Ordering::Relaxed),
        notifications_acknowledged: shared.notifications_acknowledged.load(Ordering::Relaxed),
        notifications_failed: shared.notifications_failed.load(Ordering::Relaxed),
    }
}

async fn dispatch(
    State(shared): State<Arc<Shared>>,
    conn: Option<Extension<ConnectionHandle>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if let Some(rest) = path.strip_prefix("/_sim/") {
        return admin::handle(&shared, &method, rest, &body).await;
    }
    let Some(Extension(conn)) = conn else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // Taken down by the admin API, in the moment before the listener closes: the
    // provider is already unavailable, and says so without doing anything.
    if shared.going_down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "simulated outage").into_response();
    }
    if method == Method::GET
        && let Some((_, id)) = path.split_once(paymentoptions::STATUS_PATH)
    {
        return paymentoptions::status(&shared, &headers, id);
    }
    if method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "POST only").into_response();
    }
    let signed_path = uri
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_string());
    if let Some(call) = antom::route(&path) {
        return antom::handle(&shared, &conn, call, &signed_path, &headers, &body).await;
    }
    if path.ends_with(ottpay::TOKEN_PATH) {
        return ottpay::token(&shared, &conn, &body).await;
    }
    if path.ends_with(ottpay::REFUND_PATH) {
        return ottpay::refund(&shared, &conn, &headers, &body).await;
    }
    if path.ends_with(paymentoptions::REFUND_PATH) {
        return paymentoptions::refund(&shared, &conn, &headers, &body).await;
    }
    (StatusCode::NOT_FOUND, "no such API in the simulator").into_response()
}
