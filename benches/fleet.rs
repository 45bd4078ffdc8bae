//! The fleet receiver's throughput and a box's lag through a receiver outage, against
//! a private PostgreSQL cluster with fsync on (Debian's binaries; see
//! `posbridge::sim::postgres`).
//!
//! `cargo bench --bench fleet` runs both parts, for docs/PERFORMANCE.md:
//!
//! - throughput: `--boxes N` synthetic boxes (default 16) post `--batches M` signed
//!   batches each (default 40) of `--rows R` transitions (default 500) to the
//!   receiver over loopback HTTP, as fast as the answers come, four receiver
//!   connections to the database; reports batches/s and rows/s, and the time per
//!   batch (p50/p99) seen by a box. `--rows 1` measures the per-batch cost.
//! - lag: a box's real ledger and shipper (the daemon's, in this process, defaults
//!   `interval_ms = 1000`, `retry_max_ms = 60000`) while refunds are recorded at
//!   `--rate` per second (default 20, two transitions each); the receiver is stopped
//!   for `--outage-secs` (default 30) and started again. Reports the lag (the age of
//!   the oldest unconfirmed transition, as the metric shows it) before, at the end
//!   of, and after the outage, and how long the backlog took to drain.
//!
//! `-- --only throughput` or `-- --only lag` runs one part.

use std::sync::Arc;
use std::time::{Duration, Instant};

use posbridge::fleet::batch::{self, Batch};
use posbridge::fleet::store::Database;
use posbridge::fleet::{FleetConfig, Receiver, ReceiverSettings, Shipper};
use posbridge::ledger::{
    AcceptPolicy, Acceptance, Change, Ledger, LedgerHandle, NewRefund, OutboxEntry, OutboxRefund,
};
use posbridge::message::RefundState;
use posbridge::money::{Amount, Currency};
use posbridge::sim::postgres::PgCluster;

const SECRET: &[u8] = b"bench-fleet-secret-0123456789abcdef";

struct Args {
    boxes: usize,
    batches: usize,
    rows: usize,
    rate: f64,
    outage_secs: u64,
    only: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        boxes: 16,
        batches: 40,
        rows: 500,
        rate: 20.0,
        outage_secs: 30,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_default();
        match arg.as_str() {
            "--boxes" => args.boxes = value().parse().expect("--boxes N"),
            "--batches" => args.batches = value().parse().expect("--batches M"),
            "--rows" => args.rows = value().parse().expect("--rows R"),
            "--rate" => args.rate = value().parse().expect("--rate PER_SECOND"),
            "--outage-secs" => args.outage_secs = value().parse().expect("--outage-secs S"),
            "--only" => args.only = Some(value()),
            // cargo bench passes --bench.
            _ => {}
        }
    }
    args
}

fn main() {
    let args = args();
    let pg = match PgCluster::start(true) {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("SKIPPED: the fleet bench needs PostgreSQL: {e}");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if args.only.as_deref().is_none_or(|o| o == "throughput") {
            throughput(&pg, &args).await;
        }
        if args.only.as_deref().is_none_or(|o| o == "lag") {
            lag(&pg, &args).await;
        }
    });
}

async fn start_receiver(pg: &PgCluster, listen: &str) -> Receiver {
    Receiver::start(ReceiverSettings {
        listen: listen.parse().unwrap(),
        database: Database::new(&pg.url(), None).unwrap(),
        fleet_secret: SECRET.to_vec(),
        tls: None,
        connections: 4,
        max_body_bytes: 16 << 20,
        header_read_timeout: Duration::from_secs(10),
    })
    .await
    .unwrap()
}

/// A transition as a busy box records them: refunds accepted, then settled.
fn entry(seq: i64) -> OutboxEntry {
    let refund = (seq + 1) / 2;
    let accepted = seq % 2 == 1;
    let at = 1_764_000_000_000 + seq * 1_000;
    OutboxEntry {
        seq,
        at_ms: at,
        from_state: (!accepted).then(|| "ACCEPTED".into()),
        to_state: if accepted { "ACCEPTED" } else { "SUCCEEDED" }.into(),
        cause: if accepted {
            "REFUND from terminal POS-3".into()
        } else {
            "provider answered SUCCESS".into()
        },
        result_code: (!accepted).then(|| "SUCCESS".into()),
        attempt_id: Some(refund),
        refund: OutboxRefund {
            id: refund,
            terminal_id: "POS-3".into(),
            original_merchant_refund_id: format!("RF-2026-{refund:08}"),
            payment_id: format!("2026120119400000000000{refund:08}"),
            amount_value: Some(1250 + refund % 1000),
            amount_currency: Some("USD".into()),
            memo: None,
            provider: "antom".into(),
            created_ms: at,
            state: if accepted { "ACCEPTED" } else { "SUCCEEDED" }.into(),
            refund_request_id: Some(format!("pb-7f3a9c2e-{refund:012}")),
            provider_refund_id: (!accepted).then(|| format!("2026120111140100001{refund:08}")),
            refund_time: (!accepted).then(|| "2026-12-01T19:40:05-08:00".into()),
            refunded_value: (!accepted).then_some(1250 + refund % 1000),
            refunded_currency: (!accepted).then(|| "USD".into()),
            result_code: (!accepted).then(|| "SUCCESS".into()),
            result_message: (!accepted).then(|| "Success".into()),
            updated_ms: at,
        },
    }
}

async fn throughput(pg: &PgCluster, args: &Args) {
    let receiver = start_receiver(pg, "127.0.0.1:0").await;
    let url = format!("http://{}{}", receiver.local_addr(), batch::BATCH_PATH);
    let client = reqwest::Client::new();
    // Bodies are made and signed before the clock starts: the receiver is measured.
    let mut work = Vec::new();
    let mut bytes = 0usize;
    for b in 0..args.boxes {
        let box_id = format!("bench-{}-{b:03}", args.rows);
        let key = batch::box_key(SECRET, &box_id).unwrap();
        let mut batches = Vec::new();
        for m in 0..args.batches {
            let first = (m * args.rows) as i64 + 1;
            let entries = (first..first + args.rows as i64).map(entry).collect();
            let body = Batch::new(&box_id, first - 1, entries).encode();
            bytes += body.len();
            let signature = batch::sign(key.as_bytes(), &body);
            batches.push((body, signature));
        }
        work.push((box_id, batches));
    }
    let started = Instant::now();
    let tasks: Vec<_> = work
        .into_iter()
        .map(|(box_id, batches)| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut times = Vec::new();
                for (body, signature) in batches {
                    let t = Instant::now();
                    let response = client
                        .post(&url)
                        .header(batch::BOX_HEADER, &box_id)
                        .header(batch::SIGNATURE_HEADER, signature)
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
                    times.push(t.elapsed());
                }
                times
            })
        })
        .collect();
    let mut times = Vec::new();
    for task in tasks {
        times.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    times.sort();
    let batches = (args.boxes * args.batches) as f64;
    let q = |p: f64| times[((times.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
    println!(
        "throughput: {} boxes x {} batches x {} rows ({:.0} bytes/batch): {:.1} s, \
         {:.0} batches/s, {:.0} rows/s; per batch p50 {:.1} ms, p99 {:.1} ms",
        args.boxes,
        args.batches,
        args.rows,
        bytes as f64 / batches,
        elapsed,
        batches / elapsed,
        batches * args.rows as f64 / elapsed,
        q(0.5),
        q(0.99)
    );
    receiver.shutdown().await;
    let client = Database::new(&pg.url(), None)
        .unwrap()
        .connect()
        .await
        .unwrap();
    for table in ["transitions", "refunds"] {
        let row = client
            .query_one(
                &format!(
                    "SELECT pg_total_relation_size('{table}')::float8 / greatest(count(*), 1), \
                     count(*) FROM {table}"
                ),
                &[],
            )
            .await
            .unwrap();
        let (per_row, rows): (f64, i64) = (row.get(0), row.get(1));
        println!("storage: {table}: {per_row:.0} bytes a row with indexes ({rows} rows)");
    }
}

/// Records one refund accepted and, a moment later, succeeded.
fn record_refund(ledger: &mut Ledger, n: u64) {
    let usd = Currency::parse("USD").unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    let new = NewRefund {
        terminal_id: "POS-1".into(),
        original_merchant_refund_id: format!("RF-{n}"),
        payment_id: format!("PAY-{n}"),
        amount: Some(Amount::new(1250, usd).unwrap()),
        memo: None,
    };
    let policy = AcceptPolicy {
        provider: "antom".into(),
        queued: false,
        refund_request_id: format!("RR-{n}"),
        daily_limit: None,
    };
    let Ok(Acceptance::Recorded { refund, .. }) = ledger.accept(&new, &policy, now) else {
        panic!("refund {n} not recorded");
    };
    let change = Change {
        state: Some(RefundState::Succeeded),
        result: Some(("SUCCESS".into(), "Success".into())),
        cause: "provider answered SUCCESS".into(),
        ..Change::default()
    };
    ledger
        .apply(refund.id, refund.attempt_id, &change, now)
        .unwrap();
}

async fn lag(pg: &PgCluster, args: &Args) {
    let mut receiver = start_receiver(pg, "127.0.0.1:0").await;
    let addr = receiver.local_addr();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let handle = LedgerHandle::spawn(ledger).unwrap();
    let key_file = dir.path().join("box.key");
    std::fs::write(&key_file, batch::box_key(SECRET, "bench-lag").unwrap()).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let config: FleetConfig = toml::from_str(&format!(
        "url = \"http://{addr}\"\nbox_id = \"bench-lag\"\nsecret_file = \"{}\"\n",
        key_file.display()
    ))
    .unwrap();
    let shipper = Shipper::start(&config, config.prepare().unwrap(), handle.clone())
        .await
        .unwrap();
    // The true lag, read from the ledger as the metrics endpoint does.
    let lag_now = || {
        let handle = handle.clone();
        async move {
            let position = handle.call(|l| l.fleet_position()).await.unwrap().unwrap();
            let now = jiff::Timestamp::now().as_millisecond();
            let lag = position
                .oldest_unconfirmed_ms
                .map_or(0.0, |at| (now - at) as f64 / 1000.0);
            (lag, position.pending)
        }
    };
    // Refunds at a steady rate, through the ledger thread as the bridge records them.
    let producing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let producer = {
        let handle = handle.clone();
        let producing = producing.clone();
        let every = Duration::from_secs_f64(1.0 / args.rate);
        tokio::spawn(async move {
            let mut n = 0u64;
            let mut tick = tokio::time::interval(every);
            while producing.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                n += 1;
                handle
                    .call(move |l| {
                        record_refund(l, n);
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
            n
        })
    };
    let sample = |secs: f64| {
        let lag_now = &lag_now;
        async move {
            let until = Instant::now() + Duration::from_secs_f64(secs);
            let mut lags = Vec::new();
            while Instant::now() < until {
                lags.push(lag_now().await.0);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            lags.sort_by(f64::total_cmp);
            lags
        }
    };
    let q = |lags: &[f64], p: f64| lags[((lags.len() as f64 - 1.0) * p) as usize];
    let steady = sample(20.0).await;
    println!(
        "lag, steady at {} refunds/s ({} transitions/s): p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        args.rate,
        args.rate * 2.0,
        q(&steady, 0.5),
        q(&steady, 0.99),
        steady.last().unwrap()
    );
    receiver.shutdown().await;
    tokio::time::sleep(Duration::from_secs(args.outage_secs)).await;
    let (at_end, pending) = lag_now().await;
    receiver = start_receiver(pg, &addr.to_string()).await;
    let back = Instant::now();
    // Drained: the lag is back under two intervals.
    while lag_now().await.0 > 2.0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = back.elapsed().as_secs_f64();
    println!(
        "lag, receiver away {} s: {:.1} s at its end ({pending} transitions waiting); \
         drained {:.1} s after it returned (retry backoff included)",
        args.outage_secs, at_end, drained
    );
    let after = sample(10.0).await;
    println!(
        "lag, after the outage: p50 {:.2} s, p99 {:.2} s",
        q(&after, 0.5),
        q(&after, 0.99)
    );
    producing.store(false, std::sync::atomic::Ordering::Relaxed);
    let made = producer.await.unwrap();
    let last = handle
        .call(|l| l.fleet_position())
        .await
        .unwrap()
        .unwrap()
        .last_seq;
    println!("lag: {made} refunds recorded, {last} transitions");
    shipper.stop();
    receiver.shutdown().await;
}
