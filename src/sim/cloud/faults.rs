//! Fault injection: rules that make the simulator misbehave on purpose, at run time.
//!
//! A rule names a fault, which calls it applies to, how many times (or until
//! cleared), and whether the refund is carried out before the fault strikes
//! (`after_execute`: the money moved but the answer is lost — the case that makes
//! "exactly once" hard). Rules are matched in the order they were added; each match
//! uses up one of its times. Refusing connections altogether is not a rule but the
//! simulator's down switch, because it happens before any request is read.

use serde::{Deserialize, Serialize};

/// What goes wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer after a delay.
    Slow {
        /// The delay.
        ms: u64,
    },
    /// Never answer (until the simulator stops or goes down).
    Hang,
    /// Close the connection without answering.
    DropConnection,
    /// Answer with this HTTP status and a short text body.
    HttpStatus {
        /// The status.
        status: u16,
    },
    /// Antom: answer this `result` instead of doing anything.
    AntomResult {
        /// `S`, `F` or `U`.
        status: String,
        /// The result code (prefixed or not, as given).
        code: String,
        /// The message.
        #[serde(default)]
        message: String,
    },
    /// OTT Pay: answer this error envelope instead of doing anything.
    OttpayError {
        /// The numeric code.
        code: i64,
        /// The message.
        #[serde(default)]
        message: String,
    },
    /// Antom: sign the answer wrongly.
    BadSignature,
    /// Antom: send the answer without a signature.
    Unsigned,
    /// Carry the call out, and answer in another shape the provider documents.
    Variant {
        /// Which shape.
        variant: Variant,
    },
}

/// Other documented shapes of the same answer: what a client must read as the same
/// outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum Variant {
    /// A success answered with this 2xx status instead of the usual one
    /// (PaymentOptions documents 201, and its HTTP table 200 too).
    SuccessStatus {
        /// The status, 200..=299.
        status: u16,
    },
    /// PaymentOptions: a success carrying a success code other than `INFO0002`.
    SuccessCode {
        /// The code.
        code: String,
    },
    /// OTT Pay: an accepted refund spelled `processing` (the documented sample's
    /// value) rather than `init`.
    Processing,
    /// Antom: an in-process answer without its `refundId`.
    NoRefundId,
}

impl Fault {
    /// Whether the fault leaves a caller not knowing whether the refund was made: the
    /// answer is lost or proves nothing. Faults that say the request was not
    /// processed (429, 503, a "call again" code, a refused token) and documented
    /// variants are not such faults.
    pub fn leaves_outcome_unknown(&self, ottpay: bool) -> bool {
        match self {
            Fault::Hang | Fault::DropConnection | Fault::BadSignature | Fault::Unsigned => true,
            Fault::HttpStatus { status } => !matches!(status, 401 | 403 | 408 | 429 | 503),
            Fault::OttpayError { code, .. } => {
                ottpay
                    && crate::provider::classify::ottpay_code(*code)
                        == crate::provider::classify::CodeClass::OutcomeUnknown
            }
            Fault::Slow { .. } | Fault::AntomResult { .. } | Fault::Variant { .. } => false,
        }
    }
}

/// A fault the simulator applied to a call, for a test to account for what it saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Struck {
    /// When.
    pub at: jiff::Timestamp,
    /// Which API.
    pub target: FaultTarget,
    /// The payment the call was about, when it names one.
    pub payment_id: String,
    /// The fault.
    pub fault: Fault,
    /// Whether the refund was carried out before it struck.
    pub after_execute: bool,
}

/// Which calls a rule applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// Every provider API call (not the admin API).
    #[default]
    Any,
    /// Antom refund.
    AntomRefund,
    /// Antom inquiryRefund.
    AntomInquiry,
    /// OTT Pay refund.
    OttpayRefund,
    /// OTT Pay token.
    OttpayToken,
    /// PaymentOptions refund.
    PaymentoptionsRefund,
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// The fault.
    pub fault: Fault,
    /// Which calls.
    #[serde(default)]
    pub target: FaultTarget,
    /// How many calls it strikes; absent means until cleared.
    #[serde(default)]
    pub times: Option<u32>,
    /// Carry the refund out first, then strike (for slow, hang, drop, HTTP status).
    #[serde(default)]
    pub after_execute: bool,
}

impl FaultRule {
    /// A rule for the next call of `target`.
    pub fn once(target: FaultTarget, fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            target,
            times: Some(1),
            after_execute: false,
        }
    }

    /// The same rule, striking after the refund was carried out.
    pub fn after_execute(mut self) -> FaultRule {
        self.after_execute = true;
        self
    }

    /// The same rule, striking `n` times.
    pub fn times(mut self, n: u32) -> FaultRule {
        self.times = Some(n);
        self
    }
}

/// The active rules.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<FaultRule>,
}

impl Faults {
    /// Adds a rule after the others.
    pub fn push(&mut self, rule: FaultRule) {
        if rule.times != Some(0) {
            self.rules.push(rule);
        }
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The active rules.
    pub fn rules(&self) -> &[FaultRule] {
        &self.rules
    }

    /// Takes the first rule that applies to a call, using up one of its times.
    pub fn take(&mut self, target: FaultTarget) -> Option<FaultRule> {
        let index = self
            .rules
            .iter()
            .position(|r| r.target == FaultTarget::Any || r.target == target)?;
        let rule = self.rules.get_mut(index)?;
        let taken = rule.clone();
        match &mut rule.times {
            Some(n) if *n <= 1 => {
                self.rules.remove(index);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_used_up_in_order() {
        let mut f = Faults::default();
        f.push(FaultRule::once(FaultTarget::AntomRefund, Fault::Hang).times(2));
        f.push(FaultRule::once(FaultTarget::Any, Fault::DropConnection));
        assert_eq!(
            f.take(FaultTarget::OttpayRefund).unwrap().fault,
            Fault::DropConnection
        );
        assert_eq!(f.take(FaultTarget::OttpayRefund), None);
        assert_eq!(f.take(FaultTarget::AntomRefund).unwrap().fault, Fault::Hang);
        assert_eq!(f.take(FaultTarget::AntomRefund).unwrap().fault, Fault::Hang);
        assert_eq!(f.take(FaultTarget::AntomRefund), None);
        f.push(FaultRule {
            times: None,
            ..FaultRule::once(FaultTarget::Any, Fault::HttpStatus { status: 503 })
        });
        for _ in 0..3 {
            assert!(f.take(FaultTarget::AntomInquiry).is_some());
        }
        f.clear();
        assert!(f.rules().is_empty());
    }

    #[test]
    fn json_shape() {
        let rule: FaultRule = serde_json::from_str(
            r#"{"fault":{"kind":"antom_result","status":"U","code":"UNKNOWN_EXCEPTION"},"target":"antom_refund","times":1}"#,
        )
        .unwrap();
        assert_eq!(rule.target, FaultTarget::AntomRefund);
        assert!(!rule.after_execute);
        assert!(serde_json::from_str::<FaultRule>(r#"{"fault":{"kind":"melt"}}"#).is_err());
    }
}
