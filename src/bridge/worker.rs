//! The scheduler: sends due refunds to the provider and asks about refunds in
//! progress, recording every step in the ledger before anyone hears of it.
//!
//! Rules it keeps:
//! - one refund per payment in flight, in the order the refunds were accepted (the
//!   ledger's `due` query leaves out any refund with an earlier open one);
//! - a request is marked as being sent, on disk, before it leaves, so a restart knows
//!   it may have gone out;
//! - while the cloud cannot be used, only one refund at a time probes it; when it
//!   answers again, every queued refund becomes due at once.

use crate::locks::lock;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::RngExt;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::policy::{self, Context, NotificationEffect};
use super::{Bridge, now_ms};
use crate::ledger::{AttemptStatus, Change, LedgerError, RefundRecord};
use crate::message::RefundState;
use crate::provider::antom::notify::NotifyDelivery;
use crate::provider::{InquiryRequest, RefundRequest};

/// Starts work on a refund, noting it as in flight; each runs on the bridge's task
/// tracker, so shutdown waits for exactly the calls still running.
fn dispatch(
    bridge: &Bridge,
    refund: RefundRecord,
    working: &mut HashMap<i64, String>,
    done: &mpsc::UnboundedSender<i64>,
) {
    working.insert(refund.id, refund.payment_id.clone());
    let (tracker, bridge, done) = (bridge.inner.tracker.clone(), bridge.clone(), done.clone());
    let span = refund_span(&refund);
    tracker.spawn(
        async move {
            let id = refund.id;
            work(&bridge, refund).await;
            let _ = done.send(id);
        }
        .instrument(span),
    );
}

/// The scheduler's state between two looks at the ledger.
struct Scheduler {
    bridge: Bridge,
    done_tx: mpsc::UnboundedSender<i64>,
    /// Refund → payment of everything being worked on.
    working: HashMap<i64, String>,
    /// While the cloud cannot be used, one probe at a time, spaced by a backoff of
    /// their own: ten thousand queued refunds must not each knock on a dead line.
    probes: u32,
    next_probe: Instant,
    /// Whether to look at the ledger for due refunds, and whether the last look left
    /// some behind (so a finished one may free the way for them).
    look: bool,
    backlog: bool,
    next_due: Option<i64>,
    /// Where the log of people's and reports' changes has got to.
    seen_transition: i64,
}

/// Runs until the bridge stops.
pub(super) async fn run(bridge: Bridge, mut fresh: mpsc::UnboundedReceiver<RefundRecord>) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<i64>();
    let seen_transition = bridge
        .inner
        .ledger
        .call(|l| l.last_transition_id())
        .await
        .unwrap_or(0);
    let mut scheduler = Scheduler {
        bridge,
        done_tx,
        working: HashMap::new(),
        probes: 0,
        next_probe: Instant::now(),
        look: true,
        backlog: false,
        next_due: None,
        seen_transition,
    };
    loop {
        while let Ok(id) = done_rx.try_recv() {
            scheduler.finished(id);
        }
        if scheduler.bridge.inner.stop.is_cancelled() {
            return;
        }
        let online = scheduler.bridge.inner.cloud.online.load(Ordering::Relaxed);
        let capacity = scheduler.capacity(online);
        let now = now_ms();
        if scheduler.look {
            let seen = scheduler.seen_transition;
            scheduler.seen_transition = log_operator_changes(&scheduler.bridge, seen).await;
        }
        if scheduler.look && capacity > 0 && !scheduler.start_due(now, capacity, online).await {
            return;
        }
        let wait = scheduler.wait(now, online);
        let bridge = scheduler.bridge.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => scheduler.look = true,
            _ = bridge.inner.wake.notified() => scheduler.look = true,
            Some(id) = done_rx.recv() => scheduler.finished(id),
            Some(refund) = fresh.recv() => scheduler.fresh(refund),
            _ = bridge.inner.stop.cancelled() => {}
        }
    }
}

impl Scheduler {
    /// A refund's work ended: its payment is free, and so maybe the backlog.
    fn finished(&mut self, id: i64) {
        self.working.remove(&id);
        self.look |= self.backlog;
    }

    /// How many refunds may start now.
    fn capacity(&mut self, online: bool) -> usize {
        if online {
            self.probes = 0;
            self.bridge
                .inner
                .settings
                .retry
                .concurrency
                .saturating_sub(self.working.len())
        } else if self.working.is_empty() && Instant::now() >= self.next_probe {
            1
        } else {
            0
        }
    }

    /// Whether a refund's payment already has one in flight.
    fn busy(&self, refund: &RefundRecord) -> bool {
        self.working.contains_key(&refund.id)
            || self.working.values().any(|p| *p == refund.payment_id)
    }

    /// Looks at the ledger and starts up to `capacity` due refunds. `false`: the
    /// bridge stopped while the ledger answered, and nothing new may leave.
    async fn start_due(&mut self, now: i64, capacity: usize, online: bool) -> bool {
        self.look = false;
        let fetch = capacity + self.working.len() + 1;
        let due = self.bridge.inner.ledger.call(move |l| {
            let due = l.due(now, fetch)?;
            let next = l.next_due_ms()?;
            Ok((due, next))
        });
        match due.await {
            Ok(_) if self.bridge.inner.stop.is_cancelled() => return false,
            Ok((due, next)) => {
                self.next_due = next;
                let mut started = 0;
                let mut left = 0;
                for refund in due {
                    if self.busy(&refund) {
                        left += usize::from(!self.working.contains_key(&refund.id));
                        continue;
                    }
                    if started == capacity {
                        left += 1;
                        continue;
                    }
                    dispatch(&self.bridge, refund, &mut self.working, &self.done_tx);
                    started += 1;
                }
                self.backlog = left > 0 || started == capacity;
                if started > 0 && !online {
                    self.space_the_next_probe();
                }
            }
            Err(e) => tracing::error!("reading due refunds: {e}"),
        }
        true
    }

    /// A probe went out to a cloud that cannot be used: the next waits a backoff.
    fn space_the_next_probe(&mut self) {
        let retry = &self.bridge.inner.settings.retry;
        let jitter = rand::rng().random::<f64>();
        let wait = policy::backoff_ms(
            retry.first_retry_ms,
            retry.max_retry_ms,
            self.probes,
            jitter,
        );
        self.probes = self.probes.saturating_add(1);
        self.next_probe = Instant::now() + Duration::from_millis(wait);
    }

    /// How long to sleep: until the next refund falls due, at most a second, to see
    /// operators' changes to the ledger; offline, until the next probe.
    fn wait(&self, now: i64, online: bool) -> Duration {
        let wait = match self.next_due {
            Some(t) if t > now => Duration::from_millis((t - now).min(1000) as u64),
            _ => Duration::from_secs(1),
        };
        if online {
            wait
        } else {
            wait.min(
                self.next_probe
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(10)),
            )
        }
    }

    /// A refund just recorded: sent at once if nothing holds it back; otherwise the
    /// next look at the ledger finds it.
    fn fresh(&mut self, refund: RefundRecord) {
        let inner = &self.bridge.inner;
        let free = inner.cloud.online.load(Ordering::Relaxed)
            && self.working.len() < inner.settings.retry.concurrency
            && !self.busy(&refund)
            && !inner.stop.is_cancelled();
        if free {
            dispatch(&self.bridge, refund, &mut self.working, &self.done_tx);
        } else {
            self.look = true;
            self.backlog = true;
        }
    }
}

fn context<'a>(bridge: &'a Bridge, refund: &RefundRecord) -> Context<'a> {
    Context {
        state: refund.state,
        tries: refund.tries,
        now_ms: now_ms(),
        jitter: rand::rng().random::<f64>(),
        retry: &bridge.inner.settings.retry,
        provider: bridge.inner.capabilities,
    }
}

async fn work(bridge: &Bridge, refund: RefundRecord) {
    let result = match refund.state {
        RefundState::Accepted | RefundState::Queued => submit(bridge, &refund).await,
        RefundState::Processing => poll(bridge, &refund).await,
        _ => Ok(()),
    };
    if let Err(e) = result {
        match e {
            // Settled meanwhile (a notification, a person): nothing left to do.
            LedgerError::NotAllowed { .. } => tracing::debug!(ledger = refund.id, "{e}"),
            e => tracing::error!(ledger = refund.id, "refund step not recorded: {e}"),
        }
    }
}

/// Records a change and tells the terminal when the state moved.
async fn record(
    bridge: &Bridge,
    refund: &RefundRecord,
    change: Change,
) -> Result<RefundRecord, LedgerError> {
    let (id, attempt, now) = (refund.id, refund.attempt_id, now_ms());
    // The state before is read in the same ledger call: the copy this worker holds
    // may be older (a refund queued meanwhile because the cloud went away).
    let (before, updated) = bridge
        .inner
        .ledger
        .call(move |l| {
            let before = l.get(id)?.state;
            Ok((before, l.apply(id, attempt, &change, now)?))
        })
        .await?;
    if updated.state != before {
        log_state_change(&updated, before);
        bridge.relay(&updated);
    }
    if updated.state.is_final() {
        lock(&bridge.inner.arrivals).remove(&updated.id);
    }
    Ok(updated)
}

/// Logs what people and reports changed in the ledger since transition `after` (the
/// operator commands write the file directly), and returns how far it has read.
async fn log_operator_changes(bridge: &Bridge, after: i64) -> i64 {
    match bridge
        .inner
        .ledger
        .call(move |l| l.operator_changes_since(after, 100))
        .await
    {
        Ok(changes) => {
            let mut last = after;
            for (id, refund, cause) in changes {
                last = id;
                let span = refund_span(&refund);
                let _in = span.enter();
                tracing::info!(state = %refund.state, cause = %crate::text::visible(&cause), "changed outside the daemon; picked up");
            }
            last
        }
        Err(e) => {
            tracing::error!("reading operators' changes: {e}");
            after
        }
    }
}

/// A span naming a refund: every line logged while working on it carries its
/// terminal, the terminal's id for it, its ledger number, its payment and the current
/// refundRequestId, so one refund can be followed with grep.
pub(super) fn refund_span(refund: &RefundRecord) -> tracing::Span {
    tracing::info_span!(
        "refund",
        terminal = %refund.terminal_id,
        refund = %refund.original_merchant_refund_id,
        ledger = refund.id,
        payment = %refund.payment_id,
        refund_request_id = %refund.refund_request_id,
    )
}

/// Logs a state change, with the refund's ids and amount; a refund a person must now
/// settle is a warning.
pub(super) fn log_state_change(refund: &RefundRecord, before: RefundState) {
    let amount = refund
        .refunded
        .or(refund.amount)
        .map_or_else(|| "whole payment".to_owned(), |a| a.to_string());
    let code = refund.result_code.as_deref().unwrap_or("");
    // Inside the worker the refund's span is entered already; elsewhere (a refund
    // queued because another found the cloud away) it is entered here.
    let inside = tracing::Span::current()
        .metadata()
        .is_some_and(|m| m.name() == "refund");
    let span = if inside {
        tracing::Span::none()
    } else {
        refund_span(refund)
    };
    let _in = span.enter();
    if refund.state == RefundState::NeedsAttention {
        tracing::warn!(from = %before, to = %refund.state, %code, %amount, "refund state changed: a person must settle it");
    } else {
        tracing::info!(from = %before, to = %refund.state, %code, %amount, "refund state changed");
    }
}

/// Takes in what an outcome says about the cloud; when it has just come back, every
/// queued refund becomes due.
async fn observe(bridge: &Bridge, reachable: Option<bool>) {
    let was_online = bridge.inner.cloud.online.load(Ordering::Relaxed);
    if reachable == Some(false) && was_online {
        bridge.inner.cloud.observe(reachable, now_ms());
        let now = now_ms();
        match bridge
            .inner
            .ledger
            .call(move |l| l.queue_accepted("the cloud cannot be used; waiting for it", now))
            .await
        {
            Ok(moved) => {
                for refund in &moved {
                    log_state_change(refund, RefundState::Accepted);
                    bridge.relay(refund);
                }
            }
            Err(e) => tracing::error!("queueing accepted refunds: {e}"),
        }
        return;
    }
    if bridge.inner.cloud.observe(reachable, now_ms()) {
        let now = now_ms();
        match bridge.inner.ledger.call(move |l| l.requeue_now(now)).await {
            Ok(n) => tracing::info!(
                queued = n,
                "the provider's cloud answers again; sending the queue"
            ),
            Err(e) => tracing::error!("requeueing: {e}"),
        }
        bridge.inner.wake.notify_one();
    }
}

async fn submit(bridge: &Bridge, refund: &RefundRecord) -> Result<(), LedgerError> {
    if refund.attempt_status == AttemptStatus::Sending {
        match policy::in_doubt(bridge.inner.capabilities) {
            Some(change) => {
                tracing::warn!(
                    ledger = refund.id,
                    "outcome unknown after a restart; needs a person"
                );
                record(bridge, refund, change).await?;
                return Ok(());
            }
            None => tracing::info!(
                ledger = refund.id,
                refund_request_id = %refund.refund_request_id,
                "sending again with the same refundRequestId after a restart"
            ),
        }
    }
    let (id, attempt, seen, now) = (
        refund.id,
        refund.attempt_id,
        refund.attempt_status,
        now_ms(),
    );
    bridge
        .inner
        .ledger
        .call(move |l| l.begin_send(id, attempt, seen, now))
        .await?;
    let request = refund_request(refund);
    let arrived = lock(&bridge.inner.arrivals).remove(&refund.id);
    if let Some(arrived) = arrived {
        bridge.inner.stats.own_latency.record(arrived.elapsed());
    }
    let started = Instant::now();
    let outcome = bridge.inner.provider.refund(&request).await;
    bridge.inner.stats.cloud_latency.record(started.elapsed());
    bridge.inner.stats.record_outcome(&outcome);
    tracing::debug!(ledger = refund.id, %outcome, "refund sent");
    let decision = policy::after_submit(&outcome, &context(bridge, refund));
    observe(bridge, decision.reachable).await;
    record(bridge, refund, decision.change).await?;
    Ok(())
}

/// The request for a refund's current attempt: the same on every send.
fn refund_request(refund: &RefundRecord) -> RefundRequest {
    RefundRequest {
        refund_request_id: refund.refund_request_id.clone(),
        original_merchant_refund_id: Some(refund.original_merchant_refund_id.clone()),
        payment_id: refund.payment_id.clone(),
        amount: refund.amount,
        memo: refund.memo.clone(),
    }
}

async fn poll(bridge: &Bridge, refund: &RefundRecord) -> Result<(), LedgerError> {
    let request = InquiryRequest {
        refund_request_id: refund.refund_request_id.clone(),
        refund_id: refund.provider_refund_id.clone(),
        resend: bridge
            .inner
            .capabilities
            .idempotent
            .then(|| refund_request(refund)),
    };
    let started = Instant::now();
    let outcome = bridge.inner.provider.inquire(&request).await;
    bridge.inner.stats.cloud_latency.record(started.elapsed());
    bridge.inner.stats.record_outcome(&outcome);
    tracing::debug!(ledger = refund.id, %outcome, "inquiry");
    let decision = policy::after_poll(&outcome, &context(bridge, refund));
    observe(bridge, decision.reachable).await;
    record(bridge, refund, decision.change).await?;
    Ok(())
}

/// Settles a refund from a verified notifyRefund; acknowledges it to the provider only
/// once the ledger has it (or has nothing to change).
pub(super) async fn notification(bridge: &Bridge, delivery: NotifyDelivery) {
    let note = delivery.notification.clone();
    let rrid = note.refund_request_id.clone();
    let found = bridge
        .inner
        .ledger
        .call(move |l| l.find_by_request_id(&rrid))
        .await;
    let refund = match found {
        Ok(Some(refund)) => refund,
        Ok(None) => {
            tracing::warn!(refund_request_id = %note.refund_request_id, "notifyRefund for a refund this bridge never sent");
            delivery.accept();
            return;
        }
        Err(e) => {
            // Not acknowledged: the provider sends it again later.
            tracing::error!("notifyRefund not recorded: {e}");
            return;
        }
    };
    if refund.refund_request_id != note.refund_request_id {
        tracing::info!(
            ledger = refund.id,
            "notifyRefund for an earlier attempt; nothing to change"
        );
        delivery.accept();
        return;
    }
    let recorded = match policy::after_notification(&note, &refund) {
        NotificationEffect::Settle(change) => record(bridge, &refund, change).await.map(drop),
        NotificationEffect::Conflict(change) => {
            tracing::warn!(
                ledger = refund.id,
                refund = %refund.original_merchant_refund_id,
                cause = %change.cause,
                "a signed notifyRefund contradicts the ledger; the refund needs a person"
            );
            record(bridge, &refund, change).await.map(drop)
        }
        NotificationEffect::Disagrees(cause) => {
            tracing::warn!(ledger = refund.id, %cause, "notifyRefund disagrees with a settled refund");
            let id = refund.id;
            bridge
                .inner
                .ledger
                .call(move |l| l.note(id, &cause, Some(policy::NOTIFY_CONFLICT), now_ms()))
                .await
                .map(drop)
        }
        NotificationEffect::Learn(amount, cause) => {
            let (id, refund_id) = (refund.id, note.refund_id.clone());
            bridge
                .inner
                .ledger
                .call(move |l| {
                    let refund_id = Some(refund_id.as_str()).filter(|r| !r.is_empty());
                    l.learn_amount(id, amount, refund_id, &cause, now_ms())
                })
                .await
                .map(drop)
        }
        NotificationEffect::Nothing => Ok(()),
    };
    match recorded {
        Ok(()) | Err(LedgerError::NotAllowed { .. }) => delivery.accept(),
        Err(e) => tracing::error!(ledger = refund.id, "notifyRefund not recorded: {e}"),
    }
}
