//! Several terminals on one bridge: each its own line, one ledger, one provider.
//! Each terminal hears only about its own refunds, and the same refund id used by
//! two terminals is two refunds.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use posbridge::link::OneShot;
use posbridge::message::{Message, Refund, RefundState};
use posbridge::money::{Amount, Currency};
use posbridge::sim::cloud::books::PaymentSeed;
use posbridge::sim::cloud::{CloudSim, demo};
use posbridge::sim::terminal::{Terminal, TerminalEvent, TerminalIdentity};
use posbridge::transport::open_pty;

const TERMINALS: usize = 3;

fn usd(v: i64) -> Amount {
    Amount::new(v, Currency::parse("USD").unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_terminal_gets_its_own_refunds() {
    let mut config = demo::sim_config("127.0.0.1:0".parse().unwrap()).unwrap();
    config.payments = (0..TERMINALS * 4)
        .map(|i| PaymentSeed::new(format!("PAY-{i}"), usd(10_000)))
        .collect();
    let sim = CloudSim::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    let mut devices = String::new();
    let mut masters = Vec::new();
    for _ in 0..TERMINALS {
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
    let config_path = dir.path().join("posbridge.toml");
    std::fs::write(
        &config_path,
        format!(
            "[ledger]\npath = \"{}\"\n\n{devices}{}",
            dir.path().join("ledger.sqlite").display(),
            demo::provider_toml("antom", &sim.base_url()).unwrap()
        ),
    )
    .unwrap();
    let mut bridge = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["run", "--config"])
        .arg(&config_path)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let mut terminals = Vec::new();
    for (t, master) in masters.into_iter().enumerate() {
        let identity = TerminalIdentity {
            terminal_id: format!("T{t}"),
            ..TerminalIdentity::default()
        };
        let (terminal, mut rx) = Terminal::start(&identity, None, None, OneShot::new(master));
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                let _ = tx.send((t, e));
            }
        });
        terminals.push(terminal);
    }
    for (t, terminal) in terminals.iter().enumerate() {
        for k in 0..4 {
            let refund = Message::Refund(Refund {
                // The same ids on every terminal: identity is (terminal, id).
                original_merchant_refund_id: format!("REF-{k}"),
                payment_id: format!("PAY-{}", t * 4 + k),
                refund_amount: Some(usd(100 + t as i64)),
                memo: None,
            });
            let terminal = terminal.clone();
            tokio::spawn(async move {
                let _ = terminal.send(&refund).await;
            });
        }
    }
    let mut finals: HashMap<(usize, String), Amount> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while finals.len() < TERMINALS * 4 {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some((t, TerminalEvent::Message(Message::RefundUpdate(u))))) => {
                if u.state == RefundState::Succeeded {
                    finals.insert(
                        (t, u.original_merchant_refund_id.clone()),
                        u.refund_amount.unwrap(),
                    );
                }
            }
            Ok(Some(_)) => {}
            _ => panic!("only {} final states arrived: {finals:?}", finals.len()),
        }
    }
    for ((t, _), amount) in &finals {
        // Each terminal heard about its own refunds (its amount), no one else's.
        assert_eq!(amount.value, 100 + *t as i64);
    }
    for i in 0..TERMINALS * 4 {
        assert_eq!(sim.executed(&format!("PAY-{i}")), 1);
    }
    let _ = bridge.kill();
    let _ = bridge.wait();
    let ledger = posbridge::ledger::Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    for t in 0..TERMINALS {
        let r = ledger.find(&format!("T{t}"), "REF-0").unwrap().unwrap();
        assert_eq!(r.state, RefundState::Succeeded);
        assert_eq!(r.payment_id, format!("PAY-{}", t * 4));
    }
    drop(lines);
}
