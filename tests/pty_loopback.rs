//! Two processes on one pseudo-terminal pair, as a field tech runs them:
//! `posbridge loopback` serves the bridge's side, `posbridge term` is the terminal,
//! and this test throws garbage onto the line between them the whole time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const REFUNDS: usize = 25;

fn posbridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_posbridge"))
}

/// Waits for a child to exit, failing the test after `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads a child's stdout lines as JSON on a thread, so the test can wait for a line
/// with a deadline.
fn json_lines(stdout: impl Read + Send + 'static) -> mpsc::Receiver<serde_json::Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    rx
}

fn next_event(rx: &mpsc::Receiver<serde_json::Value>, event: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let value = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {event:?} event within 30 s"));
        if value["event"] == event {
            return value;
        }
    }
}

struct Loopback {
    child: Child,
    events: mpsc::Receiver<serde_json::Value>,
}

impl Drop for Loopback {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_loopback(link: &std::path::Path) -> Loopback {
    let mut child = posbridge()
        .args(["loopback", "--json", "--link"])
        .arg(link)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("posbridge loopback starts");
    let events = json_lines(child.stdout.take().unwrap());
    let mut loopback = Loopback { child, events };
    next_event(&loopback.events, "ready");
    loopback.child.stdin.take();
    loopback
}

#[test]
fn term_and_loopback_exchange_frames_through_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("posterminal");
    let mut loopback = start_loopback(&link);

    // Open the line before `term` does (it takes the device exclusively), to inject.
    let mut injector = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(&link)
        .expect("open the terminal side");

    let mut term = posbridge()
        .args(["term", "--json", "--wait", "60"])
        .arg(&link)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("posbridge term starts");
    let term_events = json_lines(term.stdout.take().unwrap());

    let stop = Arc::new(AtomicBool::new(false));
    let garbage = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut bursts = 0u32;
            let mut state = 0x2545_F491u32;
            while !stop.load(Ordering::Relaxed) {
                // Non-zero noise closed by a delimiter: it lands between (or inside)
                // frames and must be dropped, counted and answered with NAK.
                let mut burst = Vec::new();
                for _ in 0..(1 + bursts % 17) {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    burst.push((state as u8).max(1));
                }
                burst.push(0);
                if injector.write_all(&burst).is_err() {
                    break;
                }
                bursts += 1;
                // Pacing the noise, not waiting for anything.
                std::thread::sleep(Duration::from_millis(3));
            }
            bursts
        })
    };

    let mut stdin = term.stdin.take().unwrap();
    for i in 0..REFUNDS {
        writeln!(stdin, "refund PAY-{i} {} USD REF-{i}", 100 + i).unwrap();
    }
    writeln!(stdin, "status").unwrap();
    drop(stdin);

    let status = wait_exit(&mut term, Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    let bursts = garbage.join().unwrap();
    assert!(
        status.success() || status.code() == Some(1),
        "term: {status:?}"
    );

    // What the terminal saw: one final update per refund, each exactly once.
    let mut updates: HashMap<String, usize> = HashMap::new();
    let mut welcomes = 0;
    let mut status_reports = 0;
    while let Ok(event) = term_events.recv_timeout(Duration::from_secs(5)) {
        if event["event"] != "message" {
            continue;
        }
        match event["kind"].as_str().unwrap() {
            "REFUND_UPDATE" => {
                let id = event["body"]["originalMerchantRefundId"].as_str().unwrap();
                assert_eq!(event["body"]["resultCode"], "LINK_TEST");
                *updates.entry(id.to_owned()).or_default() += 1;
            }
            "WELCOME" => welcomes += 1,
            "STATUS_REPORT" => status_reports += 1,
            _ => {}
        }
    }
    assert!(welcomes >= 1, "HELLO was answered with WELCOME");
    assert_eq!(status_reports, 1);
    assert_eq!(updates.len(), REFUNDS, "{updates:?}");
    assert!(updates.values().all(|&n| n == 1), "{updates:?}");

    // What the bridge side saw: every REFUND delivered exactly once, damage counted.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(loopback.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut refunds: HashMap<String, usize> = HashMap::new();
    let stats = loop {
        let event = loopback
            .events
            .recv_timeout(Duration::from_secs(30))
            .expect("loopback reports before exiting");
        match event["event"].as_str().unwrap() {
            "received" if event["kind"] == "REFUND" => {
                let id = event["body"]["originalMerchantRefundId"].as_str().unwrap();
                *refunds.entry(id.to_owned()).or_default() += 1;
            }
            "stats" => break event,
            _ => {}
        }
    };
    assert_eq!(refunds.len(), REFUNDS, "{refunds:?}");
    assert!(refunds.values().all(|&n| n == 1), "{refunds:?}");
    let damaged: u64 = stats["damaged"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(bursts > 0);
    assert!(damaged > 0, "garbage was seen and counted: {stats}");
    assert!(stats["naksSent"].as_u64().unwrap() > 0, "{stats}");
    assert!(wait_exit(&mut loopback.child, Duration::from_secs(10)).success());
    assert!(!link.exists(), "the symlink is removed on exit");
}

#[test]
fn term_one_shot_reports_the_refund_and_its_display() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("line");
    let _loopback = start_loopback(&link);
    let out = posbridge()
        .args([
            "term",
            "--refund",
            "PAY-9",
            "--amount",
            "1250",
            "--currency",
            "USD",
            "--id",
            "REF-9",
        ])
        .arg(&link)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // The link-test responder never makes a refund, so it reports FAILED (exit 1).
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("REFUND_UPDATE REF-9 FAILED"), "{text}");
    assert!(text.contains("12.50 USD"), "{text}");
    assert!(
        text.contains("│Link test OK        │"),
        "the display is drawn: {text}"
    );
}

#[test]
fn term_refuses_bad_input_by_field_without_sending() {
    let out = posbridge()
        .args([
            "term",
            "/dev/null",
            "--refund",
            "PAY-1",
            "--amount",
            "0",
            "--currency",
            "USD",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refundAmount.value"), "{err}");
    let out = posbridge()
        .args([
            "term",
            "/dev/null",
            "--refund",
            "PAY-1",
            "--amount",
            "5",
            "--currency",
            "usd",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ISO 4217"));
}

/// A field tech who typed the wrong device hears so at once, not after a timeout.
#[test]
fn term_on_a_missing_device_says_so_at_once() {
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["term", "/dev/posterminal-NOT-THERE", "--status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not exist") && err.contains("--wait-for-device"),
        "{err}"
    );
    // Well under the default 30 s answer wait, without measuring anything finer.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
