//! Hotplug end to end: the terminal's device disappears (unplugged) while a refund is
//! in progress at the provider and comes back under the same udev-style name. The
//! running bridge process reopens it, the session resumes, and the final state that
//! was reached meanwhile is delivered — without restarting anything.

use std::process::{Command, Stdio};
use std::time::Duration;

use posbridge::link::OneShot;
use posbridge::message::{Message, Refund, RefundState};
use posbridge::money::{Amount, Currency};
use posbridge::sim::chaos::world::Cable;
use posbridge::sim::cloud::books::{PaymentSeed, RefundMode};
use posbridge::sim::cloud::{CloudSim, demo};
use posbridge::sim::terminal::{Terminal, TerminalEvent, TerminalIdentity};
use tokio::sync::mpsc;

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
    let mut async_payment = PaymentSeed::new(
        "PAY-H",
        Amount::new(5000, Currency::parse("USD").unwrap()).unwrap(),
    );
    async_payment.mode = RefundMode::Async;
    config.payments = vec![async_payment];
    config.async_delay = Duration::from_secs(600);
    let sim = CloudSim::start(config).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("posterminal0");
    // The terminal's end stays; the bridge's end is a device that can be unplugged.
    let (mut cable, terminal_io) = Cable::new(name.clone(), 1);
    cable.plug().unwrap();

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
        refund_amount: Some(Amount::new(5000, Currency::parse("USD").unwrap()).unwrap()),
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
    cable.unplug();
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
    cable.plug().unwrap();
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
