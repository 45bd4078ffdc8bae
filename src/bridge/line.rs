//! The way back to a terminal: one owner per terminal line.
//!
//! Everything the bridge tells a terminal passes through its line's owner, in one
//! channel and in order: the answers to the terminal's own frames, the scheduler's
//! state changes, and the final states the ledger says it has not acknowledged. The
//! owner alone knows who is on the line, decides what to send (never an older copy
//! after a newer one, never a repeat of what was acknowledged), sends it, and records
//! in the ledger what the terminal acknowledged.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::texts::Audience;
use super::{Bridge, now_ms};
use crate::ledger::RefundRecord;
use crate::link::{LinkHandle, SendError};
use crate::message::{Invalid, Message, RefundUpdate, limits};
use crate::text;
use crate::wire::Kind;

/// How often final states not yet acknowledged are offered again: those whose
/// delivery failed, and those an operator settled.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// How many refunds a line remembers having told its terminal about. Copies of one
/// refund overtake each other within milliseconds, so the recent ones are enough.
const TOLD_REMEMBERED: usize = 256;

/// The most unacknowledged final states read from the ledger at a time.
const UNDELIVERED_BATCH: usize = 100;

/// What a line's owner is given.
#[derive(Debug)]
pub(super) enum ToLine {
    /// HELLO: terminal `id` is on the line in the link's session `session`.
    Arrived {
        session: u64,
        id: String,
        audience: Audience,
    },
    /// The terminal of `session` is gone (link down, or a new HELLO).
    Left { session: u64 },
    /// A message for the terminal of `session`, best effort (WELCOME, ERROR,
    /// STATUS_REPORT, DISPLAY...).
    Message { session: u64, message: Message },
    /// A refund's state as the answer to a frame of `session` (REFUND, INQUIRY): told
    /// even when told before, since the terminal asked.
    Answer { session: u64, refund: RefundRecord },
    /// A refund's state changed: told to its terminal if it is on this line.
    Changed(RefundRecord),
}

/// The line's sending half, as the rest of the bridge holds it.
pub(super) type LineSender = mpsc::UnboundedSender<ToLine>;

/// Who is on the line.
struct OnLine {
    session: u64,
    id: String,
    audience: Audience,
    /// What this session's terminal acknowledged: refund id → revision.
    acknowledged: HashMap<i64, i64>,
}

/// Runs a line's owner until every sender is gone or the link shuts down.
pub(super) async fn run(
    bridge: Bridge,
    link: LinkHandle,
    mut from: mpsc::UnboundedReceiver<ToLine>,
) {
    let mut owner = Owner {
        bridge,
        link,
        on_line: None,
        told: Told::default(),
    };
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let step = tokio::select! {
            item = from.recv() => match item {
                Some(item) => owner.take(item).await,
                None => return,
            },
            _ = sweep.tick() => owner.offer_undelivered().await,
        };
        if step.is_err() {
            return;
        }
    }
}

/// The link shut down: nothing more can be sent on this line.
struct LinkClosed;

struct Owner {
    bridge: Bridge,
    link: LinkHandle,
    on_line: Option<OnLine>,
    told: Told,
}

impl Owner {
    async fn take(&mut self, item: ToLine) -> Result<(), LinkClosed> {
        match item {
            ToLine::Arrived {
                session,
                id,
                audience,
            } => {
                self.on_line = Some(OnLine {
                    session,
                    id,
                    audience,
                    acknowledged: HashMap::new(),
                });
                // A new session: whatever was in flight on the old one is offered again.
                self.offer_undelivered().await
            }
            ToLine::Left { session } => {
                if self.on_line.as_ref().is_some_and(|t| t.session == session) {
                    self.on_line = None;
                }
                Ok(())
            }
            ToLine::Message { session, message } => {
                if self.link.session() != Some(session) {
                    return Ok(());
                }
                let payload = message.to_frame_payload();
                match self.link.send_in(session, message.kind(), payload).await {
                    Err(SendError::Closed) => Err(LinkClosed),
                    _ => Ok(()),
                }
            }
            ToLine::Answer { session, refund } => {
                if self.on_line.as_ref().is_none_or(|t| t.session != session) {
                    return Ok(());
                }
                self.tell(refund).await
            }
            ToLine::Changed(refund) => {
                if !self.wants(&refund) {
                    return Ok(());
                }
                self.tell(refund).await
            }
        }
    }

    /// Whether an unasked-for copy of a refund is news to the terminal on the line.
    fn wants(&self, refund: &RefundRecord) -> bool {
        self.on_line.as_ref().is_some_and(|t| {
            t.id == refund.terminal_id
                && t.acknowledged
                    .get(&refund.id)
                    .is_none_or(|&revision| revision < refund.revision)
        })
    }

    /// Offers the terminal on the line every final state it has not acknowledged.
    async fn offer_undelivered(&mut self) -> Result<(), LinkClosed> {
        let Some(id) = self.on_line.as_ref().map(|t| t.id.clone()) else {
            return Ok(());
        };
        let terminal = id.clone();
        let refunds = match self
            .bridge
            .inner
            .ledger
            .call(move |l| l.undelivered_finals(&terminal, UNDELIVERED_BATCH))
            .await
        {
            Ok(refunds) => refunds,
            Err(e) => {
                tracing::error!(terminal = %id, "reading undelivered refunds: {e}");
                return Ok(());
            }
        };
        for refund in refunds {
            if self.wants(&refund) {
                self.tell(refund).await?;
            }
        }
        Ok(())
    }

    /// Sends a refund's REFUND_UPDATE and its DISPLAY to the terminal on the line, and
    /// records a final state as delivered once the terminal acknowledged it.
    async fn tell(&mut self, refund: RefundRecord) -> Result<(), LinkClosed> {
        let Some(on_line) = self.on_line.as_mut() else {
            return Ok(());
        };
        let session = on_line.session;
        // Not up: the frame would wait for a session it is not meant for.
        if self.link.session() != Some(session) {
            return Ok(());
        }
        let screen = Message::Display(
            self.bridge
                .inner
                .catalogue
                .for_refund(&refund, on_line.audience),
        );
        // An older copy than one already told (an INQUIRY answered from a read made
        // before a change) is replaced by the newest: the terminal never hears a
        // state go back.
        let (refund, screen) = self.told.newest(Box::new(refund), screen);
        let sent = match update_frame(&refund) {
            Ok((kind, payload)) => self.link.send_in(session, kind, payload).await,
            Err(invalid) => {
                tracing::error!(
                    ledger = refund.id,
                    %invalid,
                    "a REFUND_UPDATE a terminal would refuse was not sent"
                );
                // Not delivered: the ledger keeps saying so.
                return Ok(());
            }
        };
        match sent {
            Ok(()) => {
                on_line.acknowledged.insert(refund.id, refund.revision);
                if refund.state.told_until_acknowledged() {
                    self.record_delivery(&refund);
                }
                let payload = screen.to_frame_payload();
                let _ = self.link.send_in(session, screen.kind(), payload).await;
                Ok(())
            }
            Err(SendError::Closed) => Err(LinkClosed),
            Err(_) => Ok(()),
        }
    }

    /// Records that the terminal acknowledged a refund's state. Not awaited: the line
    /// goes on while the ledger records it. Lost in a crash, it only means the
    /// terminal hears it once more.
    fn record_delivery(&self, refund: &RefundRecord) {
        let (id, state, now) = (refund.id, refund.state, now_ms());
        let ledger = self.bridge.inner.ledger.clone();
        tokio::spawn(async move {
            if let Err(e) = ledger.call(move |l| l.mark_delivered(id, state, now)).await {
                tracing::error!(ledger = id, "recording delivery: {e}");
            }
        });
    }
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
pub(super) mod tests_support {
    use crate::ledger::{AcceptPolicy, Acceptance, Ledger, NewRefund, RefundRecord};

    /// A refund as the ledger records it.
    pub(in crate::bridge) fn a_refund() -> (tempfile::TempDir, RefundRecord) {
        a_refund_of("T")
    }

    /// A refund of terminal `terminal` as the ledger records it.
    pub(in crate::bridge) fn a_refund_of(terminal: &str) -> (tempfile::TempDir, RefundRecord) {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let new = NewRefund {
            terminal_id: terminal.into(),
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
    use crate::message::{DisplayMessage, RefundState, Tone};

    fn screen(text: &str) -> Message {
        Message::Display(DisplayMessage {
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
