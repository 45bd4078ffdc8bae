//! A ledger of years: 10,000,000 final refunds, and what the bridge and the operator
//! commands cost on it, side by side with an empty ledger.
//!
//! `cargo bench --bench ledger_scale` (`-- --refunds N` for another size). The
//! generator writes the refunds straight into the real schema (made by
//! `Ledger::open`, so it is the daemon's own), three years of them over 20 terminals,
//! each with its attempt and its three transitions, all final and acknowledged; the
//! file is kept in `target/ledger-scale/` for the next run. Then, on the big ledger
//! and on an empty one:
//! - `posbridge run` (release) from spawn to the first refund recorded: spawn → the
//!   emulated terminal's link up → a REFUND → its ACCEPTED update;
//! - a new refund's recording (`Ledger::accept`, the daemon's own call), p50/p99 of 500;
//! - `posbridge queue` and `posbridge show` wall time, process start included;
//! - `posbridge export` of the whole ledger and of one day: time, and the process's
//!   peak RSS (from the kernel's accounting of the finished child), which must not
//!   grow with the ledger.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use posbridge::ledger::{AcceptPolicy, DailyLimit, Ledger, NewRefund};
use posbridge::link::OneShot;
use posbridge::message::{Message, Refund, RefundState};
use posbridge::money::{Amount, Currency};
use posbridge::sim::cloud::{CloudSim, demo};
use posbridge::sim::terminal::{Terminal, TerminalEvent, TerminalIdentity};
use posbridge::transport::open_pty;
use rusqlite::params;

const TERMINALS: i64 = 20;
const YEARS_MS: i64 = 3 * 365 * 86_400_000;
/// 2023-01-01T00:00:00Z: the first generated refund.
const START_MS: i64 = 1_672_531_200_000;

fn usd(v: i64) -> Amount {
    Amount::new(v, Currency::parse("USD").unwrap()).unwrap()
}

/// Writes `n` final refunds into a new ledger at `path` (real schema, bulk inserts).
fn generate(path: &Path, n: i64) {
    let started = Instant::now();
    let _ = std::fs::remove_file(path);
    drop(Ledger::open(path).expect("schema"));
    let mut conn = rusqlite::Connection::open(path).unwrap();
    // A bulk load, not the daemon: durability comes from the final checkpoint.
    conn.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000; PRAGMA temp_store = MEMORY;",
    )
    .unwrap();
    let step = YEARS_MS / n.max(1);
    let batch = 200_000;
    let mut id = 0;
    while id < n {
        let tx = conn.transaction().unwrap();
        {
            let mut refund = tx
                .prepare(
                    "INSERT INTO refunds (id, terminal_id, original_merchant_refund_id, \
                     payment_id, amount_value, amount_currency, provider, state, attempt_id, \
                     provider_refund_id, refund_time, refunded_value, refunded_currency, \
                     result_code, result_message, created_ms, updated_ms, next_action_ms, \
                     tries, delivered_state, delivered_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, 'USD', 'antom', ?6, ?1, ?7, ?8, ?9, ?10, ?11, \
                     ?12, ?13, ?14, NULL, 1, ?6, ?14)",
                )
                .unwrap();
            let mut attempt = tx
                .prepare(
                    "INSERT INTO attempts (id, refund_id, refund_request_id, status, sends, \
                     created_ms, last_sent_ms, last_outcome) \
                     VALUES (?1, ?1, ?2, 'DONE', 1, ?3, ?3, ?4)",
                )
                .unwrap();
            let mut transition = tx
                .prepare(
                    "INSERT INTO transitions (refund_id, at_ms, from_state, to_state, cause, \
                     result_code, attempt_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?1)",
                )
                .unwrap();
            for _ in 0..batch.min(n - id) {
                id += 1;
                let created = START_MS + id * step;
                let terminal = format!("POS-{:02}", id % TERMINALS);
                let failed = id % 20 == 0;
                let (state, code, message, refunded) = if failed {
                    (
                        "FAILED",
                        "REFUND_AMOUNT_EXCEED",
                        "refund amount exceeds",
                        None,
                    )
                } else {
                    ("SUCCEEDED", "SUCCESS", "Success", Some(100 + id % 10_000))
                };
                let done = created + 400;
                refund
                    .execute(params![
                        id,
                        terminal,
                        format!("R{id:010}"),
                        format!("PAY-{id:010}"),
                        100 + id % 10_000,
                        state,
                        (!failed).then(|| format!("2023{id:012}")),
                        (!failed).then(|| "2023-01-01T00:00:00+00:00".to_owned()),
                        refunded,
                        refunded.map(|_| "USD"),
                        code,
                        message,
                        created,
                        done,
                    ])
                    .unwrap();
                attempt
                    .execute(params![id, format!("RR-{id:010}"), created + 10, state])
                    .unwrap();
                for (at, from, to, cause) in [
                    (created, None, "ACCEPTED", "REFUND from the terminal"),
                    (
                        created + 10,
                        Some("ACCEPTED"),
                        "PROCESSING",
                        "sent to antom",
                    ),
                    (done, Some("PROCESSING"), state, "antom answered"),
                ] {
                    let result = (to == state).then_some(code);
                    transition
                        .execute(params![id, at, from, to, cause, result])
                        .unwrap();
                }
            }
        }
        tx.commit().unwrap();
        eprint!(
            "\r  generated {id} of {n} refunds ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    eprintln!();
    println!(
        "generated {n} refunds (and {n} attempts, {} transitions) in {:.0} s; file {:.1} GB",
        3 * n,
        started.elapsed().as_secs_f64(),
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as f64 / 1e9
    );
}

fn count(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .and_then(|c| c.query_row("SELECT COALESCE(MAX(id), 0) FROM refunds", [], |r| r.get(0)))
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Spawn of `posbridge run` to the first refund recorded, through a real link.
async fn start_to_first_refund(ledger: &Path, sim: &CloudSim) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut line = open_pty().unwrap();
    let master = std::mem::replace(&mut line.master, open_pty().unwrap().master);
    let config = dir.path().join("posbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\npath = \"{}\"\n\n[[terminal]]\ndevice = \"{}\"\n\n{}",
            ledger.display(),
            line.path.display(),
            demo::provider_toml("paymentoptions", &sim.base_url()).unwrap()
        ),
    )
    .unwrap();
    let identity = TerminalIdentity {
        terminal_id: "POS-NEW".into(),
        ..TerminalIdentity::default()
    };
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (terminal, mut events) = Terminal::start(&identity, None, None, OneShot::new(master));
    let deadline = Instant::now() + Duration::from_secs(120);
    let id = format!("START-{}", started.elapsed().as_nanos());
    let mut sent = false;
    let elapsed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(TerminalEvent::Up)) if !sent => {
                sent = true;
                let refund = Message::Refund(Refund {
                    original_merchant_refund_id: id.clone(),
                    payment_id: format!("PAY-{id}"),
                    refund_amount: Some(usd(100)),
                    memo: None,
                });
                terminal.send(&refund).await.unwrap();
            }
            Ok(Some(TerminalEvent::Message(Message::RefundUpdate(u))))
                if u.original_merchant_refund_id == id && u.state == RefundState::Accepted =>
            {
                break started.elapsed();
            }
            Ok(Some(_)) => {}
            _ => panic!("no ACCEPTED within 120 s"),
        }
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = child.wait();
    elapsed
}

/// `Ledger::accept` of `n` new refunds: p50 and p99.
fn recording(ledger: &Path, n: usize, tag: &str) -> (Duration, Duration) {
    let mut l = Ledger::open(ledger).unwrap();
    let now = START_MS + YEARS_MS + 86_400_000;
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let new = NewRefund {
            terminal_id: format!("POS-{:02}", i % 20),
            original_merchant_refund_id: format!("NEW-{tag}-{i}-{now}"),
            payment_id: format!("PAY-NEW-{tag}-{i}-{now}"),
            amount: Some(usd(100)),
            memo: None,
        };
        let policy = AcceptPolicy {
            provider: "antom".into(),
            queued: false,
            refund_request_id: format!("RR-NEW-{tag}-{i}-{now}"),
            // As the daemon sets it: the day's sum is asked on every REFUND.
            daily_limit: Some(DailyLimit {
                max: usd(1_000_000_000),
                since_ms: now - 86_400_000,
            }),
        };
        let t = Instant::now();
        l.accept(&new, &policy, now + i as i64).unwrap();
        times.push(t.elapsed());
    }
    // Settled again, so the next run's daemon has nothing of these to send.
    let settle = rusqlite::Connection::open(ledger).and_then(|c| {
        c.execute(
            "UPDATE refunds SET state = 'FAILED', delivered_state = 'FAILED', \
             next_action_ms = NULL WHERE original_merchant_refund_id >= 'NEW-' \
             AND original_merchant_refund_id < 'NEW.'",
            [],
        )
    });
    settle.unwrap();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// Wall time of a `posbridge` command (process start included): median and max of 5.
fn command_time(args: &[&str]) -> (Duration, Duration) {
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        times.push(t.elapsed());
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    times.sort();
    (times[2], times[4])
}

/// A command's wall time and its peak RSS in MiB (the kernel's ru_maxrss of the child).
fn measured_run(args: &[&str]) -> (Duration, f64) {
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // The peak of resident memory, read while it runs (VmHWM).
    let mut peak_kib = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kib) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "{args:?}");
                break;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    (t.elapsed(), peak_kib as f64 / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut n: i64 = 10_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--refunds" {
            n = args.next().and_then(|v| v.parse().ok()).unwrap_or(n);
        }
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ledger-scale");
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join(format!("ledger-{n}.sqlite"));
    if count(&big) < n {
        generate(&big, n);
    } else {
        println!("reusing {} ({} refunds)", big.display(), count(&big));
    }
    let empty_dir = tempfile::tempdir().unwrap();
    let empty = empty_dir.path().join("ledger.sqlite");
    drop(Ledger::open(&empty).unwrap());

    let sim = CloudSim::start(demo::sim_config(([127, 0, 0, 1], 0).into()).unwrap())
        .await
        .unwrap();
    println!(
        "\n| measure | empty ledger | {} refunds | target |",
        count(&big)
    );
    println!("| --- | --- | --- | --- |");
    let (e, b) = (
        start_to_first_refund(&empty, &sim).await,
        start_to_first_refund(&big, &sim).await,
    );
    println!(
        "| `posbridge run`: spawn to the first refund recorded | {} | {} | ≤ 2 s |",
        ms(e),
        ms(b)
    );
    let (e50, e99) = recording(&empty, 500, "e");
    let (b50, b99) = recording(&big, 500, "b");
    println!(
        "| a new refund recorded (`Ledger::accept`), p50 / p99 of 500 | {} / {} | {} / {} | p99 within 20 % |",
        ms(e50),
        ms(e99),
        ms(b50),
        ms(b99)
    );
    let (big_s, empty_s) = (big.to_str().unwrap(), empty.to_str().unwrap());
    let (eq, eq_max) = command_time(&["queue", "--ledger", empty_s]);
    let (bq, bq_max) = command_time(&["queue", "--ledger", big_s]);
    println!(
        "| `posbridge queue`, median / max of 5 | {} / {} | {} / {} | ≤ 50 ms |",
        ms(eq),
        ms(eq_max),
        ms(bq),
        ms(bq_max)
    );
    let probe = format!("R{:010}", n / 2);
    let (bs, bs_max) = command_time(&["show", &probe, "--ledger", big_s]);
    let (es, es_max) = command_time(&["show", "1", "--ledger", empty_s]);
    println!(
        "| `posbridge show` (by the terminal's refund id on the big ledger), median / max of 5 | {} / {} | {} / {} | ≤ 50 ms |",
        ms(es),
        ms(es_max),
        ms(bs),
        ms(bs_max)
    );
    let day = jiff::Timestamp::from_millisecond(START_MS + YEARS_MS / 2)
        .unwrap()
        .strftime("%Y-%m-%d")
        .to_string();
    let next_day = jiff::Timestamp::from_millisecond(START_MS + YEARS_MS / 2 + 86_400_000)
        .unwrap()
        .strftime("%Y-%m-%d")
        .to_string();
    let out = dir.join("export.jsonl");
    let out_s = out.to_str().unwrap();
    let (et, erss) = measured_run(&[
        "export", "--ledger", empty_s, "--format", "jsonl", "--output", out_s,
    ]);
    let (dt, drss) = measured_run(&[
        "export", "--ledger", big_s, "--format", "jsonl", "--since", &day, "--until", &next_day,
        "--output", out_s,
    ]);
    let day_rows = std::fs::read_to_string(&out)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    let (at, arss) = measured_run(&[
        "export", "--ledger", big_s, "--format", "jsonl", "--output", out_s,
    ]);
    let all_rows = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&out);
    println!(
        "| `posbridge export` of one day ({day_rows} rows): time, peak RSS | {} , {erss:.1} MiB (empty ledger) | {} , {drss:.1} MiB | constant memory |",
        ms(et),
        ms(dt)
    );
    println!(
        "| `posbridge export` of the whole ledger ({:.1} GB of JSON lines): time, peak RSS | | {:.1} s , {arss:.1} MiB | constant memory |",
        all_rows as f64 / 1e9,
        at.as_secs_f64()
    );
}
