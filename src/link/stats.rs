//! A link's counters, readable while it runs (metrics, `--trace` summaries, tests).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::wire::{Damage, WireStats};

/// Live counters, updated by the link task.
#[derive(Debug, Default)]
pub struct LinkStats {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    damaged: [AtomicU64; Damage::ALL.len()],
    retransmissions: AtomicU64,
    duplicates: AtomicU64,
    naks_sent: AtomicU64,
    naks_received: AtomicU64,
    resets_sent: AtomicU64,
    sessions: AtomicU64,
    downs: AtomicU64,
    delivered: AtomicU64,
    acknowledged: AtomicU64,
    connects: AtomicU64,
    /// The session now up (0: none).
    current_session: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStatsSnapshot {
    /// Good frames read.
    pub frames_in: u64,
    /// Frames written.
    pub frames_out: u64,
    /// Bytes read, noise included.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Damaged frames by cause, in [`Damage::ALL`] order.
    pub damaged: [u64; Damage::ALL.len()],
    /// Data frames sent again (timeout or NAK).
    pub retransmissions: u64,
    /// Repeated data frames acknowledged but not delivered again.
    pub duplicates: u64,
    /// NAKs sent for damaged frames.
    pub naks_sent: u64,
    /// NAKs received.
    pub naks_received: u64,
    /// RESETs sent (bridge without a session).
    pub resets_sent: u64,
    /// Sessions begun.
    pub sessions: u64,
    /// Sessions ended.
    pub downs: u64,
    /// Data frames delivered to the layer above.
    pub delivered: u64,
    /// Own data frames acknowledged by the peer.
    pub acknowledged: u64,
    /// Times the byte stream was opened.
    pub connects: u64,
}

impl LinkStatsSnapshot {
    /// Damaged frames of one cause.
    pub fn damaged(&self, cause: Damage) -> u64 {
        self.damaged.get(cause as usize).copied().unwrap_or(0)
    }

    /// Damaged frames of every cause.
    pub fn damaged_total(&self) -> u64 {
        self.damaged.iter().sum()
    }
}

/// The counters the link task bumps.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Counter {
    Retransmissions,
    Duplicates,
    NaksSent,
    NaksReceived,
    ResetsSent,
    Sessions,
    Downs,
    Delivered,
    Acknowledged,
    Connects,
}

impl LinkStats {
    pub(crate) fn session_started(&self, session: u64) {
        self.current_session.store(session, Ordering::Relaxed);
    }

    pub(crate) fn session_ended(&self) {
        self.current_session.store(0, Ordering::Relaxed);
    }

    /// The session now up, if one is.
    pub fn current_session(&self) -> Option<u64> {
        Some(self.current_session.load(Ordering::Relaxed)).filter(|&s| s != 0)
    }

    pub(crate) fn bump(&self, counter: Counter) {
        let cell = match counter {
            Counter::Retransmissions => &self.retransmissions,
            Counter::Duplicates => &self.duplicates,
            Counter::NaksSent => &self.naks_sent,
            Counter::NaksReceived => &self.naks_received,
            Counter::ResetsSent => &self.resets_sent,
            Counter::Sessions => &self.sessions,
            Counter::Downs => &self.downs,
            Counter::Delivered => &self.delivered,
            Counter::Acknowledged => &self.acknowledged,
            Counter::Connects => &self.connects,
        };
        cell.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds what a codec counted since `before` (codecs count per connection).
    pub(crate) fn add_wire(&self, before: &WireStats, now: &WireStats) {
        let add = |cell: &AtomicU64, a: u64, b: u64| {
            cell.fetch_add(b.saturating_sub(a), Ordering::Relaxed);
        };
        add(&self.frames_in, before.frames_in, now.frames_in);
        add(&self.frames_out, before.frames_out, now.frames_out);
        add(&self.bytes_in, before.bytes_in, now.bytes_in);
        add(&self.bytes_out, before.bytes_out, now.bytes_out);
        for (cell, cause) in self.damaged.iter().zip(Damage::ALL) {
            add(cell, before.damaged(cause), now.damaged(cause));
        }
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> LinkStatsSnapshot {
        let get = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        let mut damaged = [0; Damage::ALL.len()];
        for (out, cell) in damaged.iter_mut().zip(&self.damaged) {
            *out = get(cell);
        }
        LinkStatsSnapshot {
            frames_in: get(&self.frames_in),
            frames_out: get(&self.frames_out),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            damaged,
            retransmissions: get(&self.retransmissions),
            duplicates: get(&self.duplicates),
            naks_sent: get(&self.naks_sent),
            naks_received: get(&self.naks_received),
            resets_sent: get(&self.resets_sent),
            sessions: get(&self.sessions),
            downs: get(&self.downs),
            delivered: get(&self.delivered),
            acknowledged: get(&self.acknowledged),
            connects: get(&self.connects),
        }
    }
}
