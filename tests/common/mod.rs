//! The end-to-end test world: the real `posbridge run` process, the terminal emulator
//! on a pseudo-terminal line, and the cloud simulator — nothing of our own mocked.
//!
//! The line is two pseudo-terminals joined by a relay this test controls (so it can be
//! damaged); the bridge opens one end as its configured device, the emulator the other.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use posbridge::link::OneShot;
use posbridge::message::{Message, RefundState, RefundUpdate};
use posbridge::money::{Amount, Currency};
use posbridge::sim::cloud::books::{PaymentSeed, RefundMode};
use posbridge::sim::cloud::{CloudSim, demo};
use posbridge::sim::line::{LineControl, relay};
use posbridge::sim::terminal::{Terminal, TerminalEvent, TerminalIdentity};
use posbridge::transport::{PtyLink, Reopen, TransportConfig, open_pty};
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(30);

pub fn usd(value: i64) -> Amount {
    Amount::new(value, Currency::parse("USD").unwrap()).unwrap()
}

pub fn payment(id: &str, value: i64) -> PaymentSeed {
    PaymentSeed::new(id, usd(value))
}

pub fn async_payment(id: &str, value: i64) -> PaymentSeed {
    let mut p = PaymentSeed::new(id, usd(value));
    p.mode = RefundMode::Async;
    p
}

/// Polls `condition` until it holds, failing after `WAIT`.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The line between the bridge and the terminal.
pub struct Line {
    pub bridge_path: PathBuf,
    pub terminal_path: PathBuf,
    pub to_bridge: LineControl,
    pub to_terminal: LineControl,
    _ends: (PtyLink, PtyLink),
}

fn open_line() -> Line {
    let mut bridge_end = open_pty().unwrap();
    let mut terminal_end = open_pty().unwrap();
    let bridge_master = std::mem::replace(&mut bridge_end.master, open_pty().unwrap().master);
    let terminal_master = std::mem::replace(&mut terminal_end.master, open_pty().unwrap().master);
    let to_bridge = LineControl::default();
    let to_terminal = LineControl::default();
    let (b_read, b_write) = tokio::io::split(bridge_master);
    let (t_read, t_write) = tokio::io::split(terminal_master);
    tokio::spawn(relay(t_read, b_write, to_bridge.clone(), 11));
    tokio::spawn(relay(b_read, t_write, to_terminal.clone(), 12));
    Line {
        bridge_path: bridge_end.path.clone(),
        terminal_path: terminal_end.path.clone(),
        to_bridge,
        to_terminal,
        _ends: (bridge_end, terminal_end),
    }
}

/// The whole world of one test.
pub struct World {
    pub dir: tempfile::TempDir,
    pub sim: CloudSim,
    pub line: Line,
    pub config_path: PathBuf,
    bridge: Option<Child>,
    /// Extra environment for the bridge process.
    pub bridge_env: Vec<(String, String)>,
    pub terminal: Terminal,
    events: mpsc::Receiver<TerminalEvent>,
    /// Everything the terminal saw, in order.
    pub seen: Vec<TerminalEvent>,
}

/// What kind of provider, and extra configuration lines.
pub struct Setup {
    pub provider: &'static str,
    pub payments: Vec<PaymentSeed>,
    pub async_delay: Duration,
    pub extra_config: String,
    pub terminal_id: &'static str,
    /// Extra environment for the bridge process, from its first start.
    pub bridge_env: Vec<(String, String)>,
    /// `[shutdown] grace_ms`.
    pub grace_ms: u64,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            provider: "antom",
            payments: Vec::new(),
            async_delay: Duration::from_millis(300),
            extra_config: String::new(),
            terminal_id: "TERM-1",
            bridge_env: Vec::new(),
            grace_ms: 2000,
        }
    }
}

impl World {
    pub async fn new(setup: Setup) -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut config = demo::sim_config("127.0.0.1:0".parse().unwrap()).unwrap();
        config.async_delay = setup.async_delay;
        config.payments = setup.payments;
        let sim = CloudSim::start(config).await.unwrap();
        let line = open_line();
        let config_path = dir.path().join("posbridge.toml");
        let text = format!(
            "[ledger]\npath = \"{}\"\n\n[[terminal]]\ndevice = \"{}\"\n\n[retry]\nfirst_retry_ms = 50\nmax_retry_ms = 400\nfirst_poll_ms = 100\nmax_poll_ms = 400\n\n[shutdown]\ngrace_ms = {}\n\n{}\n{}",
            dir.path().join("ledger.sqlite").display(),
            line.bridge_path.display(),
            setup.grace_ms,
            setup.extra_config,
            demo::provider_toml(setup.provider, &sim.base_url()).unwrap(),
        );
        std::fs::write(&config_path, text).unwrap();
        let identity = TerminalIdentity {
            terminal_id: setup.terminal_id.into(),
            ..TerminalIdentity::default()
        };
        let (terminal, events) = Terminal::start(
            &identity,
            Some(115_200),
            None,
            Reopen::new(
                TransportConfig::serial(&line.terminal_path),
                Duration::from_millis(50),
            ),
        );
        let mut world = World {
            dir,
            sim,
            line,
            config_path,
            bridge: None,
            bridge_env: setup.bridge_env,
            terminal,
            events,
            seen: Vec::new(),
        };
        world.start_bridge();
        world
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.dir.path().join("ledger.sqlite")
    }

    pub fn start_bridge(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("bridge.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .env("RUST_LOG", "posbridge=debug")
            .envs(self.bridge_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("posbridge run starts");
        self.bridge = Some(child);
    }

    /// The running bridge's process id.
    pub fn bridge_pid(&self) -> Option<u32> {
        self.bridge.as_ref().map(Child::id)
    }

    /// SIGKILL: no chance to clean up, as with a power cut.
    pub fn kill_bridge(&mut self) {
        if let Some(mut child) = self.bridge.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop_bridge(&mut self) -> std::process::ExitStatus {
        let mut child = self.bridge.take().expect("bridge running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "bridge did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The whole log of the bridge processes so far.
    pub fn full_bridge_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bridge.log")).unwrap_or_default()
    }

    pub fn bridge_log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("bridge.log")) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Sends a REFUND from its own task (the ACK comes only once the bridge recorded it).
    pub fn refund(&self, id: &str, payment: &str, amount: Option<i64>) {
        let message = Message::Refund(posbridge::message::Refund {
            original_merchant_refund_id: id.into(),
            payment_id: payment.into(),
            refund_amount: amount.map(usd),
            memo: None,
        });
        self.send(message);
    }

    pub fn send(&self, message: Message) {
        let terminal = self.terminal.clone();
        tokio::spawn(async move {
            let _ = terminal.send(&message).await;
        });
    }

    /// Replaces the terminal: the old one disconnects, a new one says HELLO.
    pub fn reconnect_terminal(&mut self) {
        let identity = TerminalIdentity::default();
        let (terminal, events) = Terminal::start(
            &identity,
            Some(115_200),
            None,
            Reopen::new(
                TransportConfig::serial(&self.line.terminal_path),
                Duration::from_millis(50),
            ),
        );
        self.terminal = terminal;
        self.events = events;
    }

    /// The first event, among all seen so far and those still to come, that `want`
    /// accepts.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        want: impl FnMut(&TerminalEvent) -> Option<T>,
    ) -> T {
        self.wait_nth(what, 1, want).await
    }

    /// The `n`-th event (counting from 1) that `want` accepts.
    pub async fn wait_nth<T>(
        &mut self,
        what: &str,
        n: usize,
        mut want: impl FnMut(&TerminalEvent) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut found = 0;
        let mut checked = 0;
        loop {
            while checked < self.seen.len() {
                let hit = want(&self.seen[checked]);
                checked += 1;
                if let Some(hit) = hit {
                    found += 1;
                    if found == n {
                        return hit;
                    }
                }
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => self.seen.push(event),
                _ => panic!(
                    "terminal saw no {what} (#{n}) within {WAIT:?}\nbridge log:\n{}",
                    self.bridge_log()
                ),
            }
        }
    }

    /// Moves every event already received into `seen`, without waiting.
    pub fn drain_events(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.seen.push(event);
        }
    }

    /// The first REFUND_UPDATE in a final state for `id`.
    pub async fn final_update(&mut self, id: &str) -> RefundUpdate {
        let id = id.to_owned();
        self.wait_for(&format!("final state of {id}"), |e| match e {
            TerminalEvent::Message(Message::RefundUpdate(u))
                if u.original_merchant_refund_id == id && u.state.is_final() =>
            {
                Some(u.clone())
            }
            _ => None,
        })
        .await
    }

    /// The first REFUND_UPDATE for `id` in `state`.
    pub async fn update_in(&mut self, id: &str, state: RefundState) -> RefundUpdate {
        let id = id.to_owned();
        self.wait_for(&format!("{id} {state}"), |e| match e {
            TerminalEvent::Message(Message::RefundUpdate(u))
                if u.original_merchant_refund_id == id && u.state == state =>
            {
                Some(u.clone())
            }
            _ => None,
        })
        .await
    }

    /// Every REFUND_UPDATE state the terminal saw for `id`, in order.
    pub fn states_seen(&self, id: &str) -> Vec<RefundState> {
        self.seen
            .iter()
            .filter_map(TerminalEvent::refund_update)
            .filter(|u| u.original_merchant_refund_id == id)
            .map(|u| u.state)
            .collect()
    }

    /// Reads the ledger directly (as an operator command would).
    pub fn ledger(&self) -> posbridge::ledger::Ledger {
        posbridge::ledger::Ledger::open(&self.ledger_path()).unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.kill_bridge();
    }
}

/// Runs `posbridge ARGS` to its end off the runtime's threads, with `RUST_LOG` set
/// to `log`.
pub async fn posbridge_output(args: Vec<String>, log: &str) -> std::process::Output {
    let log = log.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args(args)
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// A command's standard output and standard error, as text.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Reads until the peer closes (or resets) the connection.
pub async fn until_closed(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// An address the daemon logged: the `listen=` field of the first line with `marker`.
pub async fn logged_addr(w: &World, marker: &str) -> std::net::SocketAddr {
    let mut addr = None;
    eventually(&format!("{marker:?} in the log"), || {
        addr = w
            .full_bridge_log()
            .lines()
            .find(|l| l.contains(marker))
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("listen=")))
            .and_then(|a| a.parse().ok());
        addr.is_some()
    })
    .await;
    addr.expect("logged")
}

/// The path of a file in the world's directory.
pub fn path_in(world: &World, name: &str) -> PathBuf {
    world.dir.path().join(name)
}

/// Whether `path` exists (for readability in tests).
pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// A direct in-process line end, for tests that drive the bridge library without a
/// process.
pub fn one_shot(io: impl posbridge::link::Io) -> OneShot {
    OneShot::new(io)
}
