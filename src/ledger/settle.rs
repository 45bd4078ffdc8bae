//! Settling and correcting a refund outside the bridge's own path: by a person's
//! word (`posbridge resolve`), by a provider's report, or by what a notification or
//! report teaches about a refund already settled. Each is one transaction, like every
//! other change (see [`super::write`]).

use rusqlite::params;

use super::LedgerError;
use super::model::{RefundRecord, Settlement};
use super::open::Ledger;
use super::read::get;
use super::write::insert_transition;
use crate::money::Amount;
use crate::state::RefundState;

impl Ledger {
    /// Settles a refund nobody else will: one that needs a person, or one its provider
    /// finishes later, by a person's word (`posbridge resolve`).
    pub fn resolve(
        &mut self,
        refund_id: i64,
        to: RefundState,
        cause: &str,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        self.settle(refund_id, &Settlement::to(to), cause, now_ms)
    }

    /// Settles a refund by a person's word or a provider's report: a NEEDS_ATTENTION
    /// or PROVIDER_PENDING refund becomes SUCCEEDED or FAILED; a FAILED refund whose
    /// refund the provider's report shows carried out becomes SUCCEEDED (the money did
    /// move, and nobody may refund it again). Nothing else may be settled this way.
    pub fn settle(
        &mut self,
        refund_id: i64,
        settlement: &Settlement,
        cause: &str,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        let sp = self.conn.savepoint()?;
        let current = get(&sp, refund_id)?;
        let to = settlement.to;
        let allowed = match current.state {
            RefundState::NeedsAttention | RefundState::ProviderPending => {
                matches!(to, RefundState::Succeeded | RefundState::Failed)
            }
            RefundState::Failed => to == RefundState::Succeeded && settlement.by_report,
            _ => false,
        };
        if !allowed {
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state,
                what: match current.state {
                    RefundState::NeedsAttention | RefundState::ProviderPending => {
                        format!("it can be settled as SUCCEEDED or FAILED, not {to}")
                    }
                    _ => "only a NEEDS_ATTENTION or PROVIDER_PENDING refund can be resolved \
                          (and a FAILED one by a report that shows it refunded)"
                        .into(),
                },
            });
        }
        let result = settlement.result.as_ref();
        sp.prepare_cached(
            "UPDATE refunds SET state = ?1, next_action_ms = NULL, updated_ms = ?2, \
             provider_refund_id = COALESCE(?3, provider_refund_id), \
             refunded_value = COALESCE(?4, refunded_value), \
             refunded_currency = COALESCE(?5, refunded_currency), \
             refund_time = COALESCE(?6, refund_time), \
             result_code = COALESCE(?7, result_code), result_message = COALESCE(?8, result_message) \
             WHERE id = ?9",
        )?
        .execute(params![
            to.as_str(),
            now_ms,
            settlement.provider_refund_id,
            settlement.refunded.map(|a| a.value),
            settlement.refunded.map(|a| a.currency.as_str().to_owned()),
            settlement.refund_time,
            result.map(|r| r.0.as_str()),
            result.map(|r| r.1.as_str()),
            refund_id
        ])?;
        sp.prepare_cached("UPDATE attempts SET status = 'DONE' WHERE id = ?1")?
            .execute(params![current.attempt_id])?;
        insert_transition(
            &sp,
            refund_id,
            now_ms,
            Some(current.state),
            to,
            cause,
            result.map(|r| r.0.as_str()),
            Some(current.attempt_id),
        )?;
        let refund = get(&sp, refund_id)?;
        sp.commit()?;
        Ok(refund)
    }

    /// Records something learned about a refund without changing its state (a
    /// notification that disagrees with a settled refund, a report's finding): a
    /// transition from its state to the same state, with `cause` and `result_code`.
    pub fn note(
        &mut self,
        refund_id: i64,
        cause: &str,
        result_code: Option<&str>,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        let sp = self.conn.savepoint()?;
        let current = get(&sp, refund_id)?;
        sp.prepare_cached("UPDATE refunds SET updated_ms = ?1 WHERE id = ?2")?
            .execute(params![now_ms, refund_id])?;
        insert_transition(
            &sp,
            refund_id,
            now_ms,
            Some(current.state),
            current.state,
            cause,
            result_code,
            Some(current.attempt_id),
        )?;
        let refund = get(&sp, refund_id)?;
        sp.commit()?;
        Ok(refund)
    }

    /// Records the amount a SUCCEEDED refund's provider says it refunded, where the
    /// ledger did not know it (a whole-payment refund answered without its amount), and
    /// the provider's refund id if it was not known either. A refund whose amount is
    /// known already, or that is not SUCCEEDED, is not changed.
    pub fn learn_amount(
        &mut self,
        refund_id: i64,
        amount: Amount,
        provider_refund_id: Option<&str>,
        cause: &str,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        let sp = self.conn.savepoint()?;
        let current = get(&sp, refund_id)?;
        if current.state != RefundState::Succeeded || current.refunded.is_some() {
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state,
                what: "only a SUCCEEDED refund whose amount is unknown can learn it".into(),
            });
        }
        sp.prepare_cached(
            "UPDATE refunds SET refunded_value = ?1, refunded_currency = ?2, \
             provider_refund_id = COALESCE(provider_refund_id, ?3), updated_ms = ?4 WHERE id = ?5",
        )?
        .execute(params![
            amount.value,
            amount.currency.as_str(),
            provider_refund_id,
            now_ms,
            refund_id
        ])?;
        insert_transition(
            &sp,
            refund_id,
            now_ms,
            Some(current.state),
            current.state,
            cause,
            None,
            Some(current.attempt_id),
        )?;
        let refund = get(&sp, refund_id)?;
        sp.commit()?;
        Ok(refund)
    }
}
