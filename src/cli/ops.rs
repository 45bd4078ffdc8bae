//! Operator commands on the ledger: `queue`, `show`, `resolve`, `retry`.
//!
//! They open the same SQLite file the daemon writes; SQLite's locking makes that safe
//! while it runs, and the daemon picks up their changes within a few seconds (a retry
//! is sent, a resolved refund's final state is delivered to its terminal).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args};

use super::exit::{Failure, Status};
use crate::config::{Config, DEFAULT_PATH};
use crate::ledger::{History, Ledger, RefundRecord};
use crate::message::RefundState;
use crate::text::visible;

/// Where the ledger is.
#[derive(Args, Debug, Clone)]
pub struct LedgerArgs {
    /// The configuration file naming the ledger.
    #[arg(long, env = super::CONFIG_ENV, default_value = DEFAULT_PATH, value_name = "FILE")]
    config: PathBuf,
    /// The ledger file itself (instead of reading it from the configuration).
    #[arg(long, value_name = "FILE")]
    ledger: Option<PathBuf>,
}

impl LedgerArgs {
    /// The configuration file named.
    pub(super) fn config_path(&self) -> &std::path::Path {
        &self.config
    }

    pub(super) fn open(&self) -> Result<Ledger, Failure> {
        let path = match &self.ledger {
            Some(path) => path.clone(),
            None => Config::load(&self.config)?.ledger.path,
        };
        match crate::ledger::presence(&path) {
            crate::ledger::Presence::Present => {}
            crate::ledger::Presence::Missing { .. } => {
                return Err(Failure::new(
                    Status::NotFound,
                    format!(
                        "no ledger at {}: the daemon creates it on its first start",
                        path.display()
                    ),
                ));
            }
            crate::ledger::Presence::Denied {
                path: refused,
                reason,
            } => {
                return Err(Failure::new(
                    Status::Permission,
                    crate::ledger::denied_text(&path, &refused, &reason, &this_command()),
                ));
            }
            crate::ledger::Presence::Unreadable { reason } => {
                return Err(Failure::new(
                    Status::Failed,
                    format!("ledger {}: {reason}", path.display()),
                ));
            }
        }
        Ledger::open(&path).map_err(Failure::from)
    }
}

/// The command line this process was started with, after `posbridge`, for a
/// message saying to run it again as another user.
fn this_command() -> String {
    std::env::args()
        .skip(1)
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `posbridge queue`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  posbridge queue
  posbridge queue --json | jq .")]
pub struct QueueArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// One JSON object per refund.
    #[arg(long)]
    json: bool,
}

/// `posbridge show`.
#[derive(Args, Debug)]
#[command(
    after_help = "REFUND is the ledger number (#12 or 12), the terminal's refund id, a
refundRequestId or the provider's refund id.

Examples:
  posbridge show 12
  posbridge show REF-1 --json"
)]
pub struct ShowArgs {
    /// The refund.
    refund: String,
    #[command(flatten)]
    ledger: LedgerArgs,
    /// The history as JSON.
    #[arg(long)]
    json: bool,
}

/// `posbridge resolve`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("outcome").required(true).args(["succeeded", "failed"])))]
#[command(
    after_help = "Only a NEEDS_ATTENTION or PROVIDER_PENDING refund can be resolved. Check the
provider's portal first: --succeeded if the money went back, --failed if it did not.
The terminal is told the final state the next time it is connected.

Examples:
  posbridge resolve 12 --failed --note \"not in the portal, checked with support\"
  posbridge resolve REF-1 --succeeded --note \"portal shows refund 2026112400001\""
)]
pub struct ResolveArgs {
    /// The refund.
    refund: String,
    /// The refund was made.
    #[arg(long)]
    succeeded: bool,
    /// The refund was not made.
    #[arg(long)]
    failed: bool,
    /// Why, for the history (who checked what).
    #[arg(long, required = true)]
    note: String,
    #[command(flatten)]
    ledger: LedgerArgs,
}

/// `posbridge retry`.
#[derive(Args, Debug)]
#[command(
    after_help = "A FAILED refund is tried again with a new refundRequestId (for example after
MERCHANT_BALANCE_NOT_ENOUGH, once the balance is topped up). A refund waiting to
be sent or asked about is made due now, with its same refundRequestId. A
NEEDS_ATTENTION refund is never retried: resolve it first.

Examples:
  posbridge retry 12"
)]
pub struct RetryArgs {
    /// The refund.
    refund: String,
    #[command(flatten)]
    ledger: LedgerArgs,
}

fn fail(failure: impl Into<Failure>) -> ExitCode {
    failure.into().report("")
}

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .and_then(|t| t.round(jiff::Unit::Second).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn age(ms: i64) -> String {
    let secs = (jiff::Timestamp::now().as_millisecond() - ms).max(0) / 1000;
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The queue's amount column: what was asked, or for a whole-payment refund `full`
/// and, once the provider said it, how much that was.
fn amount(r: &RefundRecord) -> String {
    match (r.amount, r.refunded) {
        (Some(asked), _) => asked.to_string(),
        (None, Some(refunded)) => format!("full {refunded}"),
        (None, None) => "full".into(),
    }
}

/// `show`'s amount: what was asked and, when it is not that, what the provider
/// said it refunded.
fn amount_in_full(r: &RefundRecord) -> String {
    match (r.amount, r.refunded) {
        (Some(asked), Some(refunded)) if asked != refunded => {
            format!("{asked} (the provider refunded {refunded})")
        }
        (Some(asked), _) => asked.to_string(),
        (None, Some(refunded)) => format!("the whole payment: {refunded}"),
        (None, None) => "the whole payment (its amount not yet known)".into(),
    }
}

fn operator() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "operator".into())
}

/// Runs `posbridge queue`.
pub fn queue(args: QueueArgs) -> ExitCode {
    let ledger = match args.ledger.open() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let (refunds, counts) = match ledger.unfinished().and_then(|r| Ok((r, ledger.counts()?))) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        for r in &refunds {
            let _ = writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default());
        }
        return ExitCode::SUCCESS;
    }
    if refunds.is_empty() {
        let _ = writeln!(out, "No unfinished refunds.");
    } else {
        let _ = writeln!(
            out,
            "{:>6}  {:<12} {:<20} {:<20} {:>18}  {:<15} {:>5} {:>5}  LAST OUTCOME / NEXT",
            "#", "TERMINAL", "REFUND", "PAYMENT", "AMOUNT", "STATE", "AGE", "TRIES"
        );
        for r in &refunds {
            let next = match (r.state, r.next_action_ms) {
                (RefundState::NeedsAttention, _) => {
                    format!(
                        "needs a person: {}",
                        r.result_message.as_deref().unwrap_or("")
                    )
                }
                (RefundState::ProviderPending, _) => {
                    "the provider completes it; `posbridge reconcile` settles it".into()
                }
                (_, Some(t)) if t > jiff::Timestamp::now().as_millisecond() => {
                    format!("next at {}", time(t))
                }
                (_, Some(_)) => "due now".into(),
                (_, None) => String::new(),
            };
            let _ = writeln!(
                out,
                "{:>6}  {:<12} {:<20} {:<20} {:>18}  {:<15} {:>5} {:>5}  {}",
                format!("#{}", r.id),
                visible(&r.terminal_id),
                visible(&r.original_merchant_refund_id),
                visible(&r.payment_id),
                amount(r),
                r.state.as_str(),
                age(r.created_ms),
                r.tries,
                visible(&next)
            );
        }
    }
    let summary: Vec<String> = counts
        .by_state
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "\nLedger: {}{}",
        if summary.is_empty() {
            "empty".into()
        } else {
            summary.join(", ")
        },
        counts
            .oldest_unfinished_ms
            .map(|t| format!("; oldest unfinished accepted {}", time(t)))
            .unwrap_or_default()
    );
    ExitCode::SUCCESS
}

/// Writes a refund's history as `posbridge show` prints it.
pub(super) fn print_history(h: &History, out: &mut impl Write) -> std::io::Result<()> {
    let r = &h.refund;
    writeln!(out, "Refund #{} — {}", r.id, r.state)?;
    writeln!(out, "  terminal            {}", visible(&r.terminal_id))?;
    writeln!(
        out,
        "  refund id           {}",
        visible(&r.original_merchant_refund_id)
    )?;
    writeln!(out, "  payment             {}", visible(&r.payment_id))?;
    writeln!(out, "  amount              {}", amount_in_full(r))?;
    if let Some(memo) = &r.memo {
        writeln!(out, "  memo                {}", visible(memo))?;
    }
    writeln!(out, "  provider            {}", r.provider)?;
    writeln!(out, "  refundRequestId     {}", r.refund_request_id)?;
    if let Some(id) = &r.provider_refund_id {
        writeln!(out, "  provider refund id  {}", visible(id))?;
    }
    if let Some(t) = &r.refund_time {
        writeln!(out, "  refund time         {}", visible(t))?;
    }
    if let Some(code) = &r.result_code {
        writeln!(
            out,
            "  result              {}: {}",
            visible(code),
            visible(r.result_message.as_deref().unwrap_or(""))
        )?;
    }
    writeln!(out, "  accepted            {}", time(r.created_ms))?;
    writeln!(
        out,
        "  terminal was told   {}",
        r.delivered_state
            .map(|s| s.as_str())
            .unwrap_or("(no final state yet)")
    )?;
    writeln!(out, "\nAttempts:")?;
    for a in &h.attempts {
        writeln!(
            out,
            "  {}  {}  sent {} time(s){}{}",
            a.refund_request_id,
            a.status,
            a.sends,
            a.last_sent_ms
                .map(|t| format!(", last {}", time(t)))
                .unwrap_or_default(),
            a.last_outcome
                .as_ref()
                .map(|o| format!("\n      last outcome: {}", visible(o)))
                .unwrap_or_default()
        )?;
    }
    writeln!(out, "\nHistory:")?;
    for t in &h.transitions {
        let from = t.from_state.map(|s| format!("{s} → ")).unwrap_or_default();
        writeln!(
            out,
            "  {}  {from}{}  {}",
            time(t.at_ms),
            t.to_state,
            visible(&t.cause)
        )?;
    }
    Ok(())
}

/// Runs `posbridge show`.
pub fn show(args: ShowArgs) -> ExitCode {
    let ledger = match args.ledger.open() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let id = args.refund.trim_start_matches('#');
    let history = match ledger.lookup(id).and_then(|r| ledger.history(r.id)) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&history).unwrap_or_default()
        )
    } else {
        print_history(&history, &mut out)
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // The reader stopped reading (`| head`): not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Runs `posbridge resolve`.
pub fn resolve(args: ResolveArgs) -> ExitCode {
    let mut ledger = match args.ledger.open() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let to = if args.succeeded {
        RefundState::Succeeded
    } else {
        RefundState::Failed
    };
    let now = jiff::Timestamp::now().as_millisecond();
    let cause = format!("operator {}: resolved as {to}: {}", operator(), args.note);
    let result = ledger
        .lookup(args.refund.trim_start_matches('#'))
        .and_then(|r| ledger.write(|l| l.resolve(r.id, to, &cause, now)));
    match result {
        Ok(r) => {
            println!(
                "Refund #{} ({}) is now {}.",
                r.id, r.original_merchant_refund_id, r.state
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// Runs `posbridge retry`.
pub fn retry(args: RetryArgs) -> ExitCode {
    let mut ledger = match args.ledger.open() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let now = jiff::Timestamp::now().as_millisecond();
    let refund = match ledger.lookup(args.refund.trim_start_matches('#')) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let result = match refund.state {
        RefundState::Failed => {
            let rrid = crate::bridge::new_refund_request_id();
            let cause = format!("operator {}: retry with a new refundRequestId", operator());
            ledger.write(|l| l.new_attempt(refund.id, &rrid, RefundState::Accepted, &cause, now))
        }
        RefundState::NeedsAttention => {
            return fail(Failure::new(
                Status::WrongState,
                format!(
                    "refund #{} needs attention: its first request may have gone through, so \
                     retrying could refund twice. Check the provider's portal, then `posbridge resolve`.",
                    refund.id
                ),
            ));
        }
        _ => {
            let cause = format!("operator {}: retry now", operator());
            ledger.write(|l| l.due_now(refund.id, &cause, now))
        }
    };
    match result {
        Ok(r) => {
            println!(
                "Refund #{} ({}) is {} and due now, refundRequestId {}.",
                r.id, r.original_merchant_refund_id, r.state, r.refund_request_id
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
