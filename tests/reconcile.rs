//! `posbridge reconcile` against provider reports: Antom's transaction details report
//! in both documented layouts (`tests/fixtures/providers/antom-report*.txt`, written
//! from Antom's documents), and the cloud simulator's OTT Pay and PaymentOptions
//! exports after a run of the real daemon.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Setup, World, async_payment, payment};
use posbridge::ledger::{AcceptPolicy, Acceptance, AttemptStatus, Change, Ledger, NewRefund};
use posbridge::message::RefundState;
use posbridge::money::{Amount, Currency};
use posbridge::sim::cloud::faults::{Fault, FaultRule, FaultTarget};
use posbridge::sim::cloud::report::ReportFormat;

fn posbridge(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn usd(value: i64) -> Amount {
    Amount::new(value, Currency::parse("USD").unwrap()).unwrap()
}

const PAYMENT_A: &str = "20260410194010890100111670209000000";
const PAYMENT_B: &str = "20260410194010890100111670209000777";

fn accept(ledger: &mut Ledger, id: &str, payment: &str, amount: Option<i64>, rrid: &str) -> i64 {
    let new = NewRefund {
        terminal_id: "T1".into(),
        original_merchant_refund_id: id.into(),
        payment_id: payment.into(),
        amount: amount.map(usd),
        memo: None,
    };
    let policy = AcceptPolicy {
        provider: "antom".into(),
        queued: false,
        refund_request_id: rrid.into(),
        daily_limit: None,
    };
    // 2026-04-10T03:00Z, the day of the documented report.
    match ledger.accept(&new, &policy, 1_775_790_000_000).unwrap() {
        Acceptance::Recorded { refund, .. } => refund.id,
        other => panic!("{other:?}"),
    }
}

fn set(ledger: &mut Ledger, id: i64, state: RefundState, refund_id: Option<&str>) {
    let r = ledger.get(id).unwrap();
    let change = Change {
        state: Some(state),
        attempt: Some(AttemptStatus::Done),
        next_action_ms: Some(None),
        provider_refund_id: refund_id.map(str::to_owned),
        cause: "test".into(),
        ..Change::default()
    };
    ledger
        .apply(id, r.attempt_id, &change, 1_775_000_001_000)
        .unwrap();
}

/// The three refunds of Antom's documented example report, as a ledger might hold
/// them: one it knows succeeded, one whose outcome was lost, and one it wrongly
/// believes failed; plus a whole-payment refund and one the report never mentions.
fn ledger_for_the_report(path: &Path) {
    let mut l = Ledger::open(path).unwrap();
    let ok = accept(
        &mut l,
        "REF-1",
        PAYMENT_A,
        Some(1250),
        "posbridge-3f6c2a1e-0001",
    );
    set(&mut l, ok, RefundState::Succeeded, None);
    let lost = accept(
        &mut l,
        "REF-2",
        PAYMENT_A,
        Some(1250),
        "posbridge-3f6c2a1e-0002",
    );
    set(&mut l, lost, RefundState::NeedsAttention, None);
    let whole = accept(&mut l, "REF-3", PAYMENT_B, None, "posbridge-3f6c2a1e-0003");
    set(&mut l, whole, RefundState::Succeeded, None);
    let absent = accept(&mut l, "REF-4", PAYMENT_B, Some(100), "PB-NEVER-MADE");
    set(&mut l, absent, RefundState::NeedsAttention, None);
}

fn report(name: &str) -> String {
    format!(
        "{}/tests/fixtures/providers/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn antoms_documented_report_settles_what_it_proves() {
    for file in ["antom-report.txt", "antom-report-legacy.txt"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        ledger_for_the_report(&path);
        let ledger = path.to_str().unwrap();
        let report = report(file);
        let base = [
            "reconcile",
            "--ledger",
            ledger,
            "--report",
            &report,
            "--provider",
            "antom",
        ];
        let (code, out, err) = posbridge(&base);
        assert_eq!(
            code, 1,
            "{file}: disagreements are an exit status: {out}{err}"
        );
        assert!(out.contains("1 confirmed"), "{file}: {out}");
        assert!(out.contains("1 settled by the report"), "{file}: {out}");
        assert!(out.contains("1 amounts learned"), "{file}: {out}");
        // Absence proves nothing until the report is said to be complete.
        assert!(!out.contains("REF-4"), "{file}: {out}");

        let mut through = base.to_vec();
        through.extend([
            "--from",
            "2026-04-10",
            "--through",
            "2026-04-10",
            "--apply",
            "--json",
        ]);
        let (code, out, err) = posbridge(&through);
        assert_eq!(code, 0, "{file}: everything applied: {out}{err}");
        let found: serde_json::Value = serde_json::from_str(&out).unwrap();
        let findings = found["findings"].as_array().unwrap();
        let kinds: Vec<&str> = findings
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        assert!(
            kinds.iter().filter(|k| **k == "settles").count() == 2,
            "{file}: {kinds:?} {err}"
        );
        assert!(
            findings
                .iter()
                .filter(|f| f["action"].is_object())
                .all(|f| f["applied"] == true)
        );

        let l = Ledger::open(&path).unwrap();
        let two = l.lookup("REF-2").unwrap();
        assert_eq!(two.state, RefundState::Succeeded);
        assert_eq!(two.refunded, Some(usd(1250)));
        let three = l.lookup("REF-3").unwrap();
        assert_eq!(
            three.refunded,
            Some(usd(800)),
            "{file}: the whole refund's amount"
        );
        assert_eq!(l.lookup("REF-4").unwrap().state, RefundState::Failed);
        let history = l.history(two.id).unwrap();
        assert!(
            history.transitions.last().unwrap().cause.contains(file),
            "{file}: the note names the report"
        );
        // Settled: the same report now agrees with the ledger.
        let (code, out, _) = posbridge(&base);
        assert_eq!(code, 0, "{file}: {out}");
    }
}

#[test]
fn a_failed_refund_the_report_shows_refunded_is_the_loudest_finding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let mut l = Ledger::open(&path).unwrap();
    let wrong = accept(
        &mut l,
        "REF-1",
        PAYMENT_A,
        Some(1250),
        "posbridge-3f6c2a1e-0001",
    );
    set(&mut l, wrong, RefundState::Failed, None);
    drop(l);
    let report = report("antom-report.txt");
    let ledger = path.to_str().unwrap();
    let (code, out, _) = posbridge(&["reconcile", "--ledger", ledger, "--report", &report]);
    assert_eq!(code, 1);
    let first = out.lines().next().unwrap();
    assert!(first.contains("do not refund these again"), "{out}");
    let (code, out, _) = posbridge(&[
        "reconcile",
        "--ledger",
        ledger,
        "--report",
        &report,
        "--apply",
    ]);
    // Corrected; what still disagrees is the report's other refunds of the same
    // payment, which this ledger does not know.
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[applied]"), "{out}");
    assert!(
        out.contains("1 refunds the provider made that the ledger does not know"),
        "{out}"
    );
    let l = Ledger::open(&path).unwrap();
    assert_eq!(l.lookup("REF-1").unwrap().state, RefundState::Succeeded);
}

/// A FAILED refund the report shows executed, for another amount than the ledger
/// asked: still the loudest finding (money moved), not a mere amount mismatch.
#[test]
fn a_failed_refund_refunded_for_another_amount_is_still_the_loudest_finding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let mut l = Ledger::open(&path).unwrap();
    let wrong = accept(
        &mut l,
        "REF-1",
        PAYMENT_A,
        Some(999),
        "posbridge-3f6c2a1e-0001",
    );
    set(&mut l, wrong, RefundState::Failed, None);
    drop(l);
    let report = report("antom-report.txt");
    let ledger = path.to_str().unwrap();
    let (code, out, _) = posbridge(&["reconcile", "--ledger", ledger, "--report", &report]);
    assert_eq!(code, 1, "{out}");
    let first = out.lines().next().unwrap();
    assert!(first.contains("do not refund these again"), "{out}");
    assert!(out.contains("not the 9.99 USD asked"), "{out}");
    assert!(!out.contains("amount or currency mismatches"), "{out}");
    let (_, out, _) = posbridge(&[
        "reconcile",
        "--ledger",
        ledger,
        "--report",
        &report,
        "--apply",
    ]);
    assert!(out.contains("[applied]"), "{out}");
    let l = Ledger::open(&path).unwrap();
    let settled = l.lookup("REF-1").unwrap();
    assert_eq!(settled.state, RefundState::Succeeded);
    assert_eq!(settled.refunded, Some(usd(1250)));
}

#[test]
fn a_report_that_does_not_read_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    ledger_for_the_report(&path);
    let text = std::fs::read_to_string(report("antom-report.txt")).unwrap();
    let cut = dir.path().join("cut.csv");
    std::fs::write(&cut, text.replace("<END>\n", "")).unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, text.replace("12.50,USD", "12.5O,USD")).unwrap();
    for (file, says) in [(&cut, "<END>"), (&bad, "line 3")] {
        let (code, _, err) = posbridge(&[
            "reconcile",
            "--ledger",
            path.to_str().unwrap(),
            "--report",
            file.to_str().unwrap(),
            "--apply",
        ]);
        assert_eq!(code, 3, "an unusable report: {err}");
        assert!(err.contains(says), "{err}");
    }
    let l = Ledger::open(&path).unwrap();
    assert_eq!(
        l.lookup("REF-2").unwrap().state,
        RefundState::NeedsAttention
    );
}

/// A run of the real daemon against the simulator with a lost answer and an
/// asynchronous refund on a provider that cannot be asked: afterwards the
/// simulator's export settles both, and the ledger equals the books.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_exports_settle_a_run() {
    for (provider, format) in [
        ("ottpay", ReportFormat::Ottpay),
        ("paymentoptions", ReportFormat::Paymentoptions),
    ] {
        let mut payments = vec![payment("PAY-1", 5000), payment("PAY-2", 5000)];
        if provider == "ottpay" {
            payments.push(async_payment("PAY-ASYNC", 5000));
        }
        let mut w = World::new(Setup {
            provider,
            payments,
            async_delay: Duration::from_millis(200),
            ..Setup::default()
        })
        .await;
        w.refund("R-OK", "PAY-1", Some(700));
        assert_eq!(w.final_update("R-OK").await.state, RefundState::Succeeded);
        let target = match provider {
            "ottpay" => FaultTarget::OttpayRefund,
            _ => FaultTarget::PaymentoptionsRefund,
        };
        w.sim
            .push_fault(FaultRule::once(target, Fault::DropConnection).after_execute());
        w.refund("R-LOST", "PAY-2", Some(900));
        assert_eq!(
            w.final_update("R-LOST").await.state,
            RefundState::NeedsAttention
        );
        if provider == "ottpay" {
            w.refund("R-LATER", "PAY-ASYNC", Some(300));
            w.update_in("R-LATER", RefundState::Processing).await;
            w.sim.settle_now();
        }
        let file = w.dir.path().join("report.csv");
        std::fs::write(&file, w.sim.report(format)).unwrap();
        let ledger = w.ledger_path();
        let mut args = vec![
            "reconcile",
            "--ledger",
            ledger.to_str().unwrap(),
            "--report",
            file.to_str().unwrap(),
            "--provider",
            provider,
            "--apply",
        ];
        if provider == "ottpay" {
            args.extend(["--currency", "USD"]);
        }
        let (code, out, err) = posbridge(&args);
        assert_eq!(code, 0, "{provider}: {out}{err}\n{}", w.sim.report(format));
        // The daemon tells the terminal what the report settled.
        w.update_in("R-LOST", RefundState::Succeeded).await;
        let l = w.ledger();
        let lost = l.lookup("R-LOST").unwrap();
        assert_eq!(lost.state, RefundState::Succeeded, "{provider}: {out}");
        assert_eq!(lost.refunded, Some(usd(900)));
        let executed = w.sim.refunds();
        assert!(
            executed
                .iter()
                .any(|r| Some(&r.refund_id) == lost.provider_refund_id.as_ref()),
            "{provider}: settled with the refund the simulator made"
        );
        if provider == "ottpay" {
            let later = l.lookup("R-LATER").unwrap();
            assert_eq!(later.state, RefundState::Succeeded, "{provider}: {out}");
            assert_eq!(
                w.final_update("R-LATER").await.state,
                RefundState::Succeeded
            );
        }
        w.stop_bridge();
    }
}
