//! What the cashier reads: display texts per refund state, per result code and per
//! refusal, from a catalogue operators can override in the configuration.
//!
//! Texts are short paragraphs with placeholders — `{amount}`, `{id}`, `{refundId}`,
//! `{reason}`, `{code}`, `{detail}` — fitted to the terminal's declared display by
//! [`crate::message::fit_lines`], so they wrap or are cut but never overflow.

use std::collections::HashMap;

use serde::Deserialize;

use crate::ledger::RefundRecord;
use crate::message::{Display, DisplaySize, ErrorCode, RefundState, Tone, fit_lines};

/// Overrides from `[messages]` in the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessageOverrides {
    /// Per refund state (`SUCCEEDED = ["Refund OK", "{amount}"]`).
    pub states: HashMap<String, Vec<String>>,
    /// The `{reason}` for a result code, without any `DPOS_` prefix
    /// (`MERCHANT_BALANCE_NOT_ENOUGH = "Balance too low"`).
    pub codes: HashMap<String, String>,
    /// Per ERROR code (`LIMIT_EXCEEDED = ["Over the limit", "{detail}"]`).
    pub errors: HashMap<String, Vec<String>>,
}

const PLACEHOLDERS: [&str; 6] = ["amount", "id", "refundId", "reason", "code", "detail"];

impl MessageOverrides {
    /// Checks every key names a state or error code and every placeholder is known.
    pub fn validate(&self) -> Result<(), String> {
        for key in self.states.keys() {
            if !RefundState::ALL.iter().any(|s| s.as_str() == key) {
                return Err(format!(
                    "messages.states.{key}: not a refund state (ACCEPTED, QUEUED, PROCESSING, SUCCEEDED, FAILED, NEEDS_ATTENTION)"
                ));
            }
        }
        for key in self.errors.keys() {
            if !ERROR_CODES.iter().any(|c| c.as_str() == key) {
                return Err(format!("messages.errors.{key}: not an ERROR code"));
            }
        }
        let texts = self
            .states
            .iter()
            .map(|(k, v)| (format!("messages.states.{k}"), v.clone()))
            .chain(
                self.errors
                    .iter()
                    .map(|(k, v)| (format!("messages.errors.{k}"), v.clone())),
            )
            .chain(
                self.codes
                    .iter()
                    .map(|(k, v)| (format!("messages.codes.{k}"), vec![v.clone()])),
            );
        for (key, paragraphs) in texts {
            for paragraph in &paragraphs {
                check_placeholders(&key, paragraph)?;
            }
        }
        Ok(())
    }
}

const ERROR_CODES: [ErrorCode; 13] = [
    ErrorCode::InvalidJson,
    ErrorCode::MissingField,
    ErrorCode::InvalidField,
    ErrorCode::FieldTooLong,
    ErrorCode::AmountOutOfRange,
    ErrorCode::InvalidCurrency,
    ErrorCode::UnknownKind,
    ErrorCode::UnexpectedKind,
    ErrorCode::UnsupportedVersion,
    ErrorCode::DuplicateMismatch,
    ErrorCode::LimitExceeded,
    ErrorCode::UnknownRefund,
    ErrorCode::InternalError,
];

fn check_placeholders(key: &str, text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            return Err(format!("{key}: `{{` without a closing `}}` in {text:?}"));
        };
        let name = &rest[start + 1..start + len];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "{key}: unknown placeholder {{{name}}}; use {}",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            ));
        }
        rest = &rest[start + len + 1..];
    }
    Ok(())
}

/// The texts in force: the defaults with the operator's overrides on top.
#[derive(Clone, Debug)]
pub struct Catalogue {
    overrides: MessageOverrides,
}

fn default_state_text(state: RefundState) -> (&'static [&'static str], Tone) {
    match state {
        RefundState::Accepted => (&["Refund accepted", "{amount}", "Sending..."], Tone::Info),
        RefundState::Queued => (
            &[
                "Refund saved",
                "{amount}",
                "Network down:",
                "will send later",
            ],
            Tone::Info,
        ),
        RefundState::Processing => (
            &["Refund in progress", "{amount}", "Please wait"],
            Tone::Info,
        ),
        RefundState::ProviderPending => (
            &[
                "Refund submitted",
                "{amount}",
                "Provider completes",
                "it later",
            ],
            Tone::Ok,
        ),
        RefundState::Succeeded => (&["Refund approved", "{amount}"], Tone::Ok),
        RefundState::Failed => (&["Refund declined", "{reason}"], Tone::Error),
        RefundState::NeedsAttention => (
            &[
                "Refund not confirmed",
                "Do not repeat it.",
                "Call support with:",
                "{id}",
            ],
            Tone::Error,
        ),
    }
}

/// Cashier-readable reasons for provider result codes (prefixes removed).
fn default_reason(code: &str) -> Option<&'static str> {
    Some(match code {
        "MERCHANT_BALANCE_NOT_ENOUGH" => "Merchant balance too low",
        "REFUND_AMOUNT_EXCEED" => "Amount more than paid",
        "REFUND_WINDOW_EXCEED" => "Refund period is over",
        "PARTIAL_REFUND_NOT_SUPPORTED" => "Only a full refund is possible",
        "PAYMENT_METHOD_NOT_SUPPORTED" | "REFUND_NOT_SUPPORTED" => {
            "Card or wallet cannot be refunded"
        }
        "MULTIPLE_REFUNDS_NOT_SUPPORTED" => "Payment was refunded already",
        "ORDER_NOT_EXIST" => "Payment not found",
        "ORDER_STATUS_INVALID" => "Payment cannot be refunded now",
        "ORDER_IS_CLOSED" | "ORDER_IS_CANCELED" => "Payment is closed",
        "RISK_REJECT" => "Declined by risk check",
        "CURRENCY_NOT_SUPPORT" => "Currency not supported",
        "REPEAT_REQ_INCONSISTENT" => "Differs from earlier request",
        "ACCESS_DENIED"
        | "INVALID_MERCHANT_STATUS"
        | "KEY_NOT_FOUND"
        | "INVALID_API"
        | "API_INVALID" => "Merchant setup problem: call support",
        "SYSTEM_ERROR" | "PROCESS_FAIL" => "Provider error: call support",
        _ => return None,
    })
}

fn default_error_text(code: ErrorCode) -> &'static [&'static str] {
    match code {
        ErrorCode::DuplicateMismatch => &["Refund ID reused", "with other details"],
        ErrorCode::LimitExceeded => &["Over the limit", "{detail}"],
        ErrorCode::UnknownRefund => &["Refund not found", "{id}"],
        ErrorCode::InternalError => &["Refund not saved", "Please try again"],
        _ => &["Request not accepted", "{detail}"],
    }
}

/// Strips the v2 prefixes so one entry serves both API versions.
pub fn bare_code(code: &str) -> &str {
    for prefix in ["DPOS_PAYMENT_", "DPOS_REFUND_", "DPOS_"] {
        if let Some(rest) = code.strip_prefix(prefix) {
            return rest;
        }
    }
    code
}

impl Catalogue {
    /// The catalogue with these overrides.
    pub fn new(overrides: MessageOverrides) -> Catalogue {
        Catalogue { overrides }
    }

    /// The reason text for a result code, if one is known.
    fn reason(&self, code: &str) -> Option<String> {
        let bare = bare_code(code);
        self.overrides
            .codes
            .get(bare)
            .or_else(|| self.overrides.codes.get(code))
            .cloned()
            .or_else(|| default_reason(bare).map(str::to_owned))
    }

    /// The DISPLAY for a refund in its current state.
    pub fn for_refund(&self, refund: &RefundRecord, size: DisplaySize) -> Display {
        let (defaults, tone) = default_state_text(refund.state);
        let amount = refund
            .refunded
            .or(refund.amount)
            .map(|a| a.to_string())
            .unwrap_or_else(|| "Full amount".into());
        let reason = match &refund.result_code {
            Some(code) => self
                .reason(code)
                .unwrap_or_else(|| format!("Code {}", bare_code(code))),
            None => String::new(),
        };
        let values = [
            ("amount", amount),
            ("id", refund.original_merchant_refund_id.clone()),
            (
                "refundId",
                refund.provider_refund_id.clone().unwrap_or_default(),
            ),
            ("reason", reason),
            ("code", refund.result_code.clone().unwrap_or_default()),
            ("detail", refund.result_message.clone().unwrap_or_default()),
        ];
        let paragraphs = self.paragraphs(
            self.overrides.states.get(refund.state.as_str()),
            defaults,
            &values,
        );
        Display {
            lines: fit_lines(&paragraphs, size),
            tone,
        }
    }

    /// The DISPLAY that goes with an ERROR.
    pub fn for_error(
        &self,
        code: ErrorCode,
        detail: &str,
        id: Option<&str>,
        size: DisplaySize,
    ) -> Display {
        let values = [
            ("amount", String::new()),
            ("id", id.unwrap_or_default().to_owned()),
            ("refundId", String::new()),
            ("reason", String::new()),
            ("code", code.as_str().to_owned()),
            ("detail", detail.to_owned()),
        ];
        let paragraphs = self.paragraphs(
            self.overrides.errors.get(code.as_str()),
            default_error_text(code),
            &values,
        );
        Display {
            lines: fit_lines(&paragraphs, size),
            tone: Tone::Error,
        }
    }

    fn paragraphs(
        &self,
        custom: Option<&Vec<String>>,
        defaults: &[&str],
        values: &[(&str, String)],
    ) -> Vec<String> {
        let templates: Vec<&str> = match custom {
            Some(texts) => texts.iter().map(String::as_str).collect(),
            None => defaults.to_vec(),
        };
        templates
            .into_iter()
            .map(|t| fill(t, values))
            .filter(|p| !p.trim().is_empty())
            .collect()
    }
}

fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::AttemptStatus;
    use crate::money::{Amount, Currency};

    fn record(state: RefundState, code: Option<&str>) -> RefundRecord {
        RefundRecord {
            id: 1,
            terminal_id: "T1".into(),
            original_merchant_refund_id: "REF-7".into(),
            payment_id: "P".into(),
            amount: Some(Amount::new(1250, Currency::parse("USD").unwrap()).unwrap()),
            memo: None,
            provider: "antom".into(),
            state,
            attempt_id: 1,
            refund_request_id: "Q".into(),
            attempt_status: AttemptStatus::Done,
            provider_refund_id: None,
            refund_time: None,
            refunded: None,
            result_code: code.map(str::to_owned),
            result_message: Some("The merchant balance is insufficient.".into()),
            created_ms: 0,
            updated_ms: 0,
            next_action_ms: None,
            tries: 0,
            delivered_state: None,
            revision: 1,
        }
    }

    const SMALL: DisplaySize = DisplaySize { cols: 16, rows: 2 };

    #[test]
    fn every_state_has_text_that_fits() {
        let catalogue = Catalogue::new(MessageOverrides::default());
        for state in RefundState::ALL {
            for size in [
                SMALL,
                DisplaySize::default(),
                DisplaySize { cols: 1, rows: 1 },
            ] {
                let d = catalogue.for_refund(
                    &record(state, Some("DPOS_REFUND_MERCHANT_BALANCE_NOT_ENOUGH")),
                    size,
                );
                assert!(!d.lines.is_empty());
                assert!(d.lines.len() <= usize::from(size.rows));
                assert!(
                    d.lines
                        .iter()
                        .all(|l| l.chars().count() <= usize::from(size.cols))
                );
            }
        }
    }

    /// Every default state text fits a common 20×4 display whole (amounts up to
    /// "99,999.99 USD" long), and every refusal's first line does.
    #[test]
    fn default_headlines_fit_twenty_columns() {
        for state in RefundState::ALL {
            let (texts, _) = default_state_text(state);
            assert!(texts.len() <= 4, "{state}");
            for text in texts {
                let shown = text
                    .replace("{amount}", "99999.99 USD")
                    .replace("{id}", "REF-0000000001");
                // A reason or an id is as long as it is; it wraps.
                if !text.contains("{reason}") && !text.contains("{id}") {
                    assert!(shown.chars().count() <= 20, "{state}: {shown}");
                }
            }
        }
        for code in ERROR_CODES {
            let texts = default_error_text(code);
            assert!(texts[0].chars().count() <= 20, "{code}: {}", texts[0]);
        }
    }

    #[test]
    fn codes_read_the_same_with_or_without_prefix() {
        let catalogue = Catalogue::new(MessageOverrides::default());
        for code in [
            "MERCHANT_BALANCE_NOT_ENOUGH",
            "DPOS_REFUND_MERCHANT_BALANCE_NOT_ENOUGH",
        ] {
            let d = catalogue.for_refund(
                &record(RefundState::Failed, Some(code)),
                DisplaySize { cols: 40, rows: 4 },
            );
            assert_eq!(d.lines, vec!["Refund declined", "Merchant balance too low"]);
            assert_eq!(d.tone, Tone::Error);
        }
        let d = catalogue.for_refund(
            &record(RefundState::Failed, Some("WEIRD_NEW_CODE")),
            DisplaySize { cols: 40, rows: 4 },
        );
        assert_eq!(d.lines[1], "Code WEIRD_NEW_CODE");
        let ok = catalogue.for_refund(
            &record(RefundState::Succeeded, None),
            DisplaySize { cols: 40, rows: 4 },
        );
        assert_eq!(ok.lines, vec!["Refund approved", "12.50 USD"]);
    }

    #[test]
    fn operators_override_and_are_checked() {
        let overrides: MessageOverrides = toml::from_str(
            r#"
            [states]
            SUCCEEDED = ["Money back: {amount}"]
            [codes]
            MERCHANT_BALANCE_NOT_ENOUGH = "Ask the manager"
            [errors]
            LIMIT_EXCEEDED = ["Too much", "{detail}"]
            "#,
        )
        .unwrap();
        overrides.validate().unwrap();
        let catalogue = Catalogue::new(overrides);
        let big = DisplaySize { cols: 40, rows: 4 };
        assert_eq!(
            catalogue
                .for_refund(&record(RefundState::Succeeded, None), big)
                .lines,
            vec!["Money back: 12.50 USD"]
        );
        let declined = catalogue.for_refund(
            &record(
                RefundState::Failed,
                Some("DPOS_MERCHANT_BALANCE_NOT_ENOUGH"),
            ),
            big,
        );
        assert_eq!(declined.lines[1], "Ask the manager");
        let error = catalogue.for_error(ErrorCode::LimitExceeded, "max 500.00 USD", None, big);
        assert_eq!(error.lines, vec!["Too much", "max 500.00 USD"]);

        for (bad, says) in [
            ("[states]\nDONE = [\"x\"]", "not a refund state"),
            ("[errors]\nOOPS = [\"x\"]", "not an ERROR code"),
            ("[states]\nFAILED = [\"{why}\"]", "unknown placeholder"),
            ("[codes]\nX = \"{amount\"", "without a closing"),
        ] {
            let o: MessageOverrides = toml::from_str(bad).unwrap();
            let err = o.validate().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
