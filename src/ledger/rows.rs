//! Turning a row of the refund query into a [`RefundRecord`].

use rusqlite::Row;

use super::LedgerError;
use super::model::{AttemptStatus, RefundRecord, parse_state};
use crate::money::{Amount, Currency};

pub(super) const SELECT_REFUND: &str = "SELECT r.id, r.terminal_id, r.original_merchant_refund_id, \
    r.payment_id, r.amount_value, r.amount_currency, r.memo, r.provider, r.state, \
    r.attempt_id, a.refund_request_id, a.status, r.provider_refund_id, r.refund_time, \
    r.refunded_value, r.refunded_currency, r.result_code, r.result_message, r.created_ms, \
    r.updated_ms, r.next_action_ms, r.tries, r.delivered_state, \
    (SELECT MAX(t.id) FROM transitions t WHERE t.refund_id = r.id) \
    FROM refunds r JOIN attempts a ON a.id = r.attempt_id";

pub(super) fn corrupt(id: i64, what: String) -> LedgerError {
    LedgerError::Corrupt { id, what }
}

fn amount(
    id: i64,
    value: Option<i64>,
    currency: Option<String>,
) -> Result<Option<Amount>, LedgerError> {
    match (value, currency) {
        (Some(value), Some(code)) => Currency::parse(&code)
            .map_err(|e| corrupt(id, e.to_string()))
            .and_then(|c| Amount::new(value, c).map_err(|e| corrupt(id, e.to_string())))
            .map(Some),
        (None, None) => Ok(None),
        _ => Err(corrupt(id, "amount without currency".into())),
    }
}

pub(super) fn refund_from_row(row: &Row) -> Result<RefundRecord, LedgerError> {
    let id: i64 = row.get(0)?;
    let state: String = row.get(8)?;
    let attempt_status: String = row.get(11)?;
    let delivered: Option<String> = row.get(22)?;
    let tries: i64 = row.get(21)?;
    let revision: Option<i64> = row.get(23)?;
    Ok(RefundRecord {
        id,
        terminal_id: row.get(1)?,
        original_merchant_refund_id: row.get(2)?,
        payment_id: row.get(3)?,
        amount: amount(id, row.get(4)?, row.get(5)?)?,
        memo: row.get(6)?,
        provider: row.get(7)?,
        state: parse_state(&state).ok_or_else(|| corrupt(id, format!("state {state:?}")))?,
        attempt_id: row.get(9)?,
        refund_request_id: row.get(10)?,
        attempt_status: AttemptStatus::parse(&attempt_status)
            .ok_or_else(|| corrupt(id, format!("attempt status {attempt_status:?}")))?,
        provider_refund_id: row.get(12)?,
        refund_time: row.get(13)?,
        refunded: amount(id, row.get(14)?, row.get(15)?)?,
        result_code: row.get(16)?,
        result_message: row.get(17)?,
        created_ms: row.get(18)?,
        updated_ms: row.get(19)?,
        next_action_ms: row.get(20)?,
        tries: tries.clamp(0, i64::from(u32::MAX)) as u32,
        delivered_state: match delivered {
            None => None,
            Some(s) => {
                Some(parse_state(&s).ok_or_else(|| corrupt(id, format!("delivered state {s:?}")))?)
            }
        },
        revision: revision.ok_or_else(|| corrupt(id, "no transition recorded".into()))?,
    })
}
