//! What each provider outcome does to a refund: the life cycle's rules, as pure
//! functions of the outcome, the provider's guarantees and the refund's state.
//!
//! - success → SUCCEEDED; final failure → FAILED;
//! - in progress → PROCESSING and inquiry polling;
//! - accepted and finished later by a provider that cannot be asked (or in progress
//!   where the provider offers no inquiry) → PROVIDER_PENDING, which reconciliation
//!   against the provider's report settles: a normal asynchronous refund never needs a
//!   person;
//! - retry with the same id (network down, 429, 5xx, U codes) → QUEUED, again later
//!   with backoff, for as long as it takes;
//! - outcome unknown → the same as retry where the provider is idempotent, else
//!   NEEDS_ATTENTION: a second refund must never be risked;
//! - "needs a new refundRequestId" → FAILED; an operator's retry makes the new id.

use serde::Deserialize;

use crate::bounds::{self, BadSetting};
use crate::ledger::{AttemptStatus, Change, RefundRecord};
use crate::message::RefundState;
use crate::money::Amount;
use crate::provider::Outcome;
use crate::provider::antom::notify::RefundNotification;

/// Result code recorded when an outcome cannot be known automatically.
pub const OUTCOME_UNKNOWN: &str = "OUTCOME_UNKNOWN";
/// Result code recorded when a provider accepted a refund it finishes later and cannot
/// be asked about.
pub const ACCEPTED_LATER: &str = "ACCEPTED_LATER";
/// Result code recorded when a notification contradicts what the ledger holds.
pub const NOTIFY_CONFLICT: &str = "NOTIFY_CONFLICT";

/// Retry and poll timing (`[retry]` in the configuration), in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// First wait before sending again after a retryable outcome.
    pub first_retry_ms: u64,
    /// Longest wait between retries; the network's return is noticed within it.
    pub max_retry_ms: u64,
    /// First wait before asking about a refund in progress.
    pub first_poll_ms: u64,
    /// Longest wait between inquiries.
    pub max_poll_ms: u64,
    /// Refunds (of different payments) sent at the same time.
    pub concurrency: usize,
}

impl Default for RetrySettings {
    fn default() -> RetrySettings {
        RetrySettings {
            first_retry_ms: 1_000,
            max_retry_ms: 60_000,
            first_poll_ms: 2_000,
            max_poll_ms: 60_000,
            concurrency: 16,
        }
    }
}

impl RetrySettings {
    /// Checks the settings make sense.
    pub fn validate(&self) -> Result<(), BadSetting> {
        bounds::check("first_retry_ms", self.first_retry_ms, 1..=600_000, " ms")?;
        bounds::check("max_retry_ms", self.max_retry_ms, 1..=3_600_000, " ms")?;
        bounds::check("first_poll_ms", self.first_poll_ms, 1..=600_000, " ms")?;
        bounds::check("max_poll_ms", self.max_poll_ms, 1..=3_600_000, " ms")?;
        bounds::check("concurrency", self.concurrency, 1..=256, "")?;
        if self.first_retry_ms > self.max_retry_ms {
            return Err(BadSetting::new(
                "first_retry_ms",
                "must not exceed max_retry_ms",
            ));
        }
        if self.first_poll_ms > self.max_poll_ms {
            return Err(BadSetting::new(
                "first_poll_ms",
                "must not exceed max_poll_ms",
            ));
        }
        Ok(())
    }
}

/// Exponential backoff with "equal jitter": the `tries`-th wait is between half and
/// all of `first × 2^tries`, never more than `max`. `jitter` is a random number in
/// 0..1, passed in so the function stays pure.
pub fn backoff_ms(first: u64, max: u64, tries: u32, jitter: f64) -> u64 {
    let full = first.saturating_mul(1u64 << tries.min(30)).min(max);
    let half = full / 2;
    half + ((full - half) as f64 * jitter.clamp(0.0, 1.0)) as u64
}

/// What the provider's guarantees are.
#[derive(Clone, Copy, Debug)]
pub struct ProviderCapabilities {
    /// Sending the same refundRequestId twice refunds at most once.
    pub idempotent: bool,
    /// A refund in progress can be looked up.
    pub supports_inquiry: bool,
}

/// A decision: the ledger change, and what the outcome says about the cloud.
#[derive(Clone, Debug)]
pub struct Decision {
    /// What to record.
    pub change: Change,
    /// `Some(true)` if the provider answered, `Some(false)` if it could not be used,
    /// `None` if the outcome says nothing about it.
    pub reachable: Option<bool>,
}

/// The inputs every decision needs.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The refund's state now.
    pub state: RefundState,
    /// Consecutive retries or polls so far.
    pub tries: u32,
    /// The current time (ms since the epoch).
    pub now_ms: i64,
    /// A random number in 0..1 for jitter.
    pub jitter: f64,
    /// Timing.
    pub retry: &'a RetrySettings,
    /// The provider's guarantees.
    pub provider: ProviderCapabilities,
}

fn succeeded(outcome: &Outcome, cause: &str) -> Option<Change> {
    let Outcome::Succeeded {
        refund_id,
        refund_time,
        amount,
        code,
        message,
    } = outcome
    else {
        return None;
    };
    Some(Change {
        state: Some(RefundState::Succeeded),
        attempt: Some(AttemptStatus::Done),
        outcome: Some(outcome.to_string()),
        next_action_ms: Some(None),
        tries: Some(0),
        provider_refund_id: (!refund_id.is_empty()).then(|| refund_id.clone()),
        refund_time: Some(refund_time.to_string()),
        refunded: *amount,
        result: Some((
            code.clone().unwrap_or_else(|| "SUCCESS".into()),
            message.clone().unwrap_or_else(|| "Success.".into()),
        )),
        cause: cause.into(),
    })
}

/// Accepted by the provider, finished by it later, and not to be asked about: nothing
/// is scheduled; the provider's report settles it.
fn provider_pending(refund_id: &Option<String>, outcome: &Outcome, cause: &str) -> Change {
    Change {
        state: Some(RefundState::ProviderPending),
        attempt: Some(AttemptStatus::Processing),
        outcome: Some(outcome.to_string()),
        next_action_ms: Some(None),
        tries: Some(0),
        provider_refund_id: refund_id.clone(),
        result: Some((
            ACCEPTED_LATER.into(),
            "The provider accepted the refund and completes it later".into(),
        )),
        cause: cause.into(),
        ..Change::default()
    }
}

fn failed(code: &str, message: &str, outcome: &Outcome, cause: &str) -> Change {
    Change {
        state: Some(RefundState::Failed),
        attempt: Some(AttemptStatus::Done),
        outcome: Some(outcome.to_string()),
        next_action_ms: Some(None),
        tries: Some(0),
        result: Some((code.into(), message.into())),
        cause: cause.into(),
        ..Change::default()
    }
}

fn needs_attention(code: &str, message: &str, outcome: Option<&Outcome>, cause: &str) -> Change {
    Change {
        state: Some(RefundState::NeedsAttention),
        attempt: Some(AttemptStatus::Done),
        outcome: outcome.map(ToString::to_string),
        next_action_ms: Some(None),
        result: Some((code.into(), message.into())),
        cause: cause.into(),
        ..Change::default()
    }
}

/// The same request again later: QUEUED (a PROCESSING refund keeps polling instead).
fn again_later(ctx: &Context, outcome: &Outcome, reason: &str) -> Change {
    let wait = backoff_ms(
        ctx.retry.first_retry_ms,
        ctx.retry.max_retry_ms,
        ctx.tries,
        ctx.jitter,
    );
    Change {
        state: Some(RefundState::Queued),
        attempt: Some(AttemptStatus::Retry),
        outcome: Some(outcome.to_string()),
        next_action_ms: Some(Some(ctx.now_ms + wait as i64)),
        tries: Some(ctx.tries + 1),
        cause: format!("provider: {reason}; again in {}", human_ms(wait)),
        ..Change::default()
    }
}

fn human_ms(ms: u64) -> String {
    if ms >= 1000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

/// After sending a refund.
pub fn after_submit(outcome: &Outcome, ctx: &Context) -> Decision {
    match outcome {
        Outcome::Succeeded { .. } => Decision {
            change: succeeded(outcome, "provider: refund succeeded").unwrap_or_default(),
            reachable: Some(true),
        },
        Outcome::FailedFinal { code, message } => Decision {
            change: failed(
                code,
                message,
                outcome,
                &format!("provider: refused ({code})"),
            ),
            // Refusals made locally, before anything was sent, prove nothing about the cloud.
            reachable: outcome.refused_locally().is_none().then_some(true),
        },
        Outcome::NeedsNewRequestId { code, message } => Decision {
            change: failed(
                code,
                message,
                outcome,
                &format!("provider: refused ({code}); a retry needs a new refundRequestId"),
            ),
            reachable: Some(true),
        },
        Outcome::InProgress { refund_id } if ctx.provider.supports_inquiry => Decision {
            change: Change {
                state: Some(RefundState::Processing),
                attempt: Some(AttemptStatus::Processing),
                outcome: Some(outcome.to_string()),
                next_action_ms: Some(Some(ctx.now_ms + ctx.retry.first_poll_ms as i64)),
                tries: Some(0),
                provider_refund_id: refund_id.clone(),
                cause: "provider: refund in progress; asking again later".into(),
                ..Change::default()
            },
            reachable: Some(true),
        },
        Outcome::InProgress { refund_id } => Decision {
            change: provider_pending(
                refund_id,
                outcome,
                "provider: refund in progress, and the provider cannot be asked; its report settles it",
            ),
            reachable: Some(true),
        },
        Outcome::AcceptedLater { refund_id } => Decision {
            change: provider_pending(
                refund_id,
                outcome,
                "provider: accepted; it completes the refund later and its report settles it",
            ),
            reachable: Some(true),
        },
        Outcome::RetrySameRequest { reason } => Decision {
            change: again_later(ctx, outcome, reason),
            reachable: Some(false),
        },
        Outcome::OutcomeUnknown { reason } if ctx.provider.idempotent => Decision {
            change: again_later(ctx, outcome, reason),
            reachable: Some(false),
        },
        Outcome::OutcomeUnknown { reason } => Decision {
            change: needs_attention(
                OUTCOME_UNKNOWN,
                "Sent, but no answer came back; check the provider's portal before refunding again",
                Some(outcome),
                &format!(
                    "provider: outcome unknown ({reason}); the provider cannot be asked safely twice"
                ),
            ),
            reachable: Some(false),
        },
    }
}

/// After asking about a refund in progress.
pub fn after_poll(outcome: &Outcome, ctx: &Context) -> Decision {
    let keep_polling = |cause: String, reachable: Option<bool>| {
        let wait = backoff_ms(
            ctx.retry.first_poll_ms,
            ctx.retry.max_poll_ms,
            ctx.tries,
            ctx.jitter,
        );
        Decision {
            change: Change {
                outcome: Some(outcome.to_string()),
                next_action_ms: Some(Some(ctx.now_ms + wait as i64)),
                tries: Some(ctx.tries + 1),
                provider_refund_id: match outcome {
                    Outcome::InProgress { refund_id } => refund_id.clone(),
                    _ => None,
                },
                cause: format!("{cause}; asking again in {}", human_ms(wait)),
                ..Change::default()
            },
            reachable,
        }
    };
    match outcome {
        Outcome::Succeeded { .. } => Decision {
            change: succeeded(outcome, "inquiry: refund succeeded").unwrap_or_default(),
            reachable: Some(true),
        },
        Outcome::FailedFinal { code, message } | Outcome::NeedsNewRequestId { code, message } => {
            Decision {
                change: failed(
                    code,
                    message,
                    outcome,
                    &format!("inquiry: refund failed ({code})"),
                ),
                reachable: Some(true),
            }
        }
        Outcome::InProgress { .. } => keep_polling("inquiry: still in progress".into(), Some(true)),
        Outcome::AcceptedLater { refund_id } => Decision {
            change: provider_pending(
                refund_id,
                outcome,
                "inquiry: accepted; the provider completes it later and its report settles it",
            ),
            reachable: Some(true),
        },
        // A look-up that fails says nothing about the cloud for sending refunds: it
        // neither marks it unreachable nor holds other refunds back.
        Outcome::RetrySameRequest { reason } | Outcome::OutcomeUnknown { reason } => {
            keep_polling(format!("inquiry: no answer ({reason})"), None)
        }
    }
}

/// For a refund found with an attempt that may have been sent but has no recorded
/// outcome (the bridge stopped mid-call): `None` to send the same request again
/// (idempotent providers), or the change that hands it to a person.
pub fn in_doubt(provider: ProviderCapabilities) -> Option<Change> {
    (!provider.idempotent).then(|| {
        needs_attention(
            OUTCOME_UNKNOWN,
            "The bridge stopped while this refund was being sent; check the provider's portal before refunding again",
            None,
            "restart: the request may have been sent and no outcome was recorded",
        )
    })
}

/// What a verified notifyRefund does to a refund.
#[derive(Clone, Debug)]
pub enum NotificationEffect {
    /// Settles an open refund it agrees with.
    Settle(Change),
    /// Contradicts an open refund: it goes to NEEDS_ATTENTION, both versions recorded.
    Conflict(Change),
    /// Contradicts a settled refund, which keeps its state; the disagreement is
    /// recorded in its history with this cause.
    Disagrees(String),
    /// Tells a settled refund the amount its provider's answer did not (a whole-payment
    /// refund), with a cause for the history.
    Learn(Amount, String),
    /// Nothing to do.
    Nothing,
}

/// What a notification says about a refund, checked against what the ledger holds:
/// it never overwrites what it contradicts (another refundId, another amount, or
/// another final state).
pub fn after_notification(note: &RefundNotification, refund: &RefundRecord) -> NotificationEffect {
    let said = match &note.outcome {
        Outcome::Succeeded { .. } => RefundState::Succeeded,
        Outcome::FailedFinal { .. } => RefundState::Failed,
        _ => return NotificationEffect::Nothing,
    };
    let mut disagreements = Vec::new();
    if let Some(known) = &refund.provider_refund_id
        && !note.refund_id.is_empty()
        && *known != note.refund_id
    {
        disagreements.push(format!(
            "refundId: ledger {known}, notification {}",
            note.refund_id
        ));
    }
    if let Some(stated) = note.amount
        && said == RefundState::Succeeded
        && let Some(known) = refund.refunded.or(refund.amount)
        && known != stated
    {
        disagreements.push(format!("amount: ledger {known}, notification {stated}"));
    }
    if refund.state.is_final() && refund.state != said {
        disagreements.push(format!(
            "state: ledger {}, notification {said} ({})",
            refund.state, note.refund_status
        ));
    }
    if !disagreements.is_empty() {
        let both = disagreements.join("; ");
        if refund.state.is_final() {
            return NotificationEffect::Disagrees(format!(
                "notifyRefund contradicts the ledger, which is kept: {both}"
            ));
        }
        return NotificationEffect::Conflict(needs_attention(
            NOTIFY_CONFLICT,
            "A signed notification from the provider contradicts this refund's record; check the provider's portal",
            Some(&note.outcome),
            &format!("notifyRefund contradicts the ledger: {both}"),
        ));
    }
    if refund.state.is_final() {
        return match note.amount {
            Some(amount) if refund.state == RefundState::Succeeded && refund.refunded.is_none() => {
                NotificationEffect::Learn(
                    amount,
                    format!("notifyRefund: the provider refunded {amount}"),
                )
            }
            _ => NotificationEffect::Nothing,
        };
    }
    let mut change = match &note.outcome {
        Outcome::FailedFinal { code, message } => failed(
            code,
            message,
            &note.outcome,
            &format!("notifyRefund: refund failed ({code})"),
        ),
        _ => match succeeded(&note.outcome, "notifyRefund: refund succeeded") {
            Some(change) => change,
            None => return NotificationEffect::Nothing,
        },
    };
    if change.provider_refund_id.is_none() && !note.refund_id.is_empty() {
        change.provider_refund_id = Some(note.refund_id.clone());
    }
    if change.refunded.is_none() {
        change.refunded = note.amount;
    }
    NotificationEffect::Settle(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(
        state: RefundState,
        idempotent: bool,
        supports_inquiry: bool,
        settings: &RetrySettings,
    ) -> Context<'_> {
        Context {
            state,
            tries: 0,
            now_ms: 1_000_000,
            jitter: 0.5,
            retry: settings,
            provider: ProviderCapabilities {
                idempotent,
                supports_inquiry,
            },
        }
    }

    fn ok() -> Outcome {
        Outcome::Succeeded {
            refund_id: "X1".into(),
            refund_time: jiff::Timestamp::UNIX_EPOCH,
            amount: None,
            code: None,
            message: None,
        }
    }

    #[test]
    fn backoff_grows_jitters_and_caps() {
        assert_eq!(backoff_ms(1000, 60_000, 0, 0.0), 500);
        assert_eq!(backoff_ms(1000, 60_000, 0, 1.0), 1000);
        assert_eq!(backoff_ms(1000, 60_000, 3, 1.0), 8000);
        assert_eq!(backoff_ms(1000, 60_000, 10, 1.0), 60_000);
        assert_eq!(backoff_ms(1000, 60_000, 200, 0.0), 30_000);
        for tries in 0..40 {
            let wait = backoff_ms(1000, 60_000, tries, 0.7);
            assert!((500..=60_000).contains(&wait));
        }
    }

    /// Every outcome class, for each kind of provider, after a submit: the state it
    /// leads to and whether the cloud counts as reachable.
    #[test]
    fn submit_outcomes_row_by_row() {
        use RefundState::*;
        let s = RetrySettings::default();
        let unknown = Outcome::OutcomeUnknown {
            reason: "timeout".into(),
        };
        let retry = Outcome::RetrySameRequest {
            reason: "connect refused".into(),
        };
        let rows: Vec<(Outcome, bool, bool, RefundState, Option<bool>)> = vec![
            (ok(), true, true, Succeeded, Some(true)),
            (ok(), false, false, Succeeded, Some(true)),
            (
                Outcome::FailedFinal {
                    code: "ORDER_NOT_EXIST".into(),
                    message: "m".into(),
                },
                true,
                true,
                Failed,
                Some(true),
            ),
            (
                Outcome::FailedFinal {
                    code: "POSBRIDGE_AMOUNT_REQUIRED".into(),
                    message: "m".into(),
                },
                false,
                false,
                Failed,
                None,
            ),
            (
                Outcome::NeedsNewRequestId {
                    code: "MERCHANT_BALANCE_NOT_ENOUGH".into(),
                    message: "m".into(),
                },
                true,
                true,
                Failed,
                Some(true),
            ),
            (
                Outcome::InProgress {
                    refund_id: Some("X".into()),
                },
                true,
                true,
                Processing,
                Some(true),
            ),
            (
                Outcome::InProgress { refund_id: None },
                false,
                false,
                ProviderPending,
                Some(true),
            ),
            (
                Outcome::AcceptedLater {
                    refund_id: Some("R".into()),
                },
                false,
                false,
                ProviderPending,
                Some(true),
            ),
            (retry.clone(), true, true, Queued, Some(false)),
            (retry, false, false, Queued, Some(false)),
            (unknown.clone(), true, true, Queued, Some(false)),
            (unknown, false, false, NeedsAttention, Some(false)),
        ];
        for (outcome, idempotent, inquiry, state, reachable) in rows {
            let d = after_submit(&outcome, &ctx(Accepted, idempotent, inquiry, &s));
            assert_eq!(d.change.state, Some(state), "{outcome}");
            assert_eq!(d.reachable, reachable, "{outcome}");
            let waits_for_nothing = state.is_final() || state == ProviderPending;
            assert_eq!(
                d.change.next_action_ms == Some(None),
                waits_for_nothing,
                "{outcome}"
            );
        }
    }

    #[test]
    fn retries_keep_the_request_id_and_back_off() {
        let s = RetrySettings::default();
        let mut c = ctx(RefundState::Queued, true, true, &s);
        c.tries = 4;
        let d = after_submit(
            &Outcome::RetrySameRequest {
                reason: "503".into(),
            },
            &c,
        );
        assert_eq!(d.change.attempt, Some(AttemptStatus::Retry));
        assert_eq!(d.change.tries, Some(5));
        let next = d.change.next_action_ms.flatten().unwrap();
        assert!(
            next > c.now_ms + 8_000 && next <= c.now_ms + 16_000,
            "{next}"
        );
    }

    #[test]
    fn poll_outcomes() {
        let s = RetrySettings::default();
        let c = ctx(RefundState::Processing, true, true, &s);
        assert_eq!(
            after_poll(&ok(), &c).change.state,
            Some(RefundState::Succeeded)
        );
        let still = after_poll(&Outcome::InProgress { refund_id: None }, &c);
        assert_eq!(still.change.state, None, "stays PROCESSING");
        assert!(still.change.next_action_ms.flatten().is_some());
        let lost = after_poll(&Outcome::OutcomeUnknown { reason: "t".into() }, &c);
        assert_eq!(lost.change.state, None);
        // A failed look-up neither marks the cloud unreachable nor holds others back.
        assert_eq!(lost.reachable, None);
        let learned = after_poll(
            &Outcome::InProgress {
                refund_id: Some("R9".into()),
            },
            &c,
        );
        assert_eq!(learned.change.provider_refund_id.as_deref(), Some("R9"));
        let failed = after_poll(
            &Outcome::FailedFinal {
                code: "X".into(),
                message: "m".into(),
            },
            &c,
        );
        assert_eq!(failed.change.state, Some(RefundState::Failed));
    }

    #[test]
    fn doubt_is_resent_only_where_it_is_safe() {
        let idempotent = ProviderCapabilities {
            idempotent: true,
            supports_inquiry: true,
        };
        let not = ProviderCapabilities {
            idempotent: false,
            supports_inquiry: false,
        };
        assert!(in_doubt(idempotent).is_none());
        assert_eq!(
            in_doubt(not).and_then(|c| c.state),
            Some(RefundState::NeedsAttention)
        );
    }

    fn note(outcome: Outcome, refund_id: &str, amount: Option<i64>) -> RefundNotification {
        let usd = crate::money::Currency::parse("USD").unwrap();
        RefundNotification {
            refund_request_id: "Q".into(),
            refund_id: refund_id.into(),
            refund_status: "SUCCESS".into(),
            amount: amount.map(|v| Amount::new(v, usd).unwrap()),
            outcome,
        }
    }

    fn record(state: RefundState, refund_id: Option<&str>, amount: Option<i64>) -> RefundRecord {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = crate::ledger::Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let usd = crate::money::Currency::parse("USD").unwrap();
        let new = crate::ledger::NewRefund {
            terminal_id: "T".into(),
            original_merchant_refund_id: "R".into(),
            payment_id: "P".into(),
            amount: amount.map(|v| Amount::new(v, usd).unwrap()),
            memo: None,
        };
        let policy = crate::ledger::AcceptPolicy {
            provider: "antom".into(),
            queued: false,
            refund_request_id: "Q".into(),
            daily_limit: None,
        };
        let mut refund = match ledger.accept(&new, &policy, 1).unwrap() {
            crate::ledger::Acceptance::Recorded { refund, .. } => refund,
            other => panic!("{other:?}"),
        };
        refund.state = state;
        refund.provider_refund_id = refund_id.map(str::to_owned);
        refund
    }

    #[test]
    fn a_notification_settles_an_open_refund_it_agrees_with() {
        let open = record(RefundState::Processing, Some("X1"), Some(800));
        match after_notification(&note(ok(), "X1", Some(800)), &open) {
            NotificationEffect::Settle(change) => {
                assert_eq!(change.state, Some(RefundState::Succeeded));
                assert_eq!(change.provider_refund_id.as_deref(), Some("X1"));
            }
            other => panic!("{other:?}"),
        }
        // A whole-payment refund learns its amount from the notification.
        let whole = record(RefundState::Processing, None, None);
        match after_notification(&note(ok(), "X1", Some(800)), &whole) {
            NotificationEffect::Settle(change) => {
                assert_eq!(change.refunded.map(|a| a.value), Some(800));
            }
            other => panic!("{other:?}"),
        }
        let settled = record(RefundState::Succeeded, Some("X1"), None);
        assert!(matches!(
            after_notification(&note(ok(), "X1", Some(800)), &settled),
            NotificationEffect::Learn(a, _) if a.value == 800
        ));
        assert!(matches!(
            after_notification(&note(ok(), "X1", None), &settled),
            NotificationEffect::Nothing
        ));
        let unknown = Outcome::OutcomeUnknown { reason: "?".into() };
        assert!(matches!(
            after_notification(&note(unknown, "X1", None), &open),
            NotificationEffect::Nothing
        ));
    }

    /// A signed notification whose refundId or amount disagree with the ledger (seen:
    /// an 8.00 USD refund became SUCCEEDED with 0.01 and a foreign refund id) never
    /// overwrites the refund.
    #[test]
    fn a_notification_never_overwrites_what_it_contradicts() {
        let open = record(RefundState::Processing, Some("X1"), Some(800));
        for contradiction in [note(ok(), "FOREIGN", Some(800)), note(ok(), "X1", Some(1))] {
            match after_notification(&contradiction, &open) {
                NotificationEffect::Conflict(change) => {
                    assert_eq!(change.state, Some(RefundState::NeedsAttention));
                    assert_eq!(
                        change.result.as_ref().map(|r| r.0.as_str()),
                        Some(NOTIFY_CONFLICT)
                    );
                    assert!(change.cause.contains("ledger"), "{}", change.cause);
                    assert!(change.cause.contains("notification"), "{}", change.cause);
                    assert_eq!(change.refunded, None);
                    assert_eq!(change.provider_refund_id, None);
                }
                other => panic!("{other:?}"),
            }
        }
        let failed = Outcome::FailedFinal {
            code: "PROCESS_FAIL".into(),
            message: "no".into(),
        };
        let settled = record(RefundState::Succeeded, Some("X1"), Some(800));
        match after_notification(&note(failed, "X1", None), &settled) {
            NotificationEffect::Disagrees(cause) => {
                assert!(cause.contains("state: ledger SUCCEEDED"), "{cause}");
            }
            other => panic!("{other:?}"),
        }
    }
}
