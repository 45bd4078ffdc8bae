//! The ledger's operations, one by one, on real files.

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::money::{Amount, Currency};
use crate::state::RefundState;

fn usd(value: i64) -> Amount {
    Amount::new(value, Currency::parse("USD").unwrap()).unwrap()
}

fn new_refund(id: &str, payment: &str, value: i64) -> NewRefund {
    NewRefund {
        terminal_id: "T1".into(),
        original_merchant_refund_id: id.into(),
        payment_id: payment.into(),
        amount: Some(usd(value)),
        memo: None,
    }
}

fn policy(rrid: &str) -> AcceptPolicy {
    AcceptPolicy {
        provider: "antom".into(),
        queued: false,
        refund_request_id: rrid.into(),
        daily_limit: None,
    }
}

fn open() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("state/ledger.sqlite")).unwrap();
    (dir, ledger)
}

fn recorded(a: Acceptance) -> RefundRecord {
    match a {
        Acceptance::Recorded { refund, .. } => refund,
        other => panic!("not recorded: {other:?}"),
    }
}

#[test]
fn file_is_private_and_schema_versioned() {
    let (dir, ledger) = open();
    let file = dir.path().join("state/ledger.sqlite");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(dir.path().join("state"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    drop(ledger);
    // Reopening migrates nothing and keeps the data.
    let again = Ledger::open(&file).unwrap();
    let version: i64 = again
        .conn_for_tests()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    again
        .conn_for_tests()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(again);
    let err = Ledger::open(&file).unwrap_err();
    assert!(matches!(err, LedgerError::NewerSchema { .. }), "{err}");
}

#[test]
fn accept_records_once_and_spots_duplicates_and_mismatches() {
    let (_dir, mut ledger) = open();
    let r = recorded(
        ledger
            .accept(&new_refund("R1", "P1", 500), &policy("Q1"), 1000)
            .unwrap(),
    );
    assert_eq!(r.state, RefundState::Accepted);
    assert_eq!(r.refund_request_id, "Q1");
    assert_eq!(r.attempt_status, AttemptStatus::New);
    assert_eq!(r.next_action_ms, Some(1000));
    match ledger
        .accept(&new_refund("R1", "P1", 500), &policy("Q2"), 2000)
        .unwrap()
    {
        Acceptance::Duplicate(d) => assert_eq!(d.id, r.id),
        other => panic!("{other:?}"),
    }
    match ledger
        .accept(&new_refund("R1", "P1", 501), &policy("Q3"), 2000)
        .unwrap()
    {
        Acceptance::Mismatch(m) => assert_eq!(m.refund_request_id, "Q1"),
        other => panic!("{other:?}"),
    }
    // The same id from another terminal is another refund.
    let mut other = new_refund("R1", "P1", 500);
    other.terminal_id = "T2".into();
    let mut queued = policy("Q4");
    queued.queued = true;
    let r2 = recorded(ledger.accept(&other, &queued, 3000).unwrap());
    assert_eq!(r2.state, RefundState::Queued);
    let history = ledger.history(r.id).unwrap();
    assert_eq!(history.transitions.len(), 1);
    assert_eq!(history.transitions[0].to_state, RefundState::Accepted);
}

#[test]
fn daily_limit_counts_everything_but_failures() {
    let (_dir, mut ledger) = open();
    let mut p = policy("A");
    p.daily_limit = Some(DailyLimit {
        max: usd(1000),
        since_ms: 100,
    });
    recorded(
        ledger
            .accept(&new_refund("R1", "P1", 600), &p, 200)
            .unwrap(),
    );
    p.refund_request_id = "B".into();
    match ledger
        .accept(&new_refund("R2", "P2", 401), &p, 300)
        .unwrap()
    {
        Acceptance::OverDailyLimit { used, .. } => assert_eq!(used, 600),
        other => panic!("{other:?}"),
    }
    recorded(
        ledger
            .accept(&new_refund("R2", "P2", 400), &p, 300)
            .unwrap(),
    );
    // Yesterday's refunds do not count.
    p.refund_request_id = "C".into();
    p.daily_limit = Some(DailyLimit {
        max: usd(1000),
        since_ms: 1000,
    });
    recorded(
        ledger
            .accept(&new_refund("R3", "P3", 1000), &p, 1100)
            .unwrap(),
    );
}

#[test]
fn due_keeps_one_refund_per_payment_in_order() {
    let (_dir, mut ledger) = open();
    let a = recorded(
        ledger
            .accept(&new_refund("R1", "P1", 1), &policy("A"), 10)
            .unwrap(),
    );
    let b = match ledger
        .accept(&new_refund("R2", "P1", 2), &policy("B"), 11)
        .unwrap()
    {
        Acceptance::Recorded {
            refund,
            waits_for_earlier,
        } => {
            assert!(waits_for_earlier);
            refund
        }
        other => panic!("{other:?}"),
    };
    let c = recorded(
        ledger
            .accept(&new_refund("R3", "P2", 3), &policy("C"), 12)
            .unwrap(),
    );
    let due: Vec<i64> = ledger.due(100, 10).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(due, vec![a.id, c.id], "R2 waits for R1 of the same payment");
    // R1 in progress at the provider still holds R2 back.
    let change = Change {
        state: Some(RefundState::Processing),
        attempt: Some(AttemptStatus::Processing),
        next_action_ms: Some(Some(500)),
        cause: "provider: in progress".into(),
        ..Change::default()
    };
    ledger.apply(a.id, a.attempt_id, &change, 20).unwrap();
    let due: Vec<i64> = ledger.due(100, 10).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(due, vec![c.id]);
    let done = Change {
        state: Some(RefundState::Succeeded),
        attempt: Some(AttemptStatus::Done),
        next_action_ms: Some(None),
        provider_refund_id: Some("X1".into()),
        cause: "provider: succeeded".into(),
        ..Change::default()
    };
    ledger.apply(a.id, a.attempt_id, &done, 30).unwrap();
    let due: Vec<i64> = ledger.due(100, 10).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(due, vec![b.id, c.id]);
    assert_eq!(ledger.next_due_ms().unwrap(), Some(11));
}

#[test]
fn a_refund_handed_to_a_person_does_not_hold_the_next_one_back() {
    // Found by the fault campaign: the next refund of the payment stayed QUEUED, the
    // terminal saying it waited for the network, until someone settled the first.
    let (_dir, mut ledger) = open();
    let a = recorded(
        ledger
            .accept(&new_refund("R1", "P1", 1), &policy("A"), 10)
            .unwrap(),
    );
    let in_doubt = Change {
        state: Some(RefundState::NeedsAttention),
        attempt: Some(AttemptStatus::Done),
        next_action_ms: Some(None),
        cause: "outcome unknown".into(),
        ..Change::default()
    };
    ledger.apply(a.id, a.attempt_id, &in_doubt, 20).unwrap();
    let b = match ledger
        .accept(&new_refund("R2", "P1", 2), &policy("B"), 30)
        .unwrap()
    {
        Acceptance::Recorded {
            refund,
            waits_for_earlier,
        } => {
            assert!(!waits_for_earlier);
            refund
        }
        other => panic!("{other:?}"),
    };
    let due: Vec<i64> = ledger.due(100, 10).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(due, vec![b.id]);
    let unsettled: Vec<i64> = ledger.unfinished().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(
        unsettled,
        vec![a.id, b.id],
        "both are still the operator's business"
    );
}

#[test]
fn sending_is_remembered_for_after_a_crash() {
    let (dir, mut ledger) = open();
    let r = recorded(
        ledger
            .accept(&new_refund("R1", "P1", 1), &policy("A"), 10)
            .unwrap(),
    );
    ledger
        .begin_send(r.id, r.attempt_id, AttemptStatus::New, 20)
        .unwrap();
    // A second sender holding the old copy is turned away.
    assert!(matches!(
        ledger.begin_send(r.id, r.attempt_id, AttemptStatus::New, 21),
        Err(LedgerError::NotAllowed { .. })
    ));
    drop(ledger);
    let ledger = Ledger::open(&dir.path().join("state/ledger.sqlite")).unwrap();
    let doubt = ledger.in_doubt().unwrap();
    assert_eq!(doubt.len(), 1);
    assert_eq!(doubt[0].attempt_status, AttemptStatus::Sending);
    let history = ledger.history(r.id).unwrap();
    assert_eq!(history.attempts[0].sends, 1);
}

#[test]
fn operator_changes_are_guarded() {
    let (_dir, mut ledger) = open();
    let r = recorded(
        ledger
            .accept(&new_refund("R1", "P1", 1), &policy("A"), 10)
            .unwrap(),
    );
    assert!(matches!(
        ledger.resolve(r.id, RefundState::Succeeded, "operator", 20),
        Err(LedgerError::NotAllowed { .. })
    ));
    assert!(matches!(
        ledger.new_attempt(r.id, "B", RefundState::Accepted, "operator retry", 20),
        Err(LedgerError::NotAllowed { .. })
    ));
    let unknown = Change {
        state: Some(RefundState::NeedsAttention),
        attempt: Some(AttemptStatus::Done),
        next_action_ms: Some(None),
        cause: "outcome unknown".into(),
        ..Change::default()
    };
    ledger.apply(r.id, r.attempt_id, &unknown, 30).unwrap();
    assert!(matches!(
        ledger.resolve(r.id, RefundState::Queued, "operator", 40),
        Err(LedgerError::NotAllowed { .. })
    ));
    let resolved = ledger
        .resolve(r.id, RefundState::Failed, "operator: not refunded", 40)
        .unwrap();
    assert_eq!(resolved.state, RefundState::Failed);
    let retried = ledger
        .new_attempt(r.id, "B", RefundState::Accepted, "operator retry", 50)
        .unwrap();
    assert_eq!(retried.refund_request_id, "B");
    assert_eq!(retried.state, RefundState::Accepted);
    assert_eq!(retried.next_action_ms, Some(50));
    let history = ledger.history(r.id).unwrap();
    assert_eq!(history.attempts.len(), 2);
    assert_eq!(history.transitions.len(), 4);
    // An outcome for the old attempt can no longer change anything.
    assert!(ledger.apply(r.id, r.attempt_id, &unknown, 60).is_err());
    let done = Change {
        state: Some(RefundState::Succeeded),
        attempt: Some(AttemptStatus::Done),
        cause: "provider".into(),
        ..Change::default()
    };
    ledger.apply(r.id, retried.attempt_id, &done, 70).unwrap();
    // Nor can a late outcome of the current one once the refund is settled.
    assert!(matches!(
        ledger.apply(r.id, retried.attempt_id, &unknown, 80),
        Err(LedgerError::NotAllowed { .. })
    ));
}

#[test]
fn delivery_of_final_states_is_tracked() {
    let (_dir, mut ledger) = open();
    let r = recorded(
        ledger
            .accept(&new_refund("R1", "P1", 1), &policy("A"), 10)
            .unwrap(),
    );
    assert!(ledger.undelivered_finals("T1", 10).unwrap().is_empty());
    let done = Change {
        state: Some(RefundState::Succeeded),
        attempt: Some(AttemptStatus::Done),
        next_action_ms: Some(None),
        cause: "provider: succeeded".into(),
        ..Change::default()
    };
    ledger.apply(r.id, r.attempt_id, &done, 20).unwrap();
    assert_eq!(ledger.undelivered_finals("T1", 10).unwrap().len(), 1);
    assert!(
        !ledger
            .mark_delivered(r.id, RefundState::Accepted, 30)
            .unwrap()
    );
    assert!(
        ledger
            .mark_delivered(r.id, RefundState::Succeeded, 30)
            .unwrap()
    );
    assert!(ledger.undelivered_finals("T1", 10).unwrap().is_empty());
}

#[test]
fn people_find_refunds_by_any_of_their_ids() {
    let (_dir, mut ledger) = open();
    let r = recorded(
        ledger
            .accept(&new_refund("R1", "P1", 1), &policy("RRID-1"), 10)
            .unwrap(),
    );
    assert_eq!(ledger.lookup(&r.id.to_string()).unwrap().id, r.id);
    assert_eq!(ledger.lookup("R1").unwrap().id, r.id);
    assert_eq!(ledger.lookup("RRID-1").unwrap().id, r.id);
    assert_eq!(
        ledger.find_by_request_id("RRID-1").unwrap().map(|r| r.id),
        Some(r.id)
    );
    assert!(matches!(
        ledger.lookup("nope"),
        Err(LedgerError::NotFound(_))
    ));
    let mut other = new_refund("R1", "P9", 1);
    other.terminal_id = "T2".into();
    recorded(ledger.accept(&other, &policy("RRID-2"), 10).unwrap());
    assert!(matches!(
        ledger.lookup("R1"),
        Err(LedgerError::Ambiguous(..))
    ));
    let mut seen = Vec::new();
    assert_eq!(ledger.export(0, None, |r| seen.push(r.id)).unwrap(), 2);
    let counts = ledger.counts().unwrap();
    assert_eq!(counts.unfinished, 2);
    assert_eq!(counts.oldest_unfinished_ms, Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_commits_concurrent_calls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let handle = LedgerHandle::spawn(Ledger::open(&path).unwrap()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let handle = handle.clone();
        tasks.push(tokio::spawn(async move {
            handle
                .call(move |l| {
                    l.accept(
                        &new_refund(&format!("R{i}"), &format!("P{i}"), 1),
                        &policy(&format!("Q{i}")),
                        i,
                    )
                })
                .await
        }));
    }
    for task in tasks {
        assert!(matches!(
            task.await.unwrap().unwrap(),
            Acceptance::Recorded { .. }
        ));
    }
    // A failing call does not spoil the others in its batch.
    let bad = handle.call(|l| l.get(999_999)).await;
    assert!(matches!(bad, Err(LedgerError::NotFound(_))));
    drop(handle);
    let ledger = Ledger::open(&path).unwrap();
    assert_eq!(ledger.counts().unwrap().unfinished, 200);
}

#[test]
fn revision_grows_with_every_change_and_in_flight_refunds_stay_accepted() {
    let (_dir, mut ledger) = open();
    let a = recorded(
        ledger
            .accept(&new_refund("A", "PAY-A", 100), &policy("RA"), 1)
            .unwrap(),
    );
    let b = recorded(
        ledger
            .accept(&new_refund("B", "PAY-B", 100), &policy("RB"), 2)
            .unwrap(),
    );
    assert!(b.revision > a.revision, "revisions are one sequence");
    // A's request leaves; then the cloud is found unreachable.
    ledger
        .begin_send(a.id, a.attempt_id, AttemptStatus::New, 3)
        .unwrap();
    let moved = ledger
        .queue_accepted("the cloud cannot be used", 4)
        .unwrap();
    assert_eq!(
        moved.iter().map(|r| r.id).collect::<Vec<_>>(),
        [b.id],
        "only the refund that is not on its way is queued"
    );
    assert_eq!(ledger.get(a.id).unwrap().state, RefundState::Accepted);
    let queued = ledger.get(b.id).unwrap();
    assert!(queued.revision > b.revision);
    assert_eq!(queued.revision, moved[0].revision);
}

/// The plan steps of each traced statement that read a whole table of refunds,
/// attempts or transitions ("SCAN t" reads a table, "SCAN t USING INDEX i" all of
/// an index).
fn whole_table_reads(ledger: &Ledger, traced: &[String]) -> Vec<String> {
    let mut scans = Vec::new();
    for sql in traced {
        let sql = sql.trim();
        let head = sql
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if !["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"].contains(&head.as_str()) {
            continue;
        }
        let mut stmt = ledger
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let nulls = std::iter::repeat_n(rusqlite::types::Null, stmt.parameter_count());
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(nulls), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for step in plan {
            let table = step
                .strip_prefix("SCAN ")
                .map(|rest| rest.split(' ').next());
            if let Some(Some(table)) = table
                && ["refunds", "attempts", "transitions", "r", "a", "t", "e"].contains(&table)
            {
                scans.push(format!("{step}\n    in: {sql}"));
            }
        }
    }
    scans
}

/// Every statement the ledger ran while the trace was on.
static TRACED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn trace(event: rusqlite::trace::TraceEvent<'_>) {
    if let rusqlite::trace::TraceEvent::Stmt(stmt, _) = event
        && let Ok(mut traced) = TRACED.lock()
    {
        traced.push(stmt.sql().into_owned());
    }
}

fn tracing(ledger: &Ledger, on: bool) {
    let codes = rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT;
    ledger
        .conn
        .trace_v2(codes, if on { Some(trace) } else { None });
}

/// A ledger of years must cost what is unfinished, not what is stored: every statement
/// the daemon's periodic work and the operator commands run is asked for its query plan,
/// and none may read a whole table of refunds, attempts or transitions; the export
/// streams in its index's order, without sorting what it reads first.
#[test]
fn no_periodic_or_operator_query_reads_a_whole_table() {
    let (_dir, mut ledger) = open();
    // Enough rows of every kind that a plan has something to choose between.
    let mut ids = Vec::new();
    for i in 0..300 {
        let r = recorded(
            ledger
                .accept(
                    &new_refund(&format!("R{i}"), &format!("P{}", i % 50), 100),
                    &policy(&format!("RR{i}")),
                    1_000 + i,
                )
                .unwrap(),
        );
        ids.push(r);
    }
    for r in ids.iter().step_by(2) {
        let done = Change {
            state: Some(RefundState::Succeeded),
            attempt: Some(AttemptStatus::Done),
            next_action_ms: Some(None),
            provider_refund_id: Some(format!("PR-{}", r.id)),
            cause: "provider".into(),
            ..Change::default()
        };
        ledger.apply(r.id, r.attempt_id, &done, 5_000).unwrap();
    }
    ledger.fleet_enable("store-1").unwrap();

    TRACED.lock().unwrap().clear();
    tracing(&ledger, true);
    let r = &ids[1];
    let s = &ids[0];
    // The bridge's periodic work.
    ledger.due(10_000, 16).unwrap();
    ledger.next_due_ms().unwrap();
    ledger.undelivered_finals("T1", 16).unwrap();
    ledger.in_doubt().unwrap();
    ledger.counts().unwrap();
    ledger.queue_accepted("cloud unreachable", 10_000).unwrap();
    ledger.requeue_now(10_000).unwrap();
    let last = ledger.last_transition_id().unwrap();
    ledger.operator_changes_since(last - 5, 100).unwrap();
    ledger.outbox_after(last - 5, 100).unwrap();
    ledger.fleet_position().unwrap();
    // A refund's life.
    ledger
        .accept(&new_refund("NEW", "P-NEW", 100), &policy("RR-NEW"), 20_000)
        .unwrap();
    ledger.find("T1", "R7").unwrap();
    ledger.find_by_request_id("RR7").unwrap();
    ledger.find_by_provider_refund_id("PR-1").unwrap();
    ledger.refunds_of_payment("P7").unwrap();
    ledger
        .begin_send(r.id, r.attempt_id, AttemptStatus::New, 20_001)
        .unwrap();
    ledger
        .mark_delivered(s.id, RefundState::Succeeded, 20_002)
        .unwrap();
    ledger.due_now(r.id, "operator: retry now", 20_003).unwrap();
    // The operator's commands.
    ledger.unfinished().unwrap();
    for id in ["R9", "RR9", "PR-1", "9", "nothing"] {
        let _ = ledger.lookup(id);
    }
    ledger.history(r.id).unwrap();
    ledger.export(20_000, Some(30_000), |_| {}).unwrap();
    tracing(&ledger, false);

    let traced = std::mem::take(&mut *TRACED.lock().unwrap());
    assert!(traced.len() > 20, "{traced:?}");
    let scans = whole_table_reads(&ledger, &traced);
    assert!(scans.is_empty(), "whole-table reads:\n{}", scans.join("\n"));

    // The detector is not blind: a query on a column without an index is caught.
    let blind = whole_table_reads(&ledger, &["SELECT id FROM refunds WHERE memo = ?1".into()]);
    assert_eq!(blind.len(), 1, "{blind:?}");

    // An export streams in the index's order: no sort of the whole range first.
    tracing(&ledger, true);
    ledger.export(0, None, |_| {}).unwrap();
    tracing(&ledger, false);
    let traced = std::mem::take(&mut *TRACED.lock().unwrap());
    let mut stmt = ledger
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", traced[0]))
        .unwrap();
    let plan: Vec<String> = stmt
        .query_map([0, i64::MAX], |row| row.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        !plan.iter().any(|step| step.contains("TEMP B-TREE")),
        "{plan:?}"
    );
}
