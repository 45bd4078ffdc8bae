//! Power cuts: the bridge process is SIGKILLed at many points — before a REFUND is
//! acknowledged, while the provider call is in flight, while a refund is in progress
//! at the provider, after the money moved but the answer was lost, right after a
//! final state — and restarted. Every refund must end exactly once: one execution at
//! the simulator, SUCCEEDED in the ledger, and SUCCEEDED as the terminal's last view.

mod common;

use std::time::Duration;

use common::*;
use posbridge::message::{Message, RefundState};
use posbridge::sim::cloud::faults::{Fault, FaultRule, FaultTarget};
use posbridge::sim::terminal::TerminalEvent;

/// Where a round kills the bridge.
#[derive(Clone, Copy, Debug)]
enum KillPoint {
    /// Right after the REFUND is sent: before or after the ledger has it.
    JustSent,
    /// Once ACCEPTED is seen, while a slow provider call is in flight.
    MidCall,
    /// While the provider processes an asynchronous refund.
    Processing,
    /// After the provider executed but its answer was lost (QUEUED, same id to resend).
    AnswerLost,
    /// Right after the final state reached the terminal.
    JustFinal,
}

const POINTS: [KillPoint; 5] = [
    KillPoint::JustSent,
    KillPoint::MidCall,
    KillPoint::Processing,
    KillPoint::AnswerLost,
    KillPoint::JustFinal,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refund_ends_exactly_once_across_sigkills() {
    let rounds = 3;
    let per_round = POINTS.len();
    let mut payments = Vec::new();
    for i in 0..rounds * per_round {
        if matches!(POINTS[i % per_round], KillPoint::Processing) {
            payments.push(async_payment(&format!("PAY-{i}"), 1000));
        } else {
            payments.push(payment(&format!("PAY-{i}"), 1000));
        }
        // A payment of its own for the refund riding along.
        payments.push(payment(&format!("PAY-{i}-B"), 1000));
    }
    let mut w = World::new(Setup {
        payments,
        async_delay: Duration::from_millis(800),
        ..Setup::default()
    })
    .await;
    let mut ids: Vec<String> = Vec::new();
    for i in 0..rounds * per_round {
        let point = POINTS[i % per_round];
        let id = format!("REF-{i}");
        let pay = format!("PAY-{i}");
        if matches!(point, KillPoint::AnswerLost) {
            // The dropped answer must hit this round's refund, not a straggler.
            for earlier in ids.clone() {
                w.final_update(&earlier).await;
            }
        }
        match point {
            KillPoint::MidCall => w.sim.push_fault(FaultRule::once(
                FaultTarget::AntomRefund,
                Fault::Slow { ms: 400 },
            )),
            KillPoint::AnswerLost => w.sim.push_fault(
                FaultRule::once(FaultTarget::AntomRefund, Fault::DropConnection).after_execute(),
            ),
            _ => {}
        }
        w.refund(&id, &pay, Some(100));
        ids.push(id.clone());
        match point {
            KillPoint::JustSent => {}
            KillPoint::MidCall => {
                w.update_in(&id, RefundState::Accepted).await;
            }
            KillPoint::Processing => {
                w.update_in(&id, RefundState::Processing).await;
            }
            KillPoint::AnswerLost => {
                w.update_in(&id, RefundState::Queued).await;
                assert_eq!(
                    w.sim.executed(&pay),
                    1,
                    "the lost answer's refund was executed"
                );
            }
            KillPoint::JustFinal => {
                w.final_update(&id).await;
            }
        }
        // Two more ride along into the kill: one on a payment of its own, and a second
        // refund of the same payment, which must wait for the first.
        w.refund(&format!("{id}-B"), &format!("{pay}-B"), Some(200));
        w.refund(&format!("{id}-C"), &pay, Some(300));
        ids.push(format!("{id}-B"));
        ids.push(format!("{id}-C"));
        w.kill_bridge();
        w.start_bridge();
    }
    // Let everything settle, then check every refund against the money.
    for id in &ids {
        let done = w.final_update(id).await;
        assert_eq!(done.state, RefundState::Succeeded, "{id}");
    }
    for i in 0..rounds * per_round {
        assert_eq!(
            w.sim.executed(&format!("PAY-{i}")),
            2,
            "PAY-{i}: REF-{i} and REF-{i}-C"
        );
        assert_eq!(w.sim.executed(&format!("PAY-{i}-B")), 1, "PAY-{i}-B");
    }
    let ledger = w.ledger();
    for i in 0..rounds * per_round {
        // One refund of a payment at a time: the simulator refuses a refund of a payment
        // with another still in process, and counts it.
        let view = w.sim.payment(&format!("PAY-{i}")).unwrap();
        assert_eq!(view.busy_rejections, 0, "PAY-{i}");
    }
    for id in &ids {
        let r = ledger.find("TERM-1", id).unwrap().expect("recorded");
        assert_eq!(r.state, RefundState::Succeeded, "{id}");
        // The terminal's last word on it is the ledger's.
        let last = w
            .seen
            .iter()
            .rev()
            .find_map(|e| match e {
                TerminalEvent::Message(Message::RefundUpdate(u))
                    if u.original_merchant_refund_id == *id =>
                {
                    Some(u.state)
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(last, r.state, "{id}");
        // One attempt, whatever the kills: the same refundRequestId throughout.
        assert_eq!(ledger.history(r.id).unwrap().attempts.len(), 1, "{id}");
    }
    assert_eq!(ledger.counts().unwrap().unfinished, 0);
}
