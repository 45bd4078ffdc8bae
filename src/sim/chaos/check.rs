//! The campaign's invariants, checked against the simulator's books, the ledger and
//! what each terminal saw once a run has settled.

use std::collections::HashMap;

use crate::ledger::Ledger;
use crate::message::RefundState;
use crate::sim::cloud::CloudSim;
use crate::sim::cloud::ledger::RefundState as CloudState;

use super::plan::ProviderKind;
use super::world::TerminalSide;

/// What the checks found, one line per broken promise.
#[derive(Debug, Default)]
pub struct Findings {
    /// Broken invariants.
    pub violations: Vec<String>,
    /// Refunds in the ledger by final state.
    pub by_state: HashMap<RefundState, u32>,
    /// Refunds the simulator carried out (succeeded at the provider).
    pub executed: u32,
}

impl Findings {
    fn fail(&mut self, text: String) {
        self.violations.push(text);
    }
}

/// One payment as the ledger tells it.
#[derive(Clone, Debug, Default)]
struct Books {
    succeeded: u32,
    value: i64,
    value_unknown: bool,
    attention: u32,
}

/// Whether everything every terminal had acknowledged has settled and been told:
/// final in the ledger, delivered, and the terminal's last view.
pub fn settled(ledger: &Ledger, terminals: &[TerminalSide]) -> bool {
    terminals.iter().all(|t| {
        if t.in_flight() > 0 {
            return false;
        }
        let last = t.last_states();
        let acknowledged = t.acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
        acknowledged.iter().all(|id| match ledger.find(&t.id, id) {
            Ok(Some(r)) => {
                r.state.is_final()
                    && r.delivered_state == Some(r.state)
                    && last.get(id) == Some(&r.state)
            }
            _ => false,
        })
    })
}

/// Checks every invariant.
pub fn check(
    provider: ProviderKind,
    ledger: &Ledger,
    sim: &CloudSim,
    terminals: &[TerminalSide],
    bridge_log: &str,
) -> Findings {
    let mut f = Findings::default();
    let mut books: HashMap<String, Books> = HashMap::new();
    for t in terminals {
        let acknowledged = t.acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
        let last = t.last_states();
        for id in t.sent.keys() {
            if !acknowledged.contains(id) {
                f.fail(format!("{} {id}: the REFUND was never acknowledged", t.id));
            }
        }
        for id in &acknowledged {
            let record = match ledger.find(&t.id, id) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    f.fail(format!("{} {id}: acknowledged but not in the ledger", t.id));
                    continue;
                }
                Err(e) => {
                    f.fail(format!("{} {id}: ledger read failed: {e}", t.id));
                    continue;
                }
            };
            *f.by_state.entry(record.state).or_default() += 1;
            if !record.state.is_final() {
                f.fail(format!(
                    "{} {id}: never settled, still {}",
                    t.id, record.state
                ));
            }
            if record.state == RefundState::NeedsAttention && provider.idempotent() {
                f.fail(format!(
                    "{} {id}: NEEDS_ATTENTION on {provider}, which can always be asked again",
                    t.id
                ));
            }
            match last.get(id) {
                Some(seen) if *seen == record.state => {}
                Some(seen) => f.fail(format!(
                    "{} {id}: the terminal's last word is {seen}, the ledger's {}",
                    t.id, record.state
                )),
                None => f.fail(format!("{} {id}: the terminal was never told", t.id)),
            }
            // Once told a final state, the cashier is never told another.
            let states = t.states_of(id);
            if let Some(first_final) = states.iter().find(|s| s.is_final())
                && let Some(other) = states
                    .iter()
                    .skip_while(|s| !s.is_final())
                    .find(|s| *s != first_final)
            {
                f.fail(format!(
                    "{} {id}: told {first_final}, then {other} ({states:?})",
                    t.id
                ));
            }
            let entry = books.entry(record.payment_id.clone()).or_default();
            match record.state {
                RefundState::Succeeded => {
                    entry.succeeded += 1;
                    // A whole refund's amount is known only if the provider said it.
                    match record.refunded.or(record.amount) {
                        Some(a) => entry.value += a.value,
                        None => entry.value_unknown = true,
                    }
                }
                RefundState::NeedsAttention => entry.attention += 1,
                _ => {}
            }
            if provider.idempotent() {
                check_attempts(&mut f, ledger, sim, &t.id, id, record.id, record.state);
            }
        }
        let audit = t.terminal.audit();
        for fault in audit.faults() {
            f.fail(format!("{}: {fault}", t.id));
        }
        if t.invalid_frames() > 0 {
            f.fail(format!(
                "{}: {} frames from the bridge were not valid messages",
                t.id,
                t.invalid_frames()
            ));
        }
    }

    // The money, payment by payment.
    let mut cloud: HashMap<String, (u32, i64)> = HashMap::new();
    for r in sim.refunds() {
        match r.state {
            CloudState::Succeeded { .. } => {
                let e = cloud.entry(r.payment_id.clone()).or_default();
                e.0 += 1;
                e.1 += r.amount.value;
                f.executed += 1;
            }
            CloudState::Pending => f.fail(format!(
                "{}: still pending at the provider after the run settled",
                r.refund_id
            )),
            CloudState::Failed => {}
        }
        if provider.idempotent()
            && let Some(rid) = &r.refund_request_id
            && !matches!(ledger.find_by_request_id(rid), Ok(Some(_)))
        {
            f.fail(format!(
                "{}: executed for refundRequestId {rid}, which the ledger never issued",
                r.refund_id
            ));
        }
    }
    let mut payments: Vec<&String> = books.keys().chain(cloud.keys()).collect();
    payments.sort();
    payments.dedup();
    for p in payments {
        let b = books.get(p).cloned().unwrap_or_default();
        let (ok, ok_value, attention) = (b.succeeded, b.value, b.attention);
        let (done, done_value) = cloud.get(p).copied().unwrap_or_default();
        let values_agree = b.value_unknown || done_value == ok_value;
        let consistent = if provider.idempotent() {
            done == ok && values_agree
        } else {
            // An unknown outcome handed to a person may or may not have moved money.
            done >= ok && done <= ok + attention && (attention > 0 || values_agree)
        };
        if !consistent {
            f.fail(format!(
                "payment {p}: the provider refunded {done} times ({done_value}), the ledger \
                 says {ok} succeeded ({ok_value}) and {attention} need attention"
            ));
        }
    }

    for line in bridge_log.lines().filter(|l| l.contains("out of sequence")) {
        f.fail(format!("bridge: {line}"));
    }
    for line in bridge_log.lines().filter(|l| l.contains("panicked")) {
        f.fail(format!("bridge: {line}"));
    }
    f
}

/// An idempotent provider: a SUCCEEDED refund executed under exactly one of its
/// refundRequestIds, a FAILED one under none.
fn check_attempts(
    f: &mut Findings,
    ledger: &Ledger,
    sim: &CloudSim,
    terminal: &str,
    id: &str,
    refund: i64,
    state: RefundState,
) {
    let Ok(history) = ledger.history(refund) else {
        f.fail(format!("{terminal} {id}: no history in the ledger"));
        return;
    };
    let executed = history
        .attempts
        .iter()
        .filter_map(|a| sim.refund_by_request_id(&a.refund_request_id))
        .filter(|r| matches!(r.state, CloudState::Succeeded { .. }))
        .count();
    let want = usize::from(state == RefundState::Succeeded);
    if executed != want {
        f.fail(format!(
            "{terminal} {id}: {state} in the ledger, executed {executed} times at the provider"
        ));
    }
}
