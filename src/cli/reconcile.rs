//! `posbridge reconcile`: the ledger against the provider's report.
//!
//! Its exit statuses are the common ones of `cli::exit`:
//!
//! | exit | meaning |
//! | --- | --- |
//! | 0 | the ledger and the report agree (after applying, with `--apply`) |
//! | 1 | something disagrees that was not settled |
//! | 2 | bad arguments |
//! | 3 | the report cannot be read as that provider's report |
//! | 4 | the report or the ledger does not exist |
//! | 6 | the ledger stayed busy |
//! | 7 | this user may not read the report or write the ledger |
//! | 8 | anything else (an I/O error, a damaged ledger) |

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::exit::{self, Failure, Status};
use super::ops::LedgerArgs;
use crate::config::Config;
use crate::money::Currency;
use crate::reconcile::report::{self, AmountUnit, CsvLayout};
use crate::reconcile::{self, Finding, Kind, Options, Reconciliation};
use crate::text::visible;

/// Whose report it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportProvider {
    /// Antom's transaction details report.
    Antom,
    /// An OTT Pay CSV export.
    Ottpay,
    /// A PaymentOptions CSV export.
    Paymentoptions,
}

/// `posbridge reconcile`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  posbridge reconcile --report transaction_details_20261130.csv
  posbridge reconcile --report export.csv --provider ottpay --currency CAD --apply
  posbridge reconcile --report r.csv --through 2026-11-30 --apply --json

Antom's report is read as Antom documents it (a header of field names, a row per
transaction, a last line <END>, amounts in main units). OTT Pay and PaymentOptions
document no report: a CSV export is read by the names their APIs use, each column
changeable with --column ROLE=HEADER (roles: refund_id, request_id, payment_id,
amount, currency, status, time).

With --through, the report counts as listing every refund the provider made up to
that moment (from --from, or its earliest row): a refund sent in that time and absent
from it was not made. Without it, absence proves nothing.

--apply records what the report proves (a refund waiting for a person or for its
provider, settled; a FAILED refund the provider did make, corrected to SUCCEEDED; a
whole-payment refund's amount), each with a note naming the report. It is safe while
the daemon runs.

Exit status: 0 everything agrees; 1 something disagrees; 2 bad arguments; 3 the report
cannot be read as that provider's report; 4 no such report or ledger; 6 the ledger
stayed busy; 7 permission denied; 8 anything else.")]
pub struct ReconcileArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// The provider's report file.
    #[arg(long, value_name = "FILE")]
    report: PathBuf,
    /// Whose report it is (default: the configured provider).
    #[arg(long, value_enum)]
    provider: Option<ReportProvider>,
    /// Record what the report proves.
    #[arg(long)]
    apply: bool,
    /// One JSON object with every finding.
    #[arg(long)]
    json: bool,
    /// The report lists every refund made up to this moment (RFC 3339, or a date:
    /// the end of that day, UTC).
    #[arg(long, value_name = "TIME")]
    through: Option<String>,
    /// The report's period begins here (RFC 3339, or a date: its start, UTC).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// A CSV column mapping, ROLE=HEADER; repeatable.
    #[arg(long, value_name = "ROLE=HEADER")]
    column: Vec<String>,
    /// Whether a CSV's amounts are minor units (cents) or main units.
    #[arg(long, value_enum)]
    amount_unit: Option<Unit>,
    /// The currency of a CSV without a currency column (OTT Pay's answers carry none).
    #[arg(long, value_name = "CODE")]
    currency: Option<String>,
    /// The zone of a CSV's times written without an offset.
    #[arg(long, value_name = "ZONE")]
    time_zone: Option<String>,
    /// How far the provider's clock and this box's may disagree, in seconds: a refund
    /// counts as absent only if it was sent this long before `--through`, and a row is
    /// matched by time within it.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    clock_skew: u32,
}

/// Units of a CSV's amounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Unit {
    /// Minor units (cents).
    Minor,
    /// Main units (12.50).
    Major,
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    Failure::new(Status::Usage, message.to_string()).report("reconcile")
}

/// A moment from the command line: RFC 3339, or a date (its start, or with
/// `end_of_day` the start of the next one, in UTC).
fn moment(text: &str, end_of_day: bool) -> Result<jiff::Timestamp, String> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let date: jiff::civil::Date = text
        .parse()
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor a date (YYYY-MM-DD)"))?;
    let date = if end_of_day {
        date.tomorrow().map_err(|e| e.to_string())?
    } else {
        date
    };
    jiff::tz::TimeZone::UTC
        .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .map_err(|e| e.to_string())
}

fn provider_of(args: &ReconcileArgs) -> ReportProvider {
    if let Some(p) = args.provider {
        return p;
    }
    match Config::load(args.ledger.config_path()).map(|c| c.provider.name()) {
        Ok("ottpay") => ReportProvider::Ottpay,
        Ok("paymentoptions") => ReportProvider::Paymentoptions,
        _ => ReportProvider::Antom,
    }
}

fn layout(args: &ReconcileArgs, provider: ReportProvider) -> Result<CsvLayout, String> {
    let currency = args
        .currency
        .as_deref()
        .map(Currency::parse)
        .transpose()
        .map_err(|e| format!("--currency: {e}"))?;
    let mut layout = match provider {
        ReportProvider::Paymentoptions => CsvLayout::paymentoptions(),
        _ => CsvLayout::ottpay(currency),
    };
    if currency.is_some() {
        layout.currency = currency;
    }
    for mapping in &args.column {
        let (role, header) = mapping
            .split_once('=')
            .ok_or_else(|| format!("--column {mapping:?}: write ROLE=HEADER"))?;
        layout
            .set_column(role.trim(), header.trim())
            .map_err(|e| format!("--column: {e}"))?;
    }
    if let Some(unit) = args.amount_unit {
        layout.amount_unit = match unit {
            Unit::Minor => AmountUnit::Minor,
            Unit::Major => AmountUnit::Major,
        };
    }
    if let Some(zone) = &args.time_zone {
        layout.time_zone = zone.clone();
    }
    Ok(layout)
}

/// Runs `posbridge reconcile`.
pub fn run(args: ReconcileArgs) -> ExitCode {
    let provider = provider_of(&args);
    let mut options = Options::new(args.report.display().to_string());
    options.clock_skew_ms = i64::from(args.clock_skew) * 1000;
    match (
        args.through.as_deref().map(|t| moment(t, true)).transpose(),
        args.from.as_deref().map(|t| moment(t, false)).transpose(),
    ) {
        (Ok(through), Ok(from)) => {
            options.through = through;
            options.from = from;
        }
        (Err(e), _) => return usage(format!("--through: {e}")),
        (_, Err(e)) => return usage(format!("--from: {e}")),
    }
    let file = match std::fs::File::open(&args.report) {
        Ok(f) => std::io::BufReader::new(f),
        Err(e) => {
            return Failure::new(exit::of_io(&e), format!("{}: {e}", args.report.display()))
                .report("reconcile");
        }
    };
    let read = match provider {
        ReportProvider::Antom => report::read_antom(file),
        _ => match layout(&args, provider) {
            Ok(layout) => report::read_csv(file, &layout),
            Err(e) => return usage(e),
        },
    };
    // A report that cannot be read is a file the command cannot use, like a bad
    // configuration.
    let report = match read {
        Ok(r) => r,
        Err(e) => {
            return Failure::new(Status::Config, format!("{}: {e}", args.report.display()))
                .report("reconcile");
        }
    };
    let mut ledger = match args.ledger.open() {
        Ok(l) => l,
        Err(e) => return e.report("reconcile"),
    };
    let mut found = match reconcile::reconcile(&ledger, &report, &options) {
        Ok(r) => r,
        Err(e) => return Failure::from(e).report("reconcile"),
    };
    if args.apply {
        let now = jiff::Timestamp::now().as_millisecond();
        if let Err(e) = reconcile::apply(&mut ledger, &mut found, &options, now) {
            return Failure::from(e).report("reconcile");
        }
    }
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer(&mut out, &found)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        print(&found, args.apply, &mut out)
    };
    if let Err(e) = written {
        return usage(e);
    }
    if found.disagrees() {
        Status::Findings.into()
    } else {
        ExitCode::SUCCESS
    }
}

/// The findings, loudest first.
const ORDER: [(Kind, &str); 10] = [
    (
        Kind::FailedButRefunded,
        "FAILED in the ledger, but the provider refunded them — do not refund these again",
    ),
    (
        Kind::UnknownExecution,
        "refunds the provider made that the ledger does not know",
    ),
    (Kind::AmountMismatch, "amount or currency mismatches"),
    (
        Kind::SucceededButFailed,
        "SUCCEEDED in the ledger, failed in the report",
    ),
    (
        Kind::Missing,
        "SUCCEEDED in the ledger, absent from the report",
    ),
    (
        Kind::Reversed,
        "reversed by the provider after they succeeded",
    ),
    (Kind::Settles, "settled by the report"),
    (Kind::LearnsAmount, "amounts learned from the report"),
    (Kind::StillOpen, "still in process at the provider"),
    (Kind::Confirmed, "confirmed"),
];

fn line(f: &Finding, applying: bool) -> String {
    let who = match (f.ledger_id, &f.refund, f.state) {
        (Some(id), Some(refund), Some(state)) => format!("#{id} {} ({state})", visible(refund)),
        _ => "—".into(),
    };
    let tail = match (applying, f.action.is_some(), f.applied) {
        (true, true, true) => " [applied]",
        (true, true, false) => " [not applied: the refund changed meanwhile]",
        (false, true, _) => " [--apply records it]",
        _ => "",
    };
    format!("  {who}: {}{tail}", visible(&f.detail))
}

fn print(found: &Reconciliation, applying: bool, out: &mut impl Write) -> std::io::Result<()> {
    for (kind, title) in ORDER {
        let of_kind: Vec<&Finding> = found.findings.iter().filter(|f| f.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        writeln!(out, "{} {title}:", of_kind.len())?;
        if kind == Kind::Confirmed {
            continue;
        }
        for f in of_kind {
            writeln!(out, "{}", line(f, applying))?;
        }
    }
    writeln!(
        out,
        "{} report rows about other transactions, {} refunds not from this bridge.",
        found.other_rows, found.not_ours
    )?;
    writeln!(
        out,
        "{}",
        if found.disagrees() {
            "The ledger and the report disagree."
        } else {
            "The ledger and the report agree."
        }
    )
}
