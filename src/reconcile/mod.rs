//! Reconciliation: the ledger against the provider's own report of the refunds it
//! made, so that no refund stays unknown and no money moves unnoticed.
//!
//! - [`report`]: reading the report (Antom's transaction details report, or a CSV
//!   export with a column mapping).
//! - [`reconcile`]: matching each report row to a ledger refund — by refundRequestId,
//!   then by the provider's refund id, then (for providers whose report names neither,
//!   and refunds whose outcome was unknown) by payment, amount and time — and saying
//!   what agrees, what the report settles, and what disagrees.
//! - [`apply`]: recording what the report proves, each change with a note naming the
//!   report, through the ledger's settle path (the same as `posbridge resolve`), safe
//!   while the daemon runs.
//!
//! What a report proves: a refund it lists as made moved money; a refund it lists as
//! failed did not; and, when the operator says the report is complete up to a moment
//! (`through`), a refund sent before that moment and absent from it was not made.

pub mod report;

use std::collections::HashSet;

use jiff::Timestamp;
use serde::Serialize;

use crate::ledger::{Ledger, LedgerError, RefundRecord, Settlement};
use crate::money::Amount;
use crate::state::RefundState;
use report::{Report, ReportRefund, RowStatus};

/// Reports write times to the second: a refund accepted in the same second as its
/// row's time is not after it.
const TIME_PRECISION_MS: i64 = 1000;

/// How to reconcile.
#[derive(Clone, Debug)]
pub struct Options {
    /// The report's name, for notes in the ledger.
    pub source: String,
    /// The report lists every refund the provider made before this moment: a refund
    /// sent before it (and after `from`) and absent was not made. `None`: absence
    /// proves nothing.
    pub through: Option<Timestamp>,
    /// Where the report's period begins; by default its earliest row's time.
    pub from: Option<Timestamp>,
    /// How far the provider's clock and this box's may disagree, when a row is matched
    /// by payment, amount and time.
    pub clock_skew_ms: i64,
    /// The prefix of this bridge's refundRequestIds (a row with another is not ours).
    pub request_id_prefix: String,
}

impl Options {
    /// Defaults for a report named `source`.
    pub fn new(source: impl Into<String>) -> Options {
        Options {
            source: source.into(),
            through: None,
            from: None,
            clock_skew_ms: 10 * 60 * 1000,
            request_id_prefix: "PB".into(),
        }
    }
}

/// What one finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The ledger and the report agree.
    Confirmed,
    /// A refund waiting for a person or for its provider, which the report settles.
    Settles,
    /// The ledger says FAILED, the report says the money moved: a person may refund
    /// it again by hand. The loudest finding.
    FailedButRefunded,
    /// A SUCCEEDED refund whose amount the ledger did not know (a whole-payment
    /// refund); the report gives it.
    LearnsAmount,
    /// The amounts or currencies disagree.
    AmountMismatch,
    /// The ledger says SUCCEEDED, the report says the refund failed.
    SucceededButFailed,
    /// The ledger says SUCCEEDED; the report, complete through `through`, does not
    /// list it.
    Missing,
    /// The report shows a refund of a payment this ledger refunded, or under one of
    /// its refundRequestIds, that matches no refund in the ledger.
    UnknownExecution,
    /// The report says a refund was reversed after it succeeded.
    Reversed,
    /// The report lists the refund still in process.
    StillOpen,
}

impl Kind {
    /// Whether the finding is a disagreement (before anything is applied).
    pub fn disagrees(self) -> bool {
        !matches!(self, Kind::Confirmed | Kind::StillOpen)
    }

    /// Whether applying the report resolves it.
    pub fn applicable(self) -> bool {
        matches!(
            self,
            Kind::Settles | Kind::FailedButRefunded | Kind::LearnsAmount
        )
    }
}

/// What the report would change in the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Settle the refund.
    Settle {
        /// SUCCEEDED or FAILED.
        to: RefundState,
        /// The provider's refund id, from the report.
        refund_id: Option<String>,
        /// The amount refunded, from the report.
        amount: Option<Amount>,
    },
    /// Record the amount refunded.
    Learn {
        /// The amount.
        amount: Amount,
        /// The provider's refund id, from the report.
        refund_id: Option<String>,
    },
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What it is.
    pub kind: Kind,
    /// The ledger's refund, if one is involved.
    pub ledger_id: Option<i64>,
    /// The terminal's id for it.
    pub refund: Option<String>,
    /// The ledger's state.
    pub state: Option<RefundState>,
    /// The report's line, if a row is involved.
    pub line: Option<usize>,
    /// In words.
    pub detail: String,
    /// What applying the report does.
    pub action: Option<Action>,
    /// Whether it was applied.
    pub applied: bool,
}

/// Everything reconciliation found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Reconciliation {
    /// The findings, ledger order then report order.
    pub findings: Vec<Finding>,
    /// Report rows about refunds that are not this bridge's.
    pub not_ours: usize,
    /// Report rows about other transactions.
    pub other_rows: usize,
}

impl Reconciliation {
    /// Whether anything disagrees that has not been applied.
    pub fn disagrees(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.kind.disagrees() && !f.applied)
    }

    /// How many findings of a kind.
    pub fn count(&self, kind: Kind) -> usize {
        self.findings.iter().filter(|f| f.kind == kind).count()
    }
}

fn finding(
    kind: Kind,
    refund: &RefundRecord,
    row: Option<&ReportRefund>,
    detail: String,
) -> Finding {
    Finding {
        kind,
        ledger_id: Some(refund.id),
        refund: Some(refund.original_merchant_refund_id.clone()),
        state: Some(refund.state),
        line: row.map(|r| r.line),
        detail,
        action: None,
        applied: false,
    }
}

/// What the ledger says the refund moved, when it knows.
fn ledger_amount(refund: &RefundRecord) -> Option<Amount> {
    refund.refunded.or(refund.amount)
}

/// Compares the ledger with the report.
pub fn reconcile(
    ledger: &Ledger,
    report: &Report,
    options: &Options,
) -> Result<Reconciliation, LedgerError> {
    let mut out = Reconciliation {
        other_rows: report.other_rows,
        ..Reconciliation::default()
    };
    let mut claimed: HashSet<i64> = HashSet::new();
    let mut unmatched: Vec<&ReportRefund> = Vec::new();
    for row in &report.refunds {
        match matched(ledger, row)? {
            Some(refund) if claimed.insert(refund.id) || row.reversal => {
                judge(&mut out, &refund, row);
            }
            Some(refund) => out.findings.push(finding(
                Kind::UnknownExecution,
                &refund,
                Some(row),
                format!(
                    "a second report row for the same refund ({})",
                    describe(row)
                ),
            )),
            None if row.request_id.is_some()
                || row.refund_id.is_some()
                || row.payment_id.is_some() =>
            {
                unmatched.push(row)
            }
            None => out.not_ours += 1,
        }
    }
    // Rows that name neither one of our request ids nor a refund id we know: refunds
    // whose outcome was unknown, matched by payment, amount and time.
    for row in unmatched {
        let ours_by_id = row
            .request_id
            .as_deref()
            .is_some_and(|r| r.starts_with(&options.request_id_prefix));
        let Some(payment) = row.payment_id.as_deref() else {
            count_unmatched(&mut out, row, ours_by_id);
            continue;
        };
        let candidates = ledger.refunds_of_payment(payment)?;
        if candidates.is_empty() {
            count_unmatched(&mut out, row, ours_by_id);
            continue;
        }
        match by_payment(&candidates, row, &claimed, options) {
            Some(refund) => {
                claimed.insert(refund.id);
                judge(&mut out, refund, row);
            }
            None => out.findings.push(Finding {
                kind: if row.status == RowStatus::Refunded {
                    Kind::UnknownExecution
                } else {
                    Kind::StillOpen
                },
                ledger_id: None,
                refund: None,
                state: None,
                line: Some(row.line),
                detail: format!(
                    "payment {payment} is in the ledger, but no refund of it matches {}",
                    describe(row)
                ),
                action: None,
                applied: false,
            }),
        }
    }
    if let Some(through) = options.through {
        absent(ledger, report, &claimed, through, options, &mut out)?;
    }
    Ok(out)
}

fn count_unmatched(out: &mut Reconciliation, row: &ReportRefund, ours: bool) {
    if ours && row.status == RowStatus::Refunded {
        out.findings.push(Finding {
            kind: Kind::UnknownExecution,
            ledger_id: None,
            refund: None,
            state: None,
            line: Some(row.line),
            detail: format!(
                "a refund under a refundRequestId of this bridge's that the ledger does not know: {}",
                describe(row)
            ),
            action: None,
            applied: false,
        });
    } else {
        out.not_ours += 1;
    }
}

/// The ledger refund a row names by id: its refundRequestId (any attempt), else the
/// provider's refund id.
fn matched(ledger: &Ledger, row: &ReportRefund) -> Result<Option<RefundRecord>, LedgerError> {
    if let Some(rrid) = &row.request_id
        && let Some(refund) = ledger.find_by_request_id(rrid)?
    {
        return Ok(Some(refund));
    }
    if let Some(id) = &row.refund_id {
        return Ok(ledger.find_by_provider_refund_id(id)?.into_iter().next());
    }
    Ok(None)
}

/// The refund of the row's payment it most likely is: not matched yet, not known by
/// another refund id, the same amount, accepted before the row's time (give or take
/// the clock skew); the earliest such.
fn by_payment<'a>(
    candidates: &'a [RefundRecord],
    row: &ReportRefund,
    claimed: &HashSet<i64>,
    options: &Options,
) -> Option<&'a RefundRecord> {
    candidates.iter().find(|r| {
        !claimed.contains(&r.id)
            && r.provider_refund_id
                .as_deref()
                .is_none_or(|id| row.refund_id.as_deref() == Some(id))
            && ledger_amount(r).is_none_or(|a| a == row.amount)
            && row.time.is_none_or(|t| {
                r.created_ms <= t.as_millisecond() + options.clock_skew_ms + TIME_PRECISION_MS
            })
            && matches!(
                r.state,
                RefundState::NeedsAttention
                    | RefundState::ProviderPending
                    | RefundState::Failed
                    | RefundState::Succeeded
                    | RefundState::Processing
            )
    })
}

fn describe(row: &ReportRefund) -> String {
    let mut parts = vec![format!("line {}", row.line)];
    if let Some(r) = &row.request_id {
        parts.push(format!("refundRequestId {r}"));
    }
    if let Some(r) = &row.refund_id {
        parts.push(format!("refund id {r}"));
    }
    if let Some(p) = &row.payment_id {
        parts.push(format!("payment {p}"));
    }
    parts.push(row.amount.to_string());
    parts.push(match &row.status {
        RowStatus::Refunded => "refunded".into(),
        RowStatus::Failed => "failed".into(),
        RowStatus::Other(s) => format!("status {s:?}"),
    });
    parts.join(", ")
}

/// What a row says about the refund it matched.
fn judge(out: &mut Reconciliation, refund: &RefundRecord, row: &ReportRefund) {
    let what = describe(row);
    let mut push = |kind: Kind, detail: String, action: Option<Action>| {
        let mut f = finding(kind, refund, Some(row), detail);
        f.action = action;
        out.findings.push(f);
    };
    if row.reversal {
        push(
            Kind::Reversed,
            format!("the provider reversed this refund after it succeeded ({what})"),
            None,
        );
        return;
    }
    let open = matches!(
        refund.state,
        RefundState::NeedsAttention | RefundState::ProviderPending
    );
    let amounts_agree = ledger_amount(refund).is_none_or(|a| a == row.amount);
    match (&row.status, refund.state) {
        // Money moved on a refund the ledger calls FAILED: the loudest finding, even
        // when the amounts differ too, since a person may refund it again by hand.
        (RowStatus::Refunded, RefundState::Failed) => push(
            Kind::FailedButRefunded,
            format!(
                "the ledger says FAILED, but the provider refunded it ({what}{}): the \
                 customer has the money; do not refund it again",
                match ledger_amount(refund) {
                    Some(asked) if !amounts_agree => format!(", not the {asked} asked"),
                    _ => String::new(),
                }
            ),
            Some(Action::Settle {
                to: RefundState::Succeeded,
                refund_id: row.refund_id.clone(),
                amount: Some(row.amount),
            }),
        ),
        (RowStatus::Refunded, _) if !amounts_agree => push(
            Kind::AmountMismatch,
            format!(
                "the ledger has {}, the report {what}",
                ledger_amount(refund).map_or("no amount".into(), |a| a.to_string())
            ),
            None,
        ),
        (RowStatus::Refunded, RefundState::Succeeded)
            if refund.refunded.is_none() && refund.amount.is_none() =>
        {
            push(
                Kind::LearnsAmount,
                format!("a whole-payment refund; the report gives its amount ({what})"),
                Some(Action::Learn {
                    amount: row.amount,
                    refund_id: row.refund_id.clone(),
                }),
            )
        }
        (RowStatus::Refunded, RefundState::Succeeded) => {
            push(Kind::Confirmed, format!("refunded ({what})"), None)
        }
        (RowStatus::Refunded, _) if open => push(
            Kind::Settles,
            format!("the provider refunded it ({what})"),
            Some(Action::Settle {
                to: RefundState::Succeeded,
                refund_id: row.refund_id.clone(),
                amount: Some(row.amount),
            }),
        ),
        (RowStatus::Failed, RefundState::Failed) => {
            push(Kind::Confirmed, format!("failed ({what})"), None)
        }
        (RowStatus::Failed, RefundState::Succeeded) => push(
            Kind::SucceededButFailed,
            format!("the ledger says SUCCEEDED, the report says the refund failed ({what})"),
            None,
        ),
        (RowStatus::Failed, _) if open => push(
            Kind::Settles,
            format!("the refund failed at the provider; no money moved ({what})"),
            Some(Action::Settle {
                to: RefundState::Failed,
                refund_id: row.refund_id.clone(),
                amount: None,
            }),
        ),
        _ => push(
            Kind::StillOpen,
            format!("not final in the report, or not yet in the ledger ({what})"),
            None,
        ),
    }
}

/// Refunds the report, complete through `through`, should list and does not.
fn absent(
    ledger: &Ledger,
    report: &Report,
    claimed: &HashSet<i64>,
    through: Timestamp,
    options: &Options,
    out: &mut Reconciliation,
) -> Result<(), LedgerError> {
    let through_ms = through.as_millisecond();
    let since_ms = match options.from {
        Some(from) => from.as_millisecond(),
        None => report
            .refunds
            .iter()
            .filter_map(|r| r.time)
            .map(|t| t.as_millisecond())
            .min()
            .map_or(i64::MAX, |t| t - options.clock_skew_ms),
    };
    let mut visit = |refund: &RefundRecord| {
        if claimed.contains(&refund.id) || refund.created_ms < since_ms {
            return;
        }
        let sent_before = |ledger_ms: i64| ledger_ms + options.clock_skew_ms <= through_ms;
        match refund.state {
            RefundState::NeedsAttention | RefundState::ProviderPending
                if sent_before(refund.created_ms) =>
            {
                let mut f = finding(
                    Kind::Settles,
                    refund,
                    None,
                    format!(
                        "not in the report, which lists every refund made through {through}: \
                         no money moved"
                    ),
                );
                f.action = Some(Action::Settle {
                    to: RefundState::Failed,
                    refund_id: None,
                    amount: None,
                });
                out.findings.push(f);
            }
            RefundState::Succeeded if sent_before(refund.updated_ms) => out.findings.push(finding(
                Kind::Missing,
                refund,
                None,
                format!(
                    "the ledger says SUCCEEDED, but the report, complete through {through}, \
                     does not list it"
                ),
            )),
            _ => {}
        }
    };
    let mut seen: HashSet<i64> = HashSet::new();
    for refund in ledger.unfinished()? {
        seen.insert(refund.id);
        visit(&refund);
    }
    ledger.export(since_ms, None, |refund| {
        if !seen.contains(&refund.id) {
            visit(refund);
        }
    })?;
    Ok(())
}

/// Records what the report proves, each change with a note naming the report;
/// marks each applied finding. A refund changed meanwhile (the daemon settled it) is
/// left as it is, and its finding stays unapplied.
pub fn apply(
    ledger: &mut Ledger,
    reconciliation: &mut Reconciliation,
    options: &Options,
    now_ms: i64,
) -> Result<usize, LedgerError> {
    let mut applied = 0;
    for f in &mut reconciliation.findings {
        let (Some(action), Some(id)) = (&f.action, f.ledger_id) else {
            continue;
        };
        let where_ = match f.line {
            Some(line) => format!("{} line {line}", options.source),
            None => options.source.clone(),
        };
        let cause = format!("reconcile: {where_}: {}", f.detail);
        let result = match action {
            Action::Settle {
                to,
                refund_id,
                amount,
            } => {
                let settlement = Settlement {
                    to: *to,
                    provider_refund_id: refund_id.clone(),
                    refunded: *amount,
                    refund_time: None,
                    result: Some(match to {
                        RefundState::Succeeded => (
                            "RECONCILED".into(),
                            format!("Refunded, as the provider's report shows ({where_})"),
                        ),
                        _ => (
                            "RECONCILED".into(),
                            format!("Not refunded, as the provider's report shows ({where_})"),
                        ),
                    }),
                    by_report: true,
                };
                ledger
                    .write(|l| l.settle(id, &settlement, &cause, now_ms))
                    .map(drop)
            }
            Action::Learn { amount, refund_id } => ledger
                .write(|l| l.learn_amount(id, *amount, refund_id.as_deref(), &cause, now_ms))
                .map(drop),
        };
        match result {
            Ok(()) => {
                f.applied = true;
                applied += 1;
            }
            Err(LedgerError::NotAllowed { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(applied)
}
