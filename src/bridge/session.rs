//! One terminal line: its link, and every message the terminal sends, answered.
//!
//! A REFUND is recorded in the ledger (on disk) before its frame is acknowledged, and
//! answered with its REFUND_UPDATE and DISPLAY within milliseconds, never after a
//! network round trip. Everything that goes back to the terminal leaves through the
//! line's owner ([`super::line`]), in order.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::mpsc;

use super::limits::over_daily;
use super::line::{self, LineSender, ToLine};
use super::routes::Route;
use super::texts::{Audience, Language};
use super::{Bridge, now_ms};
use crate::ledger::{AcceptPolicy, Acceptance, DailyLimit, LedgerError, NewRefund, RefundRecord};
use crate::link::{Connector, Delivery, Link, LinkConfig, LinkEvent, Role, SequenceAudit, Tracer};
use crate::locks::lock;
use crate::message::now_rfc3339;
use crate::message::{
    Direction, ErrorCode, ErrorMessage, Hello, Message, Refund, StatusReport, Welcome,
};

/// The terminal a HELLO put on the line, in the link's session `session`.
struct Greeted {
    id: String,
    session: u64,
    audience: Audience,
}

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
    bridge.register_line(&label, link.shared_stats());
    let (owner, owner_rx) = mpsc::unbounded_channel();
    tokio::spawn(line::run(bridge.clone(), link, owner_rx));
    let mut terminal: Option<Greeted> = None;
    let mut session = 0;
    let mut audit = SequenceAudit::new(None);
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = bridge.inner.stop.cancelled() => None,
        };
        let Some(event) = event else { break };
        match event {
            LinkEvent::Up { session: up } => session = up,
            LinkEvent::Down { reason, .. } => {
                session = 0;
                if let Some(t) = terminal.take() {
                    tracing::info!(terminal = %t.id, %reason, "terminal disconnected: link down");
                    left(&bridge, &owner, t);
                }
            }
            LinkEvent::Data(delivery) => {
                if let Err(fault) = audit.observe(delivery.session, delivery.seq) {
                    tracing::error!(line = %label, %fault, "link delivered a frame out of sequence");
                }
                let line = Line {
                    owner: &owner,
                    session,
                    language,
                };
                handle(&bridge, &line, &mut terminal, delivery).await;
            }
        }
    }
    if let Some(t) = terminal {
        left(&bridge, &owner, t);
    }
}

/// The terminal is no longer on the line: its owner and the routes forget it.
fn left(bridge: &Bridge, owner: &LineSender, terminal: Greeted) {
    let _ = owner.send(ToLine::Left {
        session: terminal.session,
    });
    bridge.route(Route::Disconnected {
        id: terminal.id,
        line: owner.clone(),
    });
}

/// The line as the message handlers use it: its owner, for the session now up.
struct Line<'a> {
    owner: &'a LineSender,
    /// The link's session now up (0: none).
    session: u64,
    /// The line's configured language.
    language: Option<Language>,
}

impl Line<'_> {
    fn say(&self, message: Message) {
        let _ = self.owner.send(ToLine::Message {
            session: self.session,
            message,
        });
    }

    /// Tells the terminal a refund's state, as the answer to its frame.
    fn answer(&self, refund: RefundRecord) {
        let _ = self.owner.send(ToLine::Answer {
            session: self.session,
            refund,
        });
    }
}

fn say(out: &Line, message: Message) {
    out.say(message);
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

async fn handle(
    bridge: &Bridge,
    out: &Line<'_>,
    terminal: &mut Option<Greeted>,
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
            if let Some(t) = greeted(bridge, out, terminal.as_ref()) {
                refund_received(bridge, out, t, refund, delivery, arrived).await;
            }
        }
        Message::Inquiry(inquiry) => {
            drop(delivery);
            if let Some(t) = greeted(bridge, out, terminal.as_ref()) {
                inquiry_received(bridge, out, t, inquiry.original_merchant_refund_id).await;
            }
        }
        Message::Status(_) => {
            drop(delivery);
            status_asked(bridge, out).await;
        }
        // parse_from(ToBridge) admits nothing else.
        _ => {}
    }
}

/// The terminal that said HELLO, or `None` after refusing a frame that needs one.
fn greeted<'t>(
    bridge: &Bridge,
    out: &Line<'_>,
    terminal: Option<&'t Greeted>,
) -> Option<&'t Greeted> {
    if terminal.is_none() {
        refuse(
            bridge,
            out,
            Audience::default(),
            ErrorCode::UnexpectedKind,
            "send a valid HELLO first",
            None,
        );
    }
    terminal
}

/// INQUIRY: the refund's state from the ledger, or why there is none.
async fn inquiry_received(bridge: &Bridge, out: &Line<'_>, t: &Greeted, id: String) {
    let terminal_id = t.id.clone();
    let lookup_id = id.clone();
    match bridge
        .inner
        .ledger
        .call(move |l| l.find(&terminal_id, &lookup_id))
        .await
    {
        Ok(Some(refund)) => out.answer(refund),
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

/// STATUS: whether the cloud answers, and how many refunds wait.
async fn status_asked(bridge: &Bridge, out: &Line<'_>) {
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

async fn hello_received(
    bridge: &Bridge,
    out: &Line<'_>,
    terminal: &mut Option<Greeted>,
    hello: Hello,
) {
    if let Some(previous) = terminal.take() {
        left(bridge, out.owner, previous);
    }
    let t = Greeted {
        id: hello.terminal_id.clone(),
        session: out.session,
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
    // WELCOME first; then the owner offers what the terminal has not acknowledged,
    // and only then do the scheduler's changes reach this line.
    let _ = out.owner.send(ToLine::Arrived {
        session: t.session,
        id: t.id.clone(),
        audience: t.audience,
    });
    bridge.route(Route::Connected {
        id: t.id.clone(),
        line: out.owner.clone(),
    });
    *terminal = Some(t);
}

/// REFUND: checked against the limits, recorded on disk, then acknowledged and answered.
async fn refund_received(
    bridge: &Bridge,
    out: &Line<'_>,
    t: &Greeted,
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
    let result = record(bridge, new, daily).await;
    // On disk (or refused): only now may the terminal hear the frame arrived.
    drop(delivery);
    match result {
        Ok(Acceptance::Recorded {
            refund,
            waits_for_earlier,
        }) => recorded(bridge, out, refund, waits_for_earlier, arrived),
        Ok(Acceptance::Duplicate(existing)) => {
            tracing::info!(terminal = %t.id, refund = %id, "repeated REFUND answered from the ledger");
            out.answer(existing);
        }
        Ok(Acceptance::Mismatch(existing)) => refuse(
            bridge,
            out,
            t.audience,
            ErrorCode::DuplicateMismatch,
            &mismatch_detail(&id, &existing),
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

/// Writes a new refund to the ledger, timing the write for the recording histogram.
async fn record(
    bridge: &Bridge,
    new: NewRefund,
    daily_limit: Option<DailyLimit>,
) -> Result<Acceptance, LedgerError> {
    let policy = AcceptPolicy {
        provider: bridge.inner.provider.name().into(),
        queued: !bridge.inner.cloud.online.load(Ordering::Relaxed),
        refund_request_id: new_refund_request_id(),
        daily_limit,
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
    result
}

/// A refund now on disk: the terminal hears its state, and the worker takes it up.
fn recorded(
    bridge: &Bridge,
    out: &Line<'_>,
    refund: RefundRecord,
    waits_for_earlier: bool,
    arrived: Instant,
) {
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
    lock(&bridge.inner.arrivals).insert(refund.id, arrived);
    out.answer(refund.clone());
    if waits_for_earlier {
        bridge.inner.wake.notify_one();
    } else {
        let _ = bridge.inner.fresh.send(refund);
    }
}

/// Why a repeated id with other details is refused, naming what was recorded first.
fn mismatch_detail(id: &str, existing: &RefundRecord) -> String {
    format!(
        "refund {id} was recorded before with other details (payment {}, {}); use a new id",
        existing.payment_id,
        existing
            .amount
            .map(|a| a.to_string())
            .unwrap_or_else(|| "full amount".into())
    )
}

/// A fresh `refundRequestId`: unique, 31 characters, time-ordered.
pub fn new_refund_request_id() -> String {
    use rand::RngExt;
    let random: u64 = rand::rng().random();
    format!("PB{:013X}{:016X}", now_ms().max(0), random)
}
