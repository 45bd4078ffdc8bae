//! The bridge's changes to the ledger, each one transaction: a refund accepted, sent,
//! answered, retried, delivered or queued. Settling by a person or a report is in
//! [`super::settle`].
//!
//! Every writing operation runs in a savepoint, so it is its own transaction when
//! called alone and a nested, all-or-nothing part when [`super::LedgerHandle`] groups
//! several into one commit.

use rusqlite::{Connection, params};

use super::LedgerError;
use super::model::{AcceptPolicy, Acceptance, AttemptStatus, Change, NewRefund, RefundRecord};
use super::open::Ledger;
use super::read::{ACTIVE_STATES, find_terminal_refund, get};
use crate::state::RefundState;

impl Ledger {
    /// Runs `change` as one write transaction that takes the write lock first
    /// (`BEGIN IMMEDIATE`, waiting for the daemon's writes as long as the busy timeout
    /// allows). Another process's commands on a ledger the daemon is writing use this:
    /// a transaction that only reads first and then writes fails at once when the
    /// daemon wrote in between, instead of waiting.
    pub fn write<T>(
        &mut self,
        change: impl FnOnce(&mut Ledger) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        if !self.conn.is_autocommit() {
            return change(self);
        }
        self.begin_batch()?;
        match change(self) {
            Ok(value) => {
                self.commit_batch()?;
                Ok(value)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Starts a transaction that groups the next operations into one commit.
    pub(super) fn begin_batch(&mut self) -> Result<(), LedgerError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    /// Commits the group; if that fails, rolls it back so nothing half-done stays.
    pub(super) fn commit_batch(&mut self) -> Result<(), LedgerError> {
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        Ok(())
    }

    /// Records a refund the terminal asked for, or says why not. Duplicates and limits
    /// are checked in the same transaction as the insert.
    pub fn accept(
        &mut self,
        new: &NewRefund,
        policy: &AcceptPolicy,
        now_ms: i64,
    ) -> Result<Acceptance, LedgerError> {
        let sp = self.conn.savepoint()?;
        if let Some(existing) =
            find_terminal_refund(&sp, &new.terminal_id, &new.original_merchant_refund_id)?
        {
            let same = existing.payment_id == new.payment_id
                && existing.amount == new.amount
                && existing.memo == new.memo;
            return Ok(if same {
                Acceptance::Duplicate(existing)
            } else {
                Acceptance::Mismatch(existing)
            });
        }
        if let (Some(limit), Some(amount)) = (policy.daily_limit, new.amount) {
            let used: i64 = sp
                .prepare_cached(
                    "SELECT COALESCE(SUM(amount_value), 0) FROM refunds \
                 WHERE terminal_id = ?1 AND amount_currency = ?2 AND created_ms >= ?3 \
                 AND state != 'FAILED'",
                )?
                .query_row(
                    params![new.terminal_id, amount.currency.as_str(), limit.since_ms],
                    |r| r.get(0),
                )?;
            if used.saturating_add(amount.value) > limit.max.value {
                return Ok(Acceptance::OverDailyLimit {
                    max: limit.max,
                    used,
                });
            }
        }
        let waits_for_earlier: bool = sp.prepare_cached(&format!(
                "SELECT EXISTS (SELECT 1 FROM refunds WHERE payment_id = ?1 AND state IN {ACTIVE_STATES})"
            ))?.query_row(params![new.payment_id],
            |r| r.get(0),
        )?;
        let state = if policy.queued {
            RefundState::Queued
        } else {
            RefundState::Accepted
        };
        sp.prepare_cached(
            "INSERT INTO refunds (terminal_id, original_merchant_refund_id, payment_id, \
             amount_value, amount_currency, memo, provider, state, attempt_id, created_ms, \
             updated_ms, next_action_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?9, ?9)",
        )?
        .execute(params![
            new.terminal_id,
            new.original_merchant_refund_id,
            new.payment_id,
            new.amount.map(|a| a.value),
            new.amount.map(|a| a.currency.as_str().to_owned()),
            new.memo,
            policy.provider,
            state.as_str(),
            now_ms,
        ])?;
        let id = sp.last_insert_rowid();
        let attempt_id = insert_attempt(&sp, id, &policy.refund_request_id, now_ms)?;
        sp.prepare_cached("UPDATE refunds SET attempt_id = ?1 WHERE id = ?2")?
            .execute(params![attempt_id, id])?;
        insert_transition(
            &sp,
            id,
            now_ms,
            None,
            state,
            &format!("REFUND from terminal {}", new.terminal_id),
            None,
            Some(attempt_id),
        )?;
        let refund = get(&sp, id)?;
        sp.commit()?;
        Ok(Acceptance::Recorded {
            refund,
            waits_for_earlier,
        })
    }

    /// Notes, before a request leaves, that the attempt is being sent: if the bridge
    /// stops before the outcome is recorded, the attempt reads as possibly sent.
    ///
    /// A compare-and-set: it succeeds only if the refund is still waiting to be sent
    /// and the attempt is still in the status the caller saw, so a caller holding an
    /// old copy of the refund can never send it a second time.
    pub fn begin_send(
        &mut self,
        refund_id: i64,
        attempt_id: i64,
        seen: AttemptStatus,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        let sp = self.conn.savepoint()?;
        let changed = sp
            .prepare_cached(
                "UPDATE attempts SET status = 'SENDING', sends = sends + 1, last_sent_ms = ?1 \
             WHERE id = ?2 AND refund_id = ?3 AND status = ?4 \
             AND EXISTS (SELECT 1 FROM refunds WHERE id = ?3 AND attempt_id = ?2 \
                         AND state IN ('ACCEPTED', 'QUEUED'))",
            )?
            .execute(params![now_ms, attempt_id, refund_id, seen.as_str()])?;
        if changed != 1 {
            let current = get(&sp, refund_id)?;
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state,
                what: format!(
                    "attempt {attempt_id} is {} (expected {seen}); not sent again",
                    current.attempt_status
                ),
            });
        }
        sp.commit()?;
        Ok(())
    }

    /// Applies a change to a refund's current attempt `attempt_id`, with its
    /// transition row, and returns the refund as it now is.
    pub fn apply(
        &mut self,
        refund_id: i64,
        attempt_id: i64,
        change: &Change,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        let sp = self.conn.savepoint()?;
        let current = get(&sp, refund_id)?;
        if current.state.is_final() {
            // Settled (by the provider, a notification or a person): a late outcome of
            // the same attempt changes nothing.
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state,
                what: "the refund is settled already".into(),
            });
        }
        if current.attempt_id != attempt_id {
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state,
                what: format!("attempt {attempt_id} is no longer the current one"),
            });
        }
        let state = change.state.unwrap_or(current.state);
        let next_action = match change.next_action_ms {
            Some(next) => next,
            None => current.next_action_ms,
        };
        let refunded = change.refunded.or(current.refunded);
        let (code, message) = match &change.result {
            Some((code, message)) => (Some(code.clone()), Some(message.clone())),
            None => (current.result_code.clone(), current.result_message.clone()),
        };
        sp.prepare_cached(
            "UPDATE refunds SET state = ?1, next_action_ms = ?2, tries = ?3, \
             provider_refund_id = ?4, refund_time = ?5, refunded_value = ?6, \
             refunded_currency = ?7, result_code = ?8, result_message = ?9, updated_ms = ?10 \
             WHERE id = ?11",
        )?
        .execute(params![
            state.as_str(),
            next_action,
            change.tries.unwrap_or(current.tries),
            change
                .provider_refund_id
                .clone()
                .or(current.provider_refund_id.clone()),
            change.refund_time.clone().or(current.refund_time.clone()),
            refunded.map(|a| a.value),
            refunded.map(|a| a.currency.as_str().to_owned()),
            code,
            message,
            now_ms,
            refund_id,
        ])?;
        if change.attempt.is_some() || change.outcome.is_some() {
            sp.prepare_cached(
                "UPDATE attempts SET status = COALESCE(?1, status), \
                 last_outcome = COALESCE(?2, last_outcome) WHERE id = ?3",
            )?
            .execute(params![
                change.attempt.map(AttemptStatus::as_str),
                change.outcome,
                attempt_id
            ])?;
        }
        insert_transition(
            &sp,
            refund_id,
            now_ms,
            Some(current.state),
            state,
            &change.cause,
            change.result.as_ref().map(|(code, _)| code.as_str()),
            Some(attempt_id),
        )?;
        let refund = get(&sp, refund_id)?;
        sp.commit()?;
        Ok(refund)
    }

    /// Starts a new attempt (a new `refundRequestId`) for a FAILED refund, as an
    /// operator's retry does; the refund goes back to `state` and is due now.
    pub fn new_attempt(
        &mut self,
        refund_id: i64,
        refund_request_id: &str,
        state: RefundState,
        cause: &str,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        let sp = self.conn.savepoint()?;
        let current = get(&sp, refund_id)?;
        if current.state != RefundState::Failed {
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state,
                what: "only a FAILED refund can be retried".into(),
            });
        }
        let attempt_id = insert_attempt(&sp, refund_id, refund_request_id, now_ms)?;
        sp.prepare_cached(
            "UPDATE refunds SET attempt_id = ?1, state = ?2, next_action_ms = ?3, tries = 0, \
             result_code = NULL, result_message = NULL, updated_ms = ?3 WHERE id = ?4",
        )?
        .execute(params![attempt_id, state.as_str(), now_ms, refund_id])?;
        insert_transition(
            &sp,
            refund_id,
            now_ms,
            Some(current.state),
            state,
            cause,
            None,
            Some(attempt_id),
        )?;
        let refund = get(&sp, refund_id)?;
        sp.commit()?;
        Ok(refund)
    }

    /// Makes an unfinished refund due now (an operator's "retry now" for a refund
    /// waiting out its backoff), with the same `refundRequestId`.
    pub fn due_now(
        &mut self,
        refund_id: i64,
        cause: &str,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        let sp = self.conn.savepoint()?;
        let current = get(&sp, refund_id)?;
        if !matches!(
            current.state,
            RefundState::Accepted | RefundState::Queued | RefundState::Processing
        ) {
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state,
                what: "only a refund the bridge is still working on can be made due now".into(),
            });
        }
        sp.prepare_cached(
            "UPDATE refunds SET next_action_ms = ?1, tries = 0, updated_ms = ?1 WHERE id = ?2",
        )?
        .execute(params![now_ms, refund_id])?;
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

    /// Records that the terminal acknowledged the refund in `state`; ignored if the
    /// refund has moved on meanwhile.
    pub fn mark_delivered(
        &mut self,
        refund_id: i64,
        state: RefundState,
        now_ms: i64,
    ) -> Result<bool, LedgerError> {
        let sp = self.conn.savepoint()?;
        let changed = sp.prepare_cached("UPDATE refunds SET delivered_state = ?1, delivered_ms = ?2 WHERE id = ?3 AND state = ?1")?.execute(params![state.as_str(), now_ms, refund_id])?;
        sp.commit()?;
        Ok(changed == 1)
    }

    /// Moves every ACCEPTED refund to QUEUED: the cloud was just found unreachable, so
    /// refunds accepted a moment before must say so too. Returns them as they now are.
    ///
    /// A refund whose request is on its way (its attempt is SENDING) is left alone: its
    /// own answer decides what it becomes, and the cashier must not be told it waits
    /// for the network while the provider may be refunding it.
    pub fn queue_accepted(
        &mut self,
        cause: &str,
        now_ms: i64,
    ) -> Result<Vec<RefundRecord>, LedgerError> {
        let sp = self.conn.savepoint()?;
        let ids: Vec<(i64, i64)> = {
            let mut stmt = sp.prepare(
                "SELECT r.id, r.attempt_id FROM refunds r JOIN attempts a ON a.id = r.attempt_id \
                 WHERE r.state = 'ACCEPTED' AND a.status != 'SENDING' ORDER BY r.id",
            )?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut moved = Vec::with_capacity(ids.len());
        for (id, attempt_id) in ids {
            sp.prepare_cached(
                "UPDATE refunds SET state = 'QUEUED', updated_ms = ?1 WHERE id = ?2",
            )?
            .execute(params![now_ms, id])?;
            insert_transition(
                &sp,
                id,
                now_ms,
                Some(RefundState::Accepted),
                RefundState::Queued,
                cause,
                None,
                Some(attempt_id),
            )?;
            moved.push(get(&sp, id)?);
        }
        sp.commit()?;
        Ok(moved)
    }

    /// Makes every QUEUED refund due now: the cloud is back.
    pub fn requeue_now(&mut self, now_ms: i64) -> Result<usize, LedgerError> {
        let sp = self.conn.savepoint()?;
        let n = sp.prepare_cached("UPDATE refunds SET next_action_ms = ?1 WHERE state = 'QUEUED' AND next_action_ms > ?1")?.execute(params![now_ms])?;
        sp.commit()?;
        Ok(n)
    }
}

fn insert_attempt(
    conn: &Connection,
    refund_id: i64,
    refund_request_id: &str,
    now_ms: i64,
) -> Result<i64, LedgerError> {
    conn.prepare_cached(
        "INSERT INTO attempts (refund_id, refund_request_id, status, created_ms) \
         VALUES (?1, ?2, 'NEW', ?3)",
    )?
    .execute(params![refund_id, refund_request_id, now_ms])?;
    Ok(conn.last_insert_rowid())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn insert_transition(
    conn: &Connection,
    refund_id: i64,
    at_ms: i64,
    from: Option<RefundState>,
    to: RefundState,
    cause: &str,
    result_code: Option<&str>,
    attempt_id: Option<i64>,
) -> Result<(), LedgerError> {
    conn.prepare_cached("INSERT INTO transitions (refund_id, at_ms, from_state, to_state, cause, result_code, attempt_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(params![
            refund_id,
            at_ms,
            from.map(RefundState::as_str),
            to.as_str(),
            cause,
            result_code,
            attempt_id
        ])?;
    Ok(())
}
