//! Drawing a plan from a seed: the refunds the terminals start, the trouble on their
//! lines, the bridge's power cuts and the cloud's bad moments, each drawn in turn from
//! one generator so that a seed always draws the same plan.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{Action, Intensity, Plan, ProviderKind, Step};
use crate::message::{DisplayCharset, DisplayInfo};
use crate::money::{Amount, Currency};
use crate::sim::cloud::books::{AsyncResult, PaymentSeed, RefundMode};
use crate::sim::cloud::faults::{Fault, FaultRule, FaultTarget, Variant};
use crate::sim::line::LineFaults;

/// What one payment has left for the plan to refund.
struct OpenPayment {
    id: String,
    refunds: u32,
}

const PAYMENT_VALUE: i64 = 10_000;
/// Refunds of one payment, at most 2,500 each, never exceed what was paid.
const REFUNDS_PER_PAYMENT: u32 = 3;

impl Plan {
    /// Draws the plan for `seed`.
    pub fn draw(seed: u64, provider: ProviderKind, intensity: &Intensity) -> Plan {
        let mut rng = StdRng::seed_from_u64(seed);
        let terminals = intensity.terminals.max(1);
        let displays = (0..terminals).map(|_| display(&mut rng)).collect();
        let antom_v1 = provider == ProviderKind::Antom && rng.random_bool(0.34);
        let notify = provider == ProviderKind::Antom && rng.random_bool(0.5);
        let limit = rng.random_bool(0.25).then_some(2300);
        let end = intensity.duration;

        let (payments, mut steps) = draw_refunds(&mut rng, seed, provider, intensity, terminals);
        draw_line_trouble(&mut rng, &mut steps, intensity, terminals);
        for (at, length) in spells(&mut rng, end, intensity.kill_every, 0..1500) {
            spell(&mut steps, at, length, Action::Kill, Action::Start);
        }
        draw_cloud_trouble(&mut rng, &mut steps, provider, intensity);

        steps.sort_by_key(|s| s.at);
        Plan {
            seed,
            provider,
            terminals,
            displays,
            antom_v1,
            notify,
            limit,
            payments,
            steps,
        }
    }
}

/// The refunds, repeats and inquiries of the whole run, and the payments the cloud
/// must know for them, at about `refunds_per_second`.
fn draw_refunds(
    rng: &mut StdRng,
    seed: u64,
    provider: ProviderKind,
    intensity: &Intensity,
    terminals: usize,
) -> (Vec<PaymentSeed>, Vec<Step>) {
    let mut book = RefundBook {
        seed,
        provider,
        n: 0,
        open: Vec::new(),
        made: Vec::new(),
        payments: Vec::new(),
        steps: Vec::new(),
    };
    let mean_ms = 1000.0 / intensity.refunds_per_second.max(0.1);
    let mut t = 0.0f64;
    loop {
        t += rng.random_range(0.2 * mean_ms..1.8 * mean_ms);
        let at = Duration::from_micros((t * 1000.0) as u64);
        if at >= intensity.duration {
            break;
        }
        let terminal = rng.random_range(0..terminals);
        let roll = rng.random_range(0..100u32);
        let action = match book.again(rng, roll) {
            Some(action) => action,
            None => match book.fresh(rng, terminal, roll) {
                Some(action) => action,
                None => continue,
            },
        };
        book.steps.push(Step { at, action });
    }
    (book.payments, book.steps)
}

/// What the refunds drawn so far have made: the payments and what is left of them,
/// and the refunds that can be repeated or asked about.
struct RefundBook {
    seed: u64,
    provider: ProviderKind,
    /// Refunds started so far; numbers their ids.
    n: u64,
    open: Vec<OpenPayment>,
    /// Terminal, id and amount of each refund started.
    made: Vec<(usize, String, Option<i64>)>,
    payments: Vec<PaymentSeed>,
    steps: Vec<Step>,
}

impl RefundBook {
    /// For a low `roll`, an earlier refund sent again or asked about.
    fn again(&self, rng: &mut StdRng, roll: u32) -> Option<Action> {
        if roll < 6 && !self.made.is_empty() {
            let (terminal, id, amount) = self.made[rng.random_range(0..self.made.len())].clone();
            // Only a refund with an amount is repeated with another one: a whole
            // refund refused by a limit would be recorded under its new amount.
            return Some(if roll < 1 && amount.is_some() {
                Action::RepeatChanged { terminal, id }
            } else {
                Action::Repeat { terminal, id }
            });
        }
        if roll < 10 && !self.made.is_empty() {
            let (terminal, id, _) = self.made[rng.random_range(0..self.made.len())].clone();
            return Some(Action::Inquire { terminal, id });
        }
        None
    }

    /// A new refund on `terminal`, of a payment `roll` picks; `None` when the
    /// payment could not be made.
    fn fresh(&mut self, rng: &mut StdRng, terminal: usize, roll: u32) -> Option<Action> {
        self.n += 1;
        let id = format!("R{}-{}", self.seed, self.n);
        let (payment, amount) = self.payment(rng, roll)?;
        self.made.push((terminal, id.clone(), amount));
        Some(Action::Refund {
            terminal,
            id,
            payment,
            amount,
        })
    }

    /// The payment a new refund is of, and its amount (`None`: the whole payment).
    fn payment(&mut self, rng: &mut StdRng, roll: u32) -> Option<(String, Option<i64>)> {
        let (seed, n) = (self.seed, self.n);
        if roll < 13 {
            // A payment the cloud never took: refused, nothing moves.
            return Some((
                format!("NOPE-{seed}-{n}"),
                Some(rng.random_range(100..=2500)),
            ));
        }
        if roll < 30 && !self.open.is_empty() {
            let at = rng.random_range(0..self.open.len());
            let p = &mut self.open[at];
            p.refunds += 1;
            let id = p.id.clone();
            if p.refunds >= REFUNDS_PER_PAYMENT {
                self.open.swap_remove(at);
            }
            return Some((id, Some(rng.random_range(100..=2500))));
        }
        let pid = format!("P{seed}-{n}");
        let value = Currency::parse("USD")
            .ok()
            .and_then(|c| Amount::new(PAYMENT_VALUE, c).ok())?;
        let mut seed_payment = PaymentSeed::new(pid.clone(), value);
        // Antom finishes some refunds later and can be asked; OTT Pay too, and
        // cannot be; PaymentOptions documents none.
        if self.provider != ProviderKind::PaymentOptions && rng.random_bool(0.3) {
            seed_payment.mode = RefundMode::Async;
            if rng.random_bool(0.2) {
                seed_payment.async_result = AsyncResult::Failure;
            }
        }
        self.payments.push(seed_payment);
        if roll < 36 {
            return Some((pid, None));
        }
        self.open.push(OpenPayment {
            id: pid.clone(),
            refunds: 1,
        });
        Some((pid, Some(rng.random_range(100..=2500))))
    }
}

/// Noisy spells and unplugs, per terminal.
fn draw_line_trouble(
    rng: &mut StdRng,
    steps: &mut Vec<Step>,
    intensity: &Intensity,
    terminals: usize,
) {
    let end = intensity.duration;
    for terminal in 0..terminals {
        for (at, length) in spells(rng, end, intensity.noise_every, 300..3000) {
            let faults = line_faults(rng);
            spell(
                steps,
                at,
                length,
                Action::Noise { terminal, faults },
                Action::Quiet { terminal },
            );
        }
        for (at, length) in spells(rng, end, intensity.unplug_every, 200..2500) {
            spell(
                steps,
                at,
                length,
                Action::Unplug { terminal },
                Action::Replug { terminal },
            );
        }
    }
}

/// How a noisy spell damages a line, both ways.
fn line_faults(rng: &mut StdRng) -> LineFaults {
    LineFaults {
        drop: rng.random_range(0.0..0.15),
        corrupt: rng.random_range(0.0..0.1),
        slip: rng.random_range(0.0..0.1),
        duplicate: rng.random_range(0.0..0.1),
        garbage: rng.random_range(0.0..0.1),
        max_delay: Duration::from_millis(rng.random_range(0..20)),
        max_consecutive: 0,
    }
}

/// The cloud's bad moments: outages that never overlap, token revocations on OTT
/// Pay, and faults of single requests.
fn draw_cloud_trouble(
    rng: &mut StdRng,
    steps: &mut Vec<Step>,
    provider: ProviderKind,
    intensity: &Intensity,
) {
    let mut down_until = Duration::ZERO;
    for (at, _) in spells(rng, intensity.duration, intensity.cloud_fault_every, 0..1) {
        let roll = rng.random_range(0..100u32);
        if roll < 15 {
            if at < down_until {
                continue;
            }
            let length = Duration::from_millis(rng.random_range(300..4000));
            down_until = at + length;
            spell(steps, at, length, Action::CloudDown, Action::CloudUp);
            continue;
        }
        if provider == ProviderKind::OttPay && roll < 20 {
            steps.push(Step {
                at,
                action: Action::RevokeTokens,
            });
            continue;
        }
        let rule = cloud_fault(rng, provider, roll);
        steps.push(Step {
            at,
            action: Action::CloudFault(rule),
        });
    }
}

/// A spell: `begin` at `at`, `end` when it is over.
fn spell(steps: &mut Vec<Step>, at: Duration, length: Duration, begin: Action, end: Action) {
    steps.push(Step { at, action: begin });
    steps.push(Step {
        at: at + length,
        action: end,
    });
}

/// Start times and lengths of spells that never overlap: gaps of about `every`,
/// lengths in `length_ms`.
fn spells(
    rng: &mut StdRng,
    end: Duration,
    every: Duration,
    length_ms: std::ops::Range<u64>,
) -> Vec<(Duration, Duration)> {
    let mut out = Vec::new();
    let every_ms = every.as_millis() as u64;
    if every_ms == 0 {
        return out;
    }
    let mut t = 0u64;
    loop {
        t += rng.random_range(every_ms / 3..=every_ms * 5 / 3);
        let at = Duration::from_millis(t);
        if at >= end {
            return out;
        }
        let length = rng.random_range(length_ms.clone());
        out.push((at, Duration::from_millis(length)));
        t += length;
    }
}

/// A terminal's display: a size from the common ones, sometimes ASCII only, in a
/// language drawn from the catalogues, with its ambiguous width declared.
fn display(rng: &mut StdRng) -> DisplayInfo {
    const SIZES: [(u16, u16); 5] = [(16, 4), (20, 4), (24, 2), (32, 8), (40, 4)];
    const LANGUAGES: [&str; 10] = [
        "en", "zh-Hans", "zh-Hant", "ja", "ko", "th", "ms", "id", "fr-CA", "en",
    ];
    let (cols, rows) = SIZES[rng.random_range(0..SIZES.len())];
    let mut info = DisplayInfo::size(cols, rows);
    if rng.random_bool(0.15) {
        info.charset = Some(DisplayCharset::Ascii);
    }
    info.languages = vec![LANGUAGES[rng.random_range(0..LANGUAGES.len())].to_string()];
    info.ambiguous_width = Some(if rng.random_bool(0.5) { 2 } else { 1 });
    info
}

/// Another documented shape of a successful answer, for the provider.
fn variant(rng: &mut StdRng, provider: ProviderKind) -> Variant {
    match (provider, rng.random_range(0..3u32)) {
        (_, 0) => Variant::SuccessStatus {
            status: [200, 201, 202][rng.random_range(0..3usize)],
        },
        (ProviderKind::PaymentOptions, _) => Variant::SuccessCode {
            code: "INFO0099".into(),
        },
        (ProviderKind::OttPay, _) => Variant::Processing,
        (ProviderKind::Antom, _) => Variant::NoRefundId,
    }
}

/// A fault of single requests, of the kind `roll` picks.
fn cloud_fault(rng: &mut StdRng, provider: ProviderKind, roll: u32) -> FaultRule {
    let refund = refund_target(provider);
    let times = rng.random_range(1..=3);
    match roll {
        20..=34 => FaultRule::once(
            FaultTarget::Any,
            Fault::Slow {
                ms: rng.random_range(50..1500),
            },
        )
        .times(times),
        35..=44 => FaultRule::once(
            FaultTarget::Any,
            Fault::HttpStatus {
                status: [500, 502, 503, 429][rng.random_range(0..4usize)],
            },
        )
        .times(times),
        45..=54 => FaultRule::once(refund, Fault::DropConnection),
        55..=64 => FaultRule::once(refund, Fault::DropConnection).after_execute(),
        65..=69 => FaultRule::once(FaultTarget::Any, Fault::Hang),
        70..=79 => FaultRule::once(
            refund,
            Fault::Variant {
                variant: variant(rng, provider),
            },
        )
        .times(times),
        _ => match provider {
            ProviderKind::Antom => match roll % 3 {
                0 => FaultRule::once(
                    refund,
                    Fault::AntomResult {
                        status: "U".into(),
                        code: "UNKNOWN_EXCEPTION".into(),
                        message: "simulated".into(),
                    },
                )
                .times(times),
                1 => FaultRule::once(FaultTarget::AntomInquiry, Fault::BadSignature),
                _ => FaultRule::once(refund, Fault::Unsigned),
            },
            ProviderKind::OttPay => FaultRule::once(
                refund,
                Fault::OttpayError {
                    code: if roll.is_multiple_of(2) { 10003 } else { 10200 },
                    message: "simulated".into(),
                },
            ),
            ProviderKind::PaymentOptions => FaultRule::once(
                refund,
                Fault::HttpStatus {
                    status: if roll.is_multiple_of(2) { 503 } else { 500 },
                },
            ),
        },
    }
}

/// Where a fault of the provider's refund call strikes.
fn refund_target(provider: ProviderKind) -> FaultTarget {
    match provider {
        ProviderKind::Antom => FaultTarget::AntomRefund,
        ProviderKind::OttPay => FaultTarget::OttpayRefund,
        ProviderKind::PaymentOptions => FaultTarget::PaymentoptionsRefund,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_draws_the_same_plan() {
        let intensity = Intensity::default();
        let a = Plan::draw(7, ProviderKind::Antom, &intensity);
        let b = Plan::draw(7, ProviderKind::Antom, &intensity);
        assert_eq!(a.steps, b.steps);
        assert_eq!(a.payments, b.payments);
        let c = Plan::draw(8, ProviderKind::Antom, &intensity);
        assert_ne!(a.steps, c.steps);
    }

    #[test]
    fn a_plan_has_every_kind_of_trouble_and_never_overdraws_a_payment() {
        let intensity = Intensity {
            duration: Duration::from_secs(60),
            ..Intensity::default()
        };
        let plan = Plan::draw(3, ProviderKind::Antom, &intensity);
        let t = plan.tally();
        assert!(t.refunds > 100 && t.kills > 3 && t.unplugs > 3, "{t:?}");
        assert!(t.noisy_spells > 3 && t.cloud_outages > 0 && t.cloud_faults > 10);
        assert!(plan.steps.windows(2).all(|w| w[0].at <= w[1].at));
        let mut asked: std::collections::HashMap<&str, i64> = Default::default();
        for step in &plan.steps {
            if let Action::Refund {
                payment, amount, ..
            } = &step.action
            {
                *asked.entry(payment).or_default() += amount.unwrap_or(PAYMENT_VALUE);
            }
        }
        assert!(asked.values().all(|&v| v <= PAYMENT_VALUE));
    }
}
