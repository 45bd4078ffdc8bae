//! The campaign's world: the real bridge process, a pluggable noisy cable per
//! terminal, the terminal emulators and what they saw.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::link::OneShot;
use crate::message::text_width;
use crate::message::{DisplayCharset, DisplayInfo, Inquiry, Message, Refund, RefundState};
use crate::money::{Amount, Currency};
use crate::sim::line::{LineControl, LineFaults, noisy_pipe};
use crate::sim::terminal::{Terminal, TerminalEvent, TerminalIdentity};
use crate::transport::{PtyLink, SymlinkGuard, open_pty};

/// The bridge's end of one cable: a pseudo-terminal behind a udev-style name.
struct Plugged {
    _pty: PtyLink,
    _name: SymlinkGuard,
    pumps: Vec<JoinHandle<()>>,
}

impl Drop for Plugged {
    fn drop(&mut self) {
        for pump in &self.pumps {
            pump.abort();
        }
    }
}

/// A cable: the terminal's end never goes away (the terminal stays powered); the
/// bridge's end is a device that can be unplugged and plugged back; the line between
/// them can turn noisy.
pub struct Cable {
    /// The device name the bridge is configured with.
    pub name: PathBuf,
    to_terminal: mpsc::UnboundedSender<Vec<u8>>,
    from_terminal: broadcast::Sender<Vec<u8>>,
    plugged: Option<Plugged>,
    up: LineControl,
    down: LineControl,
}

impl Cable {
    /// A cable whose bridge end will be `name`; returns the terminal's end too.
    pub fn new(name: PathBuf, seed: u64) -> (Cable, tokio::io::DuplexStream) {
        let up = LineControl::default();
        let down = LineControl::default();
        let (terminal_end, far_end) = noisy_pipe(up.clone(), down.clone(), seed);
        let (to_terminal, mut to_terminal_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (from_terminal, _) = broadcast::channel::<Vec<u8>>(4096);
        let (mut far_read, mut far_write) = tokio::io::split(far_end);
        let from = from_terminal.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = far_read.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                // Nobody subscribed means unplugged: the bytes fall on the floor.
                let _ = from.send(buf.get(..n).unwrap_or_default().to_vec());
            }
        });
        tokio::spawn(async move {
            while let Some(bytes) = to_terminal_rx.recv().await {
                if far_write.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });
        let cable = Cable {
            name,
            to_terminal,
            from_terminal,
            plugged: None,
            up,
            down,
        };
        (cable, terminal_end)
    }

    /// Plugs a fresh device in under the cable's name (nothing if already plugged).
    pub fn plug(&mut self) -> std::io::Result<()> {
        if self.plugged.is_some() {
            return Ok(());
        }
        let mut pty = open_pty()?;
        let name = SymlinkGuard::create(&self.name, &pty.path)?;
        let master = std::mem::replace(&mut pty.master, open_pty()?.master);
        let (mut read, mut write) = tokio::io::split(master);
        let mut rx = self.from_terminal.subscribe();
        let down = tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(bytes) => {
                        if write.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let to_terminal = self.to_terminal.clone();
        let up = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if to_terminal
                            .send(buf.get(..n).unwrap_or_default().to_vec())
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        self.plugged = Some(Plugged {
            _pty: pty,
            _name: name,
            pumps: vec![down, up],
        });
        Ok(())
    }

    /// The device and its name vanish.
    pub fn unplug(&mut self) {
        self.plugged = None;
    }

    /// Damages what crosses the line, both ways.
    pub fn noise(&self, faults: LineFaults) {
        self.up.set(faults.clone());
        self.down.set(faults);
    }

    /// A clean line again.
    pub fn quiet(&self) {
        self.up.set(LineFaults::none());
        self.down.set(LineFaults::none());
    }
}

/// One emulated terminal and everything it saw and sent.
pub struct TerminalSide {
    /// Its `terminalId`.
    pub id: String,
    /// The emulator.
    pub terminal: Terminal,
    /// What it saw, in order.
    pub seen: Arc<Mutex<Vec<TerminalEvent>>>,
    /// REFUNDs the bridge acknowledged, by refund id.
    pub acknowledged: Arc<Mutex<HashSet<String>>>,
    /// REFUNDs sent, by refund id.
    pub sent: HashMap<String, Refund>,
    /// The display it declared.
    pub display: DisplayInfo,
    /// Refunds sent again with another amount.
    pub changed: HashSet<String>,
    in_flight: Arc<AtomicUsize>,
}

impl TerminalSide {
    /// Starts terminal `id`, with `display`, on a cable's terminal end.
    pub fn start(id: &str, io: tokio::io::DuplexStream, display: DisplayInfo) -> TerminalSide {
        let identity = TerminalIdentity {
            terminal_id: id.into(),
            display: display.clone(),
            ..TerminalIdentity::default()
        };
        let (terminal, mut events) =
            Terminal::start(&identity, Some(115_200), None, OneShot::new(io));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let Ok(mut log) = log.lock() {
                    log.push(event);
                }
            }
        });
        TerminalSide {
            id: id.into(),
            terminal,
            seen,
            acknowledged: Arc::default(),
            sent: HashMap::new(),
            display,
            changed: HashSet::new(),
            in_flight: Arc::default(),
        }
    }

    /// Sends a REFUND from a task of its own (its ACK may take many sessions).
    pub fn refund(&mut self, id: &str, payment: &str, amount: Option<i64>) {
        let refund = Refund {
            original_merchant_refund_id: id.into(),
            payment_id: payment.into(),
            refund_amount: amount.and_then(|v| {
                Currency::parse("USD")
                    .ok()
                    .and_then(|c| Amount::new(v, c).ok())
            }),
            memo: None,
        };
        self.sent.insert(id.into(), refund.clone());
        self.send_refund(refund);
    }

    /// Sends an earlier REFUND again, unchanged.
    pub fn repeat(&mut self, id: &str) {
        if let Some(refund) = self.sent.get(id).cloned() {
            self.send_refund(refund);
        }
    }

    /// Sends an earlier refund's id with one more minor unit (or an amount where it
    /// had none): the bridge must refuse it and change nothing.
    pub fn repeat_changed(&mut self, id: &str) {
        if let Some(mut refund) = self.sent.get(id).cloned() {
            self.changed.insert(id.to_owned());
            refund.refund_amount = match refund.refund_amount {
                Some(a) => Amount::new(a.value + 1, a.currency).ok(),
                None => Currency::parse("USD")
                    .ok()
                    .and_then(|c| Amount::new(100, c).ok()),
            };
            self.send_refund(refund);
        }
    }

    /// The ERROR codes the bridge answered about each refund id.
    pub fn errors(&self) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        if let Ok(seen) = self.seen.lock() {
            for event in seen.iter() {
                if let TerminalEvent::Message(Message::Error(e)) = event
                    && let Some(id) = &e.reference
                {
                    out.entry(id.clone()).or_default().push(e.code.clone());
                }
            }
        }
        out
    }

    /// Every DISPLAY that does not fit the declared screen, in words.
    pub fn misfit_displays(&self) -> Vec<String> {
        let screen = self.display.screen();
        let mut out = Vec::new();
        if let Ok(seen) = self.seen.lock() {
            for event in seen.iter() {
                let TerminalEvent::Message(Message::Display(d)) = event else {
                    continue;
                };
                let too_wide = d
                    .lines
                    .iter()
                    .find(|l| text_width(l, screen.wide_ambiguous) > usize::from(screen.cols));
                let not_ascii = screen.charset == DisplayCharset::Ascii
                    && d.lines.iter().any(|l| !l.is_ascii());
                if d.lines.len() > usize::from(screen.rows) || too_wide.is_some() || not_ascii {
                    out.push(format!(
                        "DISPLAY {:?} does not fit a {}x{} {:?} screen",
                        d.lines, screen.cols, screen.rows, screen.charset
                    ));
                }
            }
        }
        out
    }

    fn send_refund(&self, refund: Refund) {
        let terminal = self.terminal.clone();
        let acknowledged = self.acknowledged.clone();
        let in_flight = self.in_flight.clone();
        in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let id = refund.original_merchant_refund_id.clone();
            if terminal.send(&Message::Refund(refund)).await.is_ok()
                && let Ok(mut acked) = acknowledged.lock()
            {
                acked.insert(id);
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Asks about a refund.
    pub fn inquire(&self, id: &str) {
        let terminal = self.terminal.clone();
        let message = Message::Inquiry(Inquiry {
            original_merchant_refund_id: id.into(),
        });
        let in_flight = self.in_flight.clone();
        in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let _ = terminal.send(&message).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Requests still waiting for their ACK.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Every state the terminal was told for `id`, in order.
    pub fn states_of(&self, id: &str) -> Vec<RefundState> {
        self.seen
            .lock()
            .map(|seen| {
                seen.iter()
                    .filter_map(TerminalEvent::refund_update)
                    .filter(|u| u.original_merchant_refund_id == id)
                    .map(|u| u.state)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The last state the terminal was told for every refund.
    pub fn last_states(&self) -> HashMap<String, RefundState> {
        self.seen
            .lock()
            .map(|seen| {
                seen.iter()
                    .filter_map(TerminalEvent::refund_update)
                    .map(|u| (u.original_merchant_refund_id.clone(), u.state))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Frames the terminal could not parse as messages.
    pub fn invalid_frames(&self) -> usize {
        self.seen
            .lock()
            .map(|seen| {
                seen.iter()
                    .filter(|e| matches!(e, TerminalEvent::Invalid { .. }))
                    .count()
            })
            .unwrap_or_default()
    }
}

/// The bridge process: `posbridge run`, killed without warning and started again.
pub struct BridgeProcess {
    exe: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Times started.
    pub starts: u32,
}

impl BridgeProcess {
    /// A bridge to be run from `exe` with `config`, logging to `log`.
    pub fn new(exe: &Path, config: &Path, log: &Path) -> BridgeProcess {
        BridgeProcess {
            exe: exe.into(),
            config: config.into(),
            log: log.into(),
            child: None,
            starts: 0,
        }
    }

    /// Starts it unless it runs.
    pub fn start(&mut self) -> std::io::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.exe)
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "posbridge=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// SIGKILL: no chance to clean up, as with a power cut.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it exited on its own (it never should).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits the given time for it to stop after SIGTERM, then kills it.
    pub async fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
