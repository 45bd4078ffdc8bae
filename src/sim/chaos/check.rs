//! The campaign's invariants, checked against the simulator's books, the ledger and
//! what each terminal saw once a run has settled.

use std::collections::{HashMap, HashSet};

use crate::ledger::{Ledger, RefundRecord};
use crate::message::RefundState;
use crate::sim::cloud::CloudSim;
use crate::sim::cloud::books::RefundState as CloudState;
use crate::sim::cloud::faults::Fault;

use super::plan::{Plan, ProviderKind};
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

/// Whether everything every terminal had acknowledged has settled and been told:
/// final in the ledger, delivered, and the terminal's last view. With
/// `pending_too`, a refund its provider finishes later (PROVIDER_PENDING) counts as
/// settled once the terminal heard it.
pub fn settled(ledger: &Ledger, terminals: &[TerminalSide], pending_too: bool) -> bool {
    terminals.iter().all(|t| {
        if t.in_flight() > 0 {
            return false;
        }
        let last = t.last_states();
        let acknowledged = t.acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
        acknowledged.iter().all(|id| match ledger.find(&t.id, id) {
            Ok(Some(r)) if pending_too && r.state == RefundState::ProviderPending => {
                last.get(id) == Some(&r.state.on_the_wire())
            }
            Ok(Some(r)) => {
                r.state.is_final()
                    && r.delivered_state == Some(r.state)
                    && last.get(id) == Some(&r.state)
            }
            // Refused (over a limit): nothing was recorded. Whether that is right is
            // for the checks; there is nothing to wait for.
            Ok(None) => true,
            Err(_) => false,
        })
    })
}

/// What needed a person, before the run reconciled, and whether each had a reason.
#[derive(Debug, Default)]
pub struct Attention {
    /// Refunds that were NEEDS_ATTENTION.
    pub attention: u32,
    /// Faults the simulator struck that leave a caller not knowing the outcome.
    pub unknown_faults: u32,
    /// Refunds the provider finishes later.
    pub provider_pending: u32,
    /// NEEDS_ATTENTION without a fault (or a restart in mid-call) to explain it.
    pub violations: Vec<String>,
}

/// How long a slow answer may take before the bridge's client (2 s in the campaign's
/// configuration) gives up on it, which leaves the outcome unknown.
const SLOW_ENOUGH_TO_TIME_OUT_MS: u64 = 1000;

/// The longest a request of the campaign's bridge takes (its total timeout, 2 s, and
/// a margin).
const REQUEST_TIME_MS: i64 = 3000;

/// NEEDS_ATTENTION is allowed only where an attempt met a fault that leaves the
/// outcome unknown: the simulator struck such a fault on a call for its payment after
/// the refund was accepted, or the bridge was killed while the request was out (its
/// history says so, and the bridge was restarted).
pub fn attention(
    ledger: &Ledger,
    sim: &CloudSim,
    terminals: &[TerminalSide],
    provider: ProviderKind,
    bridge_starts: u32,
    outages: &[jiff::Timestamp],
) -> Attention {
    let struck = sim.struck();
    let unknown: Vec<_> = struck
        .iter()
        .filter(|s| {
            s.fault
                .leaves_outcome_unknown(provider == ProviderKind::OttPay)
                || matches!(s.fault, Fault::Slow { ms } if ms >= SLOW_ENOUGH_TO_TIME_OUT_MS)
        })
        .collect();
    let mut out = Attention {
        unknown_faults: unknown.len() as u32,
        ..Attention::default()
    };
    for t in terminals {
        let acknowledged = t.acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
        for id in &acknowledged {
            let Ok(Some(record)) = ledger.find(&t.id, id) else {
                continue;
            };
            match record.state {
                RefundState::ProviderPending => out.provider_pending += 1,
                RefundState::NeedsAttention => {
                    out.attention += 1;
                    let restarted_mid_call = bridge_starts > 1
                        && ledger.history(record.id).is_ok_and(|h| {
                            h.transitions
                                .iter()
                                .any(|tr| tr.cause.starts_with("restart:"))
                        });
                    let faulted = unknown.iter().any(|s| {
                        s.payment_id == record.payment_id
                            && s.at.as_millisecond() + 1000 >= record.created_ms
                    });
                    // The cloud went down while the request was on its way.
                    let cut_off = ledger.history(record.id).is_ok_and(|h| {
                        h.attempts
                            .iter()
                            .filter_map(|a| a.last_sent_ms)
                            .any(|sent| {
                                outages.iter().any(|down| {
                                    let down = down.as_millisecond();
                                    down >= sent - 1000 && down <= sent + REQUEST_TIME_MS
                                })
                            })
                    });
                    if !restarted_mid_call && !faulted && !cut_off {
                        out.violations.push(format!(
                            "{} {id}: NEEDS_ATTENTION, yet no fault that leaves an outcome \
                             unknown struck payment {} and the bridge was not stopped mid-call",
                            t.id, record.payment_id
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Checks every invariant, once the run has reconciled.
pub fn check(
    provider: ProviderKind,
    plan: &Plan,
    ledger: &Ledger,
    sim: &CloudSim,
    terminals: &[TerminalSide],
    bridge_log: &str,
) -> Findings {
    let mut f = Findings::default();
    let mut succeeded: Vec<RefundRecord> = Vec::new();
    let mut failed: Vec<RefundRecord> = Vec::new();
    for t in terminals {
        check_terminal(
            &mut f,
            provider,
            plan,
            ledger,
            sim,
            t,
            &mut succeeded,
            &mut failed,
        );
    }
    check_books(&mut f, provider, sim, &succeeded, &failed, ledger);
    for line in bridge_log.lines().filter(|l| l.contains("out of sequence")) {
        f.fail(format!("bridge: {line}"));
    }
    for line in bridge_log.lines().filter(|l| l.contains("panicked")) {
        f.fail(format!("bridge: {line}"));
    }
    f
}

#[allow(clippy::too_many_arguments)]
fn check_terminal(
    f: &mut Findings,
    provider: ProviderKind,
    plan: &Plan,
    ledger: &Ledger,
    sim: &CloudSim,
    t: &TerminalSide,
    succeeded: &mut Vec<RefundRecord>,
    failed: &mut Vec<RefundRecord>,
) {
    let acknowledged = t.acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
    let last = t.last_states();
    let errors = t.errors();
    for id in t.sent.keys() {
        if !acknowledged.contains(id) {
            f.fail(format!("{} {id}: the REFUND was never acknowledged", t.id));
        }
    }
    for id in &acknowledged {
        let sent = t.sent.get(id);
        let over_limit = plan.limit.is_some_and(|limit| {
            sent.is_some_and(|r| r.refund_amount.is_none_or(|a| a.value > limit))
        });
        let record = match ledger.find(&t.id, id) {
            Ok(Some(r)) => r,
            // Refused, nothing recorded. Its ERROR may be lost with its session (an
            // ERROR is not sent again, SPEC 6.9); an INQUIRY would then say
            // UNKNOWN_REFUND.
            Ok(None) if over_limit => {
                if errors.get(id).is_some_and(|codes| {
                    codes
                        .iter()
                        .any(|c| c != "LIMIT_EXCEEDED" && c != "UNKNOWN_REFUND")
                }) {
                    f.fail(format!(
                        "{} {id}: over the limit, but refused with {:?}",
                        t.id,
                        errors.get(id)
                    ));
                }
                continue;
            }
            Ok(None) => {
                f.fail(format!("{} {id}: acknowledged but not in the ledger", t.id));
                continue;
            }
            Err(e) => {
                f.fail(format!("{} {id}: ledger read failed: {e}", t.id));
                continue;
            }
        };
        if over_limit {
            f.fail(format!("{} {id}: over the limit, yet recorded", t.id));
        }
        // A refund sent again with one more minor unit: whichever copy arrived first
        // is recorded, and the other is refused with DUPLICATE_MISMATCH (an ERROR the
        // terminal may not hear, if its session ends first).
        let changed = t.changed.contains(id);
        let also_allowed = sent
            .and_then(|s| s.refund_amount)
            .and_then(|a| crate::money::Amount::new(a.value + 1, a.currency).ok());
        if let Some(sent) = sent
            && record.payment_id == sent.payment_id
            && changed
            && record.amount == also_allowed
        {
            // Recorded as sent the second time; the first copy was the one refused.
        } else if let Some(sent) = sent
            && (record.amount != sent.refund_amount || record.payment_id != sent.payment_id)
        {
            f.fail(format!(
                "{} {id}: recorded as {} {:?}, not as first sent ({} {:?})",
                t.id, record.payment_id, record.amount, sent.payment_id, sent.refund_amount
            ));
        }
        *f.by_state.entry(record.state).or_default() += 1;
        match record.state {
            RefundState::Succeeded => succeeded.push(record.clone()),
            RefundState::Failed => failed.push(record.clone()),
            RefundState::NeedsAttention | RefundState::ProviderPending => f.fail(format!(
                "{} {id}: still {} after reconciling against the provider's report",
                t.id, record.state
            )),
            _ => f.fail(format!(
                "{} {id}: never settled, still {}",
                t.id, record.state
            )),
        }
        let went_through_attention = ledger.history(record.id).is_ok_and(|h| {
            h.transitions
                .iter()
                .any(|tr| tr.to_state == RefundState::NeedsAttention)
        });
        if went_through_attention && provider.idempotent() {
            f.fail(format!(
                "{} {id}: NEEDS_ATTENTION on {provider}, which can always be asked again",
                t.id
            ));
        }
        match last.get(id) {
            Some(seen) if *seen == record.state.on_the_wire() => {}
            Some(seen) => f.fail(format!(
                "{} {id}: the terminal's last word is {seen}, the ledger's {}",
                t.id, record.state
            )),
            None => f.fail(format!("{} {id}: the terminal was never told", t.id)),
        }
        // Once told a final state, the cashier is never told another, except that a
        // NEEDS_ATTENTION ("result unknown") is followed by what the report proved.
        let states = t.states_of(id);
        let mut told_final: Option<RefundState> = None;
        for state in &states {
            match told_final {
                None if state.is_final() => told_final = Some(*state),
                Some(RefundState::NeedsAttention) if state.is_final() => told_final = Some(*state),
                Some(first) if *state != first => {
                    f.fail(format!(
                        "{} {id}: told {first}, then {state} ({states:?})",
                        t.id
                    ));
                    break;
                }
                _ => {}
            }
        }
        if provider.idempotent() {
            check_attempts(f, ledger, sim, &t.id, id, record.id, record.state);
        }
    }
    for misfit in t.misfit_displays() {
        f.fail(format!("{}: {misfit}", t.id));
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

/// Refund by refund, against the simulator's books: each SUCCEEDED refund made exactly
/// once, with its amount; each FAILED one never; and every refund the simulator made
/// is one the ledger shows SUCCEEDED.
fn check_books(
    f: &mut Findings,
    provider: ProviderKind,
    sim: &CloudSim,
    succeeded: &[RefundRecord],
    failed: &[RefundRecord],
    ledger: &Ledger,
) {
    let executed: HashMap<String, _> = sim
        .refunds()
        .into_iter()
        .filter(|r| matches!(r.state, CloudState::Succeeded { .. }))
        .map(|r| (r.refund_id.clone(), r))
        .collect();
    f.executed = executed.len() as u32;
    for r in sim.refunds() {
        if r.state == CloudState::Pending {
            f.fail(format!(
                "{}: still pending at the provider after the run settled",
                r.refund_id
            ));
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
    let mut claimed: HashSet<String> = HashSet::new();
    for record in succeeded {
        let made = record
            .provider_refund_id
            .as_ref()
            .and_then(|id| executed.get(id));
        let Some(made) = made else {
            f.fail(format!(
                "{} {}: SUCCEEDED, but the provider made no refund {:?}",
                record.terminal_id, record.original_merchant_refund_id, record.provider_refund_id
            ));
            continue;
        };
        if !claimed.insert(made.refund_id.clone()) {
            f.fail(format!(
                "{}: claimed by two refunds in the ledger",
                made.refund_id
            ));
        }
        let ledger_amount = record.refunded.or(record.amount);
        if ledger_amount != Some(made.amount) {
            f.fail(format!(
                "{} {}: the ledger says {:?}, the provider refunded {}",
                record.terminal_id, record.original_merchant_refund_id, ledger_amount, made.amount
            ));
        }
        if made.payment_id != record.payment_id {
            f.fail(format!(
                "{} {}: the provider refunded payment {}, the ledger {}",
                record.terminal_id,
                record.original_merchant_refund_id,
                made.payment_id,
                record.payment_id
            ));
        }
    }
    for record in failed {
        if let Some(id) = &record.provider_refund_id
            && executed.contains_key(id)
        {
            f.fail(format!(
                "{} {}: FAILED, but the provider made refund {id}",
                record.terminal_id, record.original_merchant_refund_id
            ));
        }
    }
    for id in executed.keys() {
        if !claimed.contains(id) {
            f.fail(format!(
                "{id}: made by the provider, but no refund in the ledger is SUCCEEDED with it"
            ));
        }
    }
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
