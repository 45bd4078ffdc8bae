//! The power-cut campaign: the bridge installed in a virtual machine, the power cut
//! (QEMU killed with SIGKILL, so whatever the guest had not flushed to its virtual
//! disk is gone) at seeded random points with refunds in flight, the same disk booted
//! again, and the books checked at the end.
//!
//! The terminal and the cloud live on this side of the VM, where the cut does not
//! reach them: the terminal emulator speaks over QEMU's USB serial device (an FTDI
//! adapter in the guest, `/dev/ttyUSB0`, named by udev), whose character device is a
//! unix socket here; the cloud simulator is reached through [`tunnel`] over a
//! virtio-serial port — the guest has no network device. Like a real terminal, the
//! emulator stays powered through every cut: its line just goes quiet.
//!
//! At the end the guest is shut down cleanly, its ledger read from the disk image
//! (`debugfs`, no mount), and the fault campaign's checks ([`chaos::check`]) applied:
//! every refund the terminal saw acknowledged is in the ledger and final, and on
//! Antom each was executed exactly once (under one of its refundRequestIds).

mod guest;
mod host;
mod report;
mod terminal;
pub mod tunnel;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::net::{UnixListener, UnixStream};
use tokio::process::Child;
use tokio::sync::Mutex;

pub use guest::guest_tunnel;
pub use report::Report;

use crate::message::DisplayInfo;
use crate::money::Currency;
use crate::sim::chaos::check;
use crate::sim::chaos::plan::{Plan, ProviderKind};
use crate::sim::chaos::world::TerminalSide;
use crate::sim::cloud::{CloudSim, demo};
use host::{Line, boot, cut};
use terminal::{Traffic, bridge_up, open_refunds, settled};

/// The terminal's id in HELLO.
pub const TERMINAL_ID: &str = "PC-TERM";

/// A campaign's settings.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// The seed the schedule is drawn from.
    pub seed: u64,
    /// How many power cuts.
    pub cuts: u32,
    /// The command that boots the VM (it must exec QEMU, whose process is killed).
    pub boot: Vec<String>,
    /// Where QEMU's USB serial device connects (its chardev is a socket client).
    pub terminal_socket: PathBuf,
    /// Where QEMU's virtio-serial cloud channel connects.
    pub cloud_socket: PathBuf,
    /// Where QEMU's virtio-serial control channel connects: a line written there
    /// shuts the guest down cleanly (the last boot's end).
    pub control_socket: PathBuf,
    /// The guest's disk image, to read the ledger from at the end.
    pub disk: PathBuf,
    /// Where the ledger is inside the guest.
    pub guest_ledger: String,
    /// Where to put the ledger read from the disk.
    pub work: PathBuf,
    /// How long a boot may take until the bridge speaks to the terminal.
    pub up_within: Duration,
    /// How long everything may take to settle after the last boot.
    pub settle_within: Duration,
}

/// Why a campaign could not be carried out (not a finding).
#[derive(Debug, thiserror::Error)]
#[error("power-cut campaign: {0}")]
pub struct CampaignError(String);

fn setup<E: fmt::Display>(what: &str) -> impl FnOnce(E) -> CampaignError + '_ {
    move |e| CampaignError(format!("{what}: {e}"))
}

/// Runs the campaign.
pub async fn run(campaign: &Campaign) -> Result<Report, CampaignError> {
    let started = Instant::now();
    let mut rig = Rig::set_up(campaign).await?;
    for n in 0..campaign.cuts {
        if !rig.boot_and_cut(n).await? {
            break;
        }
    }
    let mut vm = rig.last_boot().await?;
    rig.wait_until_settled().await;
    rig.shut_down(&mut vm).await;
    rig.check_books().await?;
    let mut report = rig.finish().await;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// What the campaign runs on and has found so far: the cloud simulator, the
/// terminal and its line to whichever VM is running, the VM's control channel,
/// the traffic and the schedule of cuts.
struct Rig<'a> {
    campaign: &'a Campaign,
    report: Report,
    usd: Currency,
    sim: CloudSim,
    line: Line,
    control: Arc<Mutex<Option<UnixStream>>>,
    terminal: TerminalSide,
    /// Where the cuts fall.
    schedule: StdRng,
    traffic: Traffic,
    /// How long a boot takes to reach the bridge, as last measured.
    boot_time: Duration,
}

impl Rig<'_> {
    /// The cloud simulator, the sockets QEMU's character devices connect to, and
    /// the terminal at the end of its line.
    async fn set_up(campaign: &Campaign) -> Result<Rig<'_>, CampaignError> {
        let report = Report {
            seed: campaign.seed,
            ..Report::default()
        };
        let usd = Currency::parse("USD").map_err(setup("currency"))?;

        let mut sim_config = demo::sim_config("127.0.0.1:0".parse().map_err(setup("address"))?)
            .map_err(setup("simulator keys"))?;
        sim_config.payments = Vec::new();
        let sim = CloudSim::start(sim_config)
            .await
            .map_err(setup("cloud simulator"))?;

        for socket in [
            &campaign.terminal_socket,
            &campaign.cloud_socket,
            &campaign.control_socket,
        ] {
            let _ = std::fs::remove_file(socket);
        }
        let terminal_listener =
            UnixListener::bind(&campaign.terminal_socket).map_err(setup("terminal socket"))?;
        let cloud_listener =
            UnixListener::bind(&campaign.cloud_socket).map_err(setup("cloud socket"))?;
        host::serve_cloud(cloud_listener, sim.addr());
        let control = host::serve_control(
            UnixListener::bind(&campaign.control_socket).map_err(setup("control socket"))?,
        );
        let (terminal_end, far) = tokio::io::duplex(64 * 1024);
        let line = Line::start(terminal_listener, far);
        let terminal = TerminalSide::start(TERMINAL_ID, terminal_end, DisplayInfo::default());

        Ok(Rig {
            campaign,
            report,
            usd,
            sim,
            line,
            control,
            terminal,
            schedule: StdRng::seed_from_u64(campaign.seed),
            traffic: Traffic::new(campaign.seed),
            boot_time: Duration::from_secs(15),
        })
    }

    /// Boot `n` (from 0): boots the VM, sends refunds and cuts its power at a point
    /// drawn from the schedule. False when the bridge did not come up, and the
    /// campaign goes on to its last boot.
    async fn boot_and_cut(&mut self, n: u32) -> Result<bool, CampaignError> {
        let mut vm = boot(self.campaign).await?;
        self.report.boots += 1;
        let booted = Instant::now();
        let sessions = self.terminal.terminal.stats().sessions;
        // Mostly while the bridge runs with refunds in flight; sometimes while the
        // guest boots or the bridge recovers its ledger.
        let in_boot = self.schedule.random_range(0..100u32) < 15;
        // Now and then a cashier starts a refund while the box is still booting.
        if self.schedule.random_range(0..100u32) < 30 {
            self.traffic.one(&mut self.terminal, &self.sim, self.usd);
        }
        let Some(cut_at) = self.cut_point(n, in_boot, booted, sessions).await else {
            cut(&mut vm).await;
            return Ok(false);
        };
        self.traffic
            .until(cut_at, &mut self.terminal, &self.sim, self.usd)
            .await;
        let up_at_cut = self.terminal.terminal.stats().sessions > sessions;
        cut(&mut vm).await;
        self.line.cut().await?;
        self.count_cut(n, &mut vm, booted, up_at_cut);
        Ok(true)
    }

    /// When to cut the power of the VM booted at `booted`: during its boot, or a
    /// moment after the bridge spoke to the terminal. `None` when the bridge did
    /// not speak within `up_within`.
    async fn cut_point(
        &mut self,
        n: u32,
        in_boot: bool,
        booted: Instant,
        sessions: u64,
    ) -> Option<Instant> {
        if in_boot {
            // Anywhere from the kernel's start to a little after the bridge's, as
            // long as the last boot took to reach it.
            let share = self.schedule.random_range(0.1..1.1);
            return Some(booted + self.boot_time.mul_f64(share));
        }
        let up = bridge_up(&self.terminal, sessions, self.campaign.up_within).await;
        self.boot_time = booted.elapsed();
        if up {
            self.report.up_times.push(self.boot_time);
        }
        if !up {
            self.report.violations.push(format!(
                "boot {}: the bridge did not speak to the terminal within {:?}",
                n + 1,
                self.campaign.up_within
            ));
            return None;
        }
        Some(Instant::now() + Duration::from_millis(self.schedule.random_range(100..5_000)))
    }

    /// Counts cut `n` and what the terminal had open at it, and says so on stderr.
    fn count_cut(&mut self, n: u32, vm: &mut Child, booted: Instant, up_at_cut: bool) {
        let report = &mut self.report;
        report.cuts += 1;
        if !up_at_cut {
            report.cuts_in_boot += 1;
        }
        let (open, unacknowledged) = open_refunds(&self.terminal);
        report.open_at_cuts += open;
        report.unacknowledged_at_cuts += unacknowledged;
        if open > 0 {
            report.cuts_with_refunds_open += 1;
        }
        if let Some(vm_exit) = vm.try_wait().ok().flatten()
            && vm_exit.success()
        {
            report
                .violations
                .push(format!("boot {}: QEMU exited by itself ({vm_exit})", n + 1));
        }
        eprintln!(
            "cut {}/{}: {:.1} s after boot{}, {} open, {} unacknowledged, {} refunds so far",
            n + 1,
            self.campaign.cuts,
            booted.elapsed().as_secs_f64(),
            if up_at_cut {
                ""
            } else {
                " (bridge not up yet)"
            },
            open,
            unacknowledged,
            self.traffic.refunds
        );
    }

    /// The last boot: no more cuts, no more faults; the bridge must come up.
    async fn last_boot(&mut self) -> Result<Child, CampaignError> {
        self.sim.clear_faults();
        let vm = boot(self.campaign).await?;
        self.report.boots += 1;
        let sessions = self.terminal.terminal.stats().sessions;
        let booted = Instant::now();
        if bridge_up(&self.terminal, sessions, self.campaign.up_within).await {
            self.report.up_times.push(booted.elapsed());
        } else {
            self.report.violations.push(format!(
                "last boot: the bridge did not speak to the terminal within {:?}",
                self.campaign.up_within
            ));
        }
        Ok(vm)
    }

    /// Waits, up to `settle_within`, for everything the terminal sent to be
    /// acknowledged and final.
    async fn wait_until_settled(&mut self) {
        let deadline = Instant::now() + self.campaign.settle_within;
        while !settled(&self.terminal) {
            if Instant::now() >= deadline {
                let (open, unacknowledged) = open_refunds(&self.terminal);
                self.report.violations.push(format!(
                    "not settled within {:?} of the last boot: {open} refunds not final, {unacknowledged} not acknowledged",
                    self.campaign.settle_within
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Shuts the guest down cleanly. Final states reach the ledger's "delivered"
    /// mark a moment after the terminal acknowledges them; the clean shutdown lets
    /// those commits finish.
    async fn shut_down(&mut self, vm: &mut Child) {
        if !host::shut_down(&self.control, vm).await {
            self.report
                .violations
                .push("the guest did not shut down cleanly at the end".into());
        }
    }

    /// Reads the ledger from the disk and applies the fault campaign's checks.
    async fn check_books(&mut self) -> Result<(), CampaignError> {
        let ledger = host::read_ledger(self.campaign).await?;
        let terminals = std::slice::from_ref(&self.terminal);
        if !check::settled(&ledger, terminals, false) {
            self.report.violations.push(
                "the ledger is not settled: an acknowledged refund is missing, not final or its final state not delivered"
                    .into(),
            );
        }
        // The checks read the plan only for a refund limit, and the campaign sets none.
        let plan = Plan {
            seed: self.campaign.seed,
            provider: ProviderKind::Antom,
            terminals: 1,
            displays: vec![DisplayInfo::default()],
            antom_v1: false,
            notify: false,
            limit: None,
            payments: Vec::new(),
            steps: Vec::new(),
        };
        let findings = check::check(
            ProviderKind::Antom,
            &plan,
            &ledger,
            &self.sim,
            terminals,
            "",
        );
        self.report.violations.extend(findings.violations);
        self.report.by_state = findings.by_state;
        self.report.executed = findings.executed;
        Ok(())
    }

    /// The figures of the whole campaign; stops the cloud simulator.
    async fn finish(self) -> Report {
        let mut report = self.report;
        let requests = self.sim.stats().requests;
        report.provider_calls = ["antom_v1_refund", "antom_v2_refund"]
            .iter()
            .filter_map(|name| requests.get(*name))
            .sum();
        report.refunds = self.traffic.refunds;
        report.repeats = self.traffic.repeats;
        report.sessions = self.terminal.terminal.stats().sessions;
        self.sim.shutdown().await;
        report
    }
}
