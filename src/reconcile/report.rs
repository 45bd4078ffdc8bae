//! Reading a provider's report of the refunds it made.
//!
//! - **Antom's transaction details report**, as Antom documents it: a header line of
//!   field names, one line per transaction, and a last line `<END>`; CSV; amounts in
//!   the currency's main unit (`12.50`), not in minor units as the APIs use. Columns
//!   are found by name, so both published layouts read: the current one (where
//!   `transactionId` is the payment's id for every row, so a refund is known by
//!   `transactionRequestId`, our refundRequestId, and `transactionStatus` gives its
//!   latest status) and the earlier one (successful transactions only, where a
//!   REFUND row's `transactionId` is the refundId and `originalTransactionId` the
//!   payment's). Only `REFUND` rows are refunds; a `REFUND_REVERSAL` row says a refund
//!   was later undone.
//! - **A CSV export** (OTT Pay, PaymentOptions, which document no report): a header
//!   line and one line per refund, with a column mapping ([`CsvLayout`]).
//!
//! Every row is checked; a row that cannot be read is an error naming its line, and
//! nothing is reconciled from a report that does not read whole.

use std::collections::HashMap;
use std::io::Read;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::money::{Amount, Currency, minor_unit_exponent};

/// What a report says became of a refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowStatus {
    /// The money moved.
    Refunded,
    /// The refund failed; no money moved.
    Failed,
    /// Anything else (in process, a value the reader does not know): proves nothing.
    Other(String),
}

/// One refund as a report lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRefund {
    /// The line of the file (the header is line 1).
    pub line: usize,
    /// Our refundRequestId, when the report carries it (Antom).
    pub request_id: Option<String>,
    /// The provider's refund id, when the report carries it.
    pub refund_id: Option<String>,
    /// The payment refunded, when the report says.
    pub payment_id: Option<String>,
    /// How much.
    pub amount: Amount,
    /// What became of it.
    pub status: RowStatus,
    /// When, if the report says.
    pub time: Option<Timestamp>,
    /// A reversal of an earlier refund (Antom's `REFUND_REVERSAL`).
    pub reversal: bool,
}

/// A report, read whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Every refund row.
    pub refunds: Vec<ReportRefund>,
    /// Rows about other transactions (payments, captures...), skipped.
    pub other_rows: usize,
}

/// Why a report cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The file is not CSV, or a line does not read.
    #[error("line {line}: {reason}")]
    Line {
        /// The line of the file.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A column the layout needs is not in the header.
    #[error("the header has no `{0}` column")]
    MissingColumn(String),
    /// The report ends before its `<END>` line: it is cut off.
    #[error("the report has no `<END>` line: it is incomplete, and nothing was reconciled")]
    Incomplete,
    /// The file is empty.
    #[error("the report is empty")]
    Empty,
}

fn line_error(line: usize, reason: impl Into<String>) -> ReportError {
    ReportError::Line {
        line,
        reason: reason.into(),
    }
}

/// Which unit a report's amounts are in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmountUnit {
    /// Minor units (cents), as the APIs send them.
    #[default]
    Minor,
    /// The currency's main unit (`12.50`).
    Major,
}

/// How to read a CSV export: which column holds what, and what its values mean.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvLayout {
    /// The provider's refund id.
    #[serde(default)]
    pub refund_id: Option<String>,
    /// Our refundRequestId, if the export has one.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The payment refunded.
    #[serde(default)]
    pub payment_id: Option<String>,
    /// The amount.
    pub amount: String,
    /// Minor units or main units.
    #[serde(default)]
    pub amount_unit: AmountUnit,
    /// The currency column; without one, `currency` applies to every row.
    #[serde(default)]
    pub currency_column: Option<String>,
    /// The currency of every row when there is no currency column.
    #[serde(default)]
    pub currency: Option<Currency>,
    /// The status column; without one, every row is a refund that was made.
    #[serde(default)]
    pub status: Option<String>,
    /// Status values that mean the money moved (compared without case).
    #[serde(default = "default_refunded")]
    pub refunded_values: Vec<String>,
    /// Status values that mean the refund failed (compared without case).
    #[serde(default = "default_failed")]
    pub failed_values: Vec<String>,
    /// The time column.
    #[serde(default)]
    pub time: Option<String>,
    /// The zone of times written without an offset (`2026-01-15 12:00:04`).
    #[serde(default = "default_zone")]
    pub time_zone: String,
}

fn default_refunded() -> Vec<String> {
    vec!["success".into(), "succeeded".into(), "refunded".into()]
}

fn default_failed() -> Vec<String> {
    vec!["failure".into(), "failed".into(), "fail".into()]
}

fn default_zone() -> String {
    "UTC".into()
}

impl CsvLayout {
    /// The columns OTT Pay's refund answers name (`refundId`, `oriPaymentId`,
    /// `refundAmount` in cents, `refundStatus`, `tradeTime` in Eastern time); OTT Pay
    /// documents no report, so an export is read by the names of its API.
    pub fn ottpay(currency: Option<Currency>) -> CsvLayout {
        CsvLayout {
            refund_id: Some("refundId".into()),
            request_id: None,
            payment_id: Some("oriPaymentId".into()),
            amount: "refundAmount".into(),
            amount_unit: AmountUnit::Minor,
            currency_column: None,
            currency,
            status: Some("refundStatus".into()),
            refunded_values: default_refunded(),
            failed_values: default_failed(),
            time: Some("tradeTime".into()),
            time_zone: "America/Toronto".into(),
        }
    }

    /// The columns PaymentOptions' refund answer names (`id` of the refund,
    /// `transactionId` of the payment, `amount` in minor units, `currency`, `status`,
    /// `timestamp`); PaymentOptions documents no report either.
    pub fn paymentoptions() -> CsvLayout {
        CsvLayout {
            refund_id: Some("id".into()),
            request_id: None,
            payment_id: Some("transactionId".into()),
            amount: "amount".into(),
            amount_unit: AmountUnit::Minor,
            currency_column: Some("currency".into()),
            currency: None,
            status: Some("status".into()),
            refunded_values: default_refunded(),
            failed_values: default_failed(),
            time: Some("timestamp".into()),
            time_zone: "UTC".into(),
        }
    }

    /// Sets one column by its role's name (`refund_id`, `request_id`, `payment_id`,
    /// `amount`, `currency`, `status`, `time`), as `--column role=header` gives it.
    pub fn set_column(&mut self, role: &str, header: &str) -> Result<(), String> {
        let named = Some(header.to_owned());
        match role {
            "refund_id" => self.refund_id = named,
            "request_id" => self.request_id = named,
            "payment_id" => self.payment_id = named,
            "amount" => self.amount = header.to_owned(),
            "currency" => self.currency_column = named,
            "status" => self.status = named,
            "time" => self.time = named,
            other => {
                return Err(format!(
                    "unknown column role {other:?}: use refund_id, request_id, payment_id, \
                     amount, currency, status or time"
                ));
            }
        }
        Ok(())
    }
}

/// A file's lines as CSV records, each with its line number; a line that does not
/// read is an error naming it.
fn records(
    input: impl Read,
) -> impl Iterator<Item = Result<(usize, csv::StringRecord), ReportError>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input)
        .into_records()
        .map(|record| {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line() as usize);
                line_error(line, format!("not CSV: {e}"))
            })?;
            let line = record.position().map_or(0, |p| p.line() as usize);
            Ok((line, record))
        })
}

/// The header's columns by name.
fn header(record: &csv::StringRecord) -> HashMap<String, usize> {
    record
        .iter()
        .enumerate()
        .map(|(i, name)| (name.trim().trim_start_matches('\u{feff}').to_owned(), i))
        .collect()
}

fn column(columns: &HashMap<String, usize>, name: &str) -> Result<usize, ReportError> {
    columns
        .get(name)
        .copied()
        .ok_or_else(|| ReportError::MissingColumn(name.to_owned()))
}

fn cell(record: &csv::StringRecord, at: Option<usize>) -> Option<&str> {
    at.and_then(|i| record.get(i))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Reads Antom's transaction details report.
pub fn read_antom(input: impl Read) -> Result<Report, ReportError> {
    let mut lines = records(input);
    let (_, head) = lines.next().ok_or(ReportError::Empty)??;
    let columns = header(&head);
    let kind = column(&columns, "transactionType")?;
    let request = column(&columns, "transactionRequestId")?;
    let transaction = column(&columns, "transactionId")?;
    let value = column(&columns, "transactionAmountValue")?;
    let currency = column(&columns, "transactionAmountCurrency")?;
    // The earlier layout names the payment in its own column; there `transactionId`
    // is the refund's id. The current one gives every row the payment's id.
    let original = columns.get("originalTransactionId").copied();
    let status = columns.get("transactionStatus").copied();
    let time = columns.get("transactionTime").copied();
    let mut report = Report {
        refunds: Vec::new(),
        other_rows: 0,
    };
    let mut ended = false;
    for next in lines {
        let (line, record) = next?;
        if ended {
            if record.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            return Err(line_error(line, "rows after the <END> line"));
        }
        if record.get(0).map(str::trim) == Some("<END>") {
            ended = true;
            continue;
        }
        let row_kind = cell(&record, Some(kind)).unwrap_or("");
        let reversal = row_kind.eq_ignore_ascii_case("REFUND_REVERSAL");
        if !row_kind.eq_ignore_ascii_case("REFUND") && !reversal {
            report.other_rows += 1;
            continue;
        }
        let code = cell(&record, Some(currency))
            .ok_or_else(|| line_error(line, "no transactionAmountCurrency"))?;
        let currency = Currency::parse(code)
            .map_err(|e| line_error(line, format!("transactionAmountCurrency: {e}")))?;
        let text = cell(&record, Some(value))
            .ok_or_else(|| line_error(line, "no transactionAmountValue"))?;
        let amount = major_units(text, currency)
            .map_err(|e| line_error(line, format!("transactionAmountValue: {e}")))?;
        let id = cell(&record, Some(transaction)).map(str::to_owned);
        let (refund_id, payment_id) = match original {
            Some(_) => (id, cell(&record, original).map(str::to_owned)),
            None => (None, id),
        };
        report.refunds.push(ReportRefund {
            line,
            request_id: cell(&record, Some(request)).map(str::to_owned),
            refund_id,
            payment_id,
            amount,
            status: match cell(&record, status) {
                // The earlier layout lists successful transactions only.
                None => RowStatus::Refunded,
                Some(s) if s.eq_ignore_ascii_case("SUCCESS") => RowStatus::Refunded,
                Some(s) if s.eq_ignore_ascii_case("FAIL") || s.eq_ignore_ascii_case("FAILED") => {
                    RowStatus::Failed
                }
                Some(other) => RowStatus::Other(other.to_owned()),
            },
            time: match cell(&record, time) {
                None => None,
                Some(t) => Some(parse_time(t, &TimeZone::UTC).ok_or_else(|| {
                    line_error(line, format!("transactionTime {t:?} is not a time"))
                })?),
            },
            reversal,
        });
    }
    if !ended {
        return Err(ReportError::Incomplete);
    }
    Ok(report)
}

/// Reads a CSV export by `layout`.
pub fn read_csv(input: impl Read, layout: &CsvLayout) -> Result<Report, ReportError> {
    let zone = TimeZone::get(&layout.time_zone)
        .map_err(|e| line_error(0, format!("time zone {:?}: {e}", layout.time_zone)))?;
    let mut lines = records(input);
    let (_, head) = lines.next().ok_or(ReportError::Empty)??;
    let columns = header(&head);
    let find = |name: &Option<String>| name.as_deref().map(|n| column(&columns, n)).transpose();
    let refund_id = find(&layout.refund_id)?;
    let request_id = find(&layout.request_id)?;
    let payment_id = find(&layout.payment_id)?;
    let amount = column(&columns, &layout.amount)?;
    let currency_column = find(&layout.currency_column)?;
    let status = find(&layout.status)?;
    let time = find(&layout.time)?;
    if currency_column.is_none() && layout.currency.is_none() {
        return Err(line_error(
            1,
            "no currency column and no currency given for the rows",
        ));
    }
    let is = |value: &str, set: &[String]| set.iter().any(|s| s.eq_ignore_ascii_case(value));
    let mut report = Report {
        refunds: Vec::new(),
        other_rows: 0,
    };
    for next in lines {
        let (line, record) = next?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let currency = match (cell(&record, currency_column), layout.currency) {
            (Some(code), _) => {
                Currency::parse(code).map_err(|e| line_error(line, format!("currency: {e}")))?
            }
            (None, Some(c)) => c,
            (None, None) => return Err(line_error(line, "no currency")),
        };
        let text = cell(&record, Some(amount)).ok_or_else(|| line_error(line, "no amount"))?;
        let amount = match layout.amount_unit {
            AmountUnit::Major => major_units(text, currency),
            AmountUnit::Minor => text
                .parse::<i64>()
                .map_err(|_| format!("{text:?} is not a whole number of minor units"))
                .and_then(|v| Amount::new(v.abs(), currency).map_err(|e| e.to_string())),
        }
        .map_err(|e| line_error(line, format!("amount: {e}")))?;
        report.refunds.push(ReportRefund {
            line,
            request_id: cell(&record, request_id).map(str::to_owned),
            refund_id: cell(&record, refund_id).map(str::to_owned),
            payment_id: cell(&record, payment_id).map(str::to_owned),
            amount,
            status: match cell(&record, status) {
                None if status.is_none() => RowStatus::Refunded,
                None => RowStatus::Other(String::new()),
                Some(s) if is(s, &layout.refunded_values) => RowStatus::Refunded,
                Some(s) if is(s, &layout.failed_values) => RowStatus::Failed,
                Some(other) => RowStatus::Other(other.to_owned()),
            },
            time: match cell(&record, time) {
                None => None,
                Some(t) => Some(
                    parse_time(t, &zone)
                        .ok_or_else(|| line_error(line, format!("time {t:?} is not a time")))?,
                ),
            },
            reversal: false,
        });
    }
    Ok(report)
}

/// An amount written in the currency's main unit (`12.50` USD is 1250 cents), read
/// exactly: no floating point, and no more decimals than the currency has. A sign is
/// ignored (reports may write reverse transactions as negative).
pub fn major_units(text: &str, currency: Currency) -> Result<Amount, String> {
    let digits = text.trim().trim_start_matches(['-', '+']);
    let exponent = minor_unit_exponent(currency) as usize;
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let numeric = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !numeric(whole) || !numeric(fraction) {
        return Err(format!("{text:?} is not a decimal amount"));
    }
    if fraction.len() > exponent {
        return Err(format!(
            "{text:?} has more decimals than {currency} has ({exponent})"
        ));
    }
    let scaled = format!("{whole}{fraction:0<exponent$}");
    let value = scaled
        .parse::<i64>()
        .map_err(|_| format!("{text:?} is too large"))?;
    Amount::new(value, currency).map_err(|e| e.to_string())
}

/// A time: RFC 3339 with an offset, or `YYYY-MM-DD HH:MM:SS` in `zone`.
fn parse_time(text: &str, zone: &TimeZone) -> Option<Timestamp> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Some(t);
    }
    let civil = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", text).ok()?;
    zone.to_timestamp(civil).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    #[test]
    fn main_units_are_read_exactly() {
        assert_eq!(major_units("12.50", usd()).unwrap().value, 1250);
        assert_eq!(major_units("12.5", usd()).unwrap().value, 1250);
        assert_eq!(major_units("12", usd()).unwrap().value, 1200);
        assert_eq!(major_units("-8.00", usd()).unwrap().value, 800);
        assert_eq!(major_units("0.07", usd()).unwrap().value, 7);
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(major_units("1250", jpy).unwrap().value, 1250);
        assert!(major_units("1250.5", jpy).is_err());
        assert!(major_units("12.505", usd()).is_err());
        for bad in [
            "",
            "1,250.00",
            "12.5.0",
            "abc",
            ".5",
            "1e3",
            "99999999999999999999",
        ] {
            assert!(major_units(bad, usd()).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_antom_report_without_its_end_line_is_incomplete() {
        let text = "transactionId,transactionRequestId,transactionType,transactionAmountValue,transactionAmountCurrency\n\
                    P1,R1,REFUND,1.00,USD\n";
        assert_eq!(read_antom(text.as_bytes()), Err(ReportError::Incomplete));
        let after = format!("{text}<END>\nP1,R2,REFUND,1.00,USD\n");
        assert!(matches!(
            read_antom(after.as_bytes()),
            Err(ReportError::Line { line: 4, .. })
        ));
    }

    #[test]
    fn bad_rows_name_their_line() {
        let text = "transactionId,transactionRequestId,transactionType,transactionAmountValue,transactionAmountCurrency\n\
                    P1,R1,REFUND,1.00,USD\n\
                    P1,R2,REFUND,one,USD\n<END>\n";
        let err = read_antom(text.as_bytes()).unwrap_err().to_string();
        assert!(
            err.starts_with("line 3:") && err.contains("transactionAmountValue"),
            "{err}"
        );
        let missing = read_antom("a,b\n<END>\n".as_bytes()).unwrap_err();
        assert_eq!(
            missing,
            ReportError::MissingColumn("transactionType".into())
        );
        assert_eq!(read_antom("".as_bytes()), Err(ReportError::Empty));
    }

    #[test]
    fn a_csv_export_by_its_mapping() {
        let layout = CsvLayout::ottpay(Some(Currency::parse("CAD").unwrap()));
        let text = "refundId,oriPaymentId,refundAmount,refundStatus,tradeTime\n\
                    REF1,P1,1250,success,2026-01-15 12:00:04\n\
                    REF2,P1,100,init,2026-01-15 12:01:00\n\
                    REF3,P2,500,failure,2026-07-15 12:00:04\n";
        let report = read_csv(text.as_bytes(), &layout).unwrap();
        assert_eq!(report.refunds.len(), 3);
        let first = &report.refunds[0];
        assert_eq!(first.refund_id.as_deref(), Some("REF1"));
        assert_eq!(first.amount.value, 1250);
        assert_eq!(first.status, RowStatus::Refunded);
        assert_eq!(first.time.unwrap().to_string(), "2026-01-15T17:00:04Z");
        assert_eq!(report.refunds[1].status, RowStatus::Other("init".into()));
        assert_eq!(report.refunds[2].status, RowStatus::Failed);
        let bad =
            "refundId,oriPaymentId,refundAmount,refundStatus,tradeTime\nREF1,P1,12.50,success,\n";
        let err = read_csv(bad.as_bytes(), &layout).unwrap_err().to_string();
        assert!(err.starts_with("line 2:"), "{err}");
    }
}
