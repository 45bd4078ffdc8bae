//! Interleavings the fault campaign found by chance, replayed on purpose: the bridge
//! library in-process with a scripted provider whose calls the test holds and releases,
//! so the order of events is the test's, not the scheduler's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use posbridge::bridge::{Bridge, BridgeSettings};
use posbridge::ledger::{Ledger, LedgerHandle};
use posbridge::link::OneShot;
use posbridge::message::{Message, Refund, RefundState};
use posbridge::money::{Amount, Currency};
use posbridge::provider::{InquiryRequest, Outcome, Provider, RefundRequest};
use posbridge::sim::terminal::{Terminal, TerminalEvent, TerminalIdentity};
use tokio::sync::{Notify, mpsc};

/// A provider whose refunds of `held` payments wait until the test releases them; every
/// other payment's refund finds the cloud unreachable.
#[derive(Debug, Default)]
struct Scripted {
    held: Mutex<HashMap<String, Arc<Notify>>>,
    started: Mutex<Vec<String>>,
    started_signal: Notify,
}

impl Scripted {
    fn hold(&self, payment: &str) -> Arc<Notify> {
        let gate = Arc::new(Notify::new());
        self.held
            .lock()
            .unwrap()
            .insert(payment.into(), gate.clone());
        gate
    }

    async fn wait_started(&self, payment: &str) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let signal = self.started_signal.notified();
                if self.started.lock().unwrap().iter().any(|p| p == payment) {
                    return;
                }
                signal.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the refund of {payment} never reached the provider"));
    }
}

impl Provider for Scripted {
    fn name(&self) -> &'static str {
        "antom"
    }

    fn is_idempotent(&self) -> bool {
        true
    }

    fn supports_inquiry(&self) -> bool {
        true
    }

    fn refund<'a>(&'a self, request: &'a RefundRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let gate = self.held.lock().unwrap().get(&request.payment_id).cloned();
            self.started
                .lock()
                .unwrap()
                .push(request.payment_id.clone());
            self.started_signal.notify_waiters();
            match gate {
                Some(gate) => {
                    gate.notified().await;
                    Outcome::Succeeded {
                        refund_id: format!("R-{}", request.payment_id),
                        refund_time: jiff::Timestamp::now(),
                        amount: request.amount,
                        code: None,
                        message: None,
                    }
                }
                None => Outcome::RetrySameRequest {
                    reason: "antom refund: could not connect, nothing sent".into(),
                },
            }
        })
    }

    fn inquire<'a>(&'a self, _request: &'a InquiryRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(async {
            Outcome::RetrySameRequest {
                reason: "not scripted".into(),
            }
        })
    }
}

fn usd(value: i64) -> Amount {
    Amount::new(value, Currency::parse("USD").unwrap()).unwrap()
}

fn refund(id: &str, payment: &str) -> Message {
    Message::Refund(Refund {
        original_merchant_refund_id: id.into(),
        payment_id: payment.into(),
        refund_amount: Some(usd(500)),
        memo: None,
    })
}

/// Waits for `id`'s REFUND_UPDATE in `state`, collecting every state the terminal heard
/// for it on the way.
async fn until_state(
    events: &mut mpsc::Receiver<TerminalEvent>,
    heard: &mut HashMap<String, Vec<RefundState>>,
    id: &str,
    state: RefundState,
) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.recv().await {
            if let Some(update) = event.refund_update() {
                heard
                    .entry(update.original_merchant_refund_id.clone())
                    .or_default()
                    .push(update.state);
                if update.original_merchant_refund_id == id && update.state == state {
                    return;
                }
            }
        }
        panic!("the terminal's events ended");
    })
    .await
    .unwrap_or_else(|_| panic!("{id} never reached {state}; heard {heard:?}"));
}

/// Seed 880011 (OTT Pay) told cashiers "Refund approved" and then "Network down: will
/// send later": the cloud was found unreachable while a refund's request was in
/// flight, the refund was moved to QUEUED, and that QUEUED overtook its SUCCEEDED on
/// the way to the terminal. Replayed here in the order that made it possible: refund A
/// is at the provider when refund B finds the cloud unreachable; then A succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_in_flight_is_not_queued_when_the_cloud_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let ledger = LedgerHandle::spawn(Ledger::open(&path).unwrap()).unwrap();
    let provider = Arc::new(Scripted::default());
    let release_a = provider.hold("PAY-A");
    let bridge = Bridge::start(ledger, provider.clone(), BridgeSettings::default());
    let (bridge_end, terminal_end) = tokio::io::duplex(64 * 1024);
    bridge.serve("line", OneShot::new(bridge_end), None, None, None);
    let identity = TerminalIdentity::default();
    let (terminal, mut events) = Terminal::start(&identity, None, None, OneShot::new(terminal_end));
    let mut heard = HashMap::new();

    terminal.send(&refund("REF-A", "PAY-A")).await.unwrap();
    provider.wait_started("PAY-A").await;
    terminal.send(&refund("REF-B", "PAY-B")).await.unwrap();
    until_state(&mut events, &mut heard, "REF-B", RefundState::Queued).await;
    release_a.notify_one();
    until_state(&mut events, &mut heard, "REF-A", RefundState::Succeeded).await;
    // Whatever else is on its way for A arrives before this answer to an INQUIRY.
    terminal
        .send(&Message::Inquiry(posbridge::message::Inquiry {
            original_merchant_refund_id: "REF-A".into(),
        }))
        .await
        .unwrap();
    until_state(&mut events, &mut heard, "REF-A", RefundState::Succeeded).await;

    let told = &heard["REF-A"];
    assert!(
        !told.contains(&RefundState::Queued),
        "the cashier was told REF-A waits for the network while it was at the provider: {told:?}"
    );
    let after_final: Vec<_> = told
        .iter()
        .skip_while(|s| !s.is_final())
        .filter(|s| **s != RefundState::Succeeded)
        .collect();
    assert!(after_final.is_empty(), "SUCCEEDED contradicted: {told:?}");

    let ledger = Ledger::open(&path).unwrap();
    let a = ledger.lookup("REF-A").unwrap();
    let history = ledger.history(a.id).unwrap();
    let states: Vec<_> = history.transitions.iter().map(|t| t.to_state).collect();
    assert_eq!(
        states,
        [RefundState::Accepted, RefundState::Succeeded],
        "REF-A's recorded history"
    );
    let b = ledger.lookup("REF-B").unwrap();
    assert_eq!(b.state, RefundState::Queued);
}
