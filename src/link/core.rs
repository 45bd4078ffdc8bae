//! The link's state machine: one task per link, never blocked by I/O.
//!
//! Reading and writing run in their own tasks (`io.rs`) so that a peer that stops reading cannot
//! stall timers or ACKs here; frames to write are handed over without waiting, and a
//! frame the writer cannot take is simply lost, which retransmission already covers.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant, sleep_until};

use super::io::{read_loop, write_loop};
use super::stats::{Counter, LinkStats};
use super::{
    AckToken, BoxIo, Connector, Delivery, DownReason, LinkConfig, LinkEvent, Role, SendError,
    SendRequest,
};
use crate::wire::{Frame, Inbound, Kind};

/// Runs a link until every handle is dropped or the connector gives up.
pub(super) async fn run(
    config: LinkConfig,
    mut connector: Box<dyn Connector>,
    mut requests: mpsc::UnboundedReceiver<SendRequest>,
    events: mpsc::Sender<LinkEvent>,
    stats: Arc<LinkStats>,
) {
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let mut link = State::new(config, events, stats, ack_tx);
    loop {
        let io = {
            let connect = connector.connect();
            tokio::pin!(connect);
            loop {
                tokio::select! {
                    io = &mut connect => break io,
                    request = requests.recv() => match request {
                        Some(request) => link.queue.push_back(request),
                        None => return,
                    },
                }
            }
        };
        let Some(io) = io else {
            tracing::debug!("link connector gave up; link stops");
            return;
        };
        match link.connection(io, &mut requests, &mut ack_rx).await {
            Ended::HandlesGone => return,
            Ended::Closed(why) => link.closed(why).await,
        }
    }
}

enum Ended {
    HandlesGone,
    Closed(String),
}

/// What the reading task hands the state machine.
pub(super) enum ReaderItem {
    Inbound(Inbound),
    Closed(String),
}

/// A data frame sent and not yet acknowledged.
struct Outstanding {
    frame: Frame,
    /// Absent for the terminal's own HELLO.
    done: Option<oneshot::Sender<Result<(), SendError>>>,
    transmissions: u8,
    deadline: Instant,
}

struct State {
    config: LinkConfig,
    events: mpsc::Sender<LinkEvent>,
    stats: Arc<LinkStats>,
    ack_tx: mpsc::UnboundedSender<(u64, u8)>,
    out: Option<mpsc::Sender<Frame>>,
    writer_gone: bool,

    /// Frames waiting for a session and for the one before them to be acknowledged.
    queue: VecDeque<SendRequest>,
    up: bool,
    session: u64,
    next_seq: u8,
    outstanding: Option<Outstanding>,
    /// The last data frame handed up, and whether its ACK still waits for the receiver.
    last_delivered: Option<u8>,
    pending_ack: Option<u8>,

    next_ping_at: Instant,
    missed_pings: u8,
    ping_seq: u8,
    /// When a terminal will try HELLO again.
    hello_due: Option<Instant>,
    /// The `seq` of the terminal's latest frame of its own counter (a HELLO or a data
    /// frame); its next HELLO takes the one after it.
    last_own_seq: u8,
}

impl State {
    fn new(
        config: LinkConfig,
        events: mpsc::Sender<LinkEvent>,
        stats: Arc<LinkStats>,
        ack_tx: mpsc::UnboundedSender<(u64, u8)>,
    ) -> State {
        State {
            next_ping_at: Instant::now() + config.ping_interval,
            config,
            events,
            stats,
            ack_tx,
            out: None,
            writer_gone: false,
            queue: VecDeque::new(),
            up: false,
            session: 0,
            next_seq: 0,
            outstanding: None,
            last_delivered: None,
            pending_ack: None,
            missed_pings: 0,
            ping_seq: 0,
            hello_due: None,
            last_own_seq: 0,
        }
    }

    fn is_terminal(&self) -> bool {
        matches!(self.config.role, Role::Terminal { .. })
    }

    /// Runs one opened byte stream until it closes.
    async fn connection(
        &mut self,
        io: BoxIo,
        requests: &mut mpsc::UnboundedReceiver<SendRequest>,
        ack_rx: &mut mpsc::UnboundedReceiver<(u64, u8)>,
    ) -> Ended {
        self.stats.bump(Counter::Connects);
        let (reader, writer) = tokio::io::split(io);
        let (in_tx, mut in_rx) = mpsc::channel(64);
        let (out_tx, out_rx) = mpsc::channel(64);
        let tracer = self.config.tracer.clone();
        let span = tracing::Span::current();
        let mut reader = tokio::spawn(tracing::Instrument::instrument(
            read_loop(reader, in_tx, self.stats.clone(), tracer.clone()),
            span.clone(),
        ));
        let mut writer = tokio::spawn(tracing::Instrument::instrument(
            write_loop(writer, out_rx, self.stats.clone(), tracer),
            span,
        ));
        self.out = Some(out_tx);
        self.writer_gone = false;
        self.heard();
        self.on_connect();

        let mut writer_done = false;
        let ended = loop {
            self.pump();
            if self.writer_gone {
                break Ended::Closed("write failed".into());
            }
            let wake = self.next_deadline();
            tokio::select! {
                item = in_rx.recv() => match item {
                    Some(ReaderItem::Inbound(inbound)) => self.on_inbound(inbound).await,
                    Some(ReaderItem::Closed(why)) => break Ended::Closed(why),
                    None => break Ended::Closed("reader stopped".into()),
                },
                request = requests.recv() => match request {
                    Some(request) => self.queue.push_back(request),
                    None => break Ended::HandlesGone,
                },
                Some((session, seq)) = ack_rx.recv() => self.on_receiver_ack(session, seq),
                why = &mut writer => {
                    writer_done = true;
                    break Ended::Closed(why.unwrap_or_else(|e| e.to_string()));
                }
                _ = sleep_until(wake) => self.on_timer().await,
            }
        };
        reader.abort();
        writer.abort();
        // Let the aborted tasks release the stream before the connector reopens it.
        let _ = (&mut reader).await;
        // A finished task's handle must not be polled again.
        if !writer_done {
            let _ = (&mut writer).await;
        }
        self.out = None;
        ended
    }

    /// A new byte stream: the bridge asks for HELLO, the terminal sends it.
    fn on_connect(&mut self) {
        match self.config.role {
            Role::Bridge => self.send_reset(),
            Role::Terminal { .. } => self.start_hello(),
        }
    }

    async fn closed(&mut self, why: String) {
        tracing::debug!(%why, "link byte stream closed");
        self.down(DownReason::Closed(why)).await;
        self.hello_due = None;
        if self.is_terminal() {
            // A HELLO in flight died with the stream; the next connect sends a new one.
            self.outstanding = None;
        }
    }

    fn transmit(&mut self, frame: Frame) {
        let Some(out) = &self.out else { return };
        match out.try_send(frame) {
            Ok(()) => {}
            // The writer is behind; the frame is lost like any other on a bad line.
            Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => self.writer_gone = true,
        }
    }

    fn send_reset(&mut self) {
        self.stats.bump(Counter::ResetsSent);
        self.transmit(Frame::control(Kind::RESET, 0));
    }

    /// Any good frame proves the peer alive.
    fn heard(&mut self) {
        self.missed_pings = 0;
        self.next_ping_at = Instant::now() + self.config.ping_interval;
    }

    fn next_deadline(&self) -> Instant {
        let mut wake = Instant::now() + Duration::from_secs(3600);
        if let Some(o) = &self.outstanding {
            wake = wake.min(o.deadline);
        }
        if let Some(due) = self.hello_due {
            wake = wake.min(due);
        }
        if self.up {
            wake = wake.min(self.next_ping_at);
        }
        wake
    }

    /// Starts the next queued frame when the session allows one.
    fn pump(&mut self) {
        if !self.up || self.outstanding.is_some() {
            return;
        }
        while let Some(request) = self.queue.pop_front() {
            if request.done.is_closed() {
                // The sender stopped waiting before the frame ever left.
                continue;
            }
            if request.session.is_some_and(|s| s != self.session) {
                let _ = request.done.send(Err(SendError::SessionOver));
                continue;
            }
            let frame = Frame::data(request.kind, self.next_seq, request.payload);
            self.send_new(frame, Some(request.done));
            return;
        }
    }

    fn send_new(&mut self, frame: Frame, done: Option<oneshot::Sender<Result<(), SendError>>>) {
        self.last_own_seq = frame.seq;
        let deadline = Instant::now() + self.config.ack_timeout(frame.payload.len());
        self.transmit(frame.clone());
        self.outstanding = Some(Outstanding {
            frame,
            done,
            transmissions: 1,
            deadline,
        });
    }

    /// The terminal opens a session: fresh sequence state both ways, then HELLO.
    fn start_hello(&mut self) {
        if !self.is_terminal() {
            return;
        }
        self.fail_outstanding(DownReason::Reset);
        self.hello_due = None;
        let hello = self.next_hello();
        self.send_new(hello, None);
    }

    /// The terminal's next HELLO transmission. Each one, a repeat included, carries a
    /// new `seq` so that only the ACK of the latest one opens the session, and each one
    /// forgets what was received before: the bridge restarts its numbering on every
    /// HELLO, and until the ACK arrives anything received may be from an old session.
    /// Its `seq` follows the last data frame's too: a bridge slow to take that frame
    /// may still acknowledge it, and that ACK must not pass for the HELLO's.
    fn next_hello(&mut self) -> Frame {
        self.last_own_seq = self.last_own_seq.wrapping_add(1);
        self.last_delivered = None;
        self.pending_ack = None;
        let payload = match &self.config.role {
            Role::Terminal { hello } => hello.clone(),
            Role::Bridge => bytes::Bytes::new(),
        };
        Frame::data(Kind::HELLO, self.last_own_seq, payload)
    }

    fn fail_outstanding(&mut self, reason: DownReason) {
        if let Some(o) = self.outstanding.take()
            && let Some(done) = o.done
        {
            let _ = done.send(Err(SendError::Unconfirmed(reason)));
        }
    }

    async fn emit(&self, event: LinkEvent) {
        // A receiver that went away no longer cares.
        let _ = self.events.send(event).await;
    }

    /// Ends the session, if there is one.
    async fn down(&mut self, reason: DownReason) {
        self.fail_outstanding(reason.clone());
        self.pending_ack = None;
        if self.up {
            self.up = false;
            self.stats.session_ended();
            self.stats.bump(Counter::Downs);
            tracing::info!(session = self.session, %reason, "link down");
            self.emit(LinkEvent::Down {
                session: self.session,
                reason: reason.clone(),
            })
            .await;
        }
        if self.is_terminal() && !matches!(reason, DownReason::Closed(_)) {
            self.hello_due = Some(Instant::now() + self.config.hello_retry);
        }
    }

    async fn session_up(&mut self) {
        self.session += 1;
        self.up = true;
        self.stats.session_started(self.session);
        self.stats.bump(Counter::Sessions);
        self.heard();
        tracing::info!(session = self.session, "link up");
        self.emit(LinkEvent::Up {
            session: self.session,
        })
        .await;
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        if self.outstanding.as_ref().is_some_and(|o| now >= o.deadline) {
            self.retransmit_or_give_up().await;
        }
        if self.hello_due.is_some_and(|due| now >= due) {
            self.start_hello();
        }
        if self.up && now >= self.next_ping_at {
            if self.missed_pings >= self.config.max_missed_pings {
                self.down(DownReason::PeerSilent).await;
            } else {
                self.ping_seq = self.ping_seq.wrapping_add(1);
                self.missed_pings += 1;
                self.next_ping_at = now + self.config.ping_interval;
                self.transmit(Frame::control(Kind::PING, self.ping_seq));
            }
        }
    }

    async fn retransmit_or_give_up(&mut self) {
        let Some(o) = &mut self.outstanding else {
            return;
        };
        if o.transmissions <= self.config.max_retransmits {
            o.transmissions += 1;
            o.deadline = Instant::now() + self.config.ack_timeout(o.frame.payload.len());
            let is_hello = o.done.is_none();
            let mut frame = o.frame.clone();
            if is_hello {
                frame = self.next_hello();
                if let Some(o) = &mut self.outstanding {
                    o.frame = frame.clone();
                }
            }
            self.stats.bump(Counter::Retransmissions);
            self.transmit(frame);
            return;
        }
        let was_hello = o.done.is_none();
        if was_hello {
            // The terminal's HELLO went unanswered: no session to end, try again later.
            self.outstanding = None;
            self.hello_due = Some(Instant::now() + self.config.hello_retry);
        } else {
            self.down(DownReason::NoAck).await;
        }
    }

    async fn on_inbound(&mut self, inbound: Inbound) {
        let frame = match inbound {
            Inbound::Frame(frame) => frame,
            Inbound::Damaged(cause) => {
                tracing::debug!(%cause, "damaged frame");
                self.stats.bump(Counter::NaksSent);
                self.transmit(Frame::control(Kind::NAK, 0));
                return;
            }
        };
        self.heard();
        match frame.kind {
            Kind::ACK => self.on_ack(frame.seq).await,
            Kind::NAK => {
                self.stats.bump(Counter::NaksReceived);
                if self.outstanding.is_some() {
                    self.retransmit_or_give_up().await;
                }
            }
            Kind::PING => {
                if self.is_terminal() || self.up {
                    self.transmit(Frame::control(Kind::PONG, frame.seq));
                } else {
                    self.send_reset();
                }
            }
            Kind::RESET => self.on_reset().await,
            kind if kind.is_data() => self.on_data(frame).await,
            // PONG only proves liveness; unknown link kinds are ignored.
            _ => {}
        }
    }

    async fn on_ack(&mut self, seq: u8) {
        let Some(o) = &self.outstanding else { return };
        if o.frame.seq != seq {
            return;
        }
        let Some(o) = self.outstanding.take() else {
            return;
        };
        self.next_seq = seq.wrapping_add(1);
        match o.done {
            None => self.session_up().await,
            Some(done) => {
                self.stats.bump(Counter::Acknowledged);
                let _ = done.send(Ok(()));
            }
        }
    }

    async fn on_reset(&mut self) {
        if !self.is_terminal() {
            return;
        }
        let hello_outstanding = self.outstanding.as_ref().is_some_and(|o| o.done.is_none());
        if hello_outstanding {
            // Our HELLO already answers it.
            return;
        }
        self.down(DownReason::Reset).await;
        self.start_hello();
    }

    async fn on_data(&mut self, frame: Frame) {
        match self.config.role {
            Role::Bridge if frame.kind == Kind::HELLO => {
                // Acknowledged at once, before anything of the new session is sent, so the
                // terminal sees the ACK before any frame of the session it opens. Every
                // HELLO opens a new session, a repeated one included: the terminal may
                // have restarted, and the answer to HELLO is idempotent.
                self.transmit(Frame::control(Kind::ACK, frame.seq));
                self.down(DownReason::Reset).await;
                self.next_seq = 0;
                self.last_delivered = None;
                self.pending_ack = None;
                self.session_up().await;
                self.stats.bump(Counter::Delivered);
                self.emit(LinkEvent::Data(Delivery {
                    kind: frame.kind,
                    seq: frame.seq,
                    session: self.session,
                    payload: frame.payload,
                    ack: None,
                }))
                .await;
                return;
            }
            Role::Bridge if !self.up => {
                // No session to put it in: make the terminal open one.
                self.send_reset();
                return;
            }
            // Until its HELLO is acknowledged a terminal cannot tell this frame from one
            // of an old session; the bridge will send it again in the new one.
            Role::Terminal { .. } if !self.up => return,
            _ => {}
        }
        if self.last_delivered == Some(frame.seq) {
            self.stats.bump(Counter::Duplicates);
            if self.pending_ack != Some(frame.seq) {
                self.transmit(Frame::control(Kind::ACK, frame.seq));
            }
            return;
        }
        self.last_delivered = Some(frame.seq);
        self.pending_ack = Some(frame.seq);
        self.stats.bump(Counter::Delivered);
        let delivery = Delivery {
            kind: frame.kind,
            seq: frame.seq,
            session: self.session,
            payload: frame.payload,
            ack: Some(AckToken {
                tx: self.ack_tx.clone(),
                session: self.session,
                seq: frame.seq,
            }),
        };
        self.emit(LinkEvent::Data(delivery)).await;
    }

    /// The layer above is done with a delivery: now its ACK may go.
    fn on_receiver_ack(&mut self, session: u64, seq: u8) {
        if session == self.session && self.pending_ack == Some(seq) {
            self.pending_ack = None;
            self.transmit(Frame::control(Kind::ACK, seq));
        }
    }
}
