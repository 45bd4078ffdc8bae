//! `posbridge demo`: the whole bridge on one machine, with nothing to set up.
//!
//! It starts the cloud simulator, a virtual serial cable (two pseudo-terminals), the
//! bridge itself on one end — the same daemon `posbridge run` starts, with a ledger in
//! a scratch directory — and the terminal emulator on the other. Then it makes a
//! refund and shows the terminal's display and the refund's history, takes the
//! simulated network down, makes a refund that is QUEUED, brings the network back and
//! shows the queue drain.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::sync::mpsc;

use super::term::Printer;
use crate::bridge::texts::{Language, catalogue_name};
use crate::config::Config;
use crate::daemon::run::Daemon;
use crate::ledger::Ledger;
use crate::message::{DisplayInfo, Message, Refund, RefundState};
use crate::money::{Amount, Currency};
use crate::sim::cloud::{CloudSim, demo};
use crate::sim::line::{LineControl, relay};
use crate::sim::terminal::{Terminal, TerminalEvent, TerminalIdentity};
use crate::transport::{DEFAULT_BAUD, PtyLink, Reopen, TransportConfig, open_pty};

/// Arguments of `posbridge demo`.
#[derive(Args)]
#[command(
    after_help = "Nothing to install or configure: everything runs in this process, on
loopback and on pseudo-terminals, with a ledger in a scratch directory that is
removed at the end (keep it with --keep).

Examples:
  posbridge demo
  posbridge demo --language ja
  posbridge demo --keep
  posbridge demo --fleet      (two boxes, one PostgreSQL database; docs/FLEET.md)"
)]
pub struct DemoArgs {
    /// Keep the scratch directory (ledger, configuration) and print where it is.
    #[arg(long)]
    keep: bool,
    /// The cashier texts' language: en, zh-Hans, zh-Hant, ja, ko, th, ms, id or fr-CA.
    #[arg(long, value_name = "LANG")]
    language: Option<Language>,
    /// Two stores' boxes shipping their ledgers to one PostgreSQL database (needs
    /// PostgreSQL's server installed; a private cluster is made and removed).
    #[arg(long, conflicts_with_all = ["language", "keep"])]
    fleet: bool,
}

/// How long the demo waits for any one step.
const STEP: Duration = Duration::from_secs(30);

struct Demo {
    terminal: Terminal,
    events: mpsc::Receiver<TerminalEvent>,
    out: Printer,
    ledger: PathBuf,
}

impl Demo {
    /// The terminal emulator DEMO-1 at the terminal's end of the cable.
    fn start(
        out: Printer,
        display: DisplayInfo,
        terminal_end: &PtyLink,
        language: Option<Language>,
        ledger: PathBuf,
    ) -> Demo {
        let identity = TerminalIdentity {
            terminal_id: "DEMO-1".into(),
            display,
            ..TerminalIdentity::default()
        };
        let (terminal, events) = demo_terminal(&identity, &terminal_end.path);
        let texts = language.unwrap_or(Language::En);
        out.line(&format!(
            "• terminal emulator DEMO-1 (20×4 display, cashier texts in {} ({texts}))\n",
            catalogue_name(texts)
        ));
        Demo {
            terminal,
            events,
            out,
            ledger,
        }
    }

    /// 1: a refund the provider approves at once, and its history.
    async fn refund_that_succeeds(&mut self) -> Result<(), String> {
        self.say("\n1. A refund of 12.50 USD on payment PAY-SYNC-1:");
        let state = self
            .refund("REF-1", "PAY-SYNC-1", 1250, RefundState::is_final)
            .await?;
        self.say(&format!(
            "\n   It ended {state}. Its history, as `posbridge show REF-1` prints it:"
        ));
        self.history("REF-1").await
    }

    /// 2: a refund the provider finishes later, asked about until it does.
    async fn refund_finished_later(&mut self) -> Result<(), String> {
        self.say(
            "\n2. A refund the provider finishes later (PAY-ASYNC-1): PROCESSING, then asked about:",
        );
        let state = self
            .refund("REF-2", "PAY-ASYNC-1", 5000, RefundState::is_final)
            .await?;
        self.say(&format!("   It ended {state}."));
        Ok(())
    }

    /// 3 and 4: the network down, a refund QUEUED; the network back, the queue
    /// drained.
    async fn refund_through_an_outage(&mut self, sim: &CloudSim) -> Result<(), String> {
        self.say("\n3. The store's network goes down. A refund is recorded and QUEUED:");
        sim.set_down(true).await;
        let state = self
            .refund("REF-3", "PAY-SYNC-2", 700, |s| s == RefundState::Queued)
            .await?;
        self.say(&format!(
            "   It is {state}: recorded in the ledger, waiting for the network."
        ));

        self.say("\n4. The network comes back; the queue drains:");
        sim.set_down(false).await;
        let state = self.follow("REF-3", RefundState::is_final).await?;
        self.say(&format!("   REF-3 ended {state}."));
        self.history("REF-3").await
    }

    /// How many refunds the simulated cloud carried out: one per refund.
    fn tell_what_the_cloud_did(&self, sim: &CloudSim) {
        let executed: u32 = ["PAY-SYNC-1", "PAY-ASYNC-1", "PAY-SYNC-2"]
            .iter()
            .map(|p| sim.executed(p))
            .sum();
        self.say(&format!(
            "\nThe simulated cloud executed {executed} refunds, one each. Try it yourself: `posbridge --help`."
        ));
    }

    fn say(&self, text: &str) {
        self.out.line(text);
    }

    /// Sends a refund and prints everything until it reaches `until`.
    async fn refund(
        &mut self,
        id: &str,
        payment: &str,
        amount: i64,
        until: fn(RefundState) -> bool,
    ) -> Result<RefundState, String> {
        let refund = Message::Refund(Refund {
            original_merchant_refund_id: id.into(),
            payment_id: payment.into(),
            refund_amount: Currency::parse("USD")
                .ok()
                .and_then(|c| Amount::new(amount, c).ok()),
            memo: None,
        });
        self.out.sent(&refund);
        let terminal = self.terminal.clone();
        tokio::spawn(async move {
            let _ = terminal.send(&refund).await;
        });
        self.follow(id, until).await
    }

    /// Prints the terminal's events until refund `id` reaches a state `until` accepts
    /// (and the DISPLAY that follows it).
    async fn follow(
        &mut self,
        id: &str,
        until: fn(RefundState) -> bool,
    ) -> Result<RefundState, String> {
        let deadline = tokio::time::Instant::now() + STEP;
        let mut reached = None;
        loop {
            let wait = match reached {
                // The DISPLAY follows its REFUND_UPDATE at once.
                Some(_) => tokio::time::Instant::now() + Duration::from_millis(500),
                None => deadline,
            };
            let event = match tokio::time::timeout_at(wait, self.events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => return Err("the terminal emulator stopped".into()),
                Err(_) => {
                    return reached
                        .ok_or_else(|| format!("{id} did not get there within {STEP:?}"));
                }
            };
            self.out.event(&event);
            match &event {
                TerminalEvent::Message(Message::RefundUpdate(u))
                    if u.original_merchant_refund_id == id && until(u.state) =>
                {
                    reached = Some(u.state);
                }
                TerminalEvent::Message(Message::Display(_)) => {
                    if let Some(state) = reached {
                        return Ok(state);
                    }
                }
                _ => {}
            }
        }
    }

    /// Prints the terminal's events until its session with the bridge is up.
    async fn connected(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    self.out.event(&event);
                    if event == TerminalEvent::Up {
                        return Ok(());
                    }
                }
                Ok(None) => return Err("the terminal emulator stopped".into()),
                Err(_) => return Err(format!("the terminal did not connect within {STEP:?}")),
            }
        }
    }

    /// Prints a refund's history once the ledger has the terminal's acknowledgement of
    /// its final state (recorded a moment after the terminal showed it).
    async fn history(&self, id: &str) -> Result<(), String> {
        let ledger = Ledger::open(&self.ledger).map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut refund = ledger.lookup(id).map_err(|e| e.to_string())?;
        while refund.final_undelivered() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            refund = ledger.lookup(id).map_err(|e| e.to_string())?;
        }
        let history = ledger.history(refund.id).map_err(|e| e.to_string())?;
        let mut text = Vec::new();
        super::ops::print_history(&history, &mut text).map_err(|e| e.to_string())?;
        for line in String::from_utf8_lossy(&text).lines() {
            self.say(&format!("    {line}"));
        }
        Ok(())
    }
}

/// Runs `posbridge demo`.
pub async fn run(args: DemoArgs) -> ExitCode {
    let result = if args.fleet {
        super::demo_fleet::run().await
    } else {
        demo_run(&args).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("posbridge demo: {e}");
            ExitCode::from(1)
        }
    }
}

/// The demo: the cloud, the cable, the bridge and the terminal set up, then the
/// story told in four refunds.
async fn demo_run(args: &DemoArgs) -> Result<(), String> {
    let scratch = tempfile_dir()?;
    let display = DisplayInfo {
        languages: args.language.iter().map(|l| l.tag().to_owned()).collect(),
        ..DisplayInfo::default()
    };
    let out = Printer {
        json: false,
        size: display.screen(),
    };
    out.line("posbridge demo — the bridge between a payment terminal and the provider's cloud,");
    out.line("with a simulated cloud, a virtual serial cable and an emulated terminal.\n");

    let sim = start_cloud(&out).await?;
    let (bridge_end, terminal_end) = lay_cable(&out)?;
    let ledger = scratch.path().join("ledger.sqlite");
    let daemon = start_bridge(&out, &sim, &ledger, &bridge_end, args.language).await?;
    let mut demo = Demo::start(out, display, &terminal_end, args.language, ledger);

    demo.connected().await?;
    demo.refund_that_succeeds().await?;
    demo.refund_finished_later().await?;
    demo.refund_through_an_outage(&sim).await?;
    demo.tell_what_the_cloud_did(&sim);
    daemon.stop().await;
    if args.keep {
        let kept = scratch.keep();
        demo.say(&format!("The ledger is kept in {}.", kept.display()));
    }
    Ok(())
}

/// The cloud simulator, its asynchronous refunds finishing after a noticeable
/// moment.
async fn start_cloud(out: &Printer) -> Result<CloudSim, String> {
    let mut sim_config = demo::sim_config("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .map_err(|e| e.to_string())?;
    sim_config.async_delay = Duration::from_millis(1500);
    let sim = CloudSim::start(sim_config)
        .await
        .map_err(|e| format!("cannot start the cloud simulator: {e}"))?;
    out.line(&format!(
        "• cloud simulator (Antom API) on {}",
        sim.base_url()
    ));
    Ok(sim)
}

/// The virtual serial cable, said where its ends are.
fn lay_cable(out: &Printer) -> Result<(PtyLink, PtyLink), String> {
    let (bridge_end, terminal_end) = virtual_cable()?;
    out.line(&format!(
        "• virtual serial cable: bridge on {}, terminal on {}",
        bridge_end.path.display(),
        terminal_end.path.display()
    ));
    Ok((bridge_end, terminal_end))
}

/// The bridge: the daemon itself, configured as a store would configure it.
async fn start_bridge(
    out: &Printer,
    sim: &CloudSim,
    ledger: &std::path::Path,
    bridge_end: &PtyLink,
    language: Option<Language>,
) -> Result<Daemon, String> {
    let provider_toml = demo::provider_toml("antom", &sim.base_url()).ok_or("no demo provider")?;
    let config = daemon_config(ledger, &bridge_end.path, language, &provider_toml, "")?;
    let daemon = Daemon::start(&config).await.map_err(|e| e.to_string())?;
    out.line(&format!("• bridge running, ledger {}", ledger.display()));
    Ok(daemon)
}

/// A virtual serial cable: two pseudo-terminals joined back to back by relays; the
/// bridge opens the first's path, the terminal emulator the second's.
/// The terminal emulator at the far end of a virtual cable, as the demos run it.
pub(super) fn demo_terminal(
    identity: &TerminalIdentity,
    path: &std::path::Path,
) -> (Terminal, mpsc::Receiver<TerminalEvent>) {
    Terminal::start(
        identity,
        Some(DEFAULT_BAUD),
        None,
        Reopen::new(TransportConfig::serial(path), Duration::from_millis(100)),
    )
}

pub(super) fn virtual_cable() -> Result<(PtyLink, PtyLink), String> {
    let mut bridge_end = open_pty().map_err(|e| format!("cannot create a pseudo-terminal: {e}"))?;
    let mut terminal_end =
        open_pty().map_err(|e| format!("cannot create a pseudo-terminal: {e}"))?;
    let spare = || {
        open_pty()
            .map(|p| p.master)
            .map_err(|e| format!("cannot create a pseudo-terminal: {e}"))
    };
    let bridge_master = std::mem::replace(&mut bridge_end.master, spare()?);
    let terminal_master = std::mem::replace(&mut terminal_end.master, spare()?);
    let (b_read, b_write) = tokio::io::split(bridge_master);
    let (t_read, t_write) = tokio::io::split(terminal_master);
    tokio::spawn(relay(t_read, b_write, LineControl::default(), 1));
    tokio::spawn(relay(b_read, t_write, LineControl::default(), 2));
    Ok((bridge_end, terminal_end))
}

/// The demo bridge's configuration: one terminal line, quick retries.
/// The daemon's configuration, written as a store would write it; `extra` adds tables.
pub(super) fn daemon_config(
    ledger: &std::path::Path,
    device: &std::path::Path,
    language: Option<Language>,
    provider_toml: &str,
    extra: &str,
) -> Result<Config, String> {
    let language = language
        .map(|l| format!("language = \"{}\"\n", l.tag()))
        .unwrap_or_default();
    let text = format!(
        "[ledger]\npath = {ledger}\n\n[[terminal]]\nname = \"demo terminal\"\ndevice = {device}\n\
         {language}\n[retry]\nfirst_retry_ms = 300\nmax_retry_ms = 1000\nfirst_poll_ms = 500\n\
         max_poll_ms = 1000\nconcurrency = 4\n\n{extra}\n{provider_toml}",
        ledger = toml::Value::from(ledger.display().to_string()),
        device = toml::Value::from(device.display().to_string()),
    );
    Config::parse(&text, "demo configuration").map_err(|e| e.to_string())
}

pub(super) fn tempfile_dir() -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix("posbridge-demo-")
        .tempdir()
        .map_err(|e| format!("cannot create a scratch directory: {e}"))
}
