//! The bridge's full path under load: `posbridge run` (release build) serving 8
//! emulated terminals on pseudo-terminal lines, sending to the cloud simulator.
//!
//! Run with `cargo bench --bench bridge` (add `-- --refunds N --queued M` to change the
//! sizes, `--terminals N` for another number of terminals, `--antom` for Antom's
//! signed API instead of PaymentOptions). It reports, for docs/PERFORMANCE.md:
//! - refunds/s sustained, from the first REFUND sent to the last final state seen;
//! - the bridge's own latency, REFUND frame in → provider request out (p50/p99, as
//!   the bridge measures it and logs when it stops);
//! - the bridge process's peak RSS with 8 terminals, and with 10,000 refunds queued
//!   while the cloud is down, and how fast that queue drains when it returns;
//! - fairness: each terminal's p99 from REFUND sent to final state seen, the median
//!   terminal's against the slowest's; and the bridge's CPU time per refund.
//!
//! `-- --soak N` runs the soak instead: N refunds (100,000 for the record) through the
//! 8 terminals at `--rate`, sampling the bridge's RSS and open file descriptors as
//! they go; it fails unless every refund was executed once, the RSS at the end is
//! within 10 % of the RSS after the warm-up (the first tenth), and the fewest
//! descriptors open in the second half is no more than in the first.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use posbridge::link::OneShot;
use posbridge::message::{Message, Refund, RefundState};
use posbridge::money::{Amount, Currency};
use posbridge::sim::cloud::books::PaymentSeed;
use posbridge::sim::cloud::{CloudSim, demo};
use posbridge::sim::terminal::{Terminal, TerminalEvent, TerminalIdentity};
use posbridge::transport::{PtyLink, open_pty};
use tokio::sync::mpsc;

/// Terminals served (`--terminals N`; 8 unless given).
static TERMINALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(8);

fn terminals() -> usize {
    TERMINALS.load(std::sync::atomic::Ordering::Relaxed)
}

/// When each refund was sent, by its id, for the latency each terminal sees.
type Sent = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>;

struct Args {
    refunds: usize,
    queued: usize,
    rate: f64,
    provider: &'static str,
    soak: Option<usize>,
}

fn args() -> Args {
    let mut args = Args {
        refunds: 6000,
        queued: 10_000,
        rate: 300.0,
        provider: "paymentoptions",
        soak: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--refunds" => {
                args.refunds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(args.refunds)
            }
            "--queued" => {
                args.queued = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(args.queued)
            }
            "--rate" => args.rate = it.next().and_then(|v| v.parse().ok()).unwrap_or(args.rate),
            "--antom" => args.provider = "antom",
            "--terminals" => {
                if let Some(n) = it.next().and_then(|v| v.parse().ok()) {
                    TERMINALS.store(n, std::sync::atomic::Ordering::Relaxed);
                }
            }
            "--soak" => args.soak = it.next().and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    args
}

fn usd(v: i64) -> Amount {
    Amount::new(v, Currency::parse("USD").unwrap()).unwrap()
}

struct Bridge {
    child: Child,
    log: std::sync::mpsc::Receiver<String>,
}

impl Bridge {
    fn start(config: &std::path::Path) -> Bridge {
        let mut child = Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn,posbridge::daemon=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("posbridge run");
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Bridge { child, log }
    }

    /// VmRSS and VmHWM (peak) in KiB.
    fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// CPU time the process has used (user and system), from /proc/PID/stat.
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command's closing parenthesis: utime and stime are the
        // 12th and 13th there, in clock ticks.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let ticks: u64 = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|v| v.parse::<u64>().ok())
            .sum();
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as u64;
        Duration::from_secs_f64(ticks as f64 / hz as f64)
    }

    /// Open file descriptors.
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Stops it and returns its closing statistics line.
    fn stop(mut self) -> String {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let _ = self.child.wait();
        let mut last = String::new();
        while let Ok(line) = self.log.recv_timeout(Duration::from_secs(5)) {
            if line.contains("stopped") {
                last = line;
            }
        }
        last
    }
}

fn field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or("?")
        .to_owned()
}

struct World {
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
    _lines: Vec<PtyLink>,
    terminals: Vec<Terminal>,
    events: mpsc::UnboundedReceiver<(usize, TerminalEvent)>,
    sent: Sent,
}

async fn world(sim: &CloudSim, provider: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    let mut devices = String::new();
    let mut masters = Vec::new();
    for _ in 0..terminals() {
        let mut line = open_pty().unwrap();
        devices.push_str(&format!(
            "[[terminal]]\ndevice = \"{}\"\n\n",
            line.path.display()
        ));
        masters.push(std::mem::replace(
            &mut line.master,
            open_pty().unwrap().master,
        ));
        lines.push(line);
    }
    let config = dir.path().join("posbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\npath = \"{}\"\n\n{devices}[retry]\nfirst_retry_ms = 100\nmax_retry_ms = 1000\n\n{}",
            dir.path().join("ledger.sqlite").display(),
            demo::provider_toml(provider, &sim.base_url()).unwrap()
        ),
    )
    .unwrap();
    let (tx, events) = mpsc::unbounded_channel();
    let mut terminals = Vec::new();
    for (i, master) in masters.into_iter().enumerate() {
        let identity = TerminalIdentity {
            terminal_id: format!("T{i}"),
            ..TerminalIdentity::default()
        };
        let (terminal, mut rx) = Terminal::start(&identity, None, None, OneShot::new(master));
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                let _ = tx.send((i, e));
            }
        });
        terminals.push(terminal);
    }
    World {
        _dir: dir,
        config,
        _lines: lines,
        terminals,
        events,
        sent: Sent::default(),
    }
}

/// Sends `count` refunds spread over the terminals, each terminal one after another,
/// as fast as the link takes them or, with `rate`, at that many per second in all.
fn send_all(w: &World, count: usize, prefix: &str, rate: Option<f64>) {
    let n = w.terminals.len();
    for (t, terminal) in w.terminals.iter().enumerate() {
        let terminal = terminal.clone();
        let prefix = prefix.to_owned();
        let sent = w.sent.clone();
        tokio::spawn(async move {
            let mut pace =
                rate.map(|r| tokio::time::interval(Duration::from_secs_f64(n as f64 / r)));
            let mut i = t;
            while i < count {
                if let Some(pace) = &mut pace {
                    pace.tick().await;
                }
                let id = format!("{prefix}-{i}");
                if let Ok(mut sent) = sent.lock() {
                    sent.insert(id.clone(), Instant::now());
                }
                let refund = Message::Refund(Refund {
                    original_merchant_refund_id: id,
                    payment_id: format!("PAY-{i}"),
                    refund_amount: Some(usd(100)),
                    memo: None,
                });
                let _ = terminal.send(&refund).await;
                i += n;
            }
        });
    }
}

/// Waits until every refund reached a state accepted by `done`; returns, per
/// terminal, the time each of its refunds took from REFUND sent to that state.
async fn wait_all(
    w: &mut World,
    count: usize,
    done: impl Fn(RefundState) -> bool,
) -> Vec<Vec<Duration>> {
    let mut finished = HashSet::new();
    let mut per_terminal = vec![Vec::new(); w.terminals.len()];
    let deadline = Instant::now() + Duration::from_secs(600);
    while finished.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, w.events.recv()).await {
            Ok(Some((t, TerminalEvent::Message(Message::RefundUpdate(u))))) if done(u.state) => {
                let took = w
                    .sent
                    .lock()
                    .ok()
                    .and_then(|s| s.get(&u.original_merchant_refund_id).map(|at| at.elapsed()));
                if finished.insert(u.original_merchant_refund_id)
                    && let (Some(took), Some(times)) = (took, per_terminal.get_mut(t))
                {
                    times.push(took);
                }
            }
            Ok(Some(_)) => {}
            _ => panic!("only {} of {count} refunds got there", finished.len()),
        }
    }
    per_terminal
}

/// Each terminal's p99 (REFUND sent → final state seen); the median terminal's and
/// the slowest terminal's.
fn fairness(per_terminal: &mut [Vec<Duration>]) -> (Duration, Duration) {
    let mut p99s: Vec<Duration> = per_terminal
        .iter_mut()
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.sort();
            t[((t.len() - 1) as f64 * 0.99).round() as usize]
        })
        .collect();
    p99s.sort();
    let median = p99s.get(p99s.len() / 2).copied().unwrap_or_default();
    let worst = p99s.last().copied().unwrap_or_default();
    (median, worst)
}

async fn up(w: &mut World) {
    let mut ups = HashSet::new();
    while ups.len() < w.terminals.len() {
        if let Some((i, TerminalEvent::Up)) = w.events.recv().await {
            ups.insert(i);
        }
    }
}

/// The soak: `count` refunds at `rate`, with the bridge's memory and descriptors
/// sampled every twentieth of the way.
async fn soak(args: &Args, count: usize) {
    let mut config = demo::sim_config("127.0.0.1:0".parse().unwrap()).unwrap();
    config.payments = (0..count)
        .map(|i| PaymentSeed::new(format!("PAY-{i}"), usd(1_000_000)))
        .collect();
    let sim = CloudSim::start(config).await.unwrap();
    let mut w = world(&sim, args.provider).await;
    let bridge = Bridge::start(&w.config);
    up(&mut w).await;
    println!(
        "## Soak: {count} refunds at {:.0}/s offered, {} terminals, provider {}",
        args.rate,
        terminals(),
        args.provider
    );
    println!("| refunds final | elapsed s | RSS MiB | open fds |");
    println!("| ---: | ---: | ---: | ---: |");
    let started = Instant::now();
    send_all(&w, count, "S", Some(args.rate));
    let step = (count / 20).max(1);
    let warm_up = count / 10;
    let mut finished = HashSet::new();
    let mut after_warm_up = None;
    let mut samples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3600);
    while finished.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, w.events.recv()).await {
            Ok(Some((_, TerminalEvent::Message(Message::RefundUpdate(u)))))
                if u.state.is_final() =>
            {
                if finished.insert(u.original_merchant_refund_id) && finished.len() % step == 0 {
                    let (rss, _) = bridge.rss_kib();
                    let fds = bridge.fds();
                    println!(
                        "| {} | {:.0} | {:.1} | {fds} |",
                        finished.len(),
                        started.elapsed().as_secs_f64(),
                        rss as f64 / 1024.0
                    );
                    if finished.len() >= warm_up && after_warm_up.is_none() {
                        after_warm_up = Some((rss, fds));
                    }
                    samples.push((rss, fds));
                }
            }
            Ok(Some(_)) => {}
            _ => panic!("only {} of {count} refunds got there", finished.len()),
        }
    }
    let elapsed = started.elapsed();
    let (end_rss, end_fds) = samples.last().copied().unwrap_or_default();
    let (warm_rss, warm_fds) = after_warm_up.unwrap_or((end_rss, end_fds));
    let (_, peak) = bridge.rss_kib();
    let stats = bridge.stop();
    let executed: u32 = (0..count).map(|i| sim.executed(&format!("PAY-{i}"))).sum();
    println!(
        "{count} refunds in {:.0} s ({:.0}/s); provider executed {executed}; RSS after warm-up {:.1} MiB, at the end {:.1} MiB ({:+.1} %), peak {:.1} MiB; fds {warm_fds} → {end_fds}; own latency p50 {} µs p99 {} µs",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        warm_rss as f64 / 1024.0,
        end_rss as f64 / 1024.0,
        (end_rss as f64 - warm_rss as f64) * 100.0 / warm_rss.max(1) as f64,
        peak as f64 / 1024.0,
        field(&stats, "own_latency_p50_us"),
        field(&stats, "own_latency_p99_us"),
    );
    assert_eq!(
        executed as usize, count,
        "every refund executed exactly once"
    );
    assert!(
        end_rss as f64 <= warm_rss as f64 * 1.10,
        "RSS grew more than 10 % after the warm-up"
    );
    // Pooled cloud connections come and go (up to one per call in flight), so the
    // count moves by a few; a leak raises its floor.
    let half = samples.len() / 2;
    let floor = |s: &[(u64, usize)]| s.iter().map(|&(_, f)| f).min().unwrap_or(0);
    let (first_half, second_half) = samples.split_at(half);
    assert!(
        floor(second_half) <= floor(first_half),
        "open file descriptors grew: at least {} open in the first half, {} in the second",
        floor(first_half),
        floor(second_half)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    if let Some(count) = args.soak {
        soak(&args, count).await;
        return;
    }
    let total = args.refunds.max(args.queued);
    let mut config = demo::sim_config("127.0.0.1:0".parse().unwrap()).unwrap();
    config.payments = (0..total)
        .map(|i| PaymentSeed::new(format!("PAY-{i}"), usd(1_000_000)))
        .collect();
    let sim = CloudSim::start(config).await.unwrap();

    // Sustained rate with latency, then as fast as the terminals can send.
    for rate in [Some(args.rate), None] {
        let mut w = world(&sim, args.provider).await;
        let bridge = Bridge::start(&w.config);
        up(&mut w).await;
        let started = Instant::now();
        let cpu_before = bridge.cpu();
        let prefix = if rate.is_some() { "P" } else { "R" };
        send_all(&w, args.refunds, prefix, rate);
        let mut per_terminal = wait_all(&mut w, args.refunds, RefundState::is_final).await;
        let elapsed = started.elapsed();
        let cpu = bridge.cpu().saturating_sub(cpu_before);
        let (median_p99, worst_p99) = fairness(&mut per_terminal);
        let (_, peak) = bridge.rss_kib();
        let stats = bridge.stop();
        match rate {
            Some(r) => println!(
                "## Offered {r:.0} refunds/s, {} terminals, provider {}",
                terminals(),
                args.provider
            ),
            None => println!(
                "## As fast as the terminals send, {} terminals, provider {}",
                terminals(),
                args.provider
            ),
        }
        println!(
            "refunds: {}  elapsed: {:.2} s  rate: {:.0} refunds/s",
            args.refunds,
            elapsed.as_secs_f64(),
            args.refunds as f64 / elapsed.as_secs_f64()
        );
        println!(
            "own latency (REFUND in → request out): p50 {} µs, p99 {} µs over {} refunds; cloud call p50 {} µs, p99 {} µs",
            field(&stats, "own_latency_p50_us"),
            field(&stats, "own_latency_p99_us"),
            field(&stats, "refunds_sent"),
            field(&stats, "cloud_latency_p50_us"),
            field(&stats, "cloud_latency_p99_us"),
        );
        println!(
            "recording a REFUND in the ledger (before its ACK): p50 {} µs, p99 {} µs",
            field(&stats, "record_latency_p50_us"),
            field(&stats, "record_latency_p99_us"),
        );
        println!("bridge peak RSS: {:.1} MiB", peak as f64 / 1024.0);
        println!(
            "per terminal, REFUND sent → final state seen: median terminal's p99 {:.1} ms, slowest terminal's p99 {:.1} ms ({:.2}x)",
            median_p99.as_secs_f64() * 1000.0,
            worst_p99.as_secs_f64() * 1000.0,
            worst_p99.as_secs_f64() / median_p99.as_secs_f64().max(1e-9)
        );
        println!(
            "bridge CPU: {:.2} s for {} refunds, {:.0} µs per refund",
            cpu.as_secs_f64(),
            args.refunds,
            cpu.as_secs_f64() * 1e6 / args.refunds as f64
        );
    }

    // Queued while the cloud is down.
    let mut w = world(&sim, args.provider).await;
    let bridge = Bridge::start(&w.config);
    up(&mut w).await;
    sim.set_down(true).await;
    let started = Instant::now();
    send_all(&w, args.queued, "Q", None);
    wait_all(&mut w, args.queued, |s| s == RefundState::Queued).await;
    let accept_time = started.elapsed();
    let (rss, peak) = bridge.rss_kib();
    sim.set_down(false).await;
    let drain_start = Instant::now();
    wait_all(&mut w, args.queued, RefundState::is_final).await;
    let drain = drain_start.elapsed();
    let (_, peak_after) = bridge.rss_kib();
    bridge.stop();
    println!(
        "## {} refunds queued while the cloud is down, {} terminals",
        args.queued,
        terminals()
    );
    println!(
        "accepted as QUEUED in {:.2} s ({:.0}/s); bridge RSS {:.1} MiB, peak {:.1} MiB",
        accept_time.as_secs_f64(),
        args.queued as f64 / accept_time.as_secs_f64(),
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!(
        "drained in {:.2} s ({:.0} refunds/s) once the cloud returned; peak RSS {:.1} MiB",
        drain.as_secs_f64(),
        args.queued as f64 / drain.as_secs_f64(),
        peak_after as f64 / 1024.0
    );
}
