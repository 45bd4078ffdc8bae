//! The ledger's queries: refunds by their ids, what is due, what the terminal has
//! not been told, counts, histories and exports. Nothing here writes.

use rusqlite::{Connection, OptionalExtension, params};

use super::LedgerError;
use super::model::{Counts, History, RefundRecord};
use super::open::Ledger;
use super::rows::{AttemptColumns, RefundColumns, SELECT_REFUND, TransitionColumns};
use crate::state::RefundState;

/// States in which the bridge still owes a refund something; a later refund of the
/// same payment waits for it.
pub(super) const ACTIVE_STATES: &str = "('ACCEPTED', 'QUEUED', 'PROCESSING')";

/// States in which a refund is not settled: the active ones, those the provider
/// finishes later, and those waiting for a person. Neither of the last two holds later
/// refunds of its payment back: nothing more will be sent for them, the provider still
/// guards the refundable amount, and otherwise the later ones would wait, and the
/// cashier be told they wait for the network, until a report or a person settles them.
pub(super) const UNSETTLED_STATES: &str =
    "('ACCEPTED', 'QUEUED', 'PROCESSING', 'PROVIDER_PENDING', 'NEEDS_ATTENTION')";

impl Ledger {
    /// One refund by its number.
    pub fn get(&self, id: i64) -> Result<RefundRecord, LedgerError> {
        get(&self.conn, id)
    }

    /// A terminal's refund by the terminal's id for it.
    pub fn find(
        &self,
        terminal_id: &str,
        original_merchant_refund_id: &str,
    ) -> Result<Option<RefundRecord>, LedgerError> {
        find_terminal_refund(&self.conn, terminal_id, original_merchant_refund_id)
    }

    /// The refunds the provider knows by this refund id (one, unless the provider
    /// reused an id).
    pub fn find_by_provider_refund_id(
        &self,
        provider_refund_id: &str,
    ) -> Result<Vec<RefundRecord>, LedgerError> {
        collect(
            &self.conn,
            &format!("{SELECT_REFUND} WHERE r.provider_refund_id = ?1 ORDER BY r.id"),
            params![provider_refund_id],
        )
    }

    /// The number of the latest transition (0 for an empty ledger).
    pub fn last_transition_id(&self) -> Result<i64, LedgerError> {
        Ok(self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM transitions")?
            .query_row([], |r| r.get(0))?)
    }

    /// Changes people and reports made (`posbridge resolve`, `retry`, `reconcile
    /// --apply`) after transition `after`, oldest first, at most `limit`: the refund
    /// as it now is and the change's cause. Reads only the transitions after `after`.
    pub fn operator_changes_since(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, RefundRecord, String)>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, refund_id, cause FROM transitions WHERE id > ?1 \
             AND (cause LIKE 'operator %' OR cause LIKE 'reconcile:%') ORDER BY id LIMIT ?2",
        )?;
        let rows: Vec<(i64, i64, String)> = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(id, refund, cause)| Ok((id, get(&self.conn, refund)?, cause)))
            .collect()
    }

    /// Every refund of a payment, oldest first.
    pub fn refunds_of_payment(&self, payment_id: &str) -> Result<Vec<RefundRecord>, LedgerError> {
        collect(
            &self.conn,
            &format!("{SELECT_REFUND} WHERE r.payment_id = ?1 ORDER BY r.id"),
            params![payment_id],
        )
    }

    /// The refund whose attempt has this `refundRequestId`.
    pub fn find_by_request_id(
        &self,
        refund_request_id: &str,
    ) -> Result<Option<RefundRecord>, LedgerError> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT refund_id FROM attempts WHERE refund_request_id = ?1",
                params![refund_request_id],
                |r| r.get(0),
            )
            .optional()?;
        id.map(|id| get(&self.conn, id)).transpose()
    }

    /// A refund named by a person: its ledger number, the terminal's id for it, a
    /// `refundRequestId` or the provider's refund id.
    pub fn lookup(&self, text: &str) -> Result<RefundRecord, LedgerError> {
        if let Ok(id) = text.parse::<i64>()
            && let Ok(refund) = get(&self.conn, id)
        {
            return Ok(refund);
        }
        // One indexed search per kind of id; an OR across the join would read every row.
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM refunds WHERE original_merchant_refund_id = ?1 \
             UNION SELECT id FROM refunds WHERE provider_refund_id = ?1 \
             UNION SELECT refund_id FROM attempts WHERE refund_request_id = ?1 ORDER BY 1",
        )?;
        let ids: Vec<i64> = stmt
            .query_map(params![text], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        match ids.as_slice() {
            [] => Err(LedgerError::NotFound(text.to_owned())),
            [id] => get(&self.conn, *id),
            many => Err(LedgerError::Ambiguous(
                text.to_owned(),
                many.iter()
                    .map(|id| format!("#{id}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// Refunds the bridge must act on by `now_ms`, oldest first, skipping any whose
    /// payment has an earlier refund still open (one refund per payment at a time,
    /// in the order they were accepted).
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<RefundRecord>, LedgerError> {
        let sql = format!(
            "{SELECT_REFUND} WHERE r.next_action_ms <= ?1 \
             AND r.state IN {ACTIVE_STATES} \
             AND NOT EXISTS (SELECT 1 FROM refunds e WHERE e.payment_id = r.payment_id \
                             AND e.id < r.id AND e.state IN {ACTIVE_STATES}) \
             ORDER BY r.next_action_ms, r.id LIMIT ?2"
        );
        collect(&self.conn, &sql, params![now_ms, limit as i64])
    }

    /// When the next refund falls due, if any is waiting.
    pub fn next_due_ms(&self) -> Result<Option<i64>, LedgerError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT MIN(next_action_ms) FROM refunds WHERE state IN {ACTIVE_STATES}"
            ))?
            .query_row([], |r| r.get(0))?)
    }

    /// A terminal's refunds whose final state it has not acknowledged, oldest first.
    pub fn undelivered_finals(
        &self,
        terminal_id: &str,
        limit: usize,
    ) -> Result<Vec<RefundRecord>, LedgerError> {
        let sql = format!(
            "{SELECT_REFUND} WHERE r.terminal_id = ?1 \
             AND r.state IN ('PROVIDER_PENDING', 'SUCCEEDED', 'FAILED', 'NEEDS_ATTENTION') \
             AND (r.delivered_state IS NULL OR r.delivered_state != r.state) \
             ORDER BY r.id LIMIT ?2"
        );
        collect(&self.conn, &sql, params![terminal_id, limit as i64])
    }

    /// Every refund not yet settled (NEEDS_ATTENTION included), oldest first.
    pub fn unfinished(&self) -> Result<Vec<RefundRecord>, LedgerError> {
        collect(
            &self.conn,
            &format!("{SELECT_REFUND} WHERE r.state IN {UNSETTLED_STATES} ORDER BY r.id"),
            [],
        )
    }

    /// Refunds whose current attempt may have been sent with no outcome recorded.
    pub fn in_doubt(&self) -> Result<Vec<RefundRecord>, LedgerError> {
        collect(
            &self.conn,
            &format!(
                "{SELECT_REFUND} WHERE a.status = 'SENDING' \
                 AND r.state IN ('ACCEPTED', 'QUEUED') ORDER BY r.id"
            ),
            [],
        )
    }

    /// How many refunds stand where.
    pub fn counts(&self) -> Result<Counts, LedgerError> {
        // Kept by triggers (schema version 5): no refund row is read.
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, n FROM state_counts")?;
        let mut by_state: Vec<(RefundState, u64)> =
            RefundState::ALL.iter().map(|s| (*s, 0)).collect();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            let n: i64 = row.get(1)?;
            // The refunds table's CHECK lets only a state's name in.
            if let Some((_, count)) = by_state.iter_mut().find(|(s, _)| s.as_str() == name) {
                *count = n.max(0) as u64;
            }
        }
        let (unfinished, oldest): (i64, Option<i64>) = self
            .conn
            .prepare_cached(&format!(
                "SELECT COUNT(*), MIN(created_ms) FROM refunds WHERE state IN {ACTIVE_STATES}"
            ))?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(Counts {
            by_state,
            unfinished: unfinished.max(0) as u64,
            oldest_unfinished_ms: oldest,
        })
    }

    /// A refund's whole story.
    pub fn history(&self, id: i64) -> Result<History, LedgerError> {
        let refund = get(&self.conn, id)?;
        let sql = format!(
            "{} WHERE refund_id = ?1 ORDER BY id",
            AttemptColumns::SELECT
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let columns = AttemptColumns::of(&stmt)?;
        let mut rows = stmt.query(params![id])?;
        let mut attempts = Vec::new();
        while let Some(row) = rows.next()? {
            attempts.push(columns.read(row, id)?);
        }
        let sql = format!(
            "{} WHERE refund_id = ?1 ORDER BY id",
            TransitionColumns::SELECT
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let columns = TransitionColumns::of(&stmt)?;
        let mut rows = stmt.query(params![id])?;
        let mut transitions = Vec::new();
        while let Some(row) = rows.next()? {
            transitions.push(columns.read(row, id)?);
        }
        Ok(History {
            refund,
            attempts,
            transitions,
        })
    }

    /// Visits every refund accepted at or after `since_ms` (and before `until_ms`),
    /// oldest first, one row in memory at a time.
    pub fn export(
        &self,
        since_ms: i64,
        until_ms: Option<i64>,
        mut visit: impl FnMut(&RefundRecord),
    ) -> Result<u64, LedgerError> {
        let sql =
            // In the time index's order, so rows stream without a sort of the range first.
            format!("{SELECT_REFUND} WHERE r.created_ms >= ?1 AND r.created_ms < ?2 ORDER BY r.created_ms, r.id");
        let mut stmt = self.conn.prepare(&sql)?;
        let columns = RefundColumns::of(&stmt)?;
        let mut rows = stmt.query(params![since_ms, until_ms.unwrap_or(i64::MAX)])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            visit(&columns.read(row)?);
            n += 1;
        }
        Ok(n)
    }
}

pub(super) fn get(conn: &Connection, id: i64) -> Result<RefundRecord, LedgerError> {
    let sql = format!("{SELECT_REFUND} WHERE r.id = ?1");
    collect(conn, &sql, params![id])?
        .pop()
        .ok_or_else(|| LedgerError::NotFound(format!("#{id}")))
}

pub(super) fn find_terminal_refund(
    conn: &Connection,
    terminal_id: &str,
    original_merchant_refund_id: &str,
) -> Result<Option<RefundRecord>, LedgerError> {
    let sql =
        format!("{SELECT_REFUND} WHERE r.terminal_id = ?1 AND r.original_merchant_refund_id = ?2");
    Ok(collect(
        conn,
        &sql,
        params![terminal_id, original_merchant_refund_id],
    )?
    .pop())
}

pub(super) fn collect(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RefundRecord>, LedgerError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let columns = RefundColumns::of(&stmt)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(columns.read(row)?);
    }
    Ok(out)
}
