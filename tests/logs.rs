//! The daemon's log as a journal and a person following one refund see it: syslog
//! priorities under systemd, one refund's ids on every line about it, a person's
//! change picked up and logged.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Setup, World, payment};
use posbridge::message::RefundState;
use posbridge::sim::cloud::faults::{Fault, FaultRule, FaultTarget};

/// Waits until the bridge's log holds `text`.
async fn log_has(w: &World, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = w.full_bridge_log();
        if log.contains(text) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {text:?} in the log:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_gets_priorities_and_a_refund_can_be_followed() {
    let mut w = World::new(Setup {
        provider: "ottpay",
        payments: vec![payment("PAY-1", 5000), payment("PAY-2", 5000)],
        // As systemd starts it: standard error is a journal stream.
        bridge_env: vec![("JOURNAL_STREAM".into(), "8:12345".into())],
        ..Setup::default()
    })
    .await;
    w.refund("R-OK", "PAY-1", Some(700));
    let ok = w.final_update("R-OK").await;
    assert_eq!(ok.state, RefundState::Succeeded);
    w.sim.push_fault(
        FaultRule::once(FaultTarget::OttpayRefund, Fault::DropConnection).after_execute(),
    );
    w.refund("R-LOST", "PAY-2", Some(900));
    let lost = w.final_update("R-LOST").await;
    assert_eq!(lost.state, RefundState::NeedsAttention);
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args([
            "resolve",
            "R-LOST",
            "--succeeded",
            "--note",
            "portal shows it",
        ])
        .arg("--config")
        .arg(&w.config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = log_has(&w, "changed outside the daemon").await;

    for line in log.lines() {
        assert!(
            line.starts_with('<') && line.as_bytes().get(2) == Some(&b'>'),
            "every line carries its priority: {line}"
        );
        let prefix = &line[..3];
        let level = line[3..].split_whitespace().next().unwrap_or("");
        let expected = match level {
            "ERROR" => "<3>",
            "WARN" => "<4>",
            "INFO" => "<6>",
            _ => "<7>",
        };
        assert_eq!(prefix, expected, "{line}");
    }
    // The person's job is a warning, filed as one.
    let needs = log
        .lines()
        .find(|l| l.contains("a person must settle it"))
        .expect("NEEDS_ATTENTION logged");
    assert!(needs.starts_with("<4>"), "{needs}");
    // Every line about the refund names it all: terminal, refund, ledger number,
    // payment, refundRequestId.
    let rrid = &lost.refund_request_id;
    let about: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refund=R-LOST"))
        .collect();
    assert!(about.len() >= 3, "{about:?}");
    for line in &about {
        for field in [
            "terminal=TERM-1".to_string(),
            "payment=PAY-2".to_string(),
            format!("refund_request_id={rrid}"),
            "ledger=".to_string(),
        ] {
            assert!(line.contains(&field), "{field} missing: {line}");
        }
    }
    let picked = log
        .lines()
        .find(|l| l.contains("changed outside the daemon"))
        .unwrap();
    assert!(
        picked.contains("refund=R-LOST") && picked.contains("portal shows it"),
        "{picked}"
    );
    // The line each link event is about is named.
    assert!(
        log.lines()
            .any(|l| l.contains("line=") && l.contains("session")),
        "link lines name their line"
    );
    w.stop_bridge();
}
