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

pub mod tunnel;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::ledger::Ledger;
use crate::message::{DisplayInfo, RefundState};
use crate::money::{Amount, Currency};
use crate::sim::chaos::check;
use crate::sim::chaos::plan::{Plan, ProviderKind};
use crate::sim::chaos::world::TerminalSide;
use crate::sim::cloud::faults::{Fault, FaultRule, FaultTarget};
use crate::sim::cloud::ledger::PaymentSeed;
use crate::sim::cloud::{CloudSim, demo};

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

/// Why a campaign could not be carried out (not a finding).
#[derive(Debug, thiserror::Error)]
#[error("power-cut campaign: {0}")]
pub struct CampaignError(String);

fn setup<E: fmt::Display>(what: &str) -> impl FnOnce(E) -> CampaignError + '_ {
    move |e| CampaignError(format!("{what}: {e}"))
}

/// The terminal's line: a cable whose far end is whichever QEMU is running.
struct Line {
    /// Writes to the current QEMU (none between boots: bytes fall on the floor).
    to_vm: Arc<Mutex<Option<tokio::net::unix::OwnedWriteHalf>>>,
    /// The task carrying the current QEMU's bytes to the terminal.
    from_vm: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// How long the bytes a dead QEMU left in its socket may take to reach the terminal.
const DRAIN_WITHIN: Duration = Duration::from_secs(30);

impl Line {
    /// Accepts each QEMU's connection on `listener` and joins it to `far`, the far
    /// end of the terminal's duplex stream.
    fn start(listener: UnixListener, far: tokio::io::DuplexStream) -> Line {
        let to_vm: Arc<Mutex<Option<tokio::net::unix::OwnedWriteHalf>>> = Arc::default();
        let from_vm: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (mut far_read, far_write) = tokio::io::split(far);
        let far_write = Arc::new(Mutex::new(far_write));
        let writer = to_vm.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = far_read.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                let mut slot = writer.lock().await;
                if let Some(w) = slot.as_mut()
                    && w.write_all(buf.get(..n).unwrap_or_default()).await.is_err()
                {
                    *slot = None;
                }
            }
        });
        let slot = to_vm.clone();
        let reader_slot = from_vm.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (mut read, write) = stream.into_split();
                *slot.lock().await = Some(write);
                let far_write = far_write.clone();
                let reader = tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = read.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        if far_write
                            .lock()
                            .await
                            .write_all(buf.get(..n).unwrap_or_default())
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
                *reader_slot.lock().await = Some(reader);
            }
        });
        Line { to_vm, from_vm }
    }

    /// The VM is gone (its process reaped): nothing more reaches it, and what it had
    /// written before the cut — the bytes still in its socket, like bytes on a cable
    /// when the power goes — reaches the terminal before anything of the next boot
    /// can. The next QEMU is started only after this returns, so a frame the terminal
    /// receives in a later session was sent by a later boot.
    async fn cut(&self) -> Result<(), CampaignError> {
        *self.to_vm.lock().await = None;
        let Some(reader) = self.from_vm.lock().await.take() else {
            return Ok(());
        };
        let abort = reader.abort_handle();
        match tokio::time::timeout(DRAIN_WITHIN, reader).await {
            Ok(_) => Ok(()),
            Err(_) => {
                abort.abort();
                Err(CampaignError(format!(
                    "the terminal's line from the dead VM did not drain within {DRAIN_WITHIN:?}"
                )))
            }
        }
    }
}

/// Serves the cloud channel of each QEMU that connects.
fn serve_cloud(listener: UnixListener, sim: std::net::SocketAddr) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(tunnel::serve(stream, tunnel::Side::Host(sim)));
        }
    });
}

/// What the terminal has open: refunds sent and not final in its view, and REFUNDs
/// not acknowledged.
fn open_refunds(terminal: &TerminalSide) -> (u64, u64) {
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
fn settled(terminal: &TerminalSide) -> bool {
    terminal.in_flight() == 0 && open_refunds(terminal) == (0, 0)
}

async fn boot(campaign: &Campaign) -> Result<Child, CampaignError> {
    let (program, args) = campaign
        .boot
        .split_first()
        .ok_or_else(|| CampaignError("no boot command".into()))?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(setup("boot command"))
}

/// The power cut: SIGKILL, no chance to flush anything.
async fn cut(vm: &mut Child) {
    let _ = vm.start_kill();
    let _ = vm.wait().await;
}

/// Waits until the terminal has had more than `sessions` link sessions.
async fn bridge_up(terminal: &TerminalSide, sessions: u64, within: Duration) -> bool {
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
struct Traffic {
    rng: StdRng,
    next: u32,
    made: Vec<String>,
    refunds: u32,
    repeats: u32,
}

impl Traffic {
    /// Sends traffic until `until`.
    async fn until(
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

    fn one(&mut self, terminal: &mut TerminalSide, sim: &CloudSim, usd: Currency) {
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

/// Reads the guest's ledger (and its write-ahead log, if any) out of the disk image.
async fn read_ledger(campaign: &Campaign) -> Result<Ledger, CampaignError> {
    let dir = campaign.work.join("ledger-after");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(setup("ledger directory"))?;
    let local = dir.join("ledger.sqlite");
    for suffix in ["", "-wal"] {
        let out = Command::new("debugfs")
            .arg("-R")
            .arg(format!(
                "dump {}{suffix} {}{suffix}",
                campaign.guest_ledger,
                local.display()
            ))
            .arg(&campaign.disk)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(setup("debugfs"))?;
        if suffix.is_empty() && !local.exists() {
            return Err(CampaignError(format!(
                "no ledger at {} in {}: {}",
                campaign.guest_ledger,
                campaign.disk.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ledger::open(&local).map_err(setup("the ledger read from the disk"))
}

/// The control channel of each QEMU that connects; the latest is kept.
fn serve_control(listener: UnixListener) -> Arc<Mutex<Option<UnixStream>>> {
    let latest: Arc<Mutex<Option<UnixStream>>> = Arc::default();
    let slot = latest.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            *slot.lock().await = Some(stream);
        }
    });
    latest
}

/// Asks the guest to shut down and waits for QEMU to exit; cuts the power if it
/// does not.
async fn shut_down(control: &Mutex<Option<UnixStream>>, vm: &mut Child) -> bool {
    if let Some(stream) = control.lock().await.as_mut()
        && stream.write_all(b"poweroff\n").await.is_ok()
        && tokio::time::timeout(Duration::from_secs(180), vm.wait())
            .await
            .is_ok()
    {
        return true;
    }
    cut(vm).await;
    false
}

/// Runs the campaign.
pub async fn run(campaign: &Campaign) -> Result<Report, CampaignError> {
    let started = Instant::now();
    let mut report = Report {
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
    serve_cloud(cloud_listener, sim.addr());
    let control = serve_control(
        UnixListener::bind(&campaign.control_socket).map_err(setup("control socket"))?,
    );
    let (terminal_end, far) = tokio::io::duplex(64 * 1024);
    let line = Line::start(terminal_listener, far);
    let mut terminal = TerminalSide::start(TERMINAL_ID, terminal_end, DisplayInfo::default());

    let mut rng = StdRng::seed_from_u64(campaign.seed);
    let mut traffic = Traffic {
        rng: StdRng::seed_from_u64(campaign.seed ^ 0x5eed),
        next: 0,
        made: Vec::new(),
        refunds: 0,
        repeats: 0,
    };

    // How long a boot takes to reach the bridge, as last measured.
    let mut boot_time = Duration::from_secs(15);
    for n in 0..campaign.cuts {
        let mut vm = boot(campaign).await?;
        report.boots += 1;
        let booted = Instant::now();
        let sessions = terminal.terminal.stats().sessions;
        // Mostly while the bridge runs with refunds in flight; sometimes while the
        // guest boots or the bridge recovers its ledger.
        let in_boot = rng.random_range(0..100u32) < 15;
        // Now and then a cashier starts a refund while the box is still booting.
        if rng.random_range(0..100u32) < 30 {
            traffic.one(&mut terminal, &sim, usd);
        }
        let cut_at = if in_boot {
            // Anywhere from the kernel's start to a little after the bridge's, as
            // long as the last boot took to reach it.
            let share = rng.random_range(0.1..1.1);
            booted + boot_time.mul_f64(share)
        } else {
            let up = bridge_up(&terminal, sessions, campaign.up_within).await;
            boot_time = booted.elapsed();
            if up {
                report.up_times.push(boot_time);
            }
            if !up {
                report.violations.push(format!(
                    "boot {}: the bridge did not speak to the terminal within {:?}",
                    n + 1,
                    campaign.up_within
                ));
                cut(&mut vm).await;
                break;
            }
            Instant::now() + Duration::from_millis(rng.random_range(100..5_000))
        };
        traffic.until(cut_at, &mut terminal, &sim, usd).await;
        let up_at_cut = terminal.terminal.stats().sessions > sessions;
        cut(&mut vm).await;
        line.cut().await?;
        report.cuts += 1;
        if !up_at_cut {
            report.cuts_in_boot += 1;
        }
        let (open, unacknowledged) = open_refunds(&terminal);
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
            campaign.cuts,
            booted.elapsed().as_secs_f64(),
            if up_at_cut {
                ""
            } else {
                " (bridge not up yet)"
            },
            open,
            unacknowledged,
            traffic.refunds
        );
    }

    // The last boot: no more cuts, no more faults; everything must settle.
    sim.clear_faults();
    let mut vm = boot(campaign).await?;
    report.boots += 1;
    let sessions = terminal.terminal.stats().sessions;
    let booted = Instant::now();
    if bridge_up(&terminal, sessions, campaign.up_within).await {
        report.up_times.push(booted.elapsed());
    } else {
        report.violations.push(format!(
            "last boot: the bridge did not speak to the terminal within {:?}",
            campaign.up_within
        ));
    }
    let deadline = Instant::now() + campaign.settle_within;
    while !settled(&terminal) {
        if Instant::now() >= deadline {
            let (open, unacknowledged) = open_refunds(&terminal);
            report.violations.push(format!(
                "not settled within {:?} of the last boot: {open} refunds not final, {unacknowledged} not acknowledged",
                campaign.settle_within
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Final states reach the ledger's "delivered" mark a moment after the terminal
    // acknowledges them; the clean shutdown lets those commits finish.
    if !shut_down(&control, &mut vm).await {
        report
            .violations
            .push("the guest did not shut down cleanly at the end".into());
    }

    let ledger = read_ledger(campaign).await?;
    let terminals = [terminal];
    if !check::settled(&ledger, &terminals, false) {
        report.violations.push(
            "the ledger is not settled: an acknowledged refund is missing, not final or its final state not delivered"
                .into(),
        );
    }
    // The checks read the plan only for a refund limit, and the campaign sets none.
    let plan = Plan {
        seed: campaign.seed,
        provider: ProviderKind::Antom,
        terminals: 1,
        displays: vec![DisplayInfo::default()],
        antom_v1: false,
        notify: false,
        limit: None,
        payments: Vec::new(),
        steps: Vec::new(),
    };
    let findings = check::check(ProviderKind::Antom, &plan, &ledger, &sim, &terminals, "");
    report.violations.extend(findings.violations);
    report.by_state = findings.by_state;
    report.executed = findings.executed;
    let requests = sim.stats().requests;
    report.provider_calls = ["antom_v1_refund", "antom_v2_refund"]
        .iter()
        .filter_map(|name| requests.get(*name))
        .sum();
    report.refunds = traffic.refunds;
    report.repeats = traffic.repeats;
    report.sessions = terminals
        .first()
        .map(|t| t.terminal.stats().sessions)
        .unwrap_or_default();
    sim.shutdown().await;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The guest's end of the cloud channel: accepts on `listen` and carries each
/// connection over the virtio-serial port at `port`.
pub async fn guest_tunnel(listen: std::net::SocketAddr, port: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(port)?;
    let receiver = tokio::net::unix::pipe::Receiver::from_file_unchecked(file.try_clone()?)?;
    let sender = tokio::net::unix::pipe::Sender::from_file_unchecked(file)?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tunnel::serve(
        tokio::io::join(receiver, sender),
        tunnel::Side::Guest(listener),
    )
    .await
}
