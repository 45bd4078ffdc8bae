//! The campaign's schedule: everything that will happen in one run, drawn from a seed
//! before the run starts, so the same seed replays the same schedule.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::message::{DisplayCharset, DisplayInfo};
use crate::money::{Amount, Currency};
use crate::sim::cloud::faults::{Fault, FaultRule, FaultTarget, Variant};
use crate::sim::cloud::ledger::{AsyncResult, PaymentSeed, RefundMode};
use crate::sim::line::LineFaults;

/// The provider a run sends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// Idempotent by `refundRequestId`: an unknown outcome is sent again.
    Antom,
    /// Not idempotent: an unknown outcome ends in NEEDS_ATTENTION.
    OttPay,
    /// Not idempotent either.
    PaymentOptions,
}

impl ProviderKind {
    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Antom => "antom",
            ProviderKind::OttPay => "ottpay",
            ProviderKind::PaymentOptions => "paymentoptions",
        }
    }

    /// Parses a configuration name.
    pub fn parse(text: &str) -> Option<ProviderKind> {
        match text {
            "antom" => Some(ProviderKind::Antom),
            "ottpay" => Some(ProviderKind::OttPay),
            "paymentoptions" => Some(ProviderKind::PaymentOptions),
            _ => None,
        }
    }

    /// The provider a seed runs against when none is chosen: Antom half the time.
    pub fn for_seed(seed: u64) -> ProviderKind {
        match seed % 4 {
            0 | 1 => ProviderKind::Antom,
            2 => ProviderKind::PaymentOptions,
            _ => ProviderKind::OttPay,
        }
    }

    /// Whether an unknown outcome may be resolved by sending the same request again.
    pub fn idempotent(self) -> bool {
        matches!(self, ProviderKind::Antom)
    }

    fn refund_target(self) -> FaultTarget {
        match self {
            ProviderKind::Antom => FaultTarget::AntomRefund,
            ProviderKind::OttPay => FaultTarget::OttpayRefund,
            ProviderKind::PaymentOptions => FaultTarget::PaymentoptionsRefund,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How busy a run is.
#[derive(Clone, Debug)]
pub struct Intensity {
    /// How long faults and refunds keep coming.
    pub duration: Duration,
    /// Emulated terminals on the bridge.
    pub terminals: usize,
    /// Refunds started per second, over all terminals.
    pub refunds_per_second: f64,
    /// Mean time between SIGKILLs of the bridge; zero for none.
    pub kill_every: Duration,
    /// Mean time between unplugs of one terminal; zero for none.
    pub unplug_every: Duration,
    /// Mean time between noisy spells on one terminal's line; zero for none.
    pub noise_every: Duration,
    /// Mean time between cloud faults; zero for none.
    pub cloud_fault_every: Duration,
}

impl Default for Intensity {
    fn default() -> Intensity {
        Intensity {
            duration: Duration::from_secs(20),
            terminals: 2,
            refunds_per_second: 6.0,
            kill_every: Duration::from_secs(6),
            unplug_every: Duration::from_secs(10),
            noise_every: Duration::from_secs(5),
            cloud_fault_every: Duration::from_millis(1500),
        }
    }
}

/// One thing that happens.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A terminal starts a refund.
    Refund {
        /// Which terminal (index).
        terminal: usize,
        /// `originalMerchantRefundId`.
        id: String,
        /// The payment.
        payment: String,
        /// Minor units; `None` refunds the whole payment.
        amount: Option<i64>,
    },
    /// A terminal sends an earlier REFUND again, unchanged.
    Repeat {
        /// Which terminal.
        terminal: usize,
        /// The refund.
        id: String,
    },
    /// A terminal sends an earlier refund's id with another amount: refused with
    /// DUPLICATE_MISMATCH, and the refund recorded first goes on unchanged.
    RepeatChanged {
        /// Which terminal.
        terminal: usize,
        /// The refund.
        id: String,
    },
    /// A terminal asks about a refund.
    Inquire {
        /// Which terminal.
        terminal: usize,
        /// The refund.
        id: String,
    },
    /// A terminal's line turns noisy, both ways.
    Noise {
        /// Which terminal.
        terminal: usize,
        /// How.
        faults: LineFaults,
    },
    /// A terminal's line turns clean.
    Quiet {
        /// Which terminal.
        terminal: usize,
    },
    /// A terminal's device disappears.
    Unplug {
        /// Which terminal.
        terminal: usize,
    },
    /// It comes back under the same name.
    Replug {
        /// Which terminal.
        terminal: usize,
    },
    /// The cloud refuses connections.
    CloudDown,
    /// The cloud accepts them again.
    CloudUp,
    /// The cloud misbehaves as the rule says.
    CloudFault(FaultRule),
    /// OTT Pay forgets every token it issued.
    RevokeTokens,
    /// The bridge process is SIGKILLed.
    Kill,
    /// The bridge process starts again.
    Start,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Refund {
                terminal,
                id,
                payment,
                amount,
            } => match amount {
                Some(a) => write!(f, "T{terminal} REFUND {id} {payment} {a}"),
                None => write!(f, "T{terminal} REFUND {id} {payment} (whole)"),
            },
            Action::Repeat { terminal, id } => write!(f, "T{terminal} REFUND {id} again"),
            Action::RepeatChanged { terminal, id } => {
                write!(f, "T{terminal} REFUND {id} again, another amount")
            }
            Action::Inquire { terminal, id } => write!(f, "T{terminal} INQUIRY {id}"),
            Action::Noise { terminal, faults } => write!(
                f,
                "T{terminal} line noisy: drop {:.2} corrupt {:.2} slip {:.2} duplicate {:.2} garbage {:.2} delay {:?}",
                faults.drop,
                faults.corrupt,
                faults.slip,
                faults.duplicate,
                faults.garbage,
                faults.max_delay
            ),
            Action::Quiet { terminal } => write!(f, "T{terminal} line clean"),
            Action::Unplug { terminal } => write!(f, "T{terminal} unplugged"),
            Action::Replug { terminal } => write!(f, "T{terminal} plugged back"),
            Action::CloudDown => f.write_str("cloud down"),
            Action::CloudUp => f.write_str("cloud up"),
            Action::CloudFault(rule) => write!(
                f,
                "cloud fault {:?} on {:?} x{}{}",
                rule.fault,
                rule.target,
                rule.times.map_or("∞".to_string(), |t| t.to_string()),
                if rule.after_execute {
                    " after executing"
                } else {
                    ""
                }
            ),
            Action::RevokeTokens => f.write_str("cloud revokes tokens"),
            Action::Kill => f.write_str("bridge SIGKILL"),
            Action::Start => f.write_str("bridge start"),
        }
    }
}

/// An action at a time from the start of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// When.
    pub at: Duration,
    /// What.
    pub action: Action,
}

/// A whole run, drawn from a seed.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The seed it was drawn from.
    pub seed: u64,
    /// The provider.
    pub provider: ProviderKind,
    /// Terminals on the bridge.
    pub terminals: usize,
    /// The display each terminal declares (sizes, languages, character sets).
    pub displays: Vec<DisplayInfo>,
    /// Antom's v1 (AMS) paths rather than v2.
    pub antom_v1: bool,
    /// Antom's notifyRefund receiver on, and the simulator posting to it.
    pub notify: bool,
    /// A per-refund limit in USD minor units, if the run sets one.
    pub limit: Option<i64>,
    /// Payments the simulated cloud knows.
    pub payments: Vec<PaymentSeed>,
    /// Everything that happens, in time order.
    pub steps: Vec<Step>,
}

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
        let mut steps = Vec::new();
        let mut payments = Vec::new();
        let end = intensity.duration;
        let usd = |v: i64| {
            Currency::parse("USD")
                .ok()
                .and_then(|c| Amount::new(v, c).ok())
        };

        // Refunds, repeats and inquiries.
        let mut open: Vec<OpenPayment> = Vec::new();
        let mut made: Vec<(usize, String, Option<i64>)> = Vec::new();
        let mean_ms = 1000.0 / intensity.refunds_per_second.max(0.1);
        let mut t = 0.0f64;
        let mut n = 0u64;
        loop {
            t += rng.random_range(0.2 * mean_ms..1.8 * mean_ms);
            let at = Duration::from_micros((t * 1000.0) as u64);
            if at >= end {
                break;
            }
            let terminal = rng.random_range(0..terminals);
            let roll = rng.random_range(0..100u32);
            if roll < 6 && !made.is_empty() {
                let (terminal, id, amount) = made[rng.random_range(0..made.len())].clone();
                // Only a refund with an amount is repeated with another one: a whole
                // refund refused by a limit would be recorded under its new amount.
                let action = if roll < 1 && amount.is_some() {
                    Action::RepeatChanged { terminal, id }
                } else {
                    Action::Repeat { terminal, id }
                };
                steps.push(Step { at, action });
                continue;
            }
            if roll < 10 && !made.is_empty() {
                let (terminal, id, _) = made[rng.random_range(0..made.len())].clone();
                steps.push(Step {
                    at,
                    action: Action::Inquire { terminal, id },
                });
                continue;
            }
            n += 1;
            let id = format!("R{seed}-{n}");
            let (payment, amount) = if roll < 13 {
                // A payment the cloud never took: refused, nothing moves.
                (
                    format!("NOPE-{seed}-{n}"),
                    Some(rng.random_range(100..=2500)),
                )
            } else if roll < 30 && !open.is_empty() {
                let at = rng.random_range(0..open.len());
                let p = &mut open[at];
                p.refunds += 1;
                let id = p.id.clone();
                if p.refunds >= REFUNDS_PER_PAYMENT {
                    open.swap_remove(at);
                }
                (id, Some(rng.random_range(100..=2500)))
            } else {
                let pid = format!("P{seed}-{n}");
                let Some(value) = usd(PAYMENT_VALUE) else {
                    continue;
                };
                let mut seed_payment = PaymentSeed::new(pid.clone(), value);
                // Antom finishes some refunds later and can be asked; OTT Pay too, and
                // cannot be; PaymentOptions documents none.
                if provider != ProviderKind::PaymentOptions && rng.random_bool(0.3) {
                    seed_payment.mode = RefundMode::Async;
                    if rng.random_bool(0.2) {
                        seed_payment.async_result = AsyncResult::Failure;
                    }
                }
                payments.push(seed_payment);
                if roll < 36 {
                    (pid, None)
                } else {
                    open.push(OpenPayment {
                        id: pid.clone(),
                        refunds: 1,
                    });
                    (pid, Some(rng.random_range(100..=2500)))
                }
            };
            made.push((terminal, id.clone(), amount));
            steps.push(Step {
                at,
                action: Action::Refund {
                    terminal,
                    id,
                    payment,
                    amount,
                },
            });
        }

        // Noisy spells and unplugs, per terminal.
        for terminal in 0..terminals {
            for (at, length) in spells(&mut rng, end, intensity.noise_every, 300..3000) {
                let faults = LineFaults {
                    drop: rng.random_range(0.0..0.15),
                    corrupt: rng.random_range(0.0..0.1),
                    slip: rng.random_range(0.0..0.1),
                    duplicate: rng.random_range(0.0..0.1),
                    garbage: rng.random_range(0.0..0.1),
                    max_delay: Duration::from_millis(rng.random_range(0..20)),
                    max_consecutive: 0,
                };
                spell(
                    &mut steps,
                    at,
                    length,
                    Action::Noise { terminal, faults },
                    Action::Quiet { terminal },
                );
            }
            for (at, length) in spells(&mut rng, end, intensity.unplug_every, 200..2500) {
                spell(
                    &mut steps,
                    at,
                    length,
                    Action::Unplug { terminal },
                    Action::Replug { terminal },
                );
            }
        }

        // The bridge's power cuts.
        for (at, length) in spells(&mut rng, end, intensity.kill_every, 0..1500) {
            spell(&mut steps, at, length, Action::Kill, Action::Start);
        }

        // The cloud's bad moments.
        let mut down_until = Duration::ZERO;
        for (at, _) in spells(&mut rng, end, intensity.cloud_fault_every, 0..1) {
            let roll = rng.random_range(0..100u32);
            if roll < 15 {
                if at < down_until {
                    continue;
                }
                let length = Duration::from_millis(rng.random_range(300..4000));
                down_until = at + length;
                spell(&mut steps, at, length, Action::CloudDown, Action::CloudUp);
                continue;
            }
            if provider == ProviderKind::OttPay && roll < 20 {
                steps.push(Step {
                    at,
                    action: Action::RevokeTokens,
                });
                continue;
            }
            let rule = cloud_fault(&mut rng, provider, roll);
            steps.push(Step {
                at,
                action: Action::CloudFault(rule),
            });
        }

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

    /// How many steps of each kind, for the report.
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for step in &self.steps {
            match step.action {
                Action::Refund { .. } => t.refunds += 1,
                Action::Repeat { .. } | Action::RepeatChanged { .. } => t.repeats += 1,
                Action::Inquire { .. } => t.inquiries += 1,
                Action::Noise { .. } => t.noisy_spells += 1,
                Action::Unplug { .. } => t.unplugs += 1,
                Action::CloudDown => t.cloud_outages += 1,
                Action::CloudFault(_) | Action::RevokeTokens => t.cloud_faults += 1,
                Action::Kill => t.kills += 1,
                Action::Quiet { .. } | Action::Replug { .. } | Action::CloudUp | Action::Start => {}
            }
        }
        t
    }
}

/// Counts of a plan's steps by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// REFUNDs started.
    pub refunds: u32,
    /// REFUNDs sent again unchanged.
    pub repeats: u32,
    /// INQUIRYs.
    pub inquiries: u32,
    /// Noisy spells on a line.
    pub noisy_spells: u32,
    /// Unplugs of a terminal.
    pub unplugs: u32,
    /// Cloud outages.
    pub cloud_outages: u32,
    /// Other cloud faults.
    pub cloud_faults: u32,
    /// SIGKILLs of the bridge.
    pub kills: u32,
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

fn cloud_fault(rng: &mut StdRng, provider: ProviderKind, roll: u32) -> FaultRule {
    let refund = provider.refund_target();
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
