//! The fault campaign: the real bridge process between emulated terminals and the
//! cloud simulator, driven through a seeded random schedule of line noise, unplugs,
//! cloud outages and faults, and SIGKILLs — then checked against the money.
//!
//! A run draws its [`Plan`] from a seed, plays it in real time, lets everything
//! settle (faults off, cables plugged, bridge up), and checks:
//! - every REFUND a terminal saw acknowledged is in the ledger and final, and never
//!   NEEDS_ATTENTION on a provider that can be asked again;
//! - the provider refunded each payment exactly as often, and as much, as the ledger
//!   says succeeded (for providers without idempotency, a NEEDS_ATTENTION refund may
//!   or may not have moved money);
//! - each terminal's last word on every refund is the ledger's final state, and once
//!   told a final state it was never told another;
//! - no frame was delivered twice or skipped, on either side of the link;
//! - the bridge never exited by itself and stops cleanly on SIGTERM at the end.
//!
//! `posbridge-chaos` runs campaigns from the command line; `tests/chaos.rs` runs a
//! short one in CI. The same seed replays the same schedule.

pub mod check;
pub mod plan;
mod rig;
mod settle;
pub mod world;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use plan::{Action, Intensity, Plan, ProviderKind, Step, Tally};

use crate::message::RefundState;

/// One run's settings.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// The seed the schedule is drawn from.
    pub seed: u64,
    /// The provider; `None` picks one from the seed.
    pub provider: Option<ProviderKind>,
    /// How busy the run is.
    pub intensity: Intensity,
    /// The `posbridge` binary to run as the bridge.
    pub bridge_exe: PathBuf,
    /// How long everything may take to settle once the faults stop.
    pub settle_within: Duration,
    /// Keep the run's directory (ledger, logs, configuration) even when it passes.
    pub keep: bool,
}

impl Campaign {
    /// A run of `seed` with default intensity.
    pub fn new(seed: u64, bridge_exe: &Path) -> Campaign {
        Campaign {
            seed,
            provider: None,
            intensity: Intensity::default(),
            bridge_exe: bridge_exe.into(),
            settle_within: Duration::from_secs(120),
            keep: false,
        }
    }

    /// The provider this run uses.
    pub fn provider(&self) -> ProviderKind {
        self.provider
            .unwrap_or_else(|| ProviderKind::for_seed(self.seed))
    }
}

/// What a run did and found.
#[derive(Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The provider.
    pub provider: ProviderKind,
    /// What the schedule held.
    pub tally: Tally,
    /// Times the bridge process was started.
    pub bridge_starts: u32,
    /// Refunds in the ledger by final state.
    pub by_state: HashMap<RefundState, u32>,
    /// Refunds the simulator carried out.
    pub executed: u32,
    /// Refunds that needed a person before the run reconciled.
    pub attention: u32,
    /// Faults the simulator struck that leave an outcome unknown.
    pub unknown_faults: u32,
    /// Refunds the provider finished later (PROVIDER_PENDING) before reconciling.
    pub provider_pending: u32,
    /// Refunds settled by reconciling against the simulator's report.
    pub reconciled: usize,
    /// Data frames delivered to the terminals (each checked for repeats and gaps).
    pub frames_delivered: u64,
    /// Frames the terminals sent and received.
    pub frames: u64,
    /// Damaged frames the terminals' decoders threw away.
    pub damaged: u64,
    /// Retransmissions by the terminals.
    pub retransmissions: u64,
    /// Link sessions the terminals opened.
    pub sessions: u64,
    /// How long the run took, settling included.
    pub elapsed: Duration,
    /// Broken invariants; empty when the run passed.
    pub violations: Vec<String>,
    /// Where the run's files are, when kept.
    pub kept: Option<PathBuf>,
}

impl Report {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tally;
        let state = |s: RefundState| self.by_state.get(&s).copied().unwrap_or(0);
        writeln!(
            f,
            "seed {} ({}): {} in {:.1} s",
            self.seed,
            self.provider,
            if self.passed() { "PASSED" } else { "FAILED" },
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  refunds {} (+{} repeated, {} inquiries): succeeded {}, failed {}, needs attention {}; provider executed {}",
            t.refunds,
            t.repeats,
            t.inquiries,
            state(RefundState::Succeeded),
            state(RefundState::Failed),
            state(RefundState::NeedsAttention),
            self.executed
        )?;
        writeln!(
            f,
            "  before reconciling: {} needed a person (against {} faults that leave an outcome unknown and {} outages), {} finished later by the provider; reconciling settled {}",
            self.attention,
            self.unknown_faults,
            self.tally.cloud_outages,
            self.provider_pending,
            self.reconciled
        )?;
        writeln!(
            f,
            "  faults: {} SIGKILLs ({} starts), {} unplugs, {} noisy spells, {} cloud outages, {} other cloud faults",
            t.kills, self.bridge_starts, t.unplugs, t.noisy_spells, t.cloud_outages, t.cloud_faults
        )?;
        write!(
            f,
            "  terminal links: {} frames, {} damaged, {} retransmitted, {} sessions, {} deliveries checked",
            self.frames, self.damaged, self.retransmissions, self.sessions, self.frames_delivered
        )?;
        for v in &self.violations {
            write!(f, "\n  VIOLATION {v}")?;
        }
        if let Some(dir) = &self.kept {
            write!(f, "\n  files kept in {}", dir.display())?;
        }
        Ok(())
    }
}

/// Why a run could not be carried out at all (not a finding).
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// Setting up files, devices or processes failed.
    #[error("campaign setup: {0}")]
    Setup(String),
}

fn setup<E: fmt::Display>(what: &str) -> impl FnOnce(E) -> CampaignError + '_ {
    move |e| CampaignError::Setup(format!("{what}: {e}"))
}

/// Plays one run and checks it.
pub async fn run(campaign: &Campaign) -> Result<Report, CampaignError> {
    let started = Instant::now();
    let run_started = jiff::Timestamp::now();
    let provider = campaign.provider();
    let plan = Plan::draw(campaign.seed, provider, &campaign.intensity);
    let mut rig = rig::Rig::set_up(campaign, &plan).await?;
    let mut violations = Vec::new();
    let outages = rig.play(&plan, &mut violations).await?;
    rig.fair_weather(&mut violations).await?;
    let ledger = settle::open_ledger(&rig.ledger_path, campaign.settle_within).await?;
    let (before_reconcile, reconciled) = rig
        .settle(
            campaign,
            provider,
            &ledger,
            &outages,
            run_started,
            &mut violations,
        )
        .await;
    rig.stop_bridge(&mut violations).await;
    let log = std::fs::read_to_string(&rig.log_path).unwrap_or_default();
    let findings = check::check(provider, &plan, &ledger, &rig.sim, &rig.terminals, &log);
    violations.extend(findings.violations);
    violations.extend(before_reconcile.violations);

    let mut report = Report {
        seed: campaign.seed,
        provider,
        tally: plan.tally(),
        bridge_starts: rig.bridge.starts,
        by_state: findings.by_state,
        executed: findings.executed,
        attention: before_reconcile.attention,
        unknown_faults: before_reconcile.unknown_faults,
        provider_pending: before_reconcile.provider_pending,
        reconciled,
        frames_delivered: 0,
        frames: 0,
        damaged: 0,
        retransmissions: 0,
        sessions: 0,
        elapsed: Duration::ZERO,
        violations,
        kept: None,
    };
    rig.count_link_traffic(&mut report);
    rig.sim.shutdown().await;
    if campaign.keep || !report.passed() {
        report.kept = Some(rig.dir.keep());
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
