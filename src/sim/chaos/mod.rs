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
pub mod world;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use plan::{Action, Intensity, Plan, ProviderKind, Step, Tally};

use crate::ledger::Ledger;
use crate::message::RefundState;
use crate::sim::cloud::report::ReportFormat;
use crate::sim::cloud::{CloudSim, demo};
use world::{BridgeProcess, Cable, TerminalSide};

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
    let dir = tempfile::Builder::new()
        .prefix(&format!("posbridge-chaos-{}-", campaign.seed))
        .tempdir()
        .map_err(setup("scratch directory"))?;

    let mut sim_config = demo::sim_config("127.0.0.1:0".parse().map_err(setup("address"))?)
        .map_err(setup("simulator keys"))?;
    sim_config.async_delay = Duration::from_millis(400);
    sim_config.payments = plan.payments.clone();
    let sim = CloudSim::start(sim_config)
        .await
        .map_err(setup("cloud simulator"))?;

    let mut cables = Vec::new();
    let mut terminals = Vec::new();
    for i in 0..plan.terminals {
        let (mut cable, terminal_end) = Cable::new(
            dir.path().join(format!("posterminal{i}")),
            campaign.seed.wrapping_mul(31).wrapping_add(i as u64),
        );
        cable.plug().map_err(setup("pseudo-terminal"))?;
        cables.push(cable);
        let display = plan.displays.get(i).cloned().unwrap_or_default();
        terminals.push(TerminalSide::start(
            &format!("CHAOS-T{i}"),
            terminal_end,
            display,
        ));
    }

    let ledger_path = dir.path().join("ledger.sqlite");
    let config_path = dir.path().join("posbridge.toml");
    let mut config = format!("[ledger]\npath = \"{}\"\n\n", ledger_path.display());
    for cable in &cables {
        config.push_str(&format!(
            "[[terminal]]\ndevice = \"{}\"\n\n",
            cable.name.display()
        ));
    }
    config.push_str(
        "[retry]\nfirst_retry_ms = 50\nmax_retry_ms = 500\nfirst_poll_ms = 100\nmax_poll_ms = 500\n\n\
         [shutdown]\ngrace_ms = 3000\n\n",
    );
    if let Some(limit) = plan.limit {
        config.push_str(&format!("[limits.per_refund]\nUSD = {limit}\n\n"));
    }
    let mut provider_toml = demo::provider_toml(provider.name(), &sim.base_url())
        .ok_or_else(|| CampaignError::Setup("no simulator configuration".into()))?;
    if plan.antom_v1 {
        provider_toml =
            provider_toml.replace("kind = \"antom\"\n", "kind = \"antom\"\napi = \"v1\"\n");
    }
    config.push_str(&provider_toml);
    config.push_str("\n[provider.http]\nconnect_timeout_ms = 500\ntotal_timeout_ms = 2000\n");
    if plan.notify {
        let port = free_port().map_err(setup("a port for notifyRefund"))?;
        config.push_str(&format!(
            "\n[provider.notify]\nlisten = \"127.0.0.1:{port}\"\npath = \"/antom/notifyRefund\"\n"
        ));
        sim.set_notify_url(Some(format!("http://127.0.0.1:{port}/antom/notifyRefund")));
    }
    std::fs::write(&config_path, config).map_err(setup("configuration"))?;
    let log_path = dir.path().join("bridge.log");
    let mut bridge = BridgeProcess::new(&campaign.bridge_exe, &config_path, &log_path);
    bridge.start().map_err(setup("bridge process"))?;

    let mut violations = Vec::new();
    // When the cloud went down: a request on its way then has no answer.
    let mut outages: Vec<jiff::Timestamp> = Vec::new();
    let t0 = tokio::time::Instant::now();
    for step in &plan.steps {
        tokio::time::sleep_until(t0 + step.at).await;
        if let Some(status) = bridge.exited() {
            violations.push(format!(
                "bridge exited by itself ({status}) before {:?}",
                step.at
            ));
            bridge.kill();
            bridge.start().map_err(setup("bridge process"))?;
        }
        match &step.action {
            Action::Refund {
                terminal,
                id,
                payment,
                amount,
            } => {
                if let Some(t) = terminals.get_mut(*terminal) {
                    t.refund(id, payment, *amount);
                }
            }
            Action::Repeat { terminal, id } => {
                if let Some(t) = terminals.get_mut(*terminal) {
                    t.repeat(id);
                }
            }
            Action::RepeatChanged { terminal, id } => {
                if let Some(t) = terminals.get_mut(*terminal) {
                    t.repeat_changed(id);
                }
            }
            Action::Inquire { terminal, id } => {
                if let Some(t) = terminals.get(*terminal) {
                    t.inquire(id);
                }
            }
            Action::Noise { terminal, faults } => {
                if let Some(c) = cables.get(*terminal) {
                    c.noise(faults.clone());
                }
            }
            Action::Quiet { terminal } => {
                if let Some(c) = cables.get(*terminal) {
                    c.quiet();
                }
            }
            Action::Unplug { terminal } => {
                if let Some(c) = cables.get_mut(*terminal) {
                    c.unplug();
                }
            }
            Action::Replug { terminal } => {
                if let Some(c) = cables.get_mut(*terminal) {
                    c.plug().map_err(setup("pseudo-terminal"))?;
                }
            }
            Action::CloudDown => {
                outages.push(jiff::Timestamp::now());
                sim.set_down(true).await
            }
            Action::CloudUp => sim.set_down(false).await,
            Action::CloudFault(rule) => sim.push_fault(rule.clone()),
            Action::RevokeTokens => sim.revoke_tokens(),
            Action::Kill => bridge.kill(),
            Action::Start => bridge.start().map_err(setup("bridge process"))?,
        }
    }

    // Fair weather: everything must now settle.
    sim.clear_faults();
    sim.set_down(false).await;
    for cable in &mut cables {
        cable.quiet();
        cable.plug().map_err(setup("pseudo-terminal"))?;
    }
    if let Some(status) = bridge.exited() {
        violations.push(format!("bridge exited by itself ({status})"));
        bridge.kill();
    }
    bridge.start().map_err(setup("bridge process"))?;
    let ledger = open_ledger(&ledger_path, campaign.settle_within).await?;
    let deadline = Instant::now() + campaign.settle_within;
    // First everything the bridge can finish by itself; what waits for the provider's
    // report (PROVIDER_PENDING) or for a person (NEEDS_ATTENTION) is then settled by
    // reconciling against the simulator's books, as a store would.
    let mut calm = true;
    while !check::settled(&ledger, &terminals, true) {
        if Instant::now() >= deadline {
            violations.push(format!(
                "not settled within {:?} of the faults stopping",
                campaign.settle_within
            ));
            calm = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before_reconcile =
        check::attention(&ledger, &sim, &terminals, provider, bridge.starts, &outages);
    let reconciled = if calm {
        match reconcile(
            campaign,
            provider,
            &sim,
            &config_path,
            dir.path(),
            run_started,
        ) {
            Ok(applied) => applied,
            Err(why) => {
                violations.push(why);
                0
            }
        }
    } else {
        0
    };
    while calm && !check::settled(&ledger, &terminals, false) {
        if Instant::now() >= deadline {
            violations.push(format!(
                "not settled within {:?} of reconciling",
                campaign.settle_within
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    match bridge.stop(Duration::from_secs(10)).await {
        Some(status) if status.success() => {}
        other => violations.push(format!("bridge did not stop cleanly on SIGTERM: {other:?}")),
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let findings = check::check(provider, &plan, &ledger, &sim, &terminals, &log);
    violations.extend(findings.violations);
    violations.extend(before_reconcile.violations);

    let mut report = Report {
        seed: campaign.seed,
        provider,
        tally: plan.tally(),
        bridge_starts: bridge.starts,
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
    for t in &terminals {
        let stats = t.terminal.stats();
        report.frames_delivered += t.terminal.audit().delivered();
        report.frames += stats.frames_in + stats.frames_out;
        report.damaged += stats.damaged_total();
        report.retransmissions += stats.retransmissions;
        report.sessions += stats.sessions;
    }
    sim.shutdown().await;
    if campaign.keep || !report.passed() {
        report.kept = Some(dir.keep());
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// A free port on loopback for a listener the bridge opens.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs `posbridge reconcile --apply` against the simulator's report, as a store
/// would with its provider's; returns how many refunds it settled.
fn reconcile(
    campaign: &Campaign,
    provider: ProviderKind,
    sim: &CloudSim,
    config: &Path,
    dir: &Path,
    from: jiff::Timestamp,
) -> Result<usize, String> {
    // Asynchronous refunds still open at the simulator finish now.
    sim.settle_now();
    let format = match provider {
        ProviderKind::Antom => ReportFormat::Antom,
        ProviderKind::OttPay => ReportFormat::Ottpay,
        ProviderKind::PaymentOptions => ReportFormat::Paymentoptions,
    };
    let report = dir.join("provider-report.csv");
    std::fs::write(&report, sim.report(format)).map_err(|e| format!("writing the report: {e}"))?;
    let through = jiff::Timestamp::now().to_string();
    let from = from.to_string();
    let mut command = std::process::Command::new(&campaign.bridge_exe);
    command
        .args(["reconcile", "--json", "--apply", "--config"])
        .arg(config)
        .arg("--report")
        .arg(&report)
        .args([
            "--provider",
            provider.name(),
            "--from",
            &from,
            "--through",
            &through,
        ])
        // One clock: the simulator's and the bridge's.
        .args(["--clock-skew", "0"]);
    if provider == ProviderKind::OttPay {
        command.args(["--currency", "USD"]);
    }
    let out = command
        .output()
        .map_err(|e| format!("running posbridge reconcile: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = std::fs::write(dir.join("reconcile.json"), &text);
    let found: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "posbridge reconcile printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let findings = found["findings"].as_array().cloned().unwrap_or_default();
    // A refund the bridge said FAILED that the provider made is a broken promise even
    // when the report corrects it.
    let wrong: Vec<String> = findings
        .iter()
        .filter(|f| f["kind"] == "failed_but_refunded")
        .map(|f| f.to_string())
        .collect();
    if !wrong.is_empty() {
        return Err(format!(
            "FAILED in the ledger but refunded by the provider: {}",
            wrong.join("; ")
        ));
    }
    if !out.status.success() {
        let disagreements: Vec<String> = findings
            .iter()
            .filter(|f| {
                f["kind"] != "confirmed" && f["kind"] != "still_open" && f["applied"] != true
            })
            .map(|f| f.to_string())
            .collect();
        return Err(format!(
            "the ledger and the provider's report disagree after reconciling: {}",
            disagreements.join("; ")
        ));
    }
    Ok(findings.iter().filter(|f| f["applied"] == true).count())
}

/// The ledger, once the bridge has created it.
async fn open_ledger(path: &Path, within: Duration) -> Result<Ledger, CampaignError> {
    let deadline = Instant::now() + within;
    loop {
        if path.exists()
            && let Ok(ledger) = Ledger::open(path)
        {
            return Ok(ledger);
        }
        if Instant::now() >= deadline {
            return Err(CampaignError::Setup(format!(
                "no ledger at {} within {within:?}",
                path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
