//! The rig a run plays on: the scratch directory, the cloud simulator with the
//! plan's payments, the terminals on their cables, the bridge process and its
//! configuration; and the playing of the plan's steps on it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::world::{BridgeProcess, Cable, TerminalSide};
use super::{Action, Campaign, CampaignError, Plan, ProviderKind, Report, setup};
use crate::sim::cloud::{CloudSim, demo};

/// Everything a run plays on: the bridge process, the terminals and their cables,
/// the cloud simulator and the run's directory. (Fields drop in this order: the
/// bridge first, the directory last.)
pub(super) struct Rig {
    pub(super) bridge: BridgeProcess,
    pub(super) terminals: Vec<TerminalSide>,
    pub(super) cables: Vec<Cable>,
    pub(super) sim: CloudSim,
    pub(super) ledger_path: PathBuf,
    pub(super) config_path: PathBuf,
    pub(super) log_path: PathBuf,
    pub(super) dir: tempfile::TempDir,
}

impl Rig {
    /// The scratch directory, the cloud with the plan's payments, the terminals on
    /// their cables, the bridge's configuration, and the bridge started.
    pub(super) async fn set_up(campaign: &Campaign, plan: &Plan) -> Result<Rig, CampaignError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("posbridge-chaos-{}-", campaign.seed))
            .tempdir()
            .map_err(setup("scratch directory"))?;
        let sim = start_cloud(plan).await?;
        let (cables, terminals) = plug_terminals(campaign, plan, dir.path())?;
        let ledger_path = dir.path().join("ledger.sqlite");
        let config_path = dir.path().join("posbridge.toml");
        let config = bridge_config(plan, campaign.provider(), &sim, &cables, &ledger_path)?;
        std::fs::write(&config_path, config).map_err(setup("configuration"))?;
        let log_path = dir.path().join("bridge.log");
        let mut bridge = BridgeProcess::new(&campaign.bridge_exe, &config_path, &log_path);
        bridge.start().map_err(setup("bridge process"))?;
        Ok(Rig {
            bridge,
            terminals,
            cables,
            sim,
            ledger_path,
            config_path,
            log_path,
            dir,
        })
    }

    /// Plays the plan's steps at their times; returns when the cloud went down (a
    /// request on its way then has no answer).
    pub(super) async fn play(
        &mut self,
        plan: &Plan,
        violations: &mut Vec<String>,
    ) -> Result<Vec<jiff::Timestamp>, CampaignError> {
        let mut outages: Vec<jiff::Timestamp> = Vec::new();
        let t0 = tokio::time::Instant::now();
        for step in &plan.steps {
            tokio::time::sleep_until(t0 + step.at).await;
            if let Some(status) = self.bridge.exited() {
                violations.push(format!(
                    "bridge exited by itself ({status}) before {:?}",
                    step.at
                ));
                self.bridge.kill();
                self.bridge.start().map_err(setup("bridge process"))?;
            }
            if matches!(step.action, Action::CloudDown) {
                outages.push(jiff::Timestamp::now());
            }
            self.act(&step.action).await?;
        }
        Ok(outages)
    }

    /// Does one step's action.
    async fn act(&mut self, action: &Action) -> Result<(), CampaignError> {
        match action {
            Action::Refund {
                terminal,
                id,
                payment,
                amount,
            } => {
                if let Some(t) = self.terminals.get_mut(*terminal) {
                    t.refund(id, payment, *amount);
                }
            }
            Action::Repeat { terminal, id } => {
                if let Some(t) = self.terminals.get_mut(*terminal) {
                    t.repeat(id);
                }
            }
            Action::RepeatChanged { terminal, id } => {
                if let Some(t) = self.terminals.get_mut(*terminal) {
                    t.repeat_changed(id);
                }
            }
            Action::Inquire { terminal, id } => {
                if let Some(t) = self.terminals.get(*terminal) {
                    t.inquire(id);
                }
            }
            Action::Noise { terminal, faults } => {
                if let Some(c) = self.cables.get(*terminal) {
                    c.noise(faults.clone());
                }
            }
            Action::Quiet { terminal } => {
                if let Some(c) = self.cables.get(*terminal) {
                    c.quiet();
                }
            }
            Action::Unplug { terminal } => {
                if let Some(c) = self.cables.get_mut(*terminal) {
                    c.unplug();
                }
            }
            Action::Replug { terminal } => {
                if let Some(c) = self.cables.get_mut(*terminal) {
                    c.plug().map_err(setup("pseudo-terminal"))?;
                }
            }
            Action::CloudDown => self.sim.set_down(true).await,
            Action::CloudUp => self.sim.set_down(false).await,
            Action::CloudFault(rule) => self.sim.push_fault(rule.clone()),
            Action::RevokeTokens => self.sim.revoke_tokens(),
            Action::Kill => self.bridge.kill(),
            Action::Start => self.bridge.start().map_err(setup("bridge process"))?,
        }
        Ok(())
    }

    /// Fair weather: faults off, the cloud up, every cable clean and plugged, the
    /// bridge (re)started.
    pub(super) async fn fair_weather(
        &mut self,
        violations: &mut Vec<String>,
    ) -> Result<(), CampaignError> {
        self.sim.clear_faults();
        self.sim.set_down(false).await;
        for cable in &mut self.cables {
            cable.quiet();
            cable.plug().map_err(setup("pseudo-terminal"))?;
        }
        if let Some(status) = self.bridge.exited() {
            violations.push(format!("bridge exited by itself ({status})"));
            self.bridge.kill();
        }
        self.bridge.start().map_err(setup("bridge process"))
    }

    /// Stops the bridge with SIGTERM, as systemd would; it must exit cleanly.
    pub(super) async fn stop_bridge(&mut self, violations: &mut Vec<String>) {
        match self.bridge.stop(Duration::from_secs(10)).await {
            Some(status) if status.success() => {}
            other => violations.push(format!("bridge did not stop cleanly on SIGTERM: {other:?}")),
        }
    }

    /// Adds up the terminals' link statistics into `report`.
    pub(super) fn count_link_traffic(&self, report: &mut Report) {
        for t in &self.terminals {
            let stats = t.terminal.stats();
            report.frames_delivered += t.terminal.audit().delivered();
            report.frames += stats.frames_in + stats.frames_out;
            report.damaged += stats.damaged_total();
            report.retransmissions += stats.retransmissions;
            report.sessions += stats.sessions;
        }
    }
}

/// The cloud simulator, knowing the plan's payments.
async fn start_cloud(plan: &Plan) -> Result<CloudSim, CampaignError> {
    let mut sim_config = demo::sim_config("127.0.0.1:0".parse().map_err(setup("address"))?)
        .map_err(setup("simulator keys"))?;
    sim_config.async_delay = Duration::from_millis(400);
    sim_config.payments = plan.payments.clone();
    CloudSim::start(sim_config)
        .await
        .map_err(setup("cloud simulator"))
}

/// One cable per terminal, plugged in under `dir`, and the terminal at its far end
/// with the display the plan gives it.
fn plug_terminals(
    campaign: &Campaign,
    plan: &Plan,
    dir: &Path,
) -> Result<(Vec<Cable>, Vec<TerminalSide>), CampaignError> {
    let mut cables = Vec::new();
    let mut terminals = Vec::new();
    for i in 0..plan.terminals {
        let (mut cable, terminal_end) = Cable::new(
            dir.join(format!("posterminal{i}")),
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
    Ok((cables, terminals))
}

/// The bridge's configuration: the cables' devices, quick retries, the plan's limit
/// and the simulator as the provider (and, when the plan says so, Antom's v1 paths
/// and a notifyRefund receiver the simulator is told to post to).
fn bridge_config(
    plan: &Plan,
    provider: ProviderKind,
    sim: &CloudSim,
    cables: &[Cable],
    ledger_path: &Path,
) -> Result<String, CampaignError> {
    let mut config = format!("[ledger]\npath = \"{}\"\n\n", ledger_path.display());
    for cable in cables {
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
    Ok(config)
}

/// A free port on loopback for a listener the bridge opens.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
