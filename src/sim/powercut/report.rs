//! What a power-cut campaign did and found, and how it reads at the end of a run.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::message::RefundState;

/// What a campaign did and found.
#[derive(Debug, Default)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Cuts made.
    pub cuts: u32,
    /// Of them, while the guest was booting or recovering (before the bridge spoke).
    pub cuts_in_boot: u32,
    /// Cuts with at least one refund not yet final in the terminal's view.
    pub cuts_with_refunds_open: u32,
    /// Refunds open (sent, not yet final as the terminal saw) at the cuts, summed.
    pub open_at_cuts: u64,
    /// REFUNDs sent but not yet acknowledged at the cuts, summed.
    pub unacknowledged_at_cuts: u64,
    /// Boots.
    pub boots: u32,
    /// Refunds started, and repeats of earlier ones.
    pub refunds: u32,
    /// Repeats of an earlier REFUND.
    pub repeats: u32,
    /// Refunds in the ledger by state.
    pub by_state: HashMap<RefundState, u32>,
    /// Refunds the simulator carried out.
    pub executed: u32,
    /// Refund calls the simulator received (a resend after a cut counts again).
    pub provider_calls: u64,
    /// Link sessions the terminal had (one per boot that reached the bridge).
    pub sessions: u64,
    /// How long each boot took from QEMU's start until the bridge spoke to the
    /// terminal (boots cut before that are not counted).
    pub up_times: Vec<Duration>,
    /// How long the campaign took.
    pub elapsed: Duration,
    /// Broken promises; empty when it passed.
    pub violations: Vec<String>,
}

impl Report {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = |s: RefundState| self.by_state.get(&s).copied().unwrap_or(0);
        writeln!(
            f,
            "seed {}: {} power cuts ({} while booting or recovering, {} with refunds open) over {} boots in {:.0} s",
            self.seed,
            self.cuts,
            self.cuts_in_boot,
            self.cuts_with_refunds_open,
            self.boots,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  at the cuts: {} refunds not final, {} REFUNDs not yet acknowledged (summed over cuts)",
            self.open_at_cuts, self.unacknowledged_at_cuts
        )?;
        let mut up: Vec<f64> = self.up_times.iter().map(Duration::as_secs_f64).collect();
        up.sort_by(f64::total_cmp);
        if let (Some(first), Some(last), Some(mid)) = (up.first(), up.last(), up.get(up.len() / 2))
        {
            writeln!(
                f,
                "  {:.1} s per cut; QEMU's start to the bridge's first session: median {mid:.1} s, {first:.1} to {last:.1} s over {} boots",
                self.elapsed.as_secs_f64() / f64::from(self.cuts.max(1)),
                up.len()
            )?;
        }
        write!(
            f,
            "  refunds {} (+{} repeated): ledger succeeded {}, failed {}, needs attention {}, other {}; provider executed {} of {} calls; {} link sessions",
            self.refunds,
            self.repeats,
            state(RefundState::Succeeded),
            state(RefundState::Failed),
            state(RefundState::NeedsAttention),
            self.by_state
                .iter()
                .filter(|(s, _)| !s.is_final())
                .map(|(_, n)| n)
                .sum::<u32>(),
            self.executed,
            self.provider_calls,
            self.sessions
        )?;
        for v in &self.violations {
            write!(f, "\n  VIOLATION {v}")?;
        }
        Ok(())
    }
}
