//! Turning rows of the ledger's queries into records, by column name.
//!
//! Each query's result columns are declared once, with [`columns!`]: a field per
//! column, named as the query names it (`expression AS name`). The SELECT is built from
//! the same declaration, and where the statement put each column is found by its name
//! once per statement, so a column added, removed or moved in a query can never shift
//! what a field reads; a name the query lacks is an error, not a wrong value. Rows are
//! then read by those positions, as fast as positional reads.

use rusqlite::Row;

use super::model::{AttemptRecord, AttemptStatus, RefundRecord, TransitionRecord, parse_state};
use super::{LedgerError, StoredAmountError};
use crate::money::{Amount, Currency};

/// Declares one query's result columns: a struct holding where the statement put each
/// (`of`, by name), and the query's `SELECT … FROM …` text (`SELECT`), each column
/// written `expression AS field`.
macro_rules! columns {
    (
        $(#[$meta:meta])*
        struct $name:ident from $from:literal {
            $first:ident = $first_expr:literal,
            $($field:ident = $expr:literal,)*
        }
    ) => {
        $(#[$meta])*
        pub(super) struct $name {
            $first: usize,
            $($field: usize,)*
        }

        impl $name {
            /// The query, up to its `WHERE`.
            pub(super) const SELECT: &'static str = concat!(
                "SELECT ",
                $first_expr, " AS ", stringify!($first),
                $(", ", $expr, " AS ", stringify!($field),)*
                " FROM ",
                $from
            );

            /// Where `stmt` (prepared from [`Self::SELECT`]) puts each column.
            pub(super) fn of(
                stmt: &::rusqlite::Statement<'_>,
            ) -> Result<$name, $crate::ledger::LedgerError> {
                Ok($name {
                    $first: stmt.column_index(stringify!($first))?,
                    $($field: stmt.column_index(stringify!($field))?,)*
                })
            }
        }
    };
}
pub(super) use columns;

columns! {
    /// A refund with its current attempt and its latest transition's number.
    struct RefundColumns from "refunds r JOIN attempts a ON a.id = r.attempt_id" {
        id = "r.id",
        terminal_id = "r.terminal_id",
        original_merchant_refund_id = "r.original_merchant_refund_id",
        payment_id = "r.payment_id",
        amount_value = "r.amount_value",
        amount_currency = "r.amount_currency",
        memo = "r.memo",
        provider = "r.provider",
        state = "r.state",
        attempt_id = "r.attempt_id",
        refund_request_id = "a.refund_request_id",
        attempt_status = "a.status",
        provider_refund_id = "r.provider_refund_id",
        refund_time = "r.refund_time",
        refunded_value = "r.refunded_value",
        refunded_currency = "r.refunded_currency",
        result_code = "r.result_code",
        result_message = "r.result_message",
        created_ms = "r.created_ms",
        updated_ms = "r.updated_ms",
        next_action_ms = "r.next_action_ms",
        tries = "r.tries",
        delivered_state = "r.delivered_state",
        revision = "(SELECT MAX(t.id) FROM transitions t WHERE t.refund_id = r.id)",
    }
}

columns! {
    /// One attempt of a refund.
    struct AttemptColumns from "attempts" {
        id = "id",
        refund_request_id = "refund_request_id",
        status = "status",
        sends = "sends",
        created_ms = "created_ms",
        last_sent_ms = "last_sent_ms",
        last_outcome = "last_outcome",
    }
}

columns! {
    /// One transition of a refund.
    struct TransitionColumns from "transitions" {
        at_ms = "at_ms",
        from_state = "from_state",
        to_state = "to_state",
        cause = "cause",
        result_code = "result_code",
        attempt_id = "attempt_id",
    }
}

/// The refunds' query, up to its `WHERE`.
pub(super) const SELECT_REFUND: &str = RefundColumns::SELECT;

pub(super) fn corrupt(id: i64, what: String) -> LedgerError {
    LedgerError::Corrupt { id, what }
}

fn amount(
    id: i64,
    value: Option<i64>,
    currency: Option<String>,
) -> Result<Option<Amount>, LedgerError> {
    let amount = match (value, currency) {
        (Some(value), Some(code)) => Currency::parse(&code)
            .map_err(StoredAmountError::from)
            .and_then(|c| Amount::new(value, c).map_err(StoredAmountError::from))
            .map(Some),
        (None, None) => Ok(None),
        _ => Err(StoredAmountError::Half),
    };
    amount.map_err(|source| LedgerError::CorruptAmount { id, source })
}

impl RefundColumns {
    /// The refund in `row`.
    pub(super) fn read(&self, row: &Row) -> Result<RefundRecord, LedgerError> {
        let id: i64 = row.get(self.id)?;
        let state: String = row.get(self.state)?;
        let attempt_status: String = row.get(self.attempt_status)?;
        let delivered: Option<String> = row.get(self.delivered_state)?;
        let tries: i64 = row.get(self.tries)?;
        let revision: Option<i64> = row.get(self.revision)?;
        Ok(RefundRecord {
            id,
            terminal_id: row.get(self.terminal_id)?,
            original_merchant_refund_id: row.get(self.original_merchant_refund_id)?,
            payment_id: row.get(self.payment_id)?,
            amount: amount(
                id,
                row.get(self.amount_value)?,
                row.get(self.amount_currency)?,
            )?,
            memo: row.get(self.memo)?,
            provider: row.get(self.provider)?,
            state: parse_state(&state).ok_or_else(|| corrupt(id, format!("state {state:?}")))?,
            attempt_id: row.get(self.attempt_id)?,
            refund_request_id: row.get(self.refund_request_id)?,
            attempt_status: AttemptStatus::parse(&attempt_status)
                .ok_or_else(|| corrupt(id, format!("attempt status {attempt_status:?}")))?,
            provider_refund_id: row.get(self.provider_refund_id)?,
            refund_time: row.get(self.refund_time)?,
            refunded: amount(
                id,
                row.get(self.refunded_value)?,
                row.get(self.refunded_currency)?,
            )?,
            result_code: row.get(self.result_code)?,
            result_message: row.get(self.result_message)?,
            created_ms: row.get(self.created_ms)?,
            updated_ms: row.get(self.updated_ms)?,
            next_action_ms: row.get(self.next_action_ms)?,
            tries: tries.clamp(0, i64::from(u32::MAX)) as u32,
            delivered_state: match delivered {
                None => None,
                Some(s) => Some(
                    parse_state(&s).ok_or_else(|| corrupt(id, format!("delivered state {s:?}")))?,
                ),
            },
            revision: revision.ok_or_else(|| corrupt(id, "no transition recorded".into()))?,
        })
    }
}

impl AttemptColumns {
    /// The attempt in `row`, of refund `refund_id`.
    pub(super) fn read(&self, row: &Row, refund_id: i64) -> Result<AttemptRecord, LedgerError> {
        let status: String = row.get(self.status)?;
        let sends: i64 = row.get(self.sends)?;
        Ok(AttemptRecord {
            id: row.get(self.id)?,
            refund_request_id: row.get(self.refund_request_id)?,
            status: AttemptStatus::parse(&status)
                .ok_or_else(|| corrupt(refund_id, format!("attempt status {status:?}")))?,
            sends: sends.clamp(0, i64::from(u32::MAX)) as u32,
            created_ms: row.get(self.created_ms)?,
            last_sent_ms: row.get(self.last_sent_ms)?,
            last_outcome: row.get(self.last_outcome)?,
        })
    }
}

impl TransitionColumns {
    /// The transition in `row`, of refund `refund_id`.
    pub(super) fn read(&self, row: &Row, refund_id: i64) -> Result<TransitionRecord, LedgerError> {
        let state = |text: String| {
            parse_state(&text).ok_or_else(|| corrupt(refund_id, format!("state {text:?}")))
        };
        let from: Option<String> = row.get(self.from_state)?;
        Ok(TransitionRecord {
            at_ms: row.get(self.at_ms)?,
            from_state: from.map(state).transpose()?,
            to_state: state(row.get(self.to_state)?)?,
            cause: row.get(self.cause)?,
            result_code: row.get(self.result_code)?,
            attempt_id: row.get(self.attempt_id)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;

    #[test]
    fn columns_are_found_by_name_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let conn = ledger.conn_for_tests();
        let stmt = conn
            .prepare(
                "SELECT status AS status, id AS id, sends AS sends, created_ms AS created_ms, \
                      last_outcome AS last_outcome, refund_request_id AS refund_request_id, \
                      last_sent_ms AS last_sent_ms FROM attempts",
            )
            .unwrap();
        let columns = AttemptColumns::of(&stmt).unwrap();
        assert_eq!(
            (columns.status, columns.id, columns.last_sent_ms),
            (0, 1, 6)
        );
        let stmt = conn
            .prepare("SELECT id AS id, status AS status FROM attempts")
            .unwrap();
        let err = AttemptColumns::of(&stmt).err().unwrap();
        assert!(err.to_string().contains("refund_request_id"), "{err}");
    }
}
