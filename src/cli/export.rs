//! `posbridge export`: the ledger as rows for a spreadsheet or a log shipper.
//!
//! CSV and JSON lines carry the same fields under the same names ([`Row`]), times to
//! the millisecond, and the box they come from on every row. Rows are written as they
//! are read, one at a time, so a ledger of years exports in constant memory. A file
//! written with `--output` is as private as the ledger (0600).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::ops::LedgerArgs;
use crate::ledger::RefundRecord;
use crate::text::visible;

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// `posbridge export`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  posbridge export --since 2026-11-01 > refunds.csv
  posbridge export --since yesterday --until today --format jsonl
  posbridge export --since 7d --output /tmp/refunds.csv

Dates: YYYY-MM-DD (midnight UTC), an RFC 3339 instant, today, yesterday, or an age
such as 7d, 24h or 30m (that long before now).")]
pub struct ExportArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Only refunds accepted at or after this moment.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only refunds accepted before this moment.
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// The box's name on every row (default: `[fleet] box_id` in the configuration,
    /// else this machine's host name).
    #[arg(long, value_name = "NAME")]
    box_id: Option<String>,
    /// Write here (created 0600) instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// One exported refund: the same fields, in this order, in CSV and JSON lines.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The box the ledger is on.
    pub box_id: String,
    /// The ledger's number for the refund.
    pub ledger_id: i64,
    /// The terminal that asked.
    pub terminal_id: String,
    /// The terminal's id for the refund.
    pub original_merchant_refund_id: String,
    /// The payment refunded.
    pub payment_id: String,
    /// The amount asked for, in minor units (empty for a whole-payment refund).
    pub amount_value: Option<i64>,
    /// Its currency.
    pub amount_currency: Option<String>,
    /// The terminal's note.
    pub memo: Option<String>,
    /// The provider.
    pub provider: String,
    /// Where the refund stands.
    pub state: String,
    /// The current attempt's id at the provider.
    pub refund_request_id: String,
    /// The current attempt's status.
    pub attempt_status: String,
    /// The provider's refund id.
    pub provider_refund_id: Option<String>,
    /// When the provider refunded.
    pub refund_time: Option<String>,
    /// What the provider refunded, in minor units.
    pub refunded_value: Option<i64>,
    /// Its currency.
    pub refunded_currency: Option<String>,
    /// The result code.
    pub result_code: Option<String>,
    /// The result message.
    pub result_message: Option<String>,
    /// When the refund was accepted (RFC 3339, milliseconds).
    pub accepted_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// The last state the terminal acknowledged.
    pub terminal_told: Option<String>,
}

/// A time in milliseconds as RFC 3339 with three decimals.
pub fn millis(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

impl Row {
    /// The row of a refund, text shown (never obeyed) where it came from outside.
    pub fn of(box_id: &str, r: &RefundRecord) -> Row {
        let text = |v: &Option<String>| v.as_deref().map(|t| visible(t).into_owned());
        Row {
            box_id: box_id.to_owned(),
            ledger_id: r.id,
            terminal_id: visible(&r.terminal_id).into_owned(),
            original_merchant_refund_id: visible(&r.original_merchant_refund_id).into_owned(),
            payment_id: visible(&r.payment_id).into_owned(),
            amount_value: r.amount.map(|a| a.value),
            amount_currency: r.amount.map(|a| a.currency.to_string()),
            memo: text(&r.memo),
            provider: r.provider.clone(),
            state: r.state.to_string(),
            refund_request_id: r.refund_request_id.clone(),
            attempt_status: r.attempt_status.to_string(),
            provider_refund_id: text(&r.provider_refund_id),
            refund_time: text(&r.refund_time),
            refunded_value: r.refunded.map(|a| a.value),
            refunded_currency: r.refunded.map(|a| a.currency.to_string()),
            result_code: text(&r.result_code),
            result_message: text(&r.result_message),
            accepted_at: millis(r.created_ms),
            updated_at: millis(r.updated_ms),
            terminal_told: r.delivered_state.map(|s| s.to_string()),
        }
    }
}

/// A moment on the command line: `YYYY-MM-DD` (midnight UTC), RFC 3339, `today`,
/// `yesterday` (midnight UTC), or an age (`7d`, `24h`, `30m`) before `now`.
pub fn parse_when(text: &str, now: jiff::Timestamp) -> Result<i64, String> {
    let text = text.trim();
    let midnight = |days_back: i64| -> Result<i64, String> {
        let today = jiff::tz::TimeZone::UTC.to_datetime(now).date();
        let day = today
            .checked_sub(jiff::Span::new().days(days_back))
            .map_err(|e| e.to_string())?;
        jiff::tz::TimeZone::UTC
            .to_timestamp(day.to_datetime(jiff::civil::Time::midnight()))
            .map(|t| t.as_millisecond())
            .map_err(|e| e.to_string())
    };
    match text {
        "today" => return midnight(0),
        "yesterday" => return midnight(1),
        _ => {}
    }
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return jiff::tz::TimeZone::UTC
            .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
            .map(|t| t.as_millisecond())
            .map_err(|e| e.to_string());
    }
    let unit_ms = match text.chars().last() {
        Some('d') => 86_400_000,
        Some('h') => 3_600_000,
        Some('m') => 60_000,
        _ => 0,
    };
    let count = text
        .get(..text.len().saturating_sub(1))
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0);
    match (unit_ms, count) {
        (unit, Some(n)) if unit > 0 => Ok(now.as_millisecond() - n.saturating_mul(unit)),
        _ => Err(format!(
            "{text:?}: expected YYYY-MM-DD, an RFC 3339 instant, today, yesterday, or an age \
             such as 7d, 24h or 30m"
        )),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("posbridge export: {message}");
    ExitCode::from(2)
}

/// Opens a file as private as the ledger (exports, the demo's keys): created 0600 whatever
/// the umask, and an existing regular file made 0600 before anything is written (a
/// device or pipe given as the output keeps its mode).
pub(super) fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::PermissionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.is_file() {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// The box's name in the fleet, when a configuration names one.
fn configured_box_id(ledger: &LedgerArgs) -> Option<String> {
    let config = crate::config::Config::load(ledger.config_path()).ok()?;
    config.fleet.map(|f| f.box_id)
}

/// This machine's name.
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|n| n.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Runs `posbridge export`.
pub fn run(args: ExportArgs) -> ExitCode {
    let now = jiff::Timestamp::now();
    let since = match args
        .since
        .as_deref()
        .map(|t| parse_when(t, now))
        .transpose()
    {
        Ok(s) => s.unwrap_or(0),
        Err(e) => return fail(format!("--since {e}")),
    };
    let until = match args
        .until
        .as_deref()
        .map(|t| parse_when(t, now))
        .transpose()
    {
        Ok(u) => u,
        Err(e) => return fail(format!("--until {e}")),
    };
    let box_id = match &args.box_id {
        Some(id) => id.clone(),
        None => configured_box_id(&args.ledger).unwrap_or_else(host_name),
    };
    let ledger = match args.ledger.open() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let sink: Box<dyn Write> = match &args.output {
        Some(path) => match private_file(path) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => return fail(format!("{}: {e}", path.display())),
        },
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut error: Option<String> = None;
    let result = match args.format {
        Format::Jsonl => {
            let mut sink = sink;
            let n = ledger.export(since, until, |r| {
                if error.is_none()
                    && let Err(e) = serde_json::to_writer(&mut sink, &Row::of(&box_id, r))
                        .map_err(|e| e.to_string())
                        .and_then(|()| sink.write_all(b"\n").map_err(|e| e.to_string()))
                {
                    error = Some(e);
                }
            });
            if let Err(e) = sink.flush() {
                error.get_or_insert(e.to_string());
            }
            n
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(sink);
            let n = ledger.export(since, until, |r| {
                if error.is_none()
                    && let Err(e) = writer.serialize(Row::of(&box_id, r))
                {
                    error = Some(e.to_string());
                }
            });
            if let Ok(0) = n {
                // No row wrote the header: write it alone, so a reader finds the fields.
                let _ = writer.write_record(CSV_FIELDS);
            }
            if let Err(e) = writer.flush() {
                error.get_or_insert(e.to_string());
            }
            n
        }
    };
    match (result, error) {
        (Ok(n), None) => {
            if args.output.is_some() {
                eprintln!("{n} refunds exported.");
            }
            ExitCode::SUCCESS
        }
        (Err(e), _) => fail(e),
        (_, Some(e)) => fail(e),
    }
}

/// The fields of [`Row`], for an export without rows.
const CSV_FIELDS: [&str; 21] = [
    "box_id",
    "ledger_id",
    "terminal_id",
    "original_merchant_refund_id",
    "payment_id",
    "amount_value",
    "amount_currency",
    "memo",
    "provider",
    "state",
    "refund_request_id",
    "attempt_status",
    "provider_refund_id",
    "refund_time",
    "refunded_value",
    "refunded_currency",
    "result_code",
    "result_message",
    "accepted_at",
    "updated_at",
    "terminal_told",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_relative_and_absolute() {
        let now: jiff::Timestamp = "2026-12-01T15:30:00Z".parse().unwrap();
        let at = |t: &str| millis(parse_when(t, now).unwrap());
        assert_eq!(at("today"), "2026-12-01T00:00:00.000Z");
        assert_eq!(at("yesterday"), "2026-11-30T00:00:00.000Z");
        assert_eq!(at("7d"), "2026-11-24T15:30:00.000Z");
        assert_eq!(at("24h"), "2026-11-30T15:30:00.000Z");
        assert_eq!(at("30m"), "2026-12-01T15:00:00.000Z");
        assert_eq!(at("2026-11-01"), "2026-11-01T00:00:00.000Z");
        assert_eq!(at("2026-11-01T10:00:00.250Z"), "2026-11-01T10:00:00.250Z");
        for bad in ["", "d", "-3d", "7w", "last week", "2026-13-01"] {
            assert!(parse_when(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_csv_header_is_the_rows_fields() {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = crate::ledger::Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let new = crate::ledger::NewRefund {
            terminal_id: "T".into(),
            original_merchant_refund_id: "R".into(),
            payment_id: "P".into(),
            amount: None,
            memo: None,
        };
        let policy = crate::ledger::AcceptPolicy {
            provider: "antom".into(),
            queued: false,
            refund_request_id: "Q".into(),
            daily_limit: None,
        };
        ledger.accept(&new, &policy, 1).unwrap();
        ledger
            .export(0, None, |r| writer.serialize(Row::of("box", r)).unwrap())
            .unwrap();
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), CSV_FIELDS.join(","));
    }
}
