//! The link: a reliable session over an unreliable byte stream.
//!
//! One [`Link`] per terminal line. It owns sequence numbers, stop-and-wait
//! retransmission with ACK/NAK, duplicate suppression, HELLO session resets, RESET,
//! PING/PONG liveness and reconnection through a [`Connector`]. It knows nothing of
//! refunds: data frames go in through [`LinkHandle::send`] and come out as
//! [`LinkEvent::Data`]. See `protocol/SPEC.md` §3–4 for the rules it implements.
//!
//! Guarantees, within one session: every data frame the peer sent is delivered once,
//! in order; [`LinkHandle::send`] returns `Ok` only once the peer acknowledged the
//! frame. A frame whose session ended before its ACK came back returns
//! [`SendError::Unconfirmed`]: the peer may or may not have it, and the layer above
//! (whose messages are idempotent) decides whether to send it again.

mod audit;
mod connector;
mod core;
mod io;
mod stats;

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

pub use audit::{SequenceAudit, SequenceFault};
pub use connector::{BoxIo, Connector, Io, OneShot};
pub use stats::{LinkStats, LinkStatsSnapshot};

use crate::wire::{Inbound, Kind, MAX_PAYLOAD, max_wire_len};

/// Which end of the line this link is.
#[derive(Clone, Debug)]
pub enum Role {
    /// The bridge: waits for HELLO, answers frames outside a session with RESET.
    Bridge,
    /// The terminal: opens every session with HELLO carrying this payload.
    Terminal {
        /// The HELLO message's JSON.
        hello: Bytes,
    },
}

/// A link's timers and limits (SPEC §4.5).
#[derive(Clone)]
pub struct LinkConfig {
    /// Which end this is.
    pub role: Role,
    /// The line's baud rate, if it has one (serial); USB bulk has none.
    pub baud: Option<u32>,
    /// The fixed part of the ACK timeout.
    pub ack_timeout_base: Duration,
    /// Retransmissions of one data frame before the link is declared down.
    pub max_retransmits: u8,
    /// Silence after which a PING is sent, and the spacing of further PINGs.
    pub ping_interval: Duration,
    /// Unanswered PINGs after which the link is declared down.
    pub max_missed_pings: u8,
    /// How long a terminal waits before trying HELLO again after one failed.
    pub hello_retry: Duration,
    /// Called with every frame read or written, for `--trace`.
    pub tracer: Option<Tracer>,
}

impl LinkConfig {
    /// The specification's defaults for a role on a line of `baud` (None for USB).
    pub fn new(role: Role, baud: Option<u32>) -> LinkConfig {
        LinkConfig {
            role,
            baud,
            ack_timeout_base: Duration::from_millis(200),
            max_retransmits: 3,
            ping_interval: Duration::from_secs(5),
            max_missed_pings: 3,
            hello_retry: Duration::from_secs(1),
            tracer: None,
        }
    }

    /// How long to wait for the ACK of a frame with `payload_len` bytes of payload:
    /// the fixed part plus the time the frame and its ACK take on the line (8N1: ten
    /// bits a byte).
    pub fn ack_timeout(&self, payload_len: usize) -> Duration {
        let Some(baud) = self.baud.filter(|b| *b > 0) else {
            return self.ack_timeout_base;
        };
        let bytes = (max_wire_len(payload_len) + max_wire_len(0)) as u64;
        let line = Duration::from_micros(bytes * 10 * 1_000_000 / u64::from(baud));
        self.ack_timeout_base + line
    }
}

impl std::fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("role", &self.role)
            .field("baud", &self.baud)
            .field("ack_timeout_base", &self.ack_timeout_base)
            .field("max_retransmits", &self.max_retransmits)
            .field("ping_interval", &self.ping_interval)
            .field("max_missed_pings", &self.max_missed_pings)
            .field("hello_retry", &self.hello_retry)
            .field("tracer", &self.tracer.is_some())
            .finish()
    }
}

/// Which way a traced frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceDirection {
    /// Read from the line.
    In,
    /// Written to the line.
    Out,
}

/// A trace callback: direction, the raw bytes, and what they decoded to.
pub type Tracer = std::sync::Arc<dyn Fn(TraceDirection, &[u8], &Inbound) + Send + Sync>;

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// A data frame went unacknowledged through every retransmission.
    NoAck,
    /// The peer answered none of the PINGs.
    PeerSilent,
    /// The terminal opened a new session (HELLO) or the bridge lost its (RESET).
    Reset,
    /// The byte stream ended or failed; the connector is reopening it.
    Closed(String),
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownReason::NoAck => f.write_str("no acknowledgement after every retransmission"),
            DownReason::PeerSilent => f.write_str("peer answered no PING"),
            DownReason::Reset => f.write_str("session reset by the peer"),
            DownReason::Closed(why) => write!(f, "line closed: {why}"),
        }
    }
}

/// What a link reports to the layer above.
#[derive(Debug)]
pub enum LinkEvent {
    /// A session began: sequence state is fresh. `session` numbers sessions.
    Up {
        /// The session's number, counting from 1 for the link's life.
        session: u64,
    },
    /// A data frame arrived (once per frame per session).
    Data(Delivery),
    /// The session ended.
    Down {
        /// The number of the session that ended.
        session: u64,
        /// Why.
        reason: DownReason,
    },
}

/// A delivered data frame. The link acknowledges it when this value is acknowledged
/// or dropped, so a receiver can make it durable first and only then let the ACK go.
#[derive(Debug)]
pub struct Delivery {
    /// The frame's kind.
    pub kind: Kind,
    /// The frame's sequence number.
    pub seq: u8,
    /// The session it arrived in.
    pub session: u64,
    /// The JSON payload.
    pub payload: Bytes,
    ack: Option<AckToken>,
}

impl Delivery {
    /// Lets the ACK go now.
    pub fn ack(mut self) {
        if let Some(token) = self.ack.take() {
            token.send();
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(token) = self.ack.take() {
            token.send();
        }
    }
}

#[derive(Debug)]
struct AckToken {
    tx: mpsc::UnboundedSender<(u64, u8)>,
    session: u64,
    seq: u8,
}

impl AckToken {
    fn send(self) {
        // If the link is gone, there is nobody left to acknowledge to.
        let _ = self.tx.send((self.session, self.seq));
    }
}

/// Why a frame was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The frame went out, but its session ended before an ACK came back: the peer may
    /// or may not have it.
    #[error("frame sent but not acknowledged before the session ended ({0})")]
    Unconfirmed(DownReason),
    /// The link has shut down; the frame was not sent.
    #[error("the link is shut down")]
    Closed,
    /// The frame was for a session that ended before it could leave; it was not sent.
    #[error("the session the frame was for has ended; it was not sent")]
    SessionOver,
    /// The payload is over the 4096-byte maximum; the frame was not sent.
    #[error("payload of {0} bytes exceeds the {MAX_PAYLOAD}-byte maximum")]
    TooLong(usize),
}

struct SendRequest {
    kind: Kind,
    payload: Bytes,
    /// The only session the frame may leave in; any session when absent.
    session: Option<u64>,
    done: oneshot::Sender<Result<(), SendError>>,
}

/// Sends data frames over a link. Cheap to clone.
#[derive(Clone)]
pub struct LinkHandle {
    tx: mpsc::UnboundedSender<SendRequest>,
    stats: std::sync::Arc<LinkStats>,
}

impl LinkHandle {
    /// Sends a data frame and waits for the peer's ACK. Frames queue while there is no
    /// session and go out, in order, once one is up.
    pub async fn send(&self, kind: Kind, payload: Bytes) -> Result<(), SendError> {
        self.request(kind, payload, None).await
    }

    /// Sends a data frame meant for the peer of session `session` and waits for its
    /// ACK: if that session is not the current one when the frame's turn comes, it is
    /// not sent ([`SendError::SessionOver`]), so it never reaches whoever comes next.
    pub async fn send_in(&self, session: u64, kind: Kind, payload: Bytes) -> Result<(), SendError> {
        self.request(kind, payload, Some(session)).await
    }

    /// The session now up, if one is.
    pub fn session(&self) -> Option<u64> {
        self.stats.current_session()
    }

    async fn request(
        &self,
        kind: Kind,
        payload: Bytes,
        session: Option<u64>,
    ) -> Result<(), SendError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(SendError::TooLong(payload.len()));
        }
        let (done, result) = oneshot::channel();
        self.tx
            .send(SendRequest {
                kind,
                payload,
                session,
                done,
            })
            .map_err(|_| SendError::Closed)?;
        result.await.unwrap_or(Err(SendError::Closed))
    }

    /// The link's counters.
    pub fn stats(&self) -> LinkStatsSnapshot {
        self.stats.snapshot()
    }

    /// The live counters, to read later without holding the link open.
    pub fn shared_stats(&self) -> std::sync::Arc<LinkStats> {
        self.stats.clone()
    }
}

/// Starts links.
pub struct Link;

impl Link {
    /// Starts a link task on the current tokio runtime. It connects through
    /// `connector`, reconnects whenever the line closes, and stops when every
    /// [`LinkHandle`] is dropped or the connector gives up.
    pub fn spawn(
        config: LinkConfig,
        connector: impl Connector,
    ) -> (LinkHandle, mpsc::Receiver<LinkEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::channel(256);
        let stats = std::sync::Arc::new(LinkStats::default());
        let handle = LinkHandle {
            tx,
            stats: stats.clone(),
        };
        // The link's logs carry the caller's span (the line's name).
        tokio::spawn(tracing::Instrument::instrument(
            core::run(config, Box::new(connector), rx, events_tx, stats),
            tracing::Span::current(),
        ));
        (handle, events_rx)
    }
}
