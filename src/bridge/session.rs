//! One terminal line: its link, and every message the terminal sends, answered.
//!
//! A REFUND is recorded in the ledger (on disk) before its frame is acknowledged, and
//! answered with its REFUND_UPDATE and DISPLAY within milliseconds, never after a
//! network round trip. What goes back to the terminal leaves through one sender task
//! per line, in order; a final state counts as delivered once the terminal
//! acknowledged its frame.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::limits::over_daily;
use super::texts::{Audience, Language};
use super::{Bridge, Out, Outgoing, SessionEntry, now_ms};
use crate::ledger::{AcceptPolicy, Acceptance, NewRefund, RefundRecord};
use crate::link::{
    Connector, Delivery, Link, LinkConfig, LinkEvent, LinkHandle, Role, SendError, SequenceAudit,
    Tracer,
};
use crate::message::{
    Direction, ErrorCode, ErrorMessage, Hello, Message, Refund, RefundUpdate, StatusReport, Welcome,
};
use crate::message::{Invalid, limits, now_rfc3339};
use crate::text;
use crate::wire::Kind;
use bytes::Bytes;

/// Who is on the line, once HELLO said so.
struct Terminal {
    id: String,
    session: u64,
    audience: Audience,
}

/// How often final states not yet acknowledged are offered again.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Serves one line until the bridge stops or the connector gives up.
pub(super) async fn serve(
    bridge: Bridge,
    label: String,
    connector: impl Connector,
    baud: Option<u32>,
    tracer: Option<Tracer>,
    language: Option<Language>,
) {
    let mut config = LinkConfig::new(Role::Bridge, baud);
    config.tracer = tracer;
    let (link, mut events) = Link::spawn(config, connector);
    if let Ok(mut lines) = bridge.inner.lines.lock() {
        lines.push((label.clone(), link.shared_stats()));
    }
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let pending = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let current = Arc::new(AtomicU64::new(0));
    tokio::spawn(send_loop(
        bridge.clone(),
        link,
        out_rx,
        pending.clone(),
        current.clone(),
    ));
    let mut terminal: Option<Terminal> = None;
    let mut audit = SequenceAudit::new(None);
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = bridge.inner.stop.cancelled() => None,
        };
        let Some(event) = event else { break };
        match event {
            LinkEvent::Up { .. } => {
                let session = bridge.inner.next_session.fetch_add(1, Ordering::Relaxed);
                current.store(session, Ordering::Relaxed);
            }
            LinkEvent::Down { reason, .. } => {
                current.store(0, Ordering::Relaxed);
                if let Some(t) = terminal.take() {
                    tracing::info!(terminal = %t.id, %reason, "terminal disconnected: link down");
                    unregister(&bridge, &t);
                }
            }
            LinkEvent::Data(delivery) => {
                if let Err(fault) = audit.observe(delivery.session, delivery.seq) {
                    tracing::error!(line = %label, %fault, "link delivered a frame out of sequence");
                }
                let line = Line {
                    tx: &out_tx,
                    pending: &pending,
                    current: &current,
                    language,
                };
                handle(&bridge, &line, &mut terminal, delivery).await;
            }
        }
    }
    if let Some(t) = terminal {
        unregister(&bridge, &t);
    }
}

fn unregister(bridge: &Bridge, terminal: &Terminal) {
    if let Ok(mut sessions) = bridge.inner.sessions.lock()
        && sessions
            .get(&terminal.id)
            .is_some_and(|e| e.session == terminal.session)
    {
        sessions.remove(&terminal.id);
    }
}

/// The line's outgoing side, as the message handlers use it.
struct Line<'a> {
    tx: &'a mpsc::UnboundedSender<Outgoing>,
    pending: &'a Arc<Mutex<std::collections::HashSet<i64>>>,
    /// The terminal session now on the line (0: none).
    current: &'a Arc<AtomicU64>,
    /// The line's configured language.
    language: Option<Language>,
}

impl Line<'_> {
    fn send(&self, what: Out) {
        let _ = self.tx.send(Outgoing {
            session: self.current.load(Ordering::Relaxed),
            what,
        });
    }
}

fn say(out: &Line, message: Message) {
    out.send(Out::Message(message));
}

/// Answers a refused frame: ERROR naming the problem, and a DISPLAY for the cashier.
fn refuse(
    bridge: &Bridge,
    out: &Line<'_>,
    audience: Audience,
    code: ErrorCode,
    detail: &str,
    reference: Option<String>,
) {
    bridge.inner.stats.refused.fetch_add(1, Ordering::Relaxed);
    let screen = bridge
        .inner
        .catalogue
        .for_error(code, detail, reference.as_deref(), audience);
    say(
        out,
        Message::Error(ErrorMessage::new(code, detail, reference)),
    );
    say(out, Message::Display(screen));
}

/// A refund's REFUND_UPDATE, as the link protocol allows it: the state as the
/// terminal knows it, and the optional fields only when they are valid (a provider's
/// text is cleaned when it arrives, but a ledger written by an older version may hold
/// anything).
fn update_for(refund: &RefundRecord) -> RefundUpdate {
    let id = |text: &Option<String>, max: usize| {
        text.as_ref()
            .filter(|t| !t.is_empty() && t.len() <= max && t.bytes().all(|b| b.is_ascii_graphic()))
            .cloned()
    };
    RefundUpdate {
        original_merchant_refund_id: refund.original_merchant_refund_id.clone(),
        state: refund.state.on_the_wire(),
        refund_request_id: refund.refund_request_id.clone(),
        refund_id: id(&refund.provider_refund_id, limits::REFUND_ID),
        refund_time: id(&refund.refund_time, limits::TIME),
        refund_amount: refund.refunded.or(refund.amount).filter(|a| a.value >= 1),
        result_code: refund
            .result_code
            .as_deref()
            .map(|c| text::clean_code(c, limits::RESULT_CODE)),
        result_message: refund
            .result_message
            .as_deref()
            .map(|m| text::clean_text(m, limits::MESSAGE))
            .filter(|m| !m.is_empty()),
    }
}

/// The REFUND_UPDATE frame's payload for a refund, checked by the same rules a
/// terminal applies: a frame the terminal would refuse is never sent, so it is never
/// recorded as delivered.
fn update_frame(refund: &RefundRecord) -> Result<(Kind, Bytes), Invalid> {
    let update = Message::RefundUpdate(update_for(refund));
    let payload = update.to_frame_payload();
    Message::parse(update.kind(), &payload)?;
    Ok((update.kind(), payload))
}

async fn handle(
    bridge: &Bridge,
    out: &Line<'_>,
    terminal: &mut Option<Terminal>,
    delivery: Delivery,
) {
    let arrived = Instant::now();
    let audience = terminal.as_ref().map(|t| t.audience).unwrap_or_default();
    let message = match Message::parse_from(Direction::ToBridge, delivery.kind, &delivery.payload) {
        Ok(message) => message,
        Err(invalid) => {
            tracing::info!(kind = %delivery.kind, %invalid, "refused an invalid frame");
            let reference = Message::reference_in(&delivery.payload);
            refuse(
                bridge,
                out,
                audience,
                invalid.code,
                &invalid.to_string(),
                reference,
            );
            return;
        }
    };
    match message {
        Message::Hello(hello) => {
            drop(delivery);
            hello_received(bridge, out, terminal, hello).await;
        }
        Message::Refund(refund) => {
            let Some(t) = terminal.as_ref() else {
                return refuse(
                    bridge,
                    out,
                    audience,
                    ErrorCode::UnexpectedKind,
                    "send a valid HELLO first",
                    None,
                );
            };
            refund_received(bridge, out, t, refund, delivery, arrived).await;
        }
        Message::Inquiry(inquiry) => {
            drop(delivery);
            let Some(t) = terminal.as_ref() else {
                return refuse(
                    bridge,
                    out,
                    audience,
                    ErrorCode::UnexpectedKind,
                    "send a valid HELLO first",
                    None,
                );
            };
            let id = inquiry.original_merchant_refund_id;
            let terminal_id = t.id.clone();
            let lookup_id = id.clone();
            match bridge
                .inner
                .ledger
                .call(move |l| l.find(&terminal_id, &lookup_id))
                .await
            {
                Ok(Some(refund)) => send_update(bridge, out, &refund, t.audience),
                Ok(None) => refuse(
                    bridge,
                    out,
                    t.audience,
                    ErrorCode::UnknownRefund,
                    &format!("no refund {id} from this terminal"),
                    Some(id),
                ),
                Err(e) => {
                    tracing::error!("INQUIRY: {e}");
                    refuse(
                        bridge,
                        out,
                        t.audience,
                        ErrorCode::InternalError,
                        "the ledger cannot be read; ask again",
                        Some(id),
                    );
                }
            }
        }
        Message::Status(_) => {
            drop(delivery);
            let status = bridge.status();
            let queued = queued_count(bridge).await;
            say(
                out,
                Message::StatusReport(StatusReport {
                    online: status.online,
                    queued,
                    last_cloud_contact: status.last_contact_ms.and_then(rfc3339_ms),
                    provider: bridge.inner.provider.name().into(),
                }),
            );
        }
        // parse_from(ToBridge) admits nothing else.
        _ => {}
    }
}

fn rfc3339_ms(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .and_then(|t| t.round(jiff::Unit::Second).ok())
        .map(|t| t.to_string())
}

async fn queued_count(bridge: &Bridge) -> u32 {
    match bridge.inner.ledger.call(|l| l.counts()).await {
        Ok(counts) => counts.unfinished.min(u64::from(u32::MAX)) as u32,
        Err(e) => {
            tracing::error!("counting refunds: {e}");
            0
        }
    }
}

fn send_update(bridge: &Bridge, out: &Line, refund: &RefundRecord, audience: Audience) {
    let screen = Message::Display(bridge.inner.catalogue.for_refund(refund, audience));
    out.send(Out::Update(Box::new(refund.clone()), screen));
}

async fn hello_received(
    bridge: &Bridge,
    out: &Line<'_>,
    terminal: &mut Option<Terminal>,
    hello: Hello,
) {
    if let Some(previous) = terminal.take() {
        unregister(bridge, &previous);
    }
    let session = out.current.load(Ordering::Relaxed);
    let t = Terminal {
        id: hello.terminal_id.clone(),
        session,
        audience: bridge
            .inner
            .catalogue
            .audience(&hello.terminal_id, out.language, &hello.display),
    };
    tracing::info!(
        terminal = %t.id,
        model = hello.model.as_deref().unwrap_or("?"),
        firmware = hello.firmware.as_deref().unwrap_or("?"),
        language = %t.audience.language,
        "terminal connected"
    );
    bridge.inner.stats.terminal_seen(&t.id);
    if let Ok(mut sessions) = bridge.inner.sessions.lock() {
        let replaced = sessions.insert(
            t.id.clone(),
            SessionEntry {
                session,
                out: out.tx.clone(),
                audience: t.audience,
                pending_finals: out.pending.clone(),
            },
        );
        if replaced.is_some() {
            tracing::warn!(terminal = %t.id, "terminal id now on another line; later updates go here");
        }
    }
    if let Ok(mut p) = out.pending.lock() {
        // A new session: whatever was in flight on the old one is offered again.
        p.clear();
    }
    let status = bridge.status();
    say(
        out,
        Message::Welcome(Welcome {
            bridge_version: env!("CARGO_PKG_VERSION").into(),
            online: status.online,
            queued: queued_count(bridge).await,
            time: now_rfc3339(),
        }),
    );
    *terminal = Some(t);
    redeliver(bridge, &hello.terminal_id).await;
}

async fn refund_received(
    bridge: &Bridge,
    out: &Line<'_>,
    t: &Terminal,
    refund: Refund,
    delivery: Delivery,
    arrived: Instant,
) {
    let id = refund.original_merchant_refund_id.clone();
    let daily = match bridge
        .inner
        .settings
        .limits
        .check(refund.refund_amount, jiff::Timestamp::now())
    {
        Ok(daily) => daily,
        Err(over) => {
            tracing::info!(terminal = %t.id, refund = %id, "over the limits: {}", over.0);
            drop(delivery);
            return refuse(
                bridge,
                out,
                t.audience,
                ErrorCode::LimitExceeded,
                &over.0,
                Some(id),
            );
        }
    };
    let new = NewRefund {
        terminal_id: t.id.clone(),
        original_merchant_refund_id: id.clone(),
        payment_id: refund.payment_id,
        amount: refund.refund_amount,
        memo: refund.memo,
    };
    let policy = AcceptPolicy {
        provider: bridge.inner.provider.name().into(),
        queued: !bridge.inner.cloud.online.load(Ordering::Relaxed),
        refund_request_id: new_refund_request_id(),
        daily_limit: daily,
    };
    let now = now_ms();
    let recording = Instant::now();
    let result = bridge
        .inner
        .ledger
        .call(move |l| l.accept(&new, &policy, now))
        .await;
    bridge
        .inner
        .stats
        .record_latency
        .record(recording.elapsed());
    // On disk (or refused): only now may the terminal hear the frame arrived.
    drop(delivery);
    match result {
        Ok(Acceptance::Recorded {
            refund,
            waits_for_earlier,
        }) => {
            bridge.inner.stats.accepted.fetch_add(1, Ordering::Relaxed);
            let amount = refund
                .amount
                .map_or_else(|| "whole payment".to_owned(), |a| a.to_string());
            let span = super::worker::refund_span(&refund);
            let _in = span.enter();
            tracing::info!(
                state = %refund.state,
                %amount,
                waits_for_earlier,
                "refund recorded"
            );
            if let Ok(mut arrivals) = bridge.inner.arrivals.lock() {
                arrivals.insert(refund.id, arrived);
            }
            send_update(bridge, out, &refund, t.audience);
            if waits_for_earlier {
                bridge.inner.wake.notify_one();
            } else {
                let _ = bridge.inner.fresh.send(refund);
            }
        }
        Ok(Acceptance::Duplicate(existing)) => {
            tracing::info!(terminal = %t.id, refund = %id, "repeated REFUND answered from the ledger");
            send_update(bridge, out, &existing, t.audience);
        }
        Ok(Acceptance::Mismatch(existing)) => refuse(
            bridge,
            out,
            t.audience,
            ErrorCode::DuplicateMismatch,
            &format!(
                "refund {id} was recorded before with other details (payment {}, {}); use a new id",
                existing.payment_id,
                existing
                    .amount
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "full amount".into())
            ),
            Some(id),
        ),
        Ok(Acceptance::OverDailyLimit { max, used }) => {
            let over = over_daily(max, used);
            refuse(
                bridge,
                out,
                t.audience,
                ErrorCode::LimitExceeded,
                &over.0,
                Some(id),
            );
        }
        Err(e) => {
            tracing::error!(refund = %id, "cannot record a refund: {e}");
            refuse(
                bridge,
                out,
                t.audience,
                ErrorCode::InternalError,
                "the refund could not be recorded; nothing was sent, send it again",
                Some(id),
            );
        }
    }
}

/// A fresh `refundRequestId`: unique, 31 characters, time-ordered.
pub fn new_refund_request_id() -> String {
    use rand::RngExt;
    let random: u64 = rand::rng().random();
    format!("PB{:013X}{:016X}", now_ms().max(0), random)
}

/// Offers a terminal every final state it has not acknowledged.
async fn redeliver(bridge: &Bridge, terminal_id: &str) {
    let id = terminal_id.to_owned();
    let refunds = match bridge
        .inner
        .ledger
        .call(move |l| l.undelivered_finals(&id, 100))
        .await
    {
        Ok(refunds) => refunds,
        Err(e) => {
            tracing::error!(terminal = %terminal_id, "reading undelivered refunds: {e}");
            return;
        }
    };
    let Ok(sessions) = bridge.inner.sessions.lock() else {
        return;
    };
    let Some(entry) = sessions.get(terminal_id) else {
        return;
    };
    for refund in refunds {
        let fresh = entry
            .pending_finals
            .lock()
            .map(|mut p| p.insert(refund.id))
            .unwrap_or(false);
        if fresh {
            let screen =
                Message::Display(bridge.inner.catalogue.for_refund(&refund, entry.audience));
            let _ = entry.out.send(Outgoing {
                session: entry.session,
                what: Out::Update(Box::new(refund), screen),
            });
        }
    }
}

/// Every few seconds, offers connected terminals the final states they have not
/// acknowledged: those whose delivery failed, and those an operator settled.
pub(super) async fn sweep(bridge: Bridge) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = bridge.inner.stop.cancelled() => return,
        }
        let terminals = bridge.status().terminals;
        for terminal in terminals {
            redeliver(&bridge, &terminal).await;
        }
    }
}

/// Sends what the bridge has for one line, in order, skipping what was meant for a
/// session that has ended.
async fn send_loop(
    bridge: Bridge,
    link: LinkHandle,
    mut out: mpsc::UnboundedReceiver<Outgoing>,
    pending: Arc<Mutex<std::collections::HashSet<i64>>>,
    current: Arc<AtomicU64>,
) {
    let mut told = Told::default();
    while let Some(item) = out.recv().await {
        let live = item.session != 0 && item.session == current.load(Ordering::Relaxed);
        match item.what {
            Out::Message(message) => {
                if live
                    && matches!(
                        link.send(message.kind(), message.to_frame_payload()).await,
                        Err(SendError::Closed)
                    )
                {
                    return;
                }
            }
            Out::Update(refund, screen) => {
                // An older copy than one already told (a relay overtaken by a later
                // one, an INQUIRY answered from a read made before a change) is
                // replaced by the newest: the terminal never hears a state go back.
                let (refund, screen) = told.newest(refund, screen);
                let sent = match update_frame(&refund) {
                    Ok((kind, payload)) if live => link.send(kind, payload).await,
                    Ok(_) => Err(SendError::Unconfirmed(crate::link::DownReason::Reset)),
                    Err(invalid) => {
                        tracing::error!(
                            ledger = refund.id,
                            %invalid,
                            "a REFUND_UPDATE a terminal would refuse was not sent"
                        );
                        // Not delivered: the ledger keeps saying so.
                        Err(SendError::Unconfirmed(crate::link::DownReason::Reset))
                    }
                };
                if refund.state.told_until_acknowledged() {
                    if sent.is_ok() {
                        // Not awaited: the line goes on while the ledger records it. Lost
                        // in a crash, it only means the terminal hears it once more.
                        let (id, state, now) = (refund.id, refund.state, now_ms());
                        let ledger = bridge.inner.ledger.clone();
                        tokio::spawn(async move {
                            if let Err(e) =
                                ledger.call(move |l| l.mark_delivered(id, state, now)).await
                            {
                                tracing::error!(ledger = id, "recording delivery: {e}");
                            }
                        });
                    }
                    if let Ok(mut p) = pending.lock() {
                        p.remove(&refund.id);
                    }
                }
                match sent {
                    Ok(()) => {
                        let _ = link.send(screen.kind(), screen.to_frame_payload()).await;
                    }
                    Err(SendError::Closed) => return,
                    Err(_) => {}
                }
            }
        }
    }
}

/// How many refunds a line remembers having told its terminal about. Copies of one
/// refund overtake each other within milliseconds, so the recent ones are enough.
const TOLD_REMEMBERED: usize = 256;

/// The newest copy of each recent refund a line has told its terminal, with its
/// DISPLAY.
#[derive(Default)]
struct Told {
    by_refund: HashMap<i64, (Box<RefundRecord>, Message)>,
    order: VecDeque<i64>,
}

impl Told {
    /// The copy to send for `refund`: itself, or the newer one told before.
    fn newest(
        &mut self,
        refund: Box<RefundRecord>,
        screen: Message,
    ) -> (Box<RefundRecord>, Message) {
        if let Some((known, known_screen)) = self.by_refund.get(&refund.id)
            && known.revision > refund.revision
        {
            tracing::debug!(
                ledger = refund.id,
                stale = %refund.state,
                newest = %known.state,
                "an older copy of the refund was due; telling the newest again"
            );
            return (known.clone(), known_screen.clone());
        }
        if !self.by_refund.contains_key(&refund.id) {
            self.order.push_back(refund.id);
            if self.order.len() > TOLD_REMEMBERED
                && let Some(oldest) = self.order.pop_front()
            {
                self.by_refund.remove(&oldest);
            }
        }
        self.by_refund
            .insert(refund.id, (refund.clone(), screen.clone()));
        (refund, screen)
    }
}

#[cfg(test)]
mod tests_support {
    use crate::ledger::{AcceptPolicy, Acceptance, Ledger, NewRefund, RefundRecord};

    /// A refund as the ledger records it.
    pub(super) fn a_refund() -> (tempfile::TempDir, RefundRecord) {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let new = NewRefund {
            terminal_id: "T".into(),
            original_merchant_refund_id: "R".into(),
            payment_id: "P".into(),
            amount: None,
            memo: None,
        };
        let policy = AcceptPolicy {
            provider: "antom".into(),
            queued: false,
            refund_request_id: "Q".into(),
            daily_limit: None,
        };
        match ledger.accept(&new, &policy, 1).unwrap() {
            Acceptance::Recorded { refund, .. } => (dir, refund),
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::a_refund;
    use super::*;
    use crate::message::{Display, RefundState, Tone};

    fn screen(text: &str) -> Message {
        Message::Display(Display {
            lines: vec![text.into()],
            tone: Tone::Info,
        })
    }

    #[test]
    fn an_older_copy_never_follows_a_newer_one() {
        let (_dir, accepted) = a_refund();
        let mut queued = accepted.clone();
        queued.state = RefundState::Queued;
        queued.revision = accepted.revision + 1;
        let mut succeeded = accepted.clone();
        succeeded.state = RefundState::Succeeded;
        succeeded.revision = accepted.revision + 2;
        let mut told = Told::default();
        let (first, _) = told.newest(Box::new(accepted.clone()), screen("accepted"));
        assert_eq!(first.state, RefundState::Accepted);
        let (second, _) = told.newest(Box::new(succeeded), screen("approved"));
        assert_eq!(second.state, RefundState::Succeeded);
        // The QUEUED copy was made before the SUCCEEDED one but arrives after it.
        let (third, shown) = told.newest(Box::new(queued), screen("network down"));
        assert_eq!(third.state, RefundState::Succeeded);
        assert_eq!(shown, screen("approved"));
        let (again, _) = told.newest(Box::new(accepted), screen("accepted"));
        assert_eq!(again.state, RefundState::Succeeded);
    }

    #[test]
    fn a_line_remembers_a_bounded_number_of_refunds() {
        let (_dir, refund) = a_refund();
        let mut told = Told::default();
        for id in 0..(TOLD_REMEMBERED as i64 * 3) {
            let mut copy = refund.clone();
            copy.id = id;
            told.newest(Box::new(copy), screen("x"));
        }
        assert_eq!(told.by_refund.len(), TOLD_REMEMBERED);
        assert_eq!(told.order.len(), TOLD_REMEMBERED);
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;
    use crate::message::RefundState;

    #[test]
    fn a_refund_update_is_always_one_a_terminal_accepts() {
        let (_dir, mut refund) = tests_support::a_refund();
        refund.state = RefundState::Failed;
        refund.result_code = Some("BAD CODE\t".into());
        refund.result_message = Some("line one\nline\ttwo \u{202e}\u{1b}[2J".into());
        refund.provider_refund_id = Some("id with spaces".into());
        refund.refund_time = Some("not\ta time".into());
        let (kind, payload) = update_frame(&refund).expect("a valid frame");
        let Ok(Message::RefundUpdate(update)) = Message::parse(kind, &payload) else {
            panic!("not a REFUND_UPDATE");
        };
        assert_eq!(update.result_code.as_deref(), Some("BAD_CODE"));
        assert_eq!(
            update.result_message.as_deref(),
            Some("line one line two [2J")
        );
        assert_eq!(
            update.refund_id, None,
            "an id the protocol cannot carry is left out"
        );
        assert_eq!(update.refund_time, None);
        refund.state = RefundState::ProviderPending;
        let (kind, payload) = update_frame(&refund).unwrap();
        let Ok(Message::RefundUpdate(update)) = Message::parse(kind, &payload) else {
            panic!("not a REFUND_UPDATE");
        };
        assert_eq!(update.state, RefundState::Processing);
    }
}
