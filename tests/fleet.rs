//! The fleet against a real PostgreSQL: three boxes (three `posbridge run` daemons,
//! each with the cloud simulator and an emulated terminal) ship their ledgers to the
//! real `posbridge fleet serve` process through outages of the receiver and of
//! PostgreSQL, SIGKILLs of daemons and of the receiver, duplicated, reordered and
//! forged batches. At the end PostgreSQL holds exactly every box's ledger: every
//! transition once, in order, and every refund as the box has it.
//!
//! PostgreSQL is Debian's (`initdb`/`pg_ctl`, a private cluster on a unix socket in a
//! scratch directory), installed first where it is missing and this runs as root; the
//! test is skipped, saying so, only where it cannot be had.

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Setup, World, payment};
use posbridge::fleet::batch::{self, Batch};
use posbridge::fleet::store::{self, Database, Question};
use posbridge::ledger::{AcceptPolicy, Acceptance, Change, Ledger, NewRefund};
use posbridge::message::RefundState;
use posbridge::money::{Amount, Currency};
use posbridge::sim::postgres::PgCluster;
use tokio_postgres::Client;

const SECRET: &str = "fleet-test-secret-0123456789abcdef";
const BOXES: [&str; 3] = ["store-101", "store-102", "store-103"];
const DEADLINE: Duration = Duration::from_secs(60);

/// Writes a secret file as a store must: mode 0600 (the daemon refuses others).
fn write_secret(path: &Path, text: impl AsRef<[u8]>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn cluster() -> Option<PgCluster> {
    match PgCluster::start(false) {
        Ok(pg) => Some(pg),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI must have PostgreSQL (.ci/run installs it): {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: the fleet test needs PostgreSQL, which cannot be had here: {e}");
            None
        }
    }
}

/// `posbridge fleet serve` as its own process.
struct ReceiverProcess {
    child: Option<Child>,
    addr: SocketAddr,
    database: String,
    secret_file: PathBuf,
    log: PathBuf,
}

impl ReceiverProcess {
    fn start(database: &str, secret_file: &Path, log: &Path, listen: &str) -> ReceiverProcess {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args([
                "fleet",
                "serve",
                "--listen",
                listen,
                "--max-body-bytes",
                "4000000",
            ])
            .arg("--secret-file")
            .arg(secret_file)
            .env("POSBRIDGE_FLEET_DATABASE", database)
            .env("RUST_LOG", "posbridge=debug")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "the receiver did not start ({line:?}):\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            });
        ReceiverProcess {
            child: Some(child),
            addr,
            database: database.into(),
            secret_file: secret_file.into(),
            log: log.into(),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, as systemd would.
    fn restart(&mut self) {
        self.kill();
        let again = ReceiverProcess::start(
            &self.database,
            &self.secret_file,
            &self.log,
            &self.addr.to_string(),
        );
        *self = again;
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("not within {DEADLINE:?}: {what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn connect(database: &str) -> Result<Client, String> {
    Database::new(database, None)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// The position PostgreSQL holds for `box_id`.
async fn stored_position(database: &str, box_id: &str) -> Result<i64, String> {
    let client = connect(database).await?;
    let row = client
        .query_opt("SELECT last_seq FROM boxes WHERE box_id = $1", &[&box_id])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.map_or(0, |r| r.get(0)))
}

fn last_seq(ledger: &Path) -> i64 {
    let ledger = Ledger::open(ledger).unwrap();
    ledger
        .outbox_after(0, 1_000_000)
        .unwrap()
        .last()
        .map_or(0, |e| e.seq)
}

/// Waits until the receiver holds all of the box's ledger and the box knows it.
async fn converged(database: &str, box_id: &str, ledger: &Path) {
    until(&format!("{box_id} shipped"), || async {
        let want = last_seq(ledger);
        let have = stored_position(database, box_id).await?;
        let confirmed = Ledger::open(ledger)
            .unwrap()
            .fleet_position()
            .unwrap()
            .map_or(-1, |p| p.confirmed_seq);
        if have == want && confirmed == want {
            Ok(())
        } else {
            Err(format!(
                "ledger {want}, database {have}, confirmed {confirmed}"
            ))
        }
    })
    .await;
}

/// A transition's columns: seq, ledger id, time, from, to, cause, code, attempt.
type Transition = (
    i64,
    i64,
    i64,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<i64>,
);

/// PostgreSQL holds exactly the box's ledger: every transition once, arrived in
/// sequence, equal to the ledger's; every refund as the ledger has it now.
async fn assert_holds_exactly(client: &Client, box_id: &str, ledger: &Path) {
    let ledger = Ledger::open(ledger).unwrap();
    let entries = ledger.outbox_after(0, 1_000_000).unwrap();
    assert!(!entries.is_empty(), "{box_id} has transitions");
    let rows = client
        .query(
            "SELECT seq, ledger_id, at_ms, from_state, to_state, cause, result_code, attempt_id \
             FROM transitions WHERE box_id = $1 ORDER BY arrival",
            &[&box_id],
        )
        .await
        .unwrap();
    let stored: Vec<Transition> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
            )
        })
        .collect();
    let expected: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                e.seq,
                e.refund.id,
                e.at_ms,
                e.from_state.clone(),
                e.to_state.clone(),
                e.cause.clone(),
                e.result_code.clone(),
                e.attempt_id,
            )
        })
        .collect();
    assert_eq!(stored.len(), expected.len(), "{box_id}: transitions stored");
    assert_eq!(stored, expected, "{box_id}: transitions, in arrival order");
    let mut refunds = BTreeMap::new();
    ledger
        .export(0, None, |r| {
            refunds.insert(r.id, r.clone());
        })
        .unwrap();
    let rows = client
        .query(
            "SELECT ledger_id, terminal_id, original_merchant_refund_id, payment_id, \
             amount_value, amount_currency, provider, state, refund_request_id, \
             provider_refund_id, refunded_value, refunded_currency, result_code, \
             result_message, created_ms, updated_ms FROM refunds WHERE box_id = $1 \
             ORDER BY ledger_id",
            &[&box_id],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), refunds.len(), "{box_id}: refunds stored");
    for row in rows {
        let id: i64 = row.get(0);
        let r = &refunds[&id];
        let got = (
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, String>(3),
            row.get::<_, Option<i64>>(4),
            row.get::<_, Option<String>>(5),
            row.get::<_, String>(6),
        );
        let got_b = (
            row.get::<_, String>(7),
            row.get::<_, Option<String>>(8),
            row.get::<_, Option<String>>(9),
            row.get::<_, Option<i64>>(10),
            row.get::<_, Option<String>>(11),
            row.get::<_, Option<String>>(12),
            row.get::<_, Option<String>>(13),
            row.get::<_, i64>(14),
            row.get::<_, i64>(15),
        );
        let want = (
            r.terminal_id.clone(),
            r.original_merchant_refund_id.clone(),
            r.payment_id.clone(),
            r.amount.map(|a| a.value),
            r.amount.map(|a| a.currency.as_str().to_owned()),
            r.provider.clone(),
        );
        let want_b = (
            r.state.as_str().to_owned(),
            Some(r.refund_request_id.clone()),
            r.provider_refund_id.clone(),
            r.refunded.map(|a| a.value),
            r.refunded.map(|a| a.currency.as_str().to_owned()),
            r.result_code.clone(),
            r.result_message.clone(),
            r.created_ms,
            r.updated_ms,
        );
        assert_eq!((got, got_b), (want, want_b), "{box_id}: refund {id}");
    }
}

async fn post(url: &str, box_id: &str, signature: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}{}", batch::BATCH_PATH))
        .header(batch::BOX_HEADER, box_id)
        .header(batch::SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Posts a batch signed with the box's real key.
async fn post_batch(url: &str, batch: &Batch) -> (u16, serde_json::Value) {
    let key = batch::box_key(SECRET.as_bytes(), &batch.header.box_id).unwrap();
    let body = batch.encode();
    let signature = batch::sign(key.as_bytes(), &body);
    post(url, &batch.header.box_id, &signature, body).await
}

fn make_refunds(world: &mut World, prefix: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        world.refund(id, &format!("PAY-{prefix}-{i}"), Some(100 + i as i64));
    }
    ids
}

async fn wait_finals(world: &mut World, ids: &[String]) {
    for id in ids {
        world.final_update(id).await;
    }
}

/// A box without a daemon: a ledger this test writes, for batches it sends itself.
fn replay_ledger(dir: &Path) -> Ledger {
    let mut ledger = Ledger::open(&dir.join("replay.sqlite")).unwrap();
    ledger.fleet_enable("store-replay").unwrap();
    let usd = Currency::parse("USD").unwrap();
    for i in 0..6_i64 {
        let new = NewRefund {
            terminal_id: "T9".into(),
            original_merchant_refund_id: format!("R-{i}"),
            payment_id: format!("P-{i}"),
            amount: Some(Amount::new(1000 + i, usd).unwrap()),
            memo: None,
        };
        let policy = AcceptPolicy {
            provider: "ottpay".into(),
            queued: false,
            refund_request_id: format!("RR-{i}"),
            daily_limit: None,
        };
        let Acceptance::Recorded { refund, .. } = ledger.accept(&new, &policy, 1_000 + i).unwrap()
        else {
            panic!("not recorded")
        };
        let (state, code) = match i % 3 {
            0 => (RefundState::Succeeded, "SUCCESS"),
            1 => (RefundState::NeedsAttention, "UNKNOWN"),
            _ => (RefundState::Failed, "REFUSED"),
        };
        let change = Change {
            state: Some(state),
            result: Some((code.into(), format!("{code} from the provider"))),
            refunded: (state == RefundState::Succeeded)
                .then_some(Amount::new(1000 + i, usd).unwrap()),
            cause: "provider answered".into(),
            ..Change::default()
        };
        ledger
            .apply(refund.id, refund.attempt_id, &change, 2_000 + i)
            .unwrap();
    }
    ledger
}

/// The box's metrics endpoint, from its log.
async fn metrics_url(world: &World) -> String {
    let mut address = None;
    common::eventually("the metrics address in the log", || {
        address = world
            .full_bridge_log()
            .lines()
            .find(|l| l.contains("metrics on /metrics"))
            .and_then(|l| l.split("listen=").nth(1))
            .map(|a| a.split_whitespace().next().unwrap_or("").to_owned());
        address.is_some()
    })
    .await;
    format!("http://{}/metrics", address.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_box_ledger_reaches_postgres_exactly_once_in_order() {
    let Some(pg) = cluster() else { return };
    let database = pg.url();
    let scratch = tempfile::tempdir().unwrap();
    let secret_file = scratch.path().join("fleet.secret");
    write_secret(&secret_file, SECRET);
    let mut receiver = ReceiverProcess::start(
        &database,
        &secret_file,
        &scratch.path().join("receiver.log"),
        "127.0.0.1:0",
    );
    let url = receiver.url();

    let mut worlds = Vec::new();
    for (i, box_id) in BOXES.iter().enumerate() {
        let key_file = scratch.path().join(format!("{box_id}.key"));
        write_secret(
            &key_file,
            batch::box_key(SECRET.as_bytes(), box_id).unwrap(),
        );
        let payments = (0..40)
            .flat_map(|n| {
                ["a", "b", "c", "d", "e"]
                    .map(|phase| payment(&format!("PAY-{box_id}-{phase}-{n}"), 10_000))
            })
            .collect();
        let world = World::new(Setup {
            payments,
            terminal_id: ["T-A", "T-B", "T-C"][i],
            extra_config: format!(
                "{}[fleet]\nurl = \"{url}\"\nbox_id = \"{box_id}\"\nsecret_file = \"{}\"\n\
                 batch_max = 4\ninterval_ms = 50\nretry_max_ms = 400\n",
                // The first box's metrics show its lag.
                if i == 0 {
                    "[metrics]\nlisten = \"127.0.0.1:0\"\n"
                } else {
                    ""
                },
                key_file.display()
            ),
            ..Setup::default()
        })
        .await;
        worlds.push(world);
    }

    // 1. Refunds with everything up.
    for (world, box_id) in worlds.iter_mut().zip(BOXES) {
        let ids = make_refunds(world, &format!("{box_id}-a"), 3);
        wait_finals(world, &ids).await;
    }
    for (world, box_id) in worlds.iter().zip(BOXES) {
        converged(&database, box_id, &world.ledger_path()).await;
    }

    // 2. The receiver is SIGKILLed and stays away: refunds go on, the outbox fills.
    receiver.kill();
    for (world, box_id) in worlds.iter_mut().zip(BOXES) {
        let ids = make_refunds(world, &format!("{box_id}-b"), 3);
        wait_finals(world, &ids).await;
    }
    for world in &worlds {
        let position = world.ledger().fleet_position().unwrap().unwrap();
        assert!(position.pending > 0, "{position:?}");
        assert!(position.oldest_unconfirmed_ms.is_some());
    }
    let metrics = metrics_url(&worlds[0]).await;
    let gauge = |page: &str, name: &str| -> f64 {
        page.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {page}"))
    };
    let page = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    assert!(gauge(&page, "posbridge_fleet_lag_seconds") > 0.0, "{page}");
    assert!(
        gauge(&page, "posbridge_fleet_pending_transitions") >= 6.0,
        "{page}"
    );
    receiver.restart();
    for (world, box_id) in worlds.iter().zip(BOXES) {
        converged(&database, box_id, &world.ledger_path()).await;
    }
    let page = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    assert_eq!(gauge(&page, "posbridge_fleet_lag_seconds"), 0.0, "{page}");
    assert_eq!(
        gauge(&page, "posbridge_fleet_pending_transitions"),
        0.0,
        "{page}"
    );

    // 3. PostgreSQL crashes; meanwhile box 2 is SIGKILLed and restarted.
    pg.stop_server(true).unwrap();
    for (world, box_id) in worlds.iter_mut().zip(BOXES) {
        let ids = make_refunds(world, &format!("{box_id}-c"), 3);
        wait_finals(world, &ids).await;
    }
    worlds[1].kill_bridge();
    worlds[1].start_bridge();
    let ids = make_refunds(&mut worlds[1], &format!("{}-d", BOXES[1]), 2);
    wait_finals(&mut worlds[1], &ids).await;
    pg.start_server().unwrap();
    for (world, box_id) in worlds.iter().zip(BOXES) {
        converged(&database, box_id, &world.ledger_path()).await;
    }

    // 4. SIGKILLs while batches are in flight: the receiver, then box 3.
    for (world, box_id) in worlds.iter_mut().zip(BOXES) {
        make_refunds(world, &format!("{box_id}-e"), 4);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    receiver.restart();
    worlds[2].kill_bridge();
    worlds[2].start_bridge();
    for (world, box_id) in worlds.iter_mut().zip(BOXES) {
        let ids: Vec<String> = (0..4).map(|i| format!("{box_id}-e-{i}")).collect();
        wait_finals(world, &ids).await;
    }
    for (world, box_id) in worlds.iter().zip(BOXES) {
        converged(&database, box_id, &world.ledger_path()).await;
    }
    let client = connect(&database).await.unwrap();
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let before = count("SELECT count(*) FROM transitions").await;

    // 5. Forged batches are refused and change nothing.
    let ledger = worlds[0].ledger();
    let real = Batch::new(BOXES[0], 0, ledger.outbox_after(0, 3).unwrap());
    let body = real.encode();
    let other_key = batch::box_key(SECRET.as_bytes(), BOXES[1]).unwrap();
    let forged = [
        // Signed with another box's key.
        (
            BOXES[0],
            batch::sign(other_key.as_bytes(), &body),
            body.clone(),
        ),
        // Signed with a guessed secret.
        (
            BOXES[0],
            batch::sign(b"not the fleet secret at all", &body),
            body.clone(),
        ),
        // A real signature over a body changed afterwards.
        {
            let key = batch::box_key(SECRET.as_bytes(), BOXES[0]).unwrap();
            let signature = batch::sign(key.as_bytes(), &body);
            let tampered = String::from_utf8(body.clone())
                .unwrap()
                .replacen("\"to_state\":\"ACCEPTED\"", "\"to_state\":\"FAILED\"", 1)
                .into_bytes();
            assert_ne!(tampered, body);
            (BOXES[0], signature, tampered)
        },
        // No signature, and a box named in the header that is not the body's.
        (BOXES[0], String::new(), body.clone()),
        (
            BOXES[1],
            batch::sign(other_key.as_bytes(), &body),
            body.clone(),
        ),
    ];
    for (i, (box_id, signature, body)) in forged.into_iter().enumerate() {
        let (status, answer) = post(&url, box_id, &signature, body).await;
        assert!(
            status == 401 || (i == 4 && status == 400),
            "forgery {i}: {status} {answer}"
        );
    }
    // Too large, whatever it says, is refused before it is read whole.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(receiver.addr).await.unwrap();
        stream
            .write_all(
                b"POST /v1/batch HTTP/1.1\r\nHost: fleet\r\nPosbridge-Box: store-101\r\n\
                  Content-Length: 5000000\r\n\r\n{",
            )
            .await
            .unwrap();
        let mut answer = vec![0; 200];
        let n = stream.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }
    assert_eq!(count("SELECT count(*) FROM transitions").await, before);

    // 6. Duplicated, reordered and overlapping batches of a box this test drives.
    let replay = replay_ledger(scratch.path());
    let all = replay.outbox_after(0, 100).unwrap();
    assert_eq!(all.len(), 12);
    let part = |from: usize, to: usize| {
        let prev = if from == 0 { 0 } else { all[from - 1].seq };
        Batch::new("store-replay", prev, all[from..to].to_vec())
    };
    let (b1, b2, b3) = (part(0, 4), part(4, 8), part(8, 12));
    let expect = |answer: (u16, serde_json::Value), status: u16, last: i64| {
        assert_eq!(answer.0, status, "{}", answer.1);
        assert_eq!(answer.1["last"], last, "{}", answer.1);
    };
    expect(post_batch(&url, &b2).await, 409, 0);
    expect(post_batch(&url, &b1).await, 200, b1.header.last);
    expect(post_batch(&url, &b1).await, 200, b1.header.last);
    expect(post_batch(&url, &b3).await, 409, b1.header.last);
    expect(post_batch(&url, &b2).await, 200, b2.header.last);
    // Overlapping: half of it is stored already.
    let overlap = part(6, 12);
    let answer = post_batch(&url, &overlap).await;
    expect(answer.clone(), 200, b3.header.last);
    assert_eq!(answer.1["stored"], 4);
    expect(post_batch(&url, &b3).await, 200, b3.header.last);
    expect(post_batch(&url, &b1).await, 200, b3.header.last);
    // A re-send that differs from what is stored is refused, not stored.
    let mut changed = b2.clone();
    changed.entries[0].at_ms += 1;
    assert_eq!(post_batch(&url, &changed).await.0, 422);
    assert_holds_exactly(
        &client,
        "store-replay",
        &scratch.path().join("replay.sqlite"),
    )
    .await;

    // A whole box's history sent again from the start is all ignored.
    let mut prev = 0;
    for chunk in ledger.outbox_after(0, 1_000_000).unwrap().chunks(50) {
        let batch = Batch::new(BOXES[0], prev, chunk.to_vec());
        prev = batch.header.last;
        let (status, answer) = post_batch(&url, &batch).await;
        assert_eq!(
            (status, answer["stored"].as_i64()),
            (200, Some(0)),
            "{answer}"
        );
    }

    // 7. Exactly every box's ledger, no row twice, in order.
    for (world, box_id) in worlds.iter_mut().zip(BOXES) {
        world.stop_bridge();
        assert_holds_exactly(&client, box_id, &world.ledger_path()).await;
    }
    assert_eq!(
        count("SELECT count(*) FROM (SELECT box_id, seq FROM transitions GROUP BY 1, 2 HAVING count(*) > 1) d").await,
        0
    );
    // And the simulators made each refund once.
    for (world, box_id) in worlds.iter().zip(BOXES) {
        for (phase, n) in [("a", 3), ("b", 3), ("c", 3), ("e", 4)] {
            for i in 0..n {
                assert_eq!(world.sim.executed(&format!("PAY-{box_id}-{phase}-{i}")), 1);
            }
        }
    }

    // The views answer the team's questions.
    let attention = store::ask(&client, &Question::Attention).await.unwrap();
    let replay_attention: Vec<_> = attention
        .rows
        .iter()
        .filter(|r| r[0].as_deref() == Some("store-replay"))
        .collect();
    assert_eq!(replay_attention.len(), 2, "{attention:?}");
    let totals = store::ask(
        &client,
        &Question::Totals {
            day: None,
            box_id: Some(BOXES[1].into()),
        },
    )
    .await
    .unwrap();
    let succeeded: i64 = totals
        .rows
        .iter()
        .map(|r| r[5].as_deref().unwrap().parse::<i64>().unwrap())
        .sum();
    // Box 2 made 3 + 3 + 3 + 2 + 4 refunds, all succeeded.
    assert_eq!(succeeded, 15, "{totals:?}");
    let receiver_log = std::fs::read_to_string(scratch.path().join("receiver.log")).unwrap();
    assert!(!receiver_log.contains(SECRET));
    // The outages were real: the receiver saw the database away.
    assert!(
        receiver_log.contains("database unavailable"),
        "{receiver_log}"
    );
    let stored = count("SELECT count(*) FROM transitions").await;
    let batches = count("SELECT sum(batches)::bigint FROM boxes").await;
    eprintln!(
        "{stored} transitions in {batches} batches from {} boxes",
        BOXES.len() + 1
    );
    for world in &worlds {
        let log = world.full_bridge_log();
        assert!(
            log.contains("fleet: fleet receiver"),
            "the box saw the receiver fail"
        );
    }
    drop(receiver);
}

/// The receiver with its own certificate and mutual TLS, the shipper in this
/// process: without the receiver's CA the box refuses the receiver, without its own
/// certificate the receiver refuses the box, and the lag grows meanwhile; with both
/// the ledger arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_the_receivers_own_certificate() {
    use posbridge::fleet::receiver::tls_config;
    use posbridge::fleet::{FleetConfig, Receiver, ReceiverSettings, Shipper};
    use posbridge::ledger::LedgerHandle;

    let Some(pg) = cluster() else { return };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/fleet");
    let tls = tls_config(
        &fixtures.join("receiver.pem"),
        &fixtures.join("receiver.key"),
        Some(&fixtures.join("ca.pem")),
    )
    .unwrap();
    let receiver = Receiver::start(ReceiverSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: Database::new(&pg.url(), None).unwrap(),
        fleet_secret: SECRET.as_bytes().to_vec(),
        tls: Some(tls),
        connections: 2,
        max_body_bytes: 1 << 20,
        header_read_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("ledger.sqlite");
    let mut ledger = Ledger::open(&ledger_path).unwrap();
    let usd = Currency::parse("USD").unwrap();
    let an_hour_ago = jiff::Timestamp::now().as_millisecond() - 3_600_000;
    for i in 0..5_i64 {
        let new = NewRefund {
            terminal_id: "T1".into(),
            original_merchant_refund_id: format!("R-{i}"),
            payment_id: format!("P-{i}"),
            amount: Some(Amount::new(500, usd).unwrap()),
            memo: None,
        };
        let policy = AcceptPolicy {
            provider: "antom".into(),
            queued: false,
            refund_request_id: format!("RR-{i}"),
            daily_limit: None,
        };
        ledger.accept(&new, &policy, an_hour_ago + i).unwrap();
    }
    let handle = LedgerHandle::spawn(ledger).unwrap();
    let key_file = dir.path().join("box.key");
    write_secret(
        &key_file,
        batch::box_key(SECRET.as_bytes(), "store-tls").unwrap(),
    );
    // The fixture's key as a store keeps it: a copy only this user may read.
    let box_tls_key = dir.path().join("box-tls.key");
    write_secret(
        &box_tls_key,
        std::fs::read(fixtures.join("box.key")).unwrap(),
    );
    let base = format!(
        "url = \"https://127.0.0.1:{}\"\nbox_id = \"store-tls\"\nsecret_file = \"{}\"\n\
         interval_ms = 20\nretry_max_ms = 200\n",
        receiver.local_addr().port(),
        key_file.display()
    );
    let ca = format!("ca_file = \"{}\"\n", fixtures.join("ca.pem").display());
    let client = format!(
        "client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
        fixtures.join("box.pem").display(),
        box_tls_key.display()
    );
    let database = pg.url();
    for (what, extra, why) in [
        (
            "no CA for the receiver's certificate",
            String::new(),
            "UnknownIssuer",
        ),
        ("no client certificate", ca.clone(), "CertificateRequired"),
    ] {
        let config: FleetConfig = toml::from_str(&format!("{base}{extra}")).unwrap();
        config.validate().unwrap();
        let shipper = Shipper::start(&config, config.prepare().unwrap(), handle.clone())
            .await
            .unwrap();
        let status = shipper.status();
        until(what, || {
            let s = status.snapshot();
            async move {
                if s.failures >= 2 {
                    Ok(())
                } else {
                    Err(format!("{s:?}"))
                }
            }
        })
        .await;
        shipper.stop();
        let error = status.snapshot().last_error.unwrap_or_default();
        assert!(error.contains(why), "{what}: {error}");
        assert_eq!(
            stored_position(&database, "store-tls").await.unwrap(),
            0,
            "{what}"
        );
        let metrics = status.prometheus(None, jiff::Timestamp::now().as_millisecond());
        let lag: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("posbridge_fleet_lag_seconds "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(lag >= 3_600.0, "{what}: {metrics}");
        assert!(
            metrics.contains("posbridge_fleet_pending_transitions 5"),
            "{metrics}"
        );
    }
    let config: FleetConfig = toml::from_str(&format!("{base}{ca}{client}")).unwrap();
    let shipper = Shipper::start(&config, config.prepare().unwrap(), handle.clone())
        .await
        .unwrap();
    converged(&database, "store-tls", &ledger_path).await;
    let status = shipper.status();
    until("the lag drops to zero", || {
        let metrics = status.prometheus(None, jiff::Timestamp::now().as_millisecond());
        async move {
            if metrics.contains("posbridge_fleet_lag_seconds 0.000") {
                Ok(())
            } else {
                Err(metrics)
            }
        }
    })
    .await;
    shipper.stop();
    let client = connect(&database).await.unwrap();
    assert_holds_exactly(&client, "store-tls", &ledger_path).await;
    receiver.shutdown().await;
}
