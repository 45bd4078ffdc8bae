//! The fleet outbox: the ledger's transitions in sequence, each with the refund as
//! that transition left it, and how far the fleet's sink has confirmed them.
//!
//! The sequence is the transition's `id`. The refund's unchanging columns come from
//! its row; its changing ones from the copy the `fleet_snapshot` trigger kept (schema
//! version 4). Transitions recorded before a sink was configured have no copy: they
//! carry the refund's current columns, with the transition's own state.

use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::rows::columns;
use super::{Ledger, LedgerError};

/// One transition as the fleet's sink receives it; its JSON form is one line of a
/// batch (docs/FLEET.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxEntry {
    /// The box's sequence number: the transition's `id`, increasing, never reused.
    pub seq: i64,
    /// When it happened, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The state before (none for the first).
    pub from_state: Option<String>,
    /// The state after.
    pub to_state: String,
    /// Why.
    pub cause: String,
    /// The provider's result code, if the transition came from an answer.
    pub result_code: Option<String>,
    /// The attempt it concerns.
    pub attempt_id: Option<i64>,
    /// The refund as this transition left it.
    pub refund: OutboxRefund,
}

/// A refund's columns as one transition left them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxRefund {
    /// The box ledger's number for it.
    pub id: i64,
    /// The terminal that asked.
    pub terminal_id: String,
    /// The terminal's id for it.
    pub original_merchant_refund_id: String,
    /// The payment refunded.
    pub payment_id: String,
    /// The amount asked for, in minor units (`None`: the whole payment).
    pub amount_value: Option<i64>,
    /// Its currency.
    pub amount_currency: Option<String>,
    /// The terminal's note.
    pub memo: Option<String>,
    /// The provider.
    pub provider: String,
    /// When it was accepted.
    pub created_ms: i64,
    /// Its state.
    pub state: String,
    /// The current attempt's `refundRequestId`.
    pub refund_request_id: Option<String>,
    /// The provider's id for the refund.
    pub provider_refund_id: Option<String>,
    /// The provider's time of the refund.
    pub refund_time: Option<String>,
    /// The amount the provider says it refunded, in minor units.
    pub refunded_value: Option<i64>,
    /// Its currency.
    pub refunded_currency: Option<String>,
    /// The last result code.
    pub result_code: Option<String>,
    /// The last result message.
    pub result_message: Option<String>,
    /// When it last changed.
    pub updated_ms: i64,
}

/// Where the outbox stands.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FleetPosition {
    /// The box id the sink knows this ledger by.
    pub box_id: String,
    /// The last sequence the sink confirmed.
    pub confirmed_seq: i64,
    /// The last sequence recorded.
    pub last_seq: i64,
    /// Transitions recorded and not yet confirmed.
    pub pending: i64,
    /// When the oldest unconfirmed transition happened.
    pub oldest_unconfirmed_ms: Option<i64>,
}

columns! {
    /// A transition with its refund as it left it: the refund's own columns where
    /// the trigger kept no copy.
    struct EntryColumns from "transitions t JOIN refunds r ON r.id = t.refund_id \
        LEFT JOIN fleet_snapshots s ON s.seq = t.id \
        LEFT JOIN attempts a ON a.id = COALESCE(s.attempt_id, r.attempt_id)" {
        seq = "t.id",
        at_ms = "t.at_ms",
        from_state = "t.from_state",
        to_state = "t.to_state",
        cause = "t.cause",
        result_code = "t.result_code",
        attempt_id = "t.attempt_id",
        refund_id = "r.id",
        terminal_id = "r.terminal_id",
        original_merchant_refund_id = "r.original_merchant_refund_id",
        payment_id = "r.payment_id",
        amount_value = "r.amount_value",
        amount_currency = "r.amount_currency",
        memo = "r.memo",
        provider = "r.provider",
        created_ms = "r.created_ms",
        state = "COALESCE(s.state, t.to_state)",
        refund_request_id = "a.refund_request_id",
        provider_refund_id =
            "CASE WHEN s.seq IS NULL THEN r.provider_refund_id ELSE s.provider_refund_id END",
        refund_time = "CASE WHEN s.seq IS NULL THEN r.refund_time ELSE s.refund_time END",
        refunded_value =
            "CASE WHEN s.seq IS NULL THEN r.refunded_value ELSE s.refunded_value END",
        refunded_currency =
            "CASE WHEN s.seq IS NULL THEN r.refunded_currency ELSE s.refunded_currency END",
        refund_result_code =
            "CASE WHEN s.seq IS NULL THEN r.result_code ELSE s.result_code END",
        result_message =
            "CASE WHEN s.seq IS NULL THEN r.result_message ELSE s.result_message END",
        updated_ms = "COALESCE(s.updated_ms, r.updated_ms)",
    }
}

impl EntryColumns {
    /// The entry in `row`.
    fn read(&self, r: &Row) -> rusqlite::Result<OutboxEntry> {
        Ok(OutboxEntry {
            seq: r.get(self.seq)?,
            at_ms: r.get(self.at_ms)?,
            from_state: r.get(self.from_state)?,
            to_state: r.get(self.to_state)?,
            cause: r.get(self.cause)?,
            result_code: r.get(self.result_code)?,
            attempt_id: r.get(self.attempt_id)?,
            refund: OutboxRefund {
                id: r.get(self.refund_id)?,
                terminal_id: r.get(self.terminal_id)?,
                original_merchant_refund_id: r.get(self.original_merchant_refund_id)?,
                payment_id: r.get(self.payment_id)?,
                amount_value: r.get(self.amount_value)?,
                amount_currency: r.get(self.amount_currency)?,
                memo: r.get(self.memo)?,
                provider: r.get(self.provider)?,
                created_ms: r.get(self.created_ms)?,
                state: r.get(self.state)?,
                refund_request_id: r.get(self.refund_request_id)?,
                provider_refund_id: r.get(self.provider_refund_id)?,
                refund_time: r.get(self.refund_time)?,
                refunded_value: r.get(self.refunded_value)?,
                refunded_currency: r.get(self.refunded_currency)?,
                result_code: r.get(self.refund_result_code)?,
                result_message: r.get(self.result_message)?,
                updated_ms: r.get(self.updated_ms)?,
            },
        })
    }
}

impl Ledger {
    /// Turns the outbox on for `box_id` and returns where it stands. A ledger that
    /// was shipped under another box id starts again from the beginning: to the sink
    /// it is a new box.
    pub fn fleet_enable(&mut self, box_id: &str) -> Result<FleetPosition, LedgerError> {
        let sp = self.conn.savepoint()?;
        let known: Option<String> = sp
            .query_row("SELECT box_id FROM fleet_sink WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        match known {
            Some(known) if known == box_id => {}
            Some(known) => {
                tracing::warn!(
                    old = %known, new = %box_id,
                    "fleet box id changed; the whole ledger is shipped again under the new one"
                );
                sp.execute(
                    "UPDATE fleet_sink SET box_id = ?1, confirmed_seq = 0, confirmed_ms = NULL \
                     WHERE id = 1",
                    params![box_id],
                )?;
            }
            None => {
                sp.execute(
                    "INSERT INTO fleet_sink (id, box_id) VALUES (1, ?1)",
                    params![box_id],
                )?;
            }
        }
        sp.commit()?;
        self.fleet_position()?
            .ok_or(LedgerError::Inconsistent("fleet_sink row vanished"))
    }

    /// Turns the outbox off: no sink is configured, so no copies are kept.
    pub fn fleet_disable(&mut self) -> Result<(), LedgerError> {
        let sp = self.conn.savepoint()?;
        sp.execute("DELETE FROM fleet_sink", [])?;
        sp.execute("DELETE FROM fleet_snapshots", [])?;
        sp.commit()?;
        Ok(())
    }

    /// Where the outbox stands; `None` when it is off.
    pub fn fleet_position(&self) -> Result<Option<FleetPosition>, LedgerError> {
        let sink: Option<(String, i64)> = self
            .conn
            .prepare_cached("SELECT box_id, confirmed_seq FROM fleet_sink WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((box_id, confirmed_seq)) = sink else {
            return Ok(None);
        };
        let last_seq: i64 = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM transitions")?
            .query_row([], |r| r.get(0))?;
        let oldest: Option<(i64, i64)> = self
            .conn
            .prepare_cached("SELECT id, at_ms FROM transitions WHERE id > ?1 ORDER BY id LIMIT 1")?
            .query_row(params![confirmed_seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let pending = match oldest {
            // Ids have no gaps in practice; counting them would read the whole tail.
            Some((first, _)) => last_seq - first + 1,
            None => 0,
        };
        Ok(Some(FleetPosition {
            box_id,
            confirmed_seq,
            last_seq,
            pending,
            oldest_unconfirmed_ms: oldest.map(|(_, at)| at),
        }))
    }

    /// Up to `limit` transitions after sequence `after`, in order.
    pub fn outbox_after(&self, after: i64, limit: usize) -> Result<Vec<OutboxEntry>, LedgerError> {
        let sql = format!(
            "{} WHERE t.id > ?1 ORDER BY t.id LIMIT ?2",
            EntryColumns::SELECT
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let columns = EntryColumns::of(&stmt)?;
        let rows = stmt.query_map(params![after, limit as i64], |r| columns.read(r))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that the sink holds everything up to `seq` (what it said, which may
    /// be less than before if it lost data: the outbox then sends again from there),
    /// and drops the copies it no longer needs. A `seq` beyond the last transition is
    /// refused: the sink holds what this ledger never wrote.
    pub fn fleet_confirm(
        &mut self,
        box_id: &str,
        seq: i64,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        let sp = self.conn.savepoint()?;
        let last: i64 = sp.query_row("SELECT COALESCE(MAX(id), 0) FROM transitions", [], |r| {
            r.get(0)
        })?;
        if seq < 0 || seq > last {
            return Err(LedgerError::FleetAhead {
                box_id: box_id.to_owned(),
                seq,
                last,
            });
        }
        let changed = sp.execute(
            "UPDATE fleet_sink SET confirmed_seq = ?1, confirmed_ms = ?2 \
             WHERE id = 1 AND box_id = ?3",
            params![seq, now_ms, box_id],
        )?;
        if changed != 1 {
            return Err(LedgerError::FleetOff {
                box_id: box_id.to_owned(),
            });
        }
        sp.execute("DELETE FROM fleet_snapshots WHERE seq <= ?1", params![seq])?;
        sp.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::ledger::{AcceptPolicy, Acceptance, Change, Ledger, NewRefund};
    use crate::money::{Amount, Currency};
    use crate::state::RefundState;

    fn accept(ledger: &mut Ledger, id: &str, now: i64) -> i64 {
        let new = NewRefund {
            terminal_id: "T1".into(),
            original_merchant_refund_id: id.into(),
            payment_id: format!("PAY-{id}"),
            amount: Some(Amount::new(1250, Currency::parse("USD").unwrap()).unwrap()),
            memo: None,
        };
        let policy = AcceptPolicy {
            provider: "antom".into(),
            queued: false,
            refund_request_id: format!("RR-{id}"),
            daily_limit: None,
        };
        match ledger.accept(&new, &policy, now).unwrap() {
            Acceptance::Recorded { refund, .. } => refund.id,
            other => panic!("{other:?}"),
        }
    }

    fn succeed(ledger: &mut Ledger, id: i64, now: i64) {
        let refund = ledger.get(id).unwrap();
        let change = Change {
            state: Some(RefundState::Succeeded),
            provider_refund_id: Some(format!("PR-{id}")),
            result: Some(("SUCCESS".into(), "Success".into())),
            cause: "provider said SUCCESS".into(),
            ..Change::default()
        };
        ledger.apply(id, refund.attempt_id, &change, now).unwrap();
    }

    #[test]
    fn each_transition_carries_the_refund_as_it_left_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        ledger.fleet_enable("store-1").unwrap();
        let a = accept(&mut ledger, "A", 1_000);
        succeed(&mut ledger, a, 2_000);
        let entries = ledger.outbox_after(0, 10).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].to_state, "ACCEPTED");
        assert_eq!(entries[0].refund.state, "ACCEPTED");
        assert_eq!(entries[0].refund.provider_refund_id, None);
        assert_eq!(entries[0].refund.updated_ms, 1_000);
        assert_eq!(entries[0].refund.refund_request_id.as_deref(), Some("RR-A"));
        assert_eq!(entries[1].to_state, "SUCCEEDED");
        assert_eq!(entries[1].refund.state, "SUCCEEDED");
        assert_eq!(
            entries[1].refund.provider_refund_id.as_deref(),
            Some("PR-1")
        );
        assert_eq!(entries[1].refund.result_code.as_deref(), Some("SUCCESS"));
        assert!(entries[0].seq < entries[1].seq);
        let position = ledger.fleet_position().unwrap().unwrap();
        assert_eq!(position.pending, 2);
        assert_eq!(position.oldest_unconfirmed_ms, Some(1_000));
    }

    #[test]
    fn history_from_before_the_sink_carries_the_current_row_with_its_own_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let a = accept(&mut ledger, "A", 1_000);
        succeed(&mut ledger, a, 2_000);
        ledger.fleet_enable("store-1").unwrap();
        let entries = ledger.outbox_after(0, 10).unwrap();
        assert_eq!(entries[0].refund.state, "ACCEPTED");
        assert_eq!(entries[1].refund.state, "SUCCEEDED");
        assert_eq!(
            entries[0].refund.provider_refund_id.as_deref(),
            Some("PR-1")
        );
    }

    #[test]
    fn confirming_prunes_copies_and_refuses_what_the_ledger_never_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        ledger.fleet_enable("store-1").unwrap();
        let a = accept(&mut ledger, "A", 1_000);
        succeed(&mut ledger, a, 2_000);
        let first = ledger.outbox_after(0, 1).unwrap()[0].seq;
        ledger.fleet_confirm("store-1", first, 3_000).unwrap();
        let copies: i64 = ledger
            .conn
            .query_row("SELECT COUNT(*) FROM fleet_snapshots", [], |r| r.get(0))
            .unwrap();
        assert_eq!(copies, 1);
        let position = ledger.fleet_position().unwrap().unwrap();
        assert_eq!((position.confirmed_seq, position.pending), (first, 1));
        let err = ledger
            .fleet_confirm("store-1", first + 5, 3_000)
            .unwrap_err();
        assert!(
            err.to_string().contains("another box uses the same box_id"),
            "{err}"
        );
        assert!(ledger.fleet_confirm("store-2", first, 3_000).is_err());
        // A new box id ships everything again.
        assert_eq!(ledger.fleet_enable("store-2").unwrap().confirmed_seq, 0);
        ledger.fleet_disable().unwrap();
        assert_eq!(ledger.fleet_position().unwrap(), None);
        accept(&mut ledger, "B", 4_000);
        let copies: i64 = ledger
            .conn
            .query_row("SELECT COUNT(*) FROM fleet_snapshots", [], |r| r.get(0))
            .unwrap();
        assert_eq!(copies, 0);
    }
}
