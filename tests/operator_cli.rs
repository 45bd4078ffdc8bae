//! The operator commands against a real ledger file: queue, show, resolve, retry and
//! export, as an operator runs them.

use std::path::Path;
use std::process::Command;

use posbridge::ledger::{AcceptPolicy, Acceptance, AttemptStatus, Change, Ledger, NewRefund};
use posbridge::message::RefundState;
use posbridge::money::{Amount, Currency};

fn dir_of(ledger: &Path) -> &Path {
    ledger.parent().unwrap()
}

fn posbridge(ledger: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(args)
        .arg("--ledger")
        .arg(ledger)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn record(ledger: &mut Ledger, id: &str, payment: &str, rrid: &str) -> i64 {
    let new = NewRefund {
        terminal_id: "T1".into(),
        original_merchant_refund_id: id.into(),
        payment_id: payment.into(),
        amount: Some(Amount::new(1250, Currency::parse("USD").unwrap()).unwrap()),
        memo: Some("a, \"quoted\" memo".into()),
    };
    let policy = AcceptPolicy {
        provider: "ottpay".into(),
        queued: false,
        refund_request_id: rrid.into(),
        daily_limit: None,
    };
    match ledger.accept(&new, &policy, 1_700_000_000_000).unwrap() {
        Acceptance::Recorded { refund, .. } => refund.id,
        other => panic!("{other:?}"),
    }
}

fn settle(ledger: &mut Ledger, id: i64, state: RefundState, code: &str) {
    let r = ledger.get(id).unwrap();
    let change = Change {
        state: Some(state),
        attempt: Some(AttemptStatus::Done),
        next_action_ms: Some(None),
        result: Some((code.into(), "as the provider said".into())),
        cause: "provider".into(),
        ..Change::default()
    };
    ledger
        .apply(id, r.attempt_id, &change, 1_700_000_001_000)
        .unwrap();
}

#[test]
fn operators_see_settle_retry_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let mut ledger = Ledger::open(&path).unwrap();
    record(&mut ledger, "REF-W", "PAY-1", "RRID-W");
    let unknown = record(&mut ledger, "REF-U", "PAY-2", "RRID-U");
    settle(
        &mut ledger,
        unknown,
        RefundState::NeedsAttention,
        "OUTCOME_UNKNOWN",
    );
    let failed = record(&mut ledger, "REF-F", "PAY-3", "RRID-F");
    settle(
        &mut ledger,
        failed,
        RefundState::Failed,
        "DPOS_REFUND_MERCHANT_BALANCE_NOT_ENOUGH",
    );
    drop(ledger);

    let (ok, out, _) = posbridge(&path, &["queue"]);
    assert!(ok);
    assert!(out.contains("REF-W") && out.contains("REF-U"), "{out}");
    assert!(!out.contains("REF-F"), "failed refunds are settled: {out}");
    assert!(out.contains("needs a person"), "{out}");

    let (ok, out, _) = posbridge(&path, &["show", "RRID-U"]);
    assert!(ok);
    assert!(
        out.contains("NEEDS_ATTENTION") && out.contains("History:"),
        "{out}"
    );

    // A NEEDS_ATTENTION refund is never retried blindly; it is resolved with a note.
    let (ok, _, err) = posbridge(&path, &["retry", "REF-U"]);
    assert!(!ok);
    assert!(err.contains("resolve"), "{err}");
    let (ok, _, err) = posbridge(&path, &["resolve", "REF-U", "--failed"]);
    assert!(!ok, "a note is required");
    assert!(err.contains("--note"), "{err}");
    let (ok, out, err) = posbridge(
        &path,
        &[
            "resolve",
            "REF-U",
            "--failed",
            "--note",
            "not in the portal",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("FAILED"), "{out}");
    let (ok, _, err) = posbridge(&path, &["resolve", "REF-W", "--succeeded", "--note", "x"]);
    assert!(!ok, "only NEEDS_ATTENTION can be resolved");
    assert!(err.contains("NEEDS_ATTENTION"), "{err}");

    // A FAILED refund is retried with a new refundRequestId; a waiting one is made due.
    let (ok, out, err) = posbridge(&path, &["retry", &format!("#{failed}")]);
    assert!(ok, "{err}");
    assert!(out.contains("ACCEPTED") && !out.contains("RRID-F"), "{out}");
    let (ok, out, _) = posbridge(&path, &["retry", "REF-W"]);
    assert!(ok);
    assert!(out.contains("RRID-W"), "same id: {out}");

    let ledger = Ledger::open(&path).unwrap();
    let history = ledger.history(unknown).unwrap();
    assert!(
        history
            .transitions
            .last()
            .unwrap()
            .cause
            .contains("not in the portal")
    );
    assert_eq!(ledger.history(failed).unwrap().attempts.len(), 2);
    drop(ledger);

    let (ok, csv, _) = posbridge(&path, &["export"]);
    assert!(ok);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(rows[0].starts_with("box_id,ledger_id,terminal_id,original_merchant_refund_id"));
    assert!(
        csv.contains("\"a, \"\"quoted\"\" memo\""),
        "CSV quoting: {csv}"
    );
    let (ok, jsonl, _) = posbridge(
        &path,
        &["export", "--format", "jsonl", "--since", "2023-11-14"],
    );
    assert!(ok);
    let records: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[1]["state"], "FAILED");
    // One schema: the JSON lines carry exactly the CSV's fields, in the same order.
    let header: Vec<&str> = rows[0].split(',').collect();
    let keys: Vec<&str> = records[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted_header = header.clone();
    sorted_header.sort_unstable();
    let mut sorted_keys = keys.clone();
    sorted_keys.sort_unstable();
    assert_eq!(sorted_header, sorted_keys);
    // Times to the millisecond.
    let accepted = records[0]["accepted_at"].as_str().unwrap();
    assert!(
        accepted.ends_with(".000Z") && accepted.len() == 24,
        "{accepted}"
    );
    let (ok, jsonl, _) = posbridge(
        &path,
        &["export", "--format", "jsonl", "--since", "2030-01-01"],
    );
    assert!(ok && jsonl.is_empty());
    let (ok, _, err) = posbridge(&path, &["export", "--since", "last week"]);
    assert!(!ok && err.contains("--since"), "{err}");
    // A window: accepted at 1_700_000_000_000 (2023-11-14T22:13:20Z), so nothing
    // before it and all three up to a minute after.
    let (ok, jsonl, _) = posbridge(
        &path,
        &[
            "export",
            "--format",
            "jsonl",
            "--since",
            "2023-11-14",
            "--until",
            "2023-11-14T22:13:20Z",
        ],
    );
    assert!(ok && jsonl.is_empty(), "{jsonl}");
    let (ok, jsonl, _) = posbridge(
        &path,
        &[
            "export",
            "--format",
            "jsonl",
            "--box-id",
            "store-112",
            "--until",
            "today",
        ],
    );
    assert!(ok);
    assert!(
        jsonl
            .lines()
            .all(|l| l.contains("\"box_id\":\"store-112\"")),
        "{jsonl}"
    );
    // An export file is as private as the ledger.
    let out = dir_of(&path).join("refunds.csv");
    let (ok, _, _) = posbridge(&path, &["export", "--output", out.to_str().unwrap()]);
    assert!(ok);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// `--config` may come before the command, as people write it.
#[test]
fn config_may_come_before_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite");
    let mut l = Ledger::open(&ledger).unwrap();
    record(&mut l, "REF-1", "PAY-1", "RRID-1");
    drop(l);
    let config = dir.path().join("posbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\npath = \"{}\"\n\n[[terminal]]\ndevice = \"/dev/null\"\n\n{}",
            ledger.display(),
            posbridge::sim::cloud::demo::provider_toml("ottpay", "http://127.0.0.1:9").unwrap()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .arg("--config")
        .arg(&config)
        .arg("queue")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("REF-1"));
}

#[test]
fn a_missing_ledger_is_not_created_by_a_look() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.sqlite");
    let (ok, _, err) = posbridge(&path, &["queue"]);
    assert!(!ok);
    assert!(err.contains("no ledger"), "{err}");
    assert!(!path.exists());
}

/// Text a ledger holds from outside (an older version's provider messages, a
/// terminal's memo with a bidirectional override) is shown, never obeyed, by the
/// operator's terminal.
#[test]
fn stored_text_never_reaches_the_operators_terminal_as_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let mut ledger = Ledger::open(&path).unwrap();
    let id = record(&mut ledger, "REF-ESC", "PAY-ESC", "RRID-ESC");
    let r = ledger.get(id).unwrap();
    let change = Change {
        state: Some(RefundState::NeedsAttention),
        attempt: Some(AttemptStatus::Done),
        next_action_ms: Some(None),
        result: Some((
            "X".into(),
            "evil\u{1b}[2J\u{1b}]0;owned\u{7} \u{202e}txet".into(),
        )),
        cause: "provider said \u{1b}[31mred".into(),
        ..Change::default()
    };
    ledger
        .apply(id, r.attempt_id, &change, 1_700_000_001_000)
        .unwrap();
    drop(ledger);
    for args in [
        vec!["show", "REF-ESC"],
        vec!["queue"],
        vec!["export", "--format", "csv"],
    ] {
        let (ok, out, err) = posbridge(&path, &args);
        assert!(ok, "{args:?}: {err}");
        assert!(
            !out.chars()
                .any(|c| c == '\u{1b}' || c == '\u{7}' || c == '\u{202e}'),
            "{args:?} printed a raw escape: {out:?}"
        );
        assert!(
            out.contains("\\u{1b}"),
            "{args:?} shows what was there: {out}"
        );
    }
}

fn status_of(args: &[&str], ledger: Option<&Path>, uid: Option<u32>) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_posbridge"));
    command.args(args);
    if let Some(ledger) = ledger {
        command.arg("--ledger").arg(ledger);
    }
    if let Some(uid) = uid {
        command.uid(uid).gid(uid);
    }
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Each kind of failure has its own exit status (`man posbridge`, EXIT STATUS), so a
/// script can tell a missing refund from a refused change from a permission problem.
#[test]
fn each_kind_of_failure_exits_with_its_own_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let mut ledger = Ledger::open(&path).unwrap();
    let id = record(&mut ledger, "R-1", "PAY-1", "RR-1");
    settle(&mut ledger, id, RefundState::Succeeded, "SUCCESS");
    drop(ledger);

    let (code, err) = status_of(&["show", "NO-SUCH-REFUND"], Some(&path), None);
    assert_eq!(code, Some(4), "not found: {err}");
    let (code, err) = status_of(
        &["resolve", "R-1", "--failed", "--note", "portal"],
        Some(&path),
        None,
    );
    assert_eq!(code, Some(5), "wrong state: {err}");
    let missing = dir.path().join("none.sqlite");
    let (code, err) = status_of(&["queue"], Some(&missing), None);
    assert_eq!(code, Some(4), "no ledger: {err}");
    assert!(err.contains("first start"), "{err}");
    let (code, err) = status_of(&["export", "--since", "last tuesday"], Some(&path), None);
    assert_eq!(code, Some(2), "usage: {err}");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[ledger]\npath = 5\n").unwrap();
    let (code, err) = status_of(
        &["check-config", "--config", config.to_str().unwrap()],
        None,
        None,
    );
    assert_eq!(code, Some(3), "configuration: {err}");
    let (code, err) = status_of(&["queue", "--config", config.to_str().unwrap()], None, None);
    assert_eq!(code, Some(3), "configuration: {err}");

    // A ledger this user may not read is a permission problem, not a missing ledger.
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let (code, err) = status_of(&["queue"], Some(&path), Some(65534));
        assert_eq!(code, Some(7), "permission: {err}");
        assert!(
            err.contains("sudo -u posbridge") && !err.contains("first start"),
            "{err}"
        );
    } else {
        eprintln!("SKIPPED: the permission case needs root to run as another user");
    }
}

#[test]
fn check_config_speaks_json_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[ledger]\npath = 5\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["check-config", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert!(
        report["error"].as_str().unwrap().contains("path"),
        "{report}"
    );
}

#[test]
fn a_whole_payment_refund_shows_the_amount_the_provider_gave() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let mut ledger = Ledger::open(&path).unwrap();
    let whole = |ledger: &mut Ledger, id: &str, rrid: &str| {
        let new = NewRefund {
            terminal_id: "T1".into(),
            original_merchant_refund_id: id.into(),
            payment_id: format!("PAY-{id}"),
            amount: None,
            memo: None,
        };
        let policy = AcceptPolicy {
            provider: "antom".into(),
            queued: false,
            refund_request_id: rrid.into(),
            daily_limit: None,
        };
        match ledger.accept(&new, &policy, 1_700_000_000_000).unwrap() {
            Acceptance::Recorded { refund, .. } => refund.id,
            other => panic!("{other:?}"),
        }
    };
    let learned = whole(&mut ledger, "REF-WHOLE", "RRID-WHOLE");
    let r = ledger.get(learned).unwrap();
    let change = Change {
        state: Some(RefundState::Succeeded),
        attempt: Some(AttemptStatus::Done),
        next_action_ms: Some(None),
        refunded: Some(Amount::new(4321, Currency::parse("USD").unwrap()).unwrap()),
        result: Some(("SUCCESS".into(), "Success".into())),
        cause: "provider".into(),
        ..Change::default()
    };
    ledger
        .apply(learned, r.attempt_id, &change, 1_700_000_001_000)
        .unwrap();
    whole(&mut ledger, "REF-WAIT", "RRID-WAIT");
    drop(ledger);

    let (ok, out, _) = posbridge(&path, &["show", "REF-WHOLE"]);
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("amount"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("whole payment") && line.contains("43.21 USD"),
        "{out}"
    );
    let (ok, out, _) = posbridge(&path, &["show", "REF-WAIT"]);
    assert!(ok, "{out}");
    assert!(out.contains("not yet known"), "{out}");
    let (ok, out, _) = posbridge(&path, &["queue"]);
    assert!(ok, "{out}");
    let waiting = out
        .lines()
        .find(|l| l.contains("REF-WAIT"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(waiting.contains(" full "), "{out}");
}
