//! The campaign's schedule: everything that will happen in one run, drawn from a seed
//! before the run starts, so the same seed replays the same schedule.
//!
//! This module says what a plan is made of and how its steps read in a report;
//! [`Plan::draw`] (in `draw`) draws one from a seed.

mod draw;

use std::fmt;
use std::time::Duration;

use crate::message::DisplayInfo;
use crate::sim::cloud::books::PaymentSeed;
use crate::sim::cloud::faults::FaultRule;
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

impl Plan {
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
