//! The bridge end to end: the `posbridge run` process between the terminal emulator
//! (on a pseudo-terminal line) and the cloud simulator. Every test asserts what the
//! simulator actually executed, so "exactly once" is checked against the money.

mod common;

use std::time::Duration;

use common::*;
use posbridge::message::{ErrorCode, Message, RefundState};
use posbridge::sim::cloud::faults::{Fault, FaultRule, FaultTarget};
use posbridge::sim::line::LineFaults;
use posbridge::sim::terminal::TerminalEvent;

fn display_lines(event: &TerminalEvent) -> Option<Vec<String>> {
    match event {
        TerminalEvent::Message(Message::Display(d)) => Some(d.lines.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_succeeds_and_the_display_shows_it() {
    let mut w = World::new(Setup {
        payments: vec![payment("PAY-1", 5000)],
        ..Setup::default()
    })
    .await;
    w.wait_for("WELCOME", |e| {
        matches!(e, TerminalEvent::Message(Message::Welcome(_))).then_some(())
    })
    .await;
    w.refund("REF-1", "PAY-1", Some(1250));
    let accepted = w.update_in("REF-1", RefundState::Accepted).await;
    let done = w.final_update("REF-1").await;
    assert_eq!(done.state, RefundState::Succeeded);
    assert_eq!(
        done.refund_request_id, accepted.refund_request_id,
        "one request id"
    );
    assert!(done.refund_id.is_some());
    assert_eq!(done.refund_amount, Some(usd(1250)));
    let screen = w
        .wait_for("the success display", |e| {
            display_lines(e).filter(|l| l.first().map(String::as_str) == Some("Refund approved"))
        })
        .await;
    assert_eq!(screen, vec!["Refund approved", "$12.50"]);
    assert_eq!(w.sim.executed("PAY-1"), 1);
    assert_eq!(
        w.states_seen("REF-1"),
        vec![RefundState::Accepted, RefundState::Succeeded]
    );
    // The final state was acknowledged by the terminal and is recorded as delivered.
    eventually("delivery recorded", || {
        w.ledger()
            .find("TERM-1", "REF-1")
            .unwrap()
            .unwrap()
            .delivered_state
            == Some(RefundState::Succeeded)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_refund_goes_processing_then_succeeded_by_inquiry() {
    let mut w = World::new(Setup {
        payments: vec![async_payment("PAY-A", 9000)],
        async_delay: Duration::from_millis(500),
        ..Setup::default()
    })
    .await;
    w.refund("REF-A", "PAY-A", Some(9000));
    w.update_in("REF-A", RefundState::Processing).await;
    let done = w.final_update("REF-A").await;
    assert_eq!(done.state, RefundState::Succeeded);
    assert_eq!(
        w.states_seen("REF-A"),
        vec![
            RefundState::Accepted,
            RefundState::Processing,
            RefundState::Succeeded
        ]
    );
    assert_eq!(w.sim.executed("PAY-A"), 1);
    let stats = w.sim.stats();
    assert!(
        stats.requests.get("antom_v2_inquiry").copied().unwrap_or(0) >= 1,
        "{stats:?}"
    );
    assert_eq!(
        stats.requests.get("antom_v2_refund").copied(),
        Some(1),
        "never resubmitted: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_refunds_queue_while_the_cloud_is_down_then_all_succeed_once() {
    let payments = (0..20)
        .map(|i| payment(&format!("PAY-{i}"), 1000))
        .collect();
    let mut w = World::new(Setup {
        payments,
        ..Setup::default()
    })
    .await;
    w.wait_for("WELCOME", |e| {
        matches!(e, TerminalEvent::Message(Message::Welcome(_))).then_some(())
    })
    .await;
    w.sim.set_down(true).await;
    for i in 0..20 {
        w.refund(&format!("REF-{i}"), &format!("PAY-{i}"), Some(100 + i));
    }
    // Every one is recorded and the terminal told it is queued (the first may be
    // ACCEPTED before the bridge learns the cloud is down, then QUEUED).
    for i in 0..20 {
        w.update_in(&format!("REF-{i}"), RefundState::Queued).await;
    }
    let queued_screen = w
        .wait_for("the queued display", |e| {
            display_lines(e).filter(|l| l.first().map(String::as_str) == Some("Refund saved"))
        })
        .await;
    assert!(
        queued_screen.iter().any(|l| l.contains("Network down")),
        "{queued_screen:?}"
    );
    assert_eq!(
        (0..20)
            .map(|i| w.sim.executed(&format!("PAY-{i}")))
            .sum::<u32>(),
        0
    );

    w.sim.set_down(false).await;
    for i in 0..20 {
        let done = w.final_update(&format!("REF-{i}")).await;
        assert_eq!(done.state, RefundState::Succeeded, "REF-{i}");
    }
    for i in 0..20 {
        assert_eq!(w.sim.executed(&format!("PAY-{i}")), 1, "PAY-{i}");
    }
    let counts = w.ledger().counts().unwrap();
    assert_eq!(counts.unfinished, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_refunds_are_answered_from_the_ledger_and_mismatches_refused() {
    let mut w = World::new(Setup {
        payments: vec![payment("PAY-1", 5000)],
        ..Setup::default()
    })
    .await;
    w.refund("REF-1", "PAY-1", Some(700));
    let first = w.final_update("REF-1").await;
    // The same REFUND again: the same answer, no second refund.
    w.refund("REF-1", "PAY-1", Some(700));
    let again = w
        .wait_nth("the repeated answer", 2, |e| match e {
            TerminalEvent::Message(Message::RefundUpdate(u))
                if u.original_merchant_refund_id == "REF-1" && u.state.is_final() =>
            {
                Some(u.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(again.refund_request_id, first.refund_request_id);
    // The same id with another amount: refused by name, nothing changes.
    w.refund("REF-1", "PAY-1", Some(701));
    let error = w
        .wait_for("DUPLICATE_MISMATCH", |e| match e {
            TerminalEvent::Message(Message::Error(err)) => Some(err.clone()),
            _ => None,
        })
        .await;
    assert_eq!(error.code, ErrorCode::DuplicateMismatch.as_str());
    assert_eq!(error.reference.as_deref(), Some("REF-1"));
    assert_eq!(w.sim.executed("PAY-1"), 1);
    let history = w.ledger().history(1).unwrap();
    assert_eq!(history.attempts.len(), 1);
    assert_eq!(history.attempts[0].sends, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_that_reconnects_mid_refund_still_gets_the_final_state() {
    let mut w = World::new(Setup {
        payments: vec![async_payment("PAY-R", 3000)],
        async_delay: Duration::from_millis(1500),
        ..Setup::default()
    })
    .await;
    w.refund("REF-R", "PAY-R", Some(3000));
    w.update_in("REF-R", RefundState::Processing).await;
    // The terminal restarts while the provider is still processing.
    w.reconnect_terminal();
    let done = w.final_update("REF-R").await;
    assert_eq!(done.state, RefundState::Succeeded);
    assert_eq!(w.sim.executed("PAY-R"), 1);
    // And one more reconnect: a final state the terminal acknowledged is not resent,
    // but an INQUIRY is answered from the ledger.
    eventually("delivery recorded", || {
        w.ledger()
            .find("TERM-1", "REF-R")
            .unwrap()
            .unwrap()
            .delivered_state
            == Some(RefundState::Succeeded)
    })
    .await;
    w.reconnect_terminal();
    w.send(Message::Inquiry(posbridge::message::Inquiry {
        original_merchant_refund_id: "REF-R".into(),
    }));
    let answer = w.final_update("REF-R").await;
    assert_eq!(answer.state, RefundState::Succeeded);
    assert_eq!(w.sim.executed("PAY-R"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_line_loses_and_duplicates_nothing() {
    let payments = (0..10)
        .map(|i| payment(&format!("PAY-{i}"), 1000))
        .collect();
    let mut w = World::new(Setup {
        payments,
        ..Setup::default()
    })
    .await;
    let noise = LineFaults {
        garbage: 0.1,
        corrupt: 0.03,
        slip: 0.03,
        duplicate: 0.05,
        max_consecutive: 1,
        ..LineFaults::default()
    };
    w.line.to_bridge.set(noise.clone());
    w.line.to_terminal.set(noise);
    for i in 0..10 {
        w.refund(&format!("REF-{i}"), &format!("PAY-{i}"), Some(100));
    }
    // Invalid frames among them: refused by field, never recorded.
    w.send(Message::Refund(posbridge::message::Refund {
        original_merchant_refund_id: "BAD-1".into(),
        payment_id: "PAY-0".into(),
        refund_amount: Some(
            posbridge::money::Amount::new(0, posbridge::money::Currency::parse("USD").unwrap())
                .unwrap(),
        ),
        memo: None,
    }));
    for i in 0..10 {
        assert_eq!(
            w.final_update(&format!("REF-{i}")).await.state,
            RefundState::Succeeded
        );
    }
    // An ERROR is an answer, not a state: one lost with a session is not sent again
    // (the refund was never recorded, which is what matters). On a quiet line it
    // arrives, naming the field.
    w.line.to_bridge.set(LineFaults::none());
    w.line.to_terminal.set(LineFaults::none());
    w.send(Message::Refund(posbridge::message::Refund {
        original_merchant_refund_id: "BAD-2".into(),
        payment_id: "PAY-0".into(),
        refund_amount: Some(
            posbridge::money::Amount::new(0, posbridge::money::Currency::parse("USD").unwrap())
                .unwrap(),
        ),
        memo: None,
    }));
    let error = w
        .wait_for("the refusal of BAD-2", |e| match e {
            TerminalEvent::Message(Message::Error(err))
                if err.reference.as_deref() == Some("BAD-2") =>
            {
                Some(err.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(error.code, "AMOUNT_OUT_OF_RANGE");
    assert!(
        error.message.contains("refundAmount.value"),
        "{}",
        error.message
    );
    for i in 0..10 {
        assert_eq!(w.sim.executed(&format!("PAY-{i}")), 1, "PAY-{i}");
    }
    let ledger = w.ledger();
    assert!(ledger.find("TERM-1", "BAD-1").unwrap().is_none());
    assert!(ledger.find("TERM-1", "BAD-2").unwrap().is_none());
    assert_eq!(
        ledger
            .counts()
            .unwrap()
            .by_state
            .iter()
            .map(|(_, n)| n)
            .sum::<u64>(),
        10
    );
    let stats = w.terminal.stats();
    assert!(
        stats.damaged_total() > 0 && stats.naks_sent > 0,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_on_a_non_idempotent_provider_needs_attention_not_a_second_refund() {
    for provider in ["ottpay", "paymentoptions"] {
        let mut w = World::new(Setup {
            provider,
            payments: vec![payment("PAY-N", 5000)],
            ..Setup::default()
        })
        .await;
        let target = if provider == "ottpay" {
            FaultTarget::OttpayRefund
        } else {
            FaultTarget::PaymentoptionsRefund
        };
        // The money moves, then the connection drops before the answer.
        w.sim
            .push_fault(FaultRule::once(target, Fault::DropConnection).after_execute());
        w.refund("REF-N", "PAY-N", Some(1000));
        let done = w.final_update("REF-N").await;
        assert_eq!(done.state, RefundState::NeedsAttention, "{provider}");
        assert_eq!(w.sim.executed("PAY-N"), 1, "{provider}");
        // Nothing retries it, even after a restart.
        w.stop_bridge();
        w.start_bridge();
        w.reconnect_terminal();
        w.send(Message::Status(posbridge::message::Status {}));
        w.wait_for("STATUS_REPORT", |e| {
            matches!(e, TerminalEvent::Message(Message::StatusReport(_))).then_some(())
        })
        .await;
        assert_eq!(w.sim.executed("PAY-N"), 1, "{provider}");
        let r = w.ledger().find("TERM-1", "REF-N").unwrap().unwrap();
        assert_eq!(r.state, RefundState::NeedsAttention);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_with_a_clear_error_and_record_nothing() {
    let mut w = World::new(Setup {
        payments: vec![payment("PAY-1", 100_000), payment("PAY-2", 100_000)],
        extra_config:
            "[limits]\n[limits.per_refund]\nUSD = 5000\n[limits.per_terminal_per_day]\nUSD = 8000\n"
                .into(),
        ..Setup::default()
    })
    .await;
    w.refund("REF-BIG", "PAY-1", Some(5001));
    let error = w
        .wait_for("LIMIT_EXCEEDED", |e| match e {
            TerminalEvent::Message(Message::Error(err)) => Some(err.clone()),
            _ => None,
        })
        .await;
    assert_eq!(error.code, "LIMIT_EXCEEDED");
    assert!(error.message.contains("50.00 USD"), "{}", error.message);
    let screen = w.wait_for("the limit display", display_lines).await;
    assert_eq!(screen.first().map(String::as_str), Some("Over the limit"));
    w.refund("REF-A", "PAY-1", Some(5000));
    assert_eq!(w.final_update("REF-A").await.state, RefundState::Succeeded);
    w.refund("REF-B", "PAY-2", Some(3001));
    let daily = w
        .wait_for("daily LIMIT_EXCEEDED", |e| match e {
            TerminalEvent::Message(Message::Error(err))
                if err.reference.as_deref() == Some("REF-B") =>
            {
                Some(err.clone())
            }
            _ => None,
        })
        .await;
    assert!(daily.message.contains("daily"), "{}", daily.message);
    assert_eq!(w.sim.executed("PAY-2"), 0);
    assert!(w.ledger().find("TERM-1", "REF-BIG").unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchant_balance_fails_and_an_operator_retry_uses_a_new_request_id() {
    let mut w = World::new(Setup {
        payments: vec![payment("PAY-M", 5000)],
        ..Setup::default()
    })
    .await;
    w.sim.push_fault(FaultRule::once(
        FaultTarget::AntomRefund,
        Fault::AntomResult {
            status: "F".into(),
            code: "DPOS_REFUND_MERCHANT_BALANCE_NOT_ENOUGH".into(),
            message: "The merchant balance is insufficient.".into(),
        },
    ));
    w.refund("REF-M", "PAY-M", Some(500));
    let failed = w.final_update("REF-M").await;
    assert_eq!(failed.state, RefundState::Failed);
    assert_eq!(
        failed.result_code.as_deref(),
        Some("DPOS_REFUND_MERCHANT_BALANCE_NOT_ENOUGH")
    );
    let screen = w
        .wait_for("the decline display", |e| {
            display_lines(e).filter(|l| l.first().map(String::as_str) == Some("Refund declined"))
        })
        .await;
    assert!(
        screen.iter().any(|l| l.contains("Merchant balance")),
        "{screen:?}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["retry", "REF-M", "--config"])
        .arg(&w.config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = w.update_in("REF-M", RefundState::Succeeded).await;
    assert_ne!(
        done.refund_request_id, failed.refund_request_id,
        "a new refundRequestId"
    );
    assert_eq!(w.sim.executed("PAY-M"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly() {
    let mut w = World::new(Setup {
        payments: vec![payment("PAY-1", 5000)],
        ..Setup::default()
    })
    .await;
    w.refund("REF-1", "PAY-1", Some(100));
    w.final_update("REF-1").await;
    let status = w.stop_bridge();
    assert!(status.success(), "{status:?}");
}
