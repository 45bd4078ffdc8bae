//! The simulator's books: payments, refunds against them, and Antom's idempotency.
//!
//! Pure and synchronous (the server holds it under a mutex), so the rules can be
//! tested without HTTP: a refund never takes more than was paid, a payment has at most
//! one refund being processed at a time, the same Antom `refundRequestId` always gets
//! the same answer (and different fields under it get `REPEAT_REQ_INCONSISTENT`), and
//! every refund actually executed is counted per payment.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::money::Amount;

/// How a payment's refunds complete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundMode {
    /// Final in the refund answer (digital wallets).
    #[default]
    Sync,
    /// `REFUND_IN_PROCESS` first, final after the simulator's async delay.
    Async,
}

/// How an asynchronous refund ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsyncResult {
    /// The money goes back.
    #[default]
    Success,
    /// The processor refuses; the amount becomes refundable again.
    Failure,
}

/// A payment the simulator knows, as seeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentSeed {
    /// The provider's payment id (Antom paymentId, OTT oriPaymentId, PaymentOptions
    /// transactionId).
    pub id: String,
    /// What was paid.
    pub amount: Amount,
    /// Whether a refund of less than the whole payment is allowed.
    #[serde(default = "yes")]
    pub partial_refund: bool,
    /// Whether the payment can be refunded at all.
    #[serde(default = "yes")]
    pub refundable: bool,
    /// Sync or async refunds.
    #[serde(default)]
    pub mode: RefundMode,
    /// How async refunds end.
    #[serde(default)]
    pub async_result: AsyncResult,
}

fn yes() -> bool {
    true
}

impl PaymentSeed {
    /// A refundable payment with sync, partial-allowed refunds.
    pub fn new(id: impl Into<String>, amount: Amount) -> PaymentSeed {
        PaymentSeed {
            id: id.into(),
            amount,
            partial_refund: true,
            refundable: true,
            mode: RefundMode::Sync,
            async_result: AsyncResult::Success,
        }
    }
}

/// A refund's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RefundState {
    /// Being processed.
    Pending,
    /// Done.
    Succeeded {
        /// When.
        at: Timestamp,
    },
    /// Refused by the processor after being accepted.
    Failed,
}

/// One executed refund.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefundRecord {
    /// The simulator's refund id.
    pub refund_id: String,
    /// Antom's refundRequestId, when the provider has one.
    pub refund_request_id: Option<String>,
    /// The client id that asked (Antom notifications go back under it).
    pub client_id: Option<String>,
    /// The payment refunded.
    pub payment_id: String,
    /// How much.
    pub amount: Amount,
    /// Where it stands.
    pub state: RefundState,
    /// When it was made.
    pub created: Timestamp,
    #[serde(skip)]
    due: Option<Instant>,
}

/// Why a refund was not executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// No such payment.
    PaymentNotFound,
    /// The payment cannot be refunded.
    RefundNotSupported,
    /// The refund's currency is not the payment's.
    CurrencyMismatch,
    /// Zero, negative or absurd amount.
    InvalidAmount,
    /// Less than the whole payment where only full refunds are allowed.
    PartialNotSupported,
    /// More than what is left.
    AmountExceeded,
    /// Nothing is left.
    FullyRefunded,
    /// Another refund of this payment is being processed.
    Busy,
    /// An Antom refundRequestId seen before with different fields.
    RepeatInconsistent,
}

/// What a refund call asks for.
#[derive(Clone, Debug)]
pub struct RefundAsk<'a> {
    /// Antom's refundRequestId; `None` for providers without idempotency.
    pub refund_request_id: Option<&'a str>,
    /// The client id (Antom).
    pub client_id: Option<&'a str>,
    /// The payment.
    pub payment_id: &'a str,
    /// The amount; `None` is a full refund.
    pub amount: Option<Amount>,
    /// Whether the currency must be checked (OTT Pay sends none).
    pub currency_given: bool,
}

/// The answer to a refund call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A refund was executed now.
    Executed(RefundRecord),
    /// The same refundRequestId again: the earlier refund, as it stands now.
    Replayed(RefundRecord),
    /// Not executed.
    Rejected(Rejection),
}

/// A payment and what has happened to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PaymentView {
    /// As seeded.
    pub seed: PaymentSeed,
    /// Refunded or being refunded, in minor units.
    pub refunded: i64,
    /// Refunds actually executed against this payment (never replays).
    pub executed: u32,
    /// Refund calls turned away because another refund of it was in process.
    pub busy_rejections: u32,
}

#[derive(Debug)]
struct PaymentEntry {
    view: PaymentView,
    in_flight: u32,
}

#[derive(Debug)]
struct Remembered {
    payment_id: String,
    amount: Option<Amount>,
    answer: Result<String, Rejection>,
}

/// The books.
#[derive(Debug, Default)]
pub struct Books {
    payments: HashMap<String, PaymentEntry>,
    refunds: HashMap<String, RefundRecord>,
    by_request_id: HashMap<String, Remembered>,
    /// Refunds still pending, so settling never walks every refund ever made.
    pending: std::collections::BTreeSet<String>,
    next_refund: u64,
}

impl Books {
    /// Adds (or replaces) a payment.
    pub fn add_payment(&mut self, seed: PaymentSeed) {
        let id = seed.id.clone();
        self.payments.insert(
            id,
            PaymentEntry {
                view: PaymentView {
                    seed,
                    refunded: 0,
                    executed: 0,
                    busy_rejections: 0,
                },
                in_flight: 0,
            },
        );
    }

    /// A payment's state.
    pub fn payment(&self, id: &str) -> Option<PaymentView> {
        self.payments.get(id).map(|e| e.view.clone())
    }

    /// Every payment, sorted by id.
    pub fn payments(&self) -> Vec<PaymentView> {
        let mut all: Vec<_> = self.payments.values().map(|e| e.view.clone()).collect();
        all.sort_by(|a, b| a.seed.id.cmp(&b.seed.id));
        all
    }

    /// A refund by the simulator's refund id.
    pub fn refund(&self, refund_id: &str) -> Option<RefundRecord> {
        self.refunds.get(refund_id).cloned()
    }

    /// Every refund executed, in the order they were made.
    pub fn refunds(&self) -> Vec<RefundRecord> {
        let mut all: Vec<RefundRecord> = self.refunds.values().cloned().collect();
        // Ids are zero-padded counters.
        all.sort_by(|a, b| a.refund_id.cmp(&b.refund_id));
        all
    }

    /// A refund by Antom refundRequestId.
    pub fn refund_by_request_id(&self, request_id: &str) -> Option<RefundRecord> {
        match &self.by_request_id.get(request_id)?.answer {
            Ok(refund_id) => self.refund(refund_id),
            Err(_) => None,
        }
    }

    /// Marks a request for a payment as being handled (until [`Books::end`]), so a
    /// concurrent refund of the same payment is turned away.
    pub fn begin(&mut self, payment_id: &str) {
        if let Some(entry) = self.payments.get_mut(payment_id) {
            entry.in_flight += 1;
        }
    }

    /// Ends what [`Books::begin`] started.
    pub fn end(&mut self, payment_id: &str) {
        if let Some(entry) = self.payments.get_mut(payment_id) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
        }
    }

    /// Decides a refund call. `async_delay` is how long an async refund stays pending.
    pub fn decide(&mut self, ask: &RefundAsk<'_>, now: Instant, async_delay: Duration) -> Decision {
        if let Some(request_id) = ask.refund_request_id {
            if let Some(seen) = self.by_request_id.get(request_id) {
                if seen.payment_id != ask.payment_id || seen.amount != ask.amount {
                    return Decision::Rejected(Rejection::RepeatInconsistent);
                }
                return match &seen.answer {
                    Ok(refund_id) => match self.refunds.get(refund_id) {
                        Some(record) => Decision::Replayed(record.clone()),
                        None => Decision::Rejected(Rejection::PaymentNotFound),
                    },
                    Err(rejection) => Decision::Rejected(*rejection),
                };
            }
        }
        let answer = self.execute(ask, now, async_delay);
        if let Some(request_id) = ask.refund_request_id {
            // A busy payment is a passing state, not an answer to remember.
            if answer != Err(Rejection::Busy) {
                self.by_request_id.insert(
                    request_id.to_string(),
                    Remembered {
                        payment_id: ask.payment_id.to_string(),
                        amount: ask.amount,
                        answer: answer.as_ref().map(|r| r.refund_id.clone()).map_err(|r| *r),
                    },
                );
            }
        }
        match answer {
            Ok(record) => Decision::Executed(record),
            Err(rejection) => Decision::Rejected(rejection),
        }
    }

    fn execute(
        &mut self,
        ask: &RefundAsk<'_>,
        now: Instant,
        async_delay: Duration,
    ) -> Result<RefundRecord, Rejection> {
        // Antom documents one refund of a payment in process at a time; OTT Pay and
        // PaymentOptions document no such rule, so a refund still open there does not
        // turn the next one away.
        let pending_here = ask.refund_request_id.is_some()
            && self
                .pending
                .iter()
                .filter_map(|id| self.refunds.get(id))
                .any(|r| r.payment_id == ask.payment_id && r.state == RefundState::Pending);
        let Some(entry) = self.payments.get_mut(ask.payment_id) else {
            return Err(Rejection::PaymentNotFound);
        };
        let seed = &entry.view.seed;
        if !seed.refundable {
            return Err(Rejection::RefundNotSupported);
        }
        // Our own handling of this request counts as one in flight.
        if pending_here || entry.in_flight > 1 {
            entry.view.busy_rejections += 1;
            return Err(Rejection::Busy);
        }
        let amount = match ask.amount {
            Some(amount) => {
                if ask.currency_given && amount.currency != seed.amount.currency {
                    return Err(Rejection::CurrencyMismatch);
                }
                match Amount::new(amount.value, seed.amount.currency) {
                    Ok(amount) if amount.value > 0 => amount,
                    _ => return Err(Rejection::InvalidAmount),
                }
            }
            None => seed.amount,
        };
        let left = seed.amount.value - entry.view.refunded;
        if left <= 0 {
            return Err(Rejection::FullyRefunded);
        }
        if !seed.partial_refund && amount.value != seed.amount.value {
            return Err(Rejection::PartialNotSupported);
        }
        if amount.value > left {
            return Err(Rejection::AmountExceeded);
        }
        entry.view.refunded += amount.value;
        entry.view.executed += 1;
        self.next_refund += 1;
        let (state, due) = match seed.mode {
            RefundMode::Sync => (
                RefundState::Succeeded {
                    at: Timestamp::now(),
                },
                None,
            ),
            RefundMode::Async => (RefundState::Pending, Some(now + async_delay)),
        };
        let record = RefundRecord {
            refund_id: format!("SIMREF{:012}", self.next_refund),
            refund_request_id: ask.refund_request_id.map(str::to_string),
            client_id: ask.client_id.map(str::to_string),
            payment_id: ask.payment_id.to_string(),
            amount,
            state,
            created: Timestamp::now(),
            due,
        };
        if record.due.is_some() {
            self.pending.insert(record.refund_id.clone());
        }
        self.refunds
            .insert(record.refund_id.clone(), record.clone());
        Ok(record)
    }

    /// Finishes pending refunds that are due (all of them with `force`); returns the
    /// refunds that changed, for notifications.
    pub fn settle(&mut self, now: Instant, force: bool) -> Vec<RefundRecord> {
        let mut settled = Vec::new();
        let mut done = Vec::new();
        for id in &self.pending {
            let Some(record) = self.refunds.get_mut(id) else {
                done.push(id.clone());
                continue;
            };
            let due = record.due.is_some_and(|due| force || due <= now);
            if record.state != RefundState::Pending || !due {
                continue;
            }
            done.push(id.clone());
            record.due = None;
            let result = self
                .payments
                .get(&record.payment_id)
                .map_or(AsyncResult::Success, |p| p.view.seed.async_result);
            record.state = match result {
                AsyncResult::Success => RefundState::Succeeded {
                    at: Timestamp::now(),
                },
                AsyncResult::Failure => {
                    if let Some(entry) = self.payments.get_mut(&record.payment_id) {
                        entry.view.refunded -= record.amount.value;
                    }
                    RefundState::Failed
                }
            };
            settled.push(record.clone());
        }
        for id in done {
            self.pending.remove(&id);
        }
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn usd(v: i64) -> Amount {
        Amount::new(v, Currency::parse("USD").unwrap()).unwrap()
    }

    fn ask<'a>(id: Option<&'a str>, payment: &'a str, amount: Option<Amount>) -> RefundAsk<'a> {
        RefundAsk {
            refund_request_id: id,
            client_id: None,
            payment_id: payment,
            amount,
            currency_given: true,
        }
    }

    fn ledger() -> Books {
        let mut l = Books::default();
        l.add_payment(PaymentSeed::new("P1", usd(1000)));
        l
    }

    const D: Duration = Duration::from_millis(50);

    #[test]
    fn idempotent_by_request_id() {
        let mut l = ledger();
        let now = Instant::now();
        let first = l.decide(&ask(Some("R1"), "P1", Some(usd(400))), now, D);
        let Decision::Executed(record) = first else {
            panic!("{first:?}")
        };
        let again = l.decide(&ask(Some("R1"), "P1", Some(usd(400))), now, D);
        assert_eq!(again, Decision::Replayed(record));
        assert_eq!(l.payment("P1").unwrap().executed, 1);
        assert_eq!(l.payment("P1").unwrap().refunded, 400);
        assert_eq!(
            l.decide(&ask(Some("R1"), "P1", Some(usd(300))), now, D),
            Decision::Rejected(Rejection::RepeatInconsistent)
        );
        assert_eq!(
            l.decide(&ask(Some("R1"), "P2", Some(usd(400))), now, D),
            Decision::Rejected(Rejection::RepeatInconsistent)
        );
        // A remembered rejection is answered the same way.
        let over = l.decide(&ask(Some("R2"), "P1", Some(usd(999))), now, D);
        assert_eq!(over, Decision::Rejected(Rejection::AmountExceeded));
        assert_eq!(
            l.decide(&ask(Some("R2"), "P1", Some(usd(999))), now, D),
            over
        );
    }

    #[test]
    fn over_refunds_and_full_refunds() {
        let mut l = ledger();
        let now = Instant::now();
        assert!(matches!(
            l.decide(&ask(None, "P1", Some(usd(600))), now, D),
            Decision::Executed(_)
        ));
        assert_eq!(
            l.decide(&ask(None, "P1", Some(usd(401))), now, D),
            Decision::Rejected(Rejection::AmountExceeded)
        );
        assert!(matches!(
            l.decide(&ask(None, "P1", Some(usd(400))), now, D),
            Decision::Executed(_)
        ));
        assert_eq!(
            l.decide(&ask(None, "P1", Some(usd(1))), now, D),
            Decision::Rejected(Rejection::FullyRefunded)
        );
        assert_eq!(l.payment("P1").unwrap().executed, 2);
        assert_eq!(
            l.decide(&ask(None, "NOPE", Some(usd(1))), now, D),
            Decision::Rejected(Rejection::PaymentNotFound)
        );
        let eur = Amount::new(5, Currency::parse("EUR").unwrap()).unwrap();
        let mut l = ledger();
        assert_eq!(
            l.decide(&ask(None, "P1", Some(eur)), now, D),
            Decision::Rejected(Rejection::CurrencyMismatch)
        );
        assert_eq!(
            l.decide(&ask(None, "P1", Some(usd(0))), now, D),
            Decision::Rejected(Rejection::InvalidAmount)
        );
        // No amount: the whole payment.
        let Decision::Executed(full) = l.decide(&ask(None, "P1", None), now, D) else {
            panic!()
        };
        assert_eq!(full.amount, usd(1000));
    }

    #[test]
    fn partial_not_supported_and_not_refundable() {
        let mut l = Books::default();
        let now = Instant::now();
        l.add_payment(PaymentSeed {
            partial_refund: false,
            ..PaymentSeed::new("P", usd(1000))
        });
        l.add_payment(PaymentSeed {
            refundable: false,
            ..PaymentSeed::new("Q", usd(1000))
        });
        assert_eq!(
            l.decide(&ask(None, "P", Some(usd(10))), now, D),
            Decision::Rejected(Rejection::PartialNotSupported)
        );
        assert!(matches!(
            l.decide(&ask(None, "P", Some(usd(1000))), now, D),
            Decision::Executed(_)
        ));
        assert_eq!(
            l.decide(&ask(None, "Q", None), now, D),
            Decision::Rejected(Rejection::RefundNotSupported)
        );
    }

    #[test]
    fn async_refunds_settle_and_block_others_meanwhile() {
        let mut l = Books::default();
        l.add_payment(PaymentSeed {
            mode: RefundMode::Async,
            ..PaymentSeed::new("A", usd(1000))
        });
        let t0 = Instant::now();
        let Decision::Executed(r) = l.decide(&ask(Some("R1"), "A", Some(usd(100))), t0, D) else {
            panic!()
        };
        assert_eq!(r.state, RefundState::Pending);
        assert_eq!(
            l.decide(&ask(Some("R2"), "A", Some(usd(100))), t0, D),
            Decision::Rejected(Rejection::Busy)
        );
        assert_eq!(l.payment("A").unwrap().busy_rejections, 1);
        // Retrying the pending one replays it, still pending.
        assert!(
            matches!(l.decide(&ask(Some("R1"), "A", Some(usd(100))), t0, D), Decision::Replayed(ref x) if x.state == RefundState::Pending)
        );
        assert!(l.settle(t0, false).is_empty());
        let settled = l.settle(t0 + D, false);
        assert_eq!(settled.len(), 1);
        assert!(matches!(settled[0].state, RefundState::Succeeded { .. }));
        // R2 was turned away while busy, not remembered: it can go through now.
        assert!(matches!(
            l.decide(&ask(Some("R2"), "A", Some(usd(100))), t0 + D, D),
            Decision::Executed(_)
        ));
        assert_eq!(l.payment("A").unwrap().executed, 2);
    }

    #[test]
    fn failed_async_refund_gives_the_amount_back() {
        let mut l = Books::default();
        l.add_payment(PaymentSeed {
            mode: RefundMode::Async,
            async_result: AsyncResult::Failure,
            ..PaymentSeed::new("A", usd(1000))
        });
        let t0 = Instant::now();
        assert!(matches!(
            l.decide(&ask(None, "A", None), t0, D),
            Decision::Executed(_)
        ));
        assert_eq!(l.payment("A").unwrap().refunded, 1000);
        let settled = l.settle(t0, true);
        assert_eq!(settled[0].state, RefundState::Failed);
        assert_eq!(l.payment("A").unwrap().refunded, 0);
    }

    #[test]
    fn concurrent_requests_for_one_payment() {
        let mut l = ledger();
        let now = Instant::now();
        l.begin("P1");
        l.begin("P1");
        assert_eq!(
            l.decide(&ask(None, "P1", Some(usd(1))), now, D),
            Decision::Rejected(Rejection::Busy)
        );
        l.end("P1");
        assert!(matches!(
            l.decide(&ask(None, "P1", Some(usd(1))), now, D),
            Decision::Executed(_)
        ));
        l.end("P1");
    }
}
