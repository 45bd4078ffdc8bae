//! The terminal's side: the refunds a cashier starts (drawn from the seed), and
//! what the terminal has open and whether the bridge speaks to it.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::money::{Amount, Currency};
use crate::sim::chaos::world::TerminalSide;
use crate::sim::cloud::CloudSim;
use crate::sim::cloud::books::PaymentSeed;
use crate::sim::cloud::faults::{Fault, FaultRule, FaultTarget};

/// What the terminal has open: refunds sent and not final in its view, and REFUNDs
/// not acknowledged.
pub(super) fn open_refunds(terminal: &TerminalSide) -> (u64, u64) {
    let last = terminal.last_states();
    let acknowledged = terminal
        .acknowledged
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default();
    let open = terminal
        .sent
        .keys()
        .filter(|id| !last.get(*id).is_some_and(|s| s.is_final()))
        .count() as u64;
    let unacknowledged = terminal
        .sent
        .keys()
        .filter(|id| !acknowledged.contains(*id))
        .count() as u64;
    (open, unacknowledged)
}

/// Whether the terminal has everything it sent acknowledged and final.
pub(super) fn settled(terminal: &TerminalSide) -> bool {
    terminal.in_flight() == 0 && open_refunds(terminal) == (0, 0)
}

/// Waits until the terminal has had more than `sessions` link sessions.
pub(super) async fn bridge_up(terminal: &TerminalSide, sessions: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while terminal.terminal.stats().sessions <= sessions {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Draws and sends refunds (and now and then a repeat, or a slow provider answer so
/// that calls are in flight) until `until`.
pub(super) struct Traffic {
    rng: StdRng,
    next: u32,
    made: Vec<String>,
    /// Refunds started.
    pub(super) refunds: u32,
    /// Repeats of an earlier REFUND.
    pub(super) repeats: u32,
}

impl Traffic {
    /// Traffic drawn from the campaign's `seed` (apart from the schedule of cuts).
    pub(super) fn new(seed: u64) -> Traffic {
        Traffic {
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            next: 0,
            made: Vec::new(),
            refunds: 0,
            repeats: 0,
        }
    }

    /// Sends traffic until `until`.
    pub(super) async fn until(
        &mut self,
        until: Instant,
        terminal: &mut TerminalSide,
        sim: &CloudSim,
        usd: Currency,
    ) {
        while Instant::now() < until {
            self.one(terminal, sim, usd);
            let pause = Duration::from_millis(self.rng.random_range(80..600));
            tokio::time::sleep(pause.min(until.saturating_duration_since(Instant::now()))).await;
        }
    }

    pub(super) fn one(&mut self, terminal: &mut TerminalSide, sim: &CloudSim, usd: Currency) {
        let roll = self.rng.random_range(0..100u32);
        if roll < 8 && !self.made.is_empty() {
            let id = self.made[self.rng.random_range(0..self.made.len())].clone();
            terminal.repeat(&id);
            self.repeats += 1;
            return;
        }
        if roll >= 70 {
            let ms = self.rng.random_range(200..2500);
            let target = if roll >= 92 {
                FaultTarget::AntomInquiry
            } else {
                FaultTarget::AntomRefund
            };
            sim.push_fault(FaultRule::once(target, Fault::Slow { ms }));
        }
        self.next += 1;
        let payment = format!("PC-PAY-{}", self.next);
        let id = format!("PC-{}", self.next);
        if let Ok(amount) = Amount::new(100_000, usd) {
            sim.add_payment(PaymentSeed::new(payment.clone(), amount));
        }
        let amount = self.rng.random_range(1..=100_000);
        terminal.refund(&id, &payment, Some(amount));
        self.made.push(id);
        self.refunds += 1;
    }
}
