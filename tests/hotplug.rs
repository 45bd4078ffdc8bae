//! Hotplug end to end: the terminal's device disappears (unplugged) while a refund is
//! in progress at the provider and comes back under the same udev-style name. The
//! running bridge process reopens it, the session resumes, and the final state that
//! was reached meanwhile is delivered — without restarting anything.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use posbridge::link::OneShot;
use posbridge::message::{Message, Refund, RefundState};
use posbridge::money::{Amount, Currency};
use posbridge::sim::cloud::ledger::{PaymentSeed, RefundMode};
use posbridge::sim::cloud::{CloudSim, demo};
use posbridge::sim::terminal::{Terminal, TerminalEvent, TerminalIdentity};
use posbridge::transport::{PtyLink, SymlinkGuard, open_pty};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The bridge's end of the cable, behind `name`, joined to the terminal's end.
struct Plugged {
    _pty: PtyLink,
    _name: SymlinkGuard,
    relays: Vec<JoinHandle<()>>,
}

/// Plugs a fresh device in under `name`, relaying to and from the terminal's pipe.
fn plug_in(
    name: &Path,
    to_terminal: mpsc::UnboundedSender<Vec<u8>>,
    from_terminal: &tokio::sync::broadcast::Sender<Vec<u8>>,
) -> Plugged {
    let mut pty = open_pty().unwrap();
    let guard = SymlinkGuard::create(name, &pty.path).unwrap();
    let master = std::mem::replace(&mut pty.master, open_pty().unwrap().master);
    let (mut read, mut write) = tokio::io::split(master);
    let mut rx = from_terminal.subscribe();
    let down = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok(bytes) = rx.recv().await {
            if write.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let up = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to_terminal.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    Plugged {
        _pty: pty,
        _name: guard,
        relays: vec![down, up],
    }
}

fn unplug(plugged: Plugged) {
    for relay in &plugged.relays {
        relay.abort();
    }
    drop(plugged);
}

/// Waits up to 30 s for a REFUND_UPDATE in `state`; false if none came.
async fn wait_state(events: &mut mpsc::Receiver<TerminalEvent>, state: RefundState) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(TerminalEvent::Message(Message::RefundUpdate(u)))) if u.state == state => {
                return true;
            }
            Ok(Some(_)) => {}
            _ => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_and_replug_resumes_and_delivers_the_final_state() {
    let mut config = demo::sim_config("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut async_payment =
        PaymentSeed::new("PAY-H", Amount::new(5000, Currency::parse("USD").unwrap()));
    async_payment.mode = RefundMode::Async;
    config.payments = vec![async_payment];
    config.async_delay = Duration::from_secs(600);
    let sim = CloudSim::start(config).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("posterminal0");
    // The terminal's end: an in-memory pipe whose far side the test carries to
    // whichever device is plugged in.
    let (terminal_io, cable) = tokio::io::duplex(64 * 1024);
    let (to_terminal_tx, mut to_terminal_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (from_terminal_tx, _) = tokio::sync::broadcast::channel::<Vec<u8>>(1024);
    {
        let (mut cable_read, mut cable_write) = tokio::io::split(cable);
        let from_terminal_tx = from_terminal_tx.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = cable_read.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                let _ = from_terminal_tx.send(buf[..n].to_vec());
            }
        });
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Some(bytes) = to_terminal_rx.recv().await {
                if cable_write.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });
    }
    let plugged = plug_in(&name, to_terminal_tx.clone(), &from_terminal_tx);

    let config_path = dir.path().join("posbridge.toml");
    std::fs::write(
        &config_path,
        format!(
            "[ledger]\npath = \"{}\"\n\n[[terminal]]\ndevice = \"{}\"\n\n[retry]\nfirst_poll_ms = 100\nmax_poll_ms = 200\n\n{}",
            dir.path().join("ledger.sqlite").display(),
            name.display(),
            demo::provider_toml("antom", &sim.base_url()).unwrap()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("bridge.log")).unwrap();
    let mut bridge = Bridge(
        Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args(["run", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "posbridge=debug")
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let log_path = dir.path().join("bridge.log");
    let log_tail = move || std::fs::read_to_string(&log_path).unwrap_or_default();

    let (terminal, mut events) = Terminal::start(
        &TerminalIdentity::default(),
        None,
        None,
        OneShot::new(terminal_io),
    );
    let refund = Message::Refund(Refund {
        original_merchant_refund_id: "REF-H".into(),
        payment_id: "PAY-H".into(),
        refund_amount: Some(Amount::new(5000, Currency::parse("USD").unwrap())),
        memo: None,
    });
    {
        let terminal = terminal.clone();
        tokio::spawn(async move {
            let _ = terminal.send(&refund).await;
        });
    }
    assert!(
        wait_state(&mut events, RefundState::Processing).await,
        "no PROCESSING"
    );

    // Unplug: the device and its name vanish. The refund settles meanwhile.
    unplug(plugged);
    sim.settle_now();
    let ledger_path = dir.path().join("ledger.sqlite");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ledger = posbridge::ledger::Ledger::open(&ledger_path).unwrap();
        let r = ledger.find("TERM-1", "REF-H").unwrap().unwrap();
        if r.state == RefundState::Succeeded {
            assert_eq!(r.delivered_state, None, "nobody could have been told yet");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the refund did not settle while unplugged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Replug under the same name: the same bridge process picks it up.
    let _plugged = plug_in(&name, to_terminal_tx, &from_terminal_tx);
    if !wait_state(&mut events, RefundState::Succeeded).await {
        panic!("no SUCCEEDED after the replug; bridge log:\n{}", log_tail());
    }
    assert_eq!(sim.executed("PAY-H"), 1);
    assert!(
        bridge.0.try_wait().unwrap().is_none(),
        "the bridge kept running"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ledger = posbridge::ledger::Ledger::open(&ledger_path).unwrap();
        let r = ledger.find("TERM-1", "REF-H").unwrap().unwrap();
        if r.delivered_state == Some(RefundState::Succeeded) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivery was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(log_tail);
}

/// The bridge process, killed when the test ends however it ends.
struct Bridge(std::process::Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
