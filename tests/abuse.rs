//! posbridge as an attacker and a clumsy operator would treat it, against the real
//! `posbridge run` process: two daemons on one ledger, SIGTERM with a call in flight,
//! bad configurations, key files and ledgers others can read, duplicate JSON keys from
//! the terminal, slow and numerous clients on notifyRefund and /metrics, floods of
//! forged notifications, exports, and ledgers in read-only directories.
//!
//! Every loop is bounded: a few hundred connections or requests at most, each wait a
//! condition with a deadline of seconds.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use common::*;
use posbridge::message::{Message, RefundState};
use posbridge::sim::cloud::demo;
use posbridge::sim::cloud::faults::{Fault, FaultRule, FaultTarget};
use posbridge::sim::terminal::TerminalEvent;
use posbridge::transport::open_pty;
use posbridge::wire::Kind;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_posbridge");
const NOTIFY_PATH: &str = "/antom/notifyRefund";
/// The header and body time limits the notify and metrics tests configure.
const CLIENT_TIMEOUT_MS: u64 = 1500;

// ---------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------

/// Waits for a child to exit within `within`; kills it (and says so) otherwise.
fn exit_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn posbridge(args: Vec<String>) -> Output {
    posbridge_output(args, "warn").await
}

fn text(out: &Output) -> String {
    output_text(out)
}

/// A world whose daemon has settled one refund, `R-1`, as SUCCEEDED.
async fn world_with_a_refund(more_payments: &[&str]) -> World {
    let mut payments = vec![payment("PAY-1", 5000)];
    payments.extend(more_payments.iter().map(|p| payment(p, 5000)));
    let mut w = World::new(Setup {
        payments,
        ..Setup::default()
    })
    .await;
    w.refund("R-1", "PAY-1", Some(100));
    assert_eq!(w.final_update("R-1").await.state, RefundState::Succeeded);
    w
}

/// How a `posbridge run` that should refuse to start ended: its exit status (None if
/// it was still running after the deadline) and its standard error.
fn run_refusal(config: &Path, uid: Option<u32>) -> (Option<ExitStatus>, String) {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "posbridge=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(uid) = uid {
        command.uid(uid).gid(uid);
    }
    let mut child = command.spawn().unwrap();
    let status = exit_within(&mut child, Duration::from_secs(10));
    (
        status,
        std::fs::read_to_string(&log_path).unwrap_or_default(),
    )
}

/// `posbridge check-config`'s exit code and output.
fn check_config(config: &Path) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (out.status.code(), text(&out))
}

/// A file's permission bits.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The line (from 1) of the first line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}"))
}

/// A daemon configuration: the ledger at `dir/state/ledger.sqlite` (so a test can see
/// whether anything was created), a terminal device (with `terminal` lines), `extra`
/// and the provider table.
fn config_with(dir: &Path, terminal: &str, extra: &str, provider: &str) -> (PathBuf, String) {
    let path = dir.join("posbridge.toml");
    let text = format!(
        "[ledger]\npath = \"{}\"\n\n[[terminal]]\ndevice = \"{}\"\n{terminal}\n{extra}\n{provider}",
        dir.join("state").join("ledger.sqlite").display(),
        dir.join("posterminal0").display(),
    );
    std::fs::write(&path, &text).unwrap();
    (path, text)
}

fn config_file(dir: &Path, extra: &str, provider: &str) -> (PathBuf, String) {
    config_with(dir, "", extra, provider)
}

/// An Antom `[provider]` table with the keys inline.
fn antom_table(private_key: &str, antom_public_key: &str) -> String {
    format!(
        "[provider]\nkind = \"antom\"\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"{}\"\n\
         private_key = \"\"\"\n{}\n\"\"\"\nantom_public_key = \"\"\"\n{}\n\"\"\"\n",
        demo::ANTOM_CLIENT_ID,
        private_key.trim(),
        antom_public_key.trim()
    )
}

/// How many descriptors the process has open.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The largest descriptor count of `pid` seen over `during`, sampled every 20 ms.
async fn most_descriptors(pid: u32, during: Duration) -> usize {
    let until = Instant::now() + during;
    let mut most = 0;
    while Instant::now() < until {
        most = most.max(descriptors(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    most
}

/// Opens `n` connections to `addr`, each sending `opening` and then nothing more.
async fn stalled_clients(addr: SocketAddr, n: usize, opening: &[u8]) -> Vec<TcpStream> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(opening).await.unwrap();
        clients.push(s);
    }
    clients
}

// ---------------------------------------------------------------------------------
// 1. Two daemons on one ledger.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_ledger_is_refused_naming_the_first() {
    let mut w = world_with_a_refund(&["PAY-2", "PAY-3"]).await;
    let first = w.bridge_pid().unwrap();

    // The same ledger, another terminal line.
    let other_line = open_pty().unwrap();
    let second = path_in(&w, "second.toml");
    std::fs::write(
        &second,
        format!(
            "[ledger]\npath = \"{}\"\n\n[[terminal]]\ndevice = \"{}\"\n\n{}",
            w.ledger_path().display(),
            other_line.path.display(),
            demo::provider_toml("antom", &w.sim.base_url()).unwrap()
        ),
    )
    .unwrap();
    let (status, stderr) = tokio::task::spawn_blocking(move || run_refusal(&second, None))
        .await
        .unwrap();
    let status = status.unwrap_or_else(|| {
        panic!("a second daemon kept running on the first one's ledger:\n{stderr}")
    });
    assert_eq!(status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {first}"))
            && stderr.contains(&w.ledger_path().display().to_string()),
        "the refusal names the holder and the ledger: {stderr}"
    );

    // Operator commands work beside the running daemon, and doctor sees it.
    let config = w.config_path.display().to_string();
    for args in [
        vec!["queue"],
        vec!["show", "R-1"],
        vec!["export", "--format", "jsonl"],
    ] {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["--config".into(), config.clone()]);
        let out = posbridge(all).await;
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    let out = posbridge(vec!["doctor".into(), "--config".into(), config.clone()]).await;
    let doctor = text(&out);
    assert!(
        doctor
            .lines()
            .any(|l| l.starts_with("✓ daemon") && l.contains(&format!("pid {first}"))),
        "{doctor}"
    );

    // The first daemon was not disturbed.
    w.refund("R-2", "PAY-2", Some(100));
    assert_eq!(w.final_update("R-2").await.state, RefundState::Succeeded);

    // SIGKILL: the kernel releases the lock, and the next start serves.
    w.kill_bridge();
    w.start_bridge();
    w.refund("R-3", "PAY-3", Some(100));
    assert_eq!(w.final_update("R-3").await.state, RefundState::Succeeded);
    let out = posbridge(vec!["doctor".into(), "--config".into(), config]).await;
    let pid = w.bridge_pid().unwrap();
    assert!(
        text(&out)
            .lines()
            .any(|l| l.starts_with("✓ daemon") && l.contains(&format!("pid {pid}"))),
        "{}",
        text(&out)
    );
}

// ---------------------------------------------------------------------------------
// 2. SIGTERM with a call in flight.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_when_the_call_in_flight_ends_not_after_the_grace() {
    const GRACE_MS: u64 = 20_000;
    const CALL_MS: u64 = 2000;
    let mut w = World::new(Setup {
        payments: vec![payment("PAY-SLOW", 5000)],
        grace_ms: GRACE_MS,
        ..Setup::default()
    })
    .await;
    w.sim.push_fault(FaultRule::once(
        FaultTarget::AntomRefund,
        Fault::Slow { ms: CALL_MS },
    ));
    w.refund("R-SLOW", "PAY-SLOW", Some(100));
    eventually("the simulator has the refund call", || {
        w.sim.stats().requests.values().sum::<u64>() >= 1
    })
    .await;
    let signalled = Instant::now();
    let status = w.stop_bridge();
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}\n{}", w.bridge_log());
    // The call was finished and recorded before the exit, not abandoned.
    assert_eq!(
        w.ledger().find("TERM-1", "R-SLOW").unwrap().unwrap().state,
        RefundState::Succeeded,
        "{}",
        w.bridge_log()
    );
    // A generous bound: the call takes 2 s, the grace is 20 s.
    assert!(
        took < Duration::from_millis(GRACE_MS / 4),
        "exited {took:?} after SIGTERM; the call in flight took {CALL_MS} ms, the grace is {GRACE_MS} ms"
    );
}

// ---------------------------------------------------------------------------------
// 3. A bad configuration creates nothing, and check-config refuses what run refuses.
// ---------------------------------------------------------------------------------

/// `run` refuses the configuration at `path` without creating the ledger's directory,
/// and `check-config` refuses it too; returns both outputs.
fn refused_before_anything(path: &Path, what: &str) -> (String, String) {
    let state = path.parent().unwrap().join("state");
    let (status, stderr) = run_refusal(path, None);
    let status = status.unwrap_or_else(|| panic!("{what}: `run` started:\n{stderr}"));
    assert_eq!(status.code(), Some(3), "{what}: {stderr}");
    assert!(
        !state.exists(),
        "{what}: `run` created {} before refusing:\n{stderr}",
        state.display()
    );
    let (code, checked) = check_config(path);
    assert_eq!(
        code,
        Some(3),
        "{what}: check-config accepted it:\n{checked}"
    );
    (stderr, checked)
}

#[test]
fn a_bad_configuration_creates_nothing_and_check_config_refuses_it_too() {
    let antom = antom_table(demo::MERCHANT_PRIVATE_PEM, demo::SIMULATOR_PUBLIC_PEM);
    let cases = [
        (
            "a private key that is no key",
            String::new(),
            antom_table("not a key", demo::SIMULATOR_PUBLIC_PEM),
            "provider.private_key",
        ),
        (
            "a notify path without a leading /",
            "[provider.notify]\nlisten = \"127.0.0.1:0\"\npath = \"antom/notifyRefund\"\n".into(),
            antom.clone(),
            "provider.notify.path",
        ),
        (
            "an OTT Pay app key file that is not there",
            String::new(),
            "[provider]\nkind = \"ottpay\"\nbase_url = \"http://127.0.0.1:9\"\napp_id = \"A\"\n\
             app_key_file = \"/nonexistent/ottpay_app_key\"\n"
                .into(),
            "provider.app_key_file",
        ),
        (
            "a fleet key file that is not there",
            "[fleet]\nurl = \"http://127.0.0.1:9\"\nbox_id = \"store-1\"\n\
             secret_file = \"/nonexistent/box.key\"\n"
                .into(),
            antom.clone(),
            "fleet.secret_file",
        ),
    ];
    for (what, extra, provider, key) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (path, text) = config_file(dir.path(), &extra, &provider);
        let (run, checked) = refused_before_anything(&path, what);
        assert!(
            run.contains(key),
            "{what}: `run` does not name {key}: {run}"
        );
        assert!(
            checked.contains(key),
            "{what}: check-config does not name {key}: {checked}"
        );
        // The key's own line: the first line its name starts after its table's header.
        let (table, setting) = key.rsplit_once('.').unwrap();
        let header = line_of(&text, &format!("[{table}]"));
        let line = header
            + text
                .lines()
                .skip(header)
                .position(|l| l.starts_with(setting))
                .unwrap()
            + 1;
        let at = format!("{}:{line}:", path.display());
        assert!(run.contains(&at), "{what}: `run` does not say {at}: {run}");
        assert!(
            checked.contains(&at),
            "{what}: check-config does not say {at}: {checked}"
        );
    }
}

// ---------------------------------------------------------------------------------
// 4. Key and provider errors name the key and its line, and echo nothing of a file.
// ---------------------------------------------------------------------------------

#[test]
fn key_errors_name_the_key_and_line_and_echo_no_file_content() {
    let dir = tempfile::tempdir().unwrap();
    let label_secret = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    let private = dir.path().join("merchant_private_key.pem");
    std::fs::write(
        &private,
        format!("-----BEGIN {label_secret}-----\nAAAA\n-----END {label_secret}-----\n"),
    )
    .unwrap();
    chmod(&private, 0o600);
    let public = dir.path().join("antom_public_key.pem");
    std::fs::write(&public, demo::SIMULATOR_PUBLIC_PEM).unwrap();
    let antom = format!(
        "[provider]\nkind = \"antom\"\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"C\"\n\
         private_key_file = \"{}\"\nantom_public_key_file = \"{}\"\n",
        private.display(),
        public.display()
    );
    let garbage_public = dir.path().join("garbage_public.pem");
    std::fs::write(&garbage_public, "my-password-is-hunter2\n").unwrap();
    let cases = [
        (antom.clone(), "private_key_file", label_secret),
        (
            antom.replace(
                &public.display().to_string(),
                &garbage_public.display().to_string(),
            ),
            "antom_public_key_file",
            "hunter2",
        ),
    ];
    for (provider, key, secret) in cases {
        let provider = if key == "antom_public_key_file" {
            // A good private key, so the public one is what is wrong.
            let good = dir.path().join("good_private.pem");
            std::fs::write(&good, demo::MERCHANT_PRIVATE_PEM).unwrap();
            chmod(&good, 0o600);
            provider.replace(&private.display().to_string(), &good.display().to_string())
        } else {
            provider
        };
        let (path, config) = config_file(dir.path(), "", &provider);
        let line = line_of(&config, key);
        let shown = format!("{}:{line}: ", path.display());
        let (run, checked) = refused_before_anything(&path, key);
        for (what, out) in [("run", &run), ("check-config", &checked)] {
            assert!(
                out.contains(&shown) && out.contains(&format!("provider.{key}")),
                "{what}: names neither {shown:?} nor provider.{key}: {out}"
            );
            assert!(
                !out.contains(secret),
                "{what}: echoes the file's content: {out}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------
// 5. Secret files others can read, or write, or that someone else owns.
// ---------------------------------------------------------------------------------

#[test]
fn key_files_others_can_read_or_write_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ottpay_app_key");
    std::fs::write(&key, format!("{}\n", demo::OTTPAY_APP_KEY)).unwrap();
    let provider = format!(
        "[provider]\nkind = \"ottpay\"\nbase_url = \"http://127.0.0.1:9\"\napp_id = \"A\"\n\
         app_key_file = \"{}\"\n",
        key.display()
    );
    let (path, _) = config_file(dir.path(), "", &provider);
    let chmod_fix = format!("chmod 600 {}", key.display());
    for (bits, what) in [(0o644, "world-readable"), (0o620, "group-writable")] {
        chmod(&key, bits);
        let (run, checked) = refused_before_anything(&path, what);
        assert!(run.contains(&chmod_fix), "{what}: {run}");
        assert!(checked.contains(&chmod_fix), "{what}: {checked}");
        let out = Command::new(BIN)
            .args(["doctor", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let doctor = text(&out);
        assert_eq!(out.status.code(), Some(1), "{doctor}");
        let at = doctor
            .find("✗ key file permissions")
            .unwrap_or_else(|| panic!("{what}: doctor does not mark it: {doctor}"));
        assert!(doctor[at..].contains(&chmod_fix), "{doctor}");
    }
    // The service's group may read it (root:posbridge 0640), and its owner, of course.
    for bits in [0o640, 0o600, 0o400] {
        chmod(&key, bits);
        let (code, checked) = check_config(&path);
        assert_eq!(code, Some(0), "mode {bits:o}: {checked}");
    }
    // Owned by another user: only root can set that up.
    if nix::unistd::geteuid().is_root() {
        chmod(&key, 0o600);
        std::os::unix::fs::chown(&key, Some(65534), Some(65534)).unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().uid(), 65534);
        let (run, checked) = refused_before_anything(&path, "owned by another user");
        for out in [&run, &checked] {
            assert!(out.contains("chown") && out.contains("65534"), "{out}");
        }
    } else {
        eprintln!("not root: the file-owned-by-another-user case needs root to chown");
    }
}

// ---------------------------------------------------------------------------------
// 6. Values that cannot work.
// ---------------------------------------------------------------------------------

#[test]
fn values_that_cannot_work_are_refused_naming_key_and_line() {
    let antom = antom_table(demo::MERCHANT_PRIVATE_PEM, demo::SIMULATOR_PUBLIC_PEM);
    let notify = |line: &str| format!("[provider.notify]\nlisten = \"127.0.0.1:0\"\n{line}\n");
    // (the key, a line for the [[terminal]], other tables, the line to blame)
    let cases = [
        ("terminal[0].baud", "baud = 0", String::new(), "baud = 0"),
        (
            "provider.notify.max_body_bytes",
            "",
            notify("max_body_bytes = 0"),
            "max_body_bytes = 0",
        ),
        (
            "provider.notify.accept_timeout_ms",
            "",
            notify("accept_timeout_ms = 0"),
            "accept_timeout_ms = 0",
        ),
        (
            "provider.notify.header_read_timeout_ms",
            "",
            notify("header_read_timeout_ms = 0"),
            "header_read_timeout_ms = 0",
        ),
        (
            "log.level",
            "",
            "[log]\nlevel = \"posbridge=loud\"\n".into(),
            "level = ",
        ),
        (
            "retry.max_retry_ms",
            "",
            "[retry]\nmax_retry_ms = 99999999999\n".into(),
            "max_retry_ms = ",
        ),
    ];
    for (key, terminal, extra, blamed) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (path, config) = config_with(dir.path(), terminal, &extra, &antom);
        let shown = format!("{}:{}: ", path.display(), line_of(&config, blamed));
        let (run, checked) = refused_before_anything(&path, key);
        for (what, out) in [("run", &run), ("check-config", &checked)] {
            assert!(
                out.contains(&shown) && out.contains(key),
                "{what}: does not name {shown:?} and {key}: {out}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------
// 7. Duplicate keys in the terminal's JSON.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_json_keys_from_the_terminal_are_refused_naming_the_key() {
    let mut w = World::new(Setup {
        payments: vec![
            payment("PAY-A", 5_000_000),
            payment("PAY-B", 5_000_000),
            payment("PAY-OK", 5000),
        ],
        ..Setup::default()
    })
    .await;
    w.wait_for("WELCOME", |e| {
        matches!(e, TerminalEvent::Message(Message::Welcome(_))).then_some(())
    })
    .await;
    let cases = [
        (
            "R-DUP-1",
            r#"{"originalMerchantRefundId":"R-DUP-1","paymentId":"PAY-B","paymentId":"PAY-A","refundAmount":{"value":100,"currency":"USD"}}"#,
            "paymentId",
        ),
        (
            "R-DUP-2",
            r#"{"originalMerchantRefundId":"R-DUP-2","paymentId":"PAY-A","refundAmount":{"value":100,"value":999999,"currency":"USD"}}"#,
            "refundAmount.value",
        ),
    ];
    for (n, (id, payload, key)) in cases.iter().enumerate() {
        w.terminal
            .send_raw(Kind::REFUND, Bytes::from(payload.to_string()))
            .await
            .unwrap();
        let error = w
            .wait_nth("ERROR", n + 1, |e| match e {
                TerminalEvent::Message(Message::Error(e)) => Some(e.clone()),
                _ => None,
            })
            .await;
        assert_eq!(error.code, "INVALID_JSON", "{id}: {error:?}");
        assert!(
            error.message.contains(key) && error.message.contains("more than once"),
            "{id}: {error:?}"
        );
        assert!(
            w.ledger().find("TERM-1", id).unwrap().is_none(),
            "{id} recorded"
        );
    }
    // Nothing reached the provider; the line still works.
    w.refund("R-OK", "PAY-OK", Some(100));
    assert_eq!(w.final_update("R-OK").await.state, RefundState::Succeeded);
    assert_eq!(w.sim.executed("PAY-A"), 0);
    assert_eq!(w.sim.executed("PAY-B"), 0);
    assert!(
        !w.states_seen("R-DUP-1").iter().any(|s| s.is_final()),
        "no state for a refused refund"
    );
}

// ---------------------------------------------------------------------------------
// 8. notifyRefund: slow bodies, many connections.
// ---------------------------------------------------------------------------------

fn notify_config(extra: &str) -> String {
    format!(
        "[provider.notify]\nlisten = \"127.0.0.1:0\"\npath = \"{NOTIFY_PATH}\"\n\
         header_read_timeout_ms = {CLIENT_TIMEOUT_MS}\nbody_read_timeout_ms = {CLIENT_TIMEOUT_MS}\n\
         max_connections = 32\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_bounds_slow_bodies_and_the_number_of_connections() {
    let w = World::new(Setup {
        extra_config: notify_config(""),
        ..Setup::default()
    })
    .await;
    let addr = logged_addr(&w, "notifyRefund receiver on").await;
    let pid = w.bridge_pid().unwrap();
    let limit = Duration::from_millis(CLIENT_TIMEOUT_MS + 2000);

    // A whole head, then the body at a byte every 200 ms: cut off at the body limit.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {NOTIFY_PATH} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         client-id: C\r\nrequest-time: 1\r\nsignature: s\r\ncontent-length: 500\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let opened = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let dripping = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        for _ in 0..500 {
            tick.tick().await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let answer = tokio::time::timeout(limit, until_closed(&mut reader))
        .await
        .unwrap_or_else(|_| panic!("a body sent a byte at a time still open after {limit:?}"));
    dripping.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        opened.elapsed() >= Duration::from_millis(CLIENT_TIMEOUT_MS - 100),
        "cut off by the limit: {:?}",
        opened.elapsed()
    );

    // 200 clients that send half a head: the daemon holds at most max_connections.
    let before = descriptors(pid);
    let clients = stalled_clients(
        addr,
        200,
        b"POST /antom/notifyRefund HTTP/1.1\r\nhost: x\r\n",
    )
    .await;
    let most = most_descriptors(pid, Duration::from_millis(CLIENT_TIMEOUT_MS / 2)).await;
    assert!(
        most <= before + 32 + 8,
        "200 stalled clients: {before} descriptors became {most}"
    );
    drop(clients);
}

// ---------------------------------------------------------------------------------
// 9. /metrics: requests left unfinished, many connections.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_bounds_unfinished_requests_and_the_number_of_connections() {
    let w = World::new(Setup {
        extra_config: format!(
            "[metrics]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout_ms = {CLIENT_TIMEOUT_MS}\n\
             max_connections = 8\n"
        ),
        ..Setup::default()
    })
    .await;
    let addr = logged_addr(&w, "metrics on /metrics").await;
    let pid = w.bridge_pid().unwrap();
    let limit = Duration::from_millis(CLIENT_TIMEOUT_MS + 2000);

    let mut one = stalled_clients(addr, 1, b"GET /metrics HTTP/1.1\r\nhost: x\r\n").await;
    tokio::time::timeout(limit, until_closed(&mut one[0]))
        .await
        .unwrap_or_else(|_| panic!("an unfinished request still open after {limit:?}"));

    let before = descriptors(pid);
    let clients = stalled_clients(addr, 150, b"GET /metrics HTTP/1.1\r\n").await;
    let most = most_descriptors(pid, Duration::from_millis(CLIENT_TIMEOUT_MS / 2)).await;
    assert!(
        most <= before + 8 + 8,
        "150 unfinished requests: {before} descriptors became {most}"
    );
    drop(clients);
    // And the endpoint still answers.
    let page = tokio::time::timeout(limit * 2, async {
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
    .await
    .expect("/metrics answers once the stalled clients are gone");
    assert!(page.contains("posbridge_ledger_up 1"), "{page}");
}

// ---------------------------------------------------------------------------------
// 10. A flood of forged notifications: every one counted, few logged.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_notifications_are_all_counted_but_their_warnings_rate_limited() {
    const FORGED: usize = 600;
    let w = World::new(Setup {
        extra_config: format!("{}[metrics]\nlisten = \"127.0.0.1:0\"\n", notify_config("")),
        ..Setup::default()
    })
    .await;
    let addr = logged_addr(&w, "notifyRefund receiver on").await;
    let metrics = logged_addr(&w, "metrics on /metrics").await;
    // A signature of the right shape that Antom's key never made.
    let forged = format!(
        "algorithm=RSA256,keyVersion=1,signature={}",
        base64::engine::general_purpose::STANDARD.encode([0x5a; 256])
    );
    let client_id = demo::ANTOM_CLIENT_ID;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..20 {
        let forged = forged.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            for i in 0..FORGED / 20 {
                let time = jiff::Timestamp::now().as_millisecond().to_string();
                let body = format!(
                    r#"{{"notifyType":"REFUND_RESULT","refundStatus":"SUCCESS","refundRequestId":"forged-{worker}-{i}","result":{{"resultStatus":"S","resultCode":"SUCCESS"}}}}"#
                );
                let response = http
                    .post(format!("http://{addr}{NOTIFY_PATH}"))
                    .header("client-id", client_id)
                    .header("request-time", &time)
                    .header("signature", &forged)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 401);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let seconds = started.elapsed().as_secs() + 1;
    let warnings = w
        .full_bridge_log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("notifyRefund"))
        .count();
    // At most a handful per 10 s window, whatever the rate.
    assert!(
        warnings as u64 <= 5 * (seconds / 10 + 2),
        "{FORGED} forged notifications in {seconds} s logged {warnings} warnings"
    );
    assert!(warnings >= 1, "the forgeries are still reported");
    let page = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!(
            "posbridge_notify_refused_total{{reason=\"signature\"}} {FORGED}"
        )),
        "every refusal is counted:\n{page}"
    );
}

// ---------------------------------------------------------------------------------
// 11. Exports.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_created_0600_under_umask_000() {
    let w = world_with_a_refund(&[]).await;
    let probe = path_in(&w, "umask-probe");
    for format in ["csv", "jsonl"] {
        let output = path_in(&w, &format!("export.{format}"));
        let out = Command::new("sh")
            .arg("-c")
            .arg("umask 000 && : > \"$1\" && shift && exec \"$@\"")
            .arg("sh")
            .arg(&probe)
            .arg(BIN)
            .args(["export", "--format", format, "--config"])
            .arg(&w.config_path)
            .arg("--output")
            .arg(&output)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(mode(&probe), 0o666, "the umask was 000");
        assert_eq!(mode(&output), 0o600, "{format}");
        assert!(std::fs::read_to_string(&output).unwrap().contains("R-1"));
    }
}

// ---------------------------------------------------------------------------------
// 12. A ledger in a directory the service cannot write.
// ---------------------------------------------------------------------------------

#[test]
fn a_ledger_in_a_read_only_directory_is_named_with_what_is_not_writable() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let ledger = state.join("ledger.sqlite");
    drop(posbridge::ledger::Ledger::open(&ledger).unwrap());
    let (path, _) = config_file(
        dir.path(),
        "",
        &demo::provider_toml("ottpay", "http://127.0.0.1:9").unwrap(),
    );
    // Root may write anywhere: run the daemon as nobody, owning the ledger file.
    let uid = nix::unistd::geteuid().is_root().then_some(65534);
    if let Some(uid) = uid {
        chmod(dir.path(), 0o755);
        chmod(&path, 0o644);
        for file in std::fs::read_dir(&state).unwrap() {
            std::os::unix::fs::chown(file.unwrap().path(), Some(uid), Some(uid)).unwrap();
        }
        std::os::unix::fs::chown(&state, Some(uid), Some(uid)).unwrap();
    }
    chmod(&state, 0o555);
    let (status, stderr) = run_refusal(&path, uid);
    chmod(&state, 0o755);
    let status = status.unwrap_or_else(|| panic!("started on a read-only directory:\n{stderr}"));
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&ledger.display().to_string())
            && stderr.contains(&format!("{} is not writable", state.display())),
        "names the ledger and the directory: {stderr}"
    );
}

// ---------------------------------------------------------------------------------
// 13. A ledger made readable by others.
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_others_can_read_is_made_private_again_and_said_so() {
    let mut w = world_with_a_refund(&[]).await;
    // Killed, so the write-ahead log and shared memory files stay.
    w.kill_bridge();
    let ledger = w.ledger_path();
    let files = [
        ledger.clone(),
        PathBuf::from(format!("{}-wal", ledger.display())),
        PathBuf::from(format!("{}-shm", ledger.display())),
    ];
    for file in &files {
        assert!(file.exists(), "{}", file.display());
        chmod(file, 0o644);
    }
    w.start_bridge();
    eventually("the ledger's files private again", || {
        files.iter().all(|f| mode(f) == 0o600)
    })
    .await;
    eventually("the log says so", || {
        w.full_bridge_log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("644") && l.contains("600"))
    })
    .await;
}
