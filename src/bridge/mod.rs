//! The bridge: turns a terminal's REFUND into exactly one refund at the provider,
//! whatever fails in between, and tells the cashier.
//!
//! - [`session`]: one task per terminal line: HELLO/WELCOME, REFUND recorded in the
//!   ledger before its ACK goes, INQUIRY and STATUS answered from the ledger.
//! - [`line`]: each line's owner, the one way back to its terminal: what to send,
//!   and what the terminal acknowledged.
//! - [`routes`]: which line each connected terminal is on.
//! - [`worker`]: the scheduler that sends due refunds (one per payment at a time, in
//!   the order they came), polls refunds in progress, and drains the queue when the
//!   cloud comes back.
//! - [`policy`]: what each provider outcome does to a refund.
//! - [`texts`]: what the cashier reads.
//! - [`limits`]: safety limits.
//!
//! Every state change is first recorded in the ledger, then relayed to the terminal as
//! REFUND_UPDATE + DISPLAY. Final states are delivered again after every reconnect
//! until the terminal acknowledges them.

pub mod limits;
pub use histogram::Histogram;
mod histogram;
mod line;
pub mod policy;
mod routes;
mod session;
pub use session::new_refund_request_id;
pub mod texts;
mod worker;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ledger::{LedgerHandle, RefundRecord};
use crate::link::{Connector, Tracer};
use crate::locks::lock;
use crate::provider::antom::notify::NotifyDelivery;
use crate::provider::{Outcome, Provider};

use limits::Limits;
use policy::{ProviderCapabilities, RetrySettings};
use texts::{Catalogue, Language, MessageOverrides};

/// The bridge's behaviour settings from the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeSettings {
    /// Retry and poll timing.
    pub retry: RetrySettings,
    /// Safety limits.
    pub limits: Limits,
    /// Display text overrides.
    pub messages: MessageOverrides,
}

impl BridgeSettings {
    /// Checks every part.
    pub fn validate(&self) -> Result<(), String> {
        self.retry
            .validate()
            .map_err(|e| e.under("retry").to_string())?;
        self.limits
            .validate()
            .map_err(|e| e.under("limits").to_string())?;
        self.messages.validate().map_err(|e| e.to_string())
    }
}

/// Whether the provider's cloud can be used right now, and when it last answered.
#[derive(Debug)]
struct CloudStatus {
    online: AtomicBool,
    last_contact_ms: AtomicI64,
}

impl CloudStatus {
    /// Takes in what an outcome says; returns true when the cloud just came back.
    fn observe(&self, reachable: Option<bool>, now_ms: i64) -> bool {
        match reachable {
            Some(true) => {
                self.last_contact_ms.store(now_ms, Ordering::Relaxed);
                !self.online.swap(true, Ordering::Relaxed)
            }
            Some(false) => {
                if self.online.swap(false, Ordering::Relaxed) {
                    tracing::warn!("the provider's cloud cannot be used; new refunds are queued");
                }
                false
            }
            None => false,
        }
    }
}

/// Counters the bridge keeps for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// From a REFUND frame's arrival to its request leaving for the provider.
    pub own_latency: Histogram,
    /// Provider call durations.
    pub cloud_latency: Histogram,
    /// How long recording a new refund took (the terminal's ACK waits for it).
    pub record_latency: Histogram,
    /// Refunds recorded.
    pub accepted: AtomicU64,
    /// REFUNDs refused (invalid, duplicate mismatch, limits).
    pub refused: AtomicU64,
    /// Provider outcomes by class and code.
    outcomes: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// Every terminal id that said HELLO since the start.
    known_terminals: Mutex<BTreeSet<String>>,
}

/// Distinct (class, code) pairs kept; beyond them a code counts as `OTHER`, so a
/// provider inventing codes cannot grow the metrics without bound.
const OUTCOME_CODES_KEPT: usize = 256;

impl BridgeStats {
    /// Counts one provider outcome.
    pub fn record_outcome(&self, outcome: &Outcome) {
        let code = match outcome {
            Outcome::Succeeded { code, .. } => code.clone().unwrap_or_default(),
            Outcome::FailedFinal { code, .. } | Outcome::NeedsNewRequestId { code, .. } => {
                code.clone()
            }
            _ => String::new(),
        };
        let mut outcomes = lock(&self.outcomes);
        let mut key = (outcome.class_name(), code);
        if !outcomes.contains_key(&key) && outcomes.len() >= OUTCOME_CODES_KEPT {
            key.1 = "OTHER".into();
        }
        *outcomes.entry(key).or_default() += 1;
    }

    /// Provider outcomes so far: (class, code, count).
    pub fn outcomes(&self) -> Vec<(&'static str, String, u64)> {
        lock(&self.outcomes)
            .iter()
            .map(|((c, k), n)| (*c, k.clone(), *n))
            .collect()
    }

    /// Notes a terminal that said HELLO.
    pub(crate) fn terminal_seen(&self, id: &str) {
        lock(&self.known_terminals).insert(id.to_owned());
    }

    /// Every terminal id that said HELLO since the start.
    pub fn known_terminals(&self) -> Vec<String> {
        lock(&self.known_terminals).iter().cloned().collect()
    }
}

struct Inner {
    ledger: LedgerHandle,
    provider: Arc<dyn Provider>,
    capabilities: ProviderCapabilities,
    settings: BridgeSettings,
    catalogue: Catalogue,
    cloud: CloudStatus,
    /// Where a refund's new state goes to reach its terminal's line.
    routes: mpsc::UnboundedSender<routes::Route>,
    /// The terminals connected now, as the routes see them.
    connected: watch::Receiver<Vec<String>>,
    wake: Notify,
    /// Refunds just recorded that nothing holds back: sent without waiting for the
    /// scheduler's next look at the ledger.
    fresh: mpsc::UnboundedSender<RefundRecord>,
    stop: CancellationToken,
    /// Every terminal line served, by label, with its link's counters.
    lines: Mutex<Vec<(String, Arc<crate::link::LinkStats>)>>,
    /// When each recorded-but-unsent refund's REFUND frame arrived.
    arrivals: Mutex<HashMap<i64, Instant>>,
    stats: BridgeStats,
    /// Every call to the provider in flight; shutdown waits for them.
    tracker: TaskTracker,
}

/// The running bridge. Cheap to clone.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

/// A snapshot for STATUS_REPORT, WELCOME and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeStatus {
    /// Whether the cloud can be used.
    pub online: bool,
    /// When it last answered (ms since the epoch).
    pub last_contact_ms: Option<i64>,
    /// Terminals with a session now.
    pub terminals: Vec<String>,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Bridge {
    /// Starts the bridge's scheduler; terminals are attached with [`Bridge::serve`].
    pub fn start(
        ledger: LedgerHandle,
        provider: Arc<dyn Provider>,
        settings: BridgeSettings,
    ) -> Bridge {
        let capabilities = ProviderCapabilities {
            idempotent: provider.is_idempotent(),
            supports_inquiry: provider.supports_inquiry(),
        };
        let catalogue = Catalogue::new(settings.messages.clone());
        let (fresh, fresh_rx) = mpsc::unbounded_channel();
        let (routes, routes_rx) = mpsc::unbounded_channel();
        let (connected_tx, connected) = watch::channel(Vec::new());
        let bridge = Bridge {
            inner: Arc::new(Inner {
                ledger,
                provider,
                capabilities,
                settings,
                catalogue,
                cloud: CloudStatus {
                    online: AtomicBool::new(true),
                    last_contact_ms: AtomicI64::new(0),
                },
                routes,
                connected,
                wake: Notify::new(),
                fresh,
                stop: CancellationToken::new(),
                lines: Mutex::new(Vec::new()),
                arrivals: Mutex::new(HashMap::new()),
                stats: BridgeStats::default(),
                tracker: TaskTracker::new(),
            }),
        };
        tokio::spawn(worker::run(bridge.clone(), fresh_rx));
        tokio::spawn(routes::run(
            routes_rx,
            connected_tx,
            bridge.inner.stop.clone(),
        ));
        bridge
    }

    /// Serves one terminal line, named `label` in logs and metrics, reopened by
    /// `connector` after every unplug, until the bridge stops. `language` is the
    /// line's configured catalogue; without one the terminal's HELLO chooses.
    pub fn serve(
        &self,
        label: &str,
        connector: impl Connector,
        baud: Option<u32>,
        tracer: Option<Tracer>,
        language: Option<Language>,
    ) -> tokio::task::JoinHandle<()> {
        // Every line the link and the session log about this line names it.
        let span = tracing::info_span!("line", line = %label);
        tokio::spawn(tracing::Instrument::instrument(
            session::serve(
                self.clone(),
                label.to_owned(),
                connector,
                baud,
                tracer,
                language,
            ),
            span,
        ))
    }

    /// Every line served, with its link's counters now.
    pub fn lines(&self) -> Vec<(String, crate::link::LinkStatsSnapshot)> {
        lock(&self.inner.lines)
            .iter()
            .map(|(label, stats)| (label.clone(), stats.snapshot()))
            .collect()
    }

    /// Notes a line served, for [`Bridge::lines`].
    fn register_line(&self, label: &str, stats: Arc<crate::link::LinkStats>) {
        lock(&self.inner.lines).push((label.to_owned(), stats));
    }

    /// Tells the routes about a terminal or a refund's change.
    fn route(&self, route: routes::Route) {
        let _ = self.inner.routes.send(route);
    }

    /// Settles refunds from verified notifyRefund messages until the channel closes.
    pub fn consume_notifications(
        &self,
        mut deliveries: mpsc::Receiver<NotifyDelivery>,
    ) -> tokio::task::JoinHandle<()> {
        let bridge = self.clone();
        tokio::spawn(async move {
            while let Some(delivery) = deliveries.recv().await {
                worker::notification(&bridge, delivery).await;
            }
        })
    }

    /// Stops sending new requests and waits for the calls in flight to end, at most
    /// `grace`; what is still in flight after that is resumed from the ledger at the
    /// next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.stop.cancel();
        self.inner.tracker.close();
        if tokio::time::timeout(grace, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                calls = self.inner.tracker.len(),
                "calls still in flight after the shutdown grace; they resume from the ledger at the next start"
            );
        }
    }

    /// The cloud's state and the connected terminals.
    pub fn status(&self) -> BridgeStatus {
        let last = self.inner.cloud.last_contact_ms.load(Ordering::Relaxed);
        BridgeStatus {
            online: self.inner.cloud.online.load(Ordering::Relaxed),
            last_contact_ms: (last > 0).then_some(last),
            terminals: self.inner.connected.borrow().clone(),
        }
    }

    /// The bridge's counters.
    pub fn stats(&self) -> &BridgeStats {
        &self.inner.stats
    }

    /// The ledger the bridge writes.
    pub fn ledger(&self) -> &LedgerHandle {
        &self.inner.ledger
    }

    /// Sends a refund's new state to its terminal's line, if it is connected; a final
    /// state not acknowledged now is offered again until it is.
    fn relay(&self, refund: &RefundRecord) {
        self.route(routes::Route::Changed(Box::new(refund.clone())));
    }
}
