//! `posbridge demo --fleet`: two stores' boxes shipping their ledgers to one
//! PostgreSQL database through the fleet receiver, then the team's questions asked.
//!
//! Everything runs in this process or beside it: a private PostgreSQL cluster from
//! the installed server binaries (never installed by the demo), the cloud simulator,
//! the receiver on loopback, and per box a bridge with its own ledger, virtual cable
//! and emulated terminal.

use std::time::Duration;

use tokio::sync::mpsc;

use super::demo::{daemon_config, demo_terminal, tempfile_dir, virtual_cable};
use crate::daemon::run::Daemon;
use crate::fleet::batch;
use crate::fleet::store::{self, Database, Question};
use crate::fleet::{Receiver, ReceiverSettings};
use crate::ledger::Ledger;
use crate::message::{Message, Refund};
use crate::money::{Amount, Currency};
use crate::sim::cloud::{CloudSim, demo};
use crate::sim::postgres::PgCluster;
use crate::sim::terminal::{Terminal, TerminalEvent, TerminalIdentity};
use crate::transport::PtyLink;

/// How long the demo waits for any one step.
const STEP: Duration = Duration::from_secs(30);

/// One store: its bridge, its terminal and their cable.
struct Store {
    box_id: &'static str,
    daemon: Daemon,
    terminal: Terminal,
    events: mpsc::Receiver<TerminalEvent>,
    ledger: std::path::PathBuf,
    _cable: (PtyLink, PtyLink),
}

/// Runs the fleet demo.
pub async fn run() -> Result<(), String> {
    println!("posbridge demo --fleet — two stores' boxes ship their ledgers to one PostgreSQL");
    println!("database through the fleet receiver, and the payments team asks it.\n");
    let pg = PgCluster::start_if_installed(false).map_err(|e| {
        format!("the fleet demo needs PostgreSQL on this machine, and it is not here: {e}")
    })?;
    println!(
        "• PostgreSQL ({}), a private cluster on a unix socket in {}",
        pg.bin_dir().display(),
        pg.path().display()
    );
    let scratch = tempfile_dir()?;
    let secret = b"demo-fleet-secret-0123456789abcdef".to_vec();
    let receiver = Receiver::start(ReceiverSettings {
        listen: ([127, 0, 0, 1], 0).into(),
        database: Database::new(&pg.url(), None).map_err(|e| e.to_string())?,
        fleet_secret: secret.clone(),
        tls: None,
        connections: 2,
        max_body_bytes: 1 << 20,
        header_read_timeout: Duration::from_secs(10),
    })
    .await?;
    println!("• fleet receiver on {}", receiver.local_addr());
    let sim =
        CloudSim::start(demo::sim_config(([127, 0, 0, 1], 0).into()).map_err(|e| e.to_string())?)
            .await
            .map_err(|e| format!("cannot start the cloud simulator: {e}"))?;
    println!("• cloud simulator (Antom API) on {}", sim.base_url());

    let mut stores = Vec::new();
    for (box_id, terminal_id) in [("store-101", "POS-101"), ("store-102", "POS-102")] {
        let dir = scratch.path().join(box_id);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let key_file = dir.join("fleet.key");
        let key = batch::box_key(&secret, box_id).map_err(|e| e.to_string())?;
        super::export::private_file(&key_file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, key.as_bytes()))
            .map_err(|e| format!("{}: {e}", key_file.display()))?;
        let (bridge_end, terminal_end) = virtual_cable()?;
        let provider_toml =
            demo::provider_toml("antom", &sim.base_url()).ok_or("no demo provider")?;
        let ledger = dir.join("ledger.sqlite");
        let fleet = format!(
            "[fleet]\nurl = \"http://{}\"\nbox_id = \"{box_id}\"\nsecret_file = {}\ninterval_ms = 200\n",
            receiver.local_addr(),
            toml::Value::from(key_file.display().to_string())
        );
        let config = daemon_config(&ledger, &bridge_end.path, None, &provider_toml, &fleet)?;
        let daemon = Daemon::start(&config).await.map_err(|e| e.to_string())?;
        let identity = TerminalIdentity {
            terminal_id: terminal_id.into(),
            ..TerminalIdentity::default()
        };
        let (terminal, events) = demo_terminal(&identity, &terminal_end.path);
        println!("• box {box_id}: a bridge with its own ledger, terminal {terminal_id}");
        stores.push(Store {
            box_id,
            daemon,
            terminal,
            events,
            ledger,
            _cable: (bridge_end, terminal_end),
        });
    }

    println!("\n1. Each store makes refunds on its terminal:");
    let plan: [&[(&str, &str, i64)]; 2] = [
        &[("REF-1", "PAY-SYNC-1", 1250), ("REF-2", "PAY-SYNC-2", 3000)],
        &[("REF-1", "PAY-SYNC-1", 800), ("REF-2", "PAY-UNKNOWN", 500)],
    ];
    for (store, refunds) in stores.iter_mut().zip(plan) {
        for (id, payment, amount) in refunds {
            let state = refund(store, id, payment, *amount).await?;
            println!(
                "   {} {id}: {} on {payment} → {state}",
                store.box_id,
                Amount::new(*amount, Currency::parse("USD").map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?
            );
        }
    }

    println!("\n2. Each box ships its outbox; the receiver confirms every transition:");
    for store in &stores {
        let position = wait_confirmed(&store.ledger).await?;
        println!(
            "   {}: {} transitions recorded, {} confirmed, 0 waiting",
            store.box_id, position.last_seq, position.confirmed_seq
        );
    }

    let client = Database::new(&pg.url(), None)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let rows = client
        .query(
            "SELECT box_id, ledger_id::text, terminal_id, original_merchant_refund_id, \
             payment_id, state, (SELECT count(*) FROM transitions t \
             WHERE t.box_id = r.box_id AND t.ledger_id = r.ledger_id)::text \
             FROM refunds r ORDER BY box_id, ledger_id",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let answer = store::Answer {
        columns: vec![
            "box_id",
            "ledger_id",
            "terminal_id",
            "refund",
            "payment_id",
            "state",
            "transitions",
        ],
        rows: rows
            .iter()
            .map(|r| (0..7).map(|i| r.get::<_, Option<String>>(i)).collect())
            .collect(),
    };
    println!("\n3. One database holds both stores' refunds (table `refunds`):");
    indent(&super::fleet::render(&answer, false));
    let totals = store::ask(
        &client,
        &Question::Totals {
            day: None,
            box_id: None,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    println!("\n4. `posbridge fleet query totals` (view `refund_totals`):");
    indent(&super::fleet::render(&totals, false));
    let attention = store::ask(&client, &Question::Attention)
        .await
        .map_err(|e| e.to_string())?;
    println!("\n5. `posbridge fleet query attention` (view `refunds_needing_attention`):");
    indent(&super::fleet::render(&attention, false));
    println!("\nThe views and the schema are in docs/FLEET.md.");
    for store in stores {
        store.daemon.stop().await;
    }
    receiver.shutdown().await;
    Ok(())
}

fn indent(text: &str) {
    for line in text.lines() {
        println!("   {line}");
    }
}

/// Sends a refund from the store's terminal and waits for its final state.
async fn refund(store: &mut Store, id: &str, payment: &str, amount: i64) -> Result<String, String> {
    let message = Message::Refund(Refund {
        original_merchant_refund_id: id.into(),
        payment_id: payment.into(),
        refund_amount: Currency::parse("USD")
            .ok()
            .and_then(|c| Amount::new(amount, c).ok()),
        memo: None,
    });
    let terminal = store.terminal.clone();
    tokio::spawn(async move {
        let _ = terminal.send(&message).await;
    });
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match tokio::time::timeout_at(deadline, store.events.recv()).await {
            Ok(Some(TerminalEvent::Message(Message::RefundUpdate(u))))
                if u.original_merchant_refund_id == id && u.state.is_final() =>
            {
                return Ok(u.state.to_string());
            }
            Ok(Some(_)) => {}
            Ok(None) => return Err("the terminal emulator stopped".into()),
            Err(_) => return Err(format!("{id} did not finish within {STEP:?}")),
        }
    }
}

/// Waits until the receiver has confirmed every transition of the ledger.
async fn wait_confirmed(path: &std::path::Path) -> Result<crate::ledger::FleetPosition, String> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let ledger = Ledger::open(path).map_err(|e| e.to_string())?;
        if let Some(position) = ledger.fleet_position().map_err(|e| e.to_string())?
            && position.pending == 0
            && position.last_seq > 0
        {
            return Ok(position);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "{} was not shipped within {STEP:?}",
                path.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
