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
