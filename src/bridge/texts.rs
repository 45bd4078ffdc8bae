//! What the cashier reads: a catalogue of texts per language — one per refund state,
//! per refusal and per reason a provider gives — that operators can override in the
//! configuration, fitted to each terminal's screen.
//!
//! The catalogues are the TOML files beside this module (`texts/<language>.toml`),
//! built into the binary; every one has every key, and every text fits a 16×4
//! screen (the tests say so). Texts are short paragraphs with placeholders —
//! `{amount}`, `{id}`, `{refundId}`, `{reason}`, `{code}`, `{detail}` — fitted to the
//! terminal's declared display by [`crate::message::fit_lines`], so they wrap or are
//! cut but never overflow.
//!
//! A terminal's language is the one its `[[terminal]]` entry names, else the first
//! of HELLO's `display.languages` with a catalogue, else English. A screen that
//! shows only ASCII gets English unless the chosen catalogue is ASCII already.
//!
//! A new text is one key in every catalogue file (and, for a state or a reason, its
//! entry in [`RefundState`] or [`REASONS`]); the tests name any file without it.

mod amount;
mod builtin;
mod keys;
mod language;
mod overrides;

use std::collections::BTreeMap;
use std::fmt;

use crate::ledger::RefundRecord;
use crate::message::{
    DisplayCharset, DisplayInfo, DisplayMessage, ErrorCode, RefundState, Screen, Tone, fit_lines,
};
pub use keys::{REASONS, bare_code, reason_key};
pub use language::Language;
pub use overrides::{MessageOverrides, Texts};

use builtin::BUILTINS;
use keys::OTHER_ERROR;

use amount::AmountFormat;

/// Who reads a terminal's screen: the language its texts are in, and the screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Audience {
    /// The catalogue in use.
    pub language: Language,
    /// The screen texts are fitted to.
    pub screen: Screen,
}

impl Default for Audience {
    /// English on the default 20×4 screen: before a terminal said HELLO.
    fn default() -> Audience {
        Audience {
            language: Language::En,
            screen: Screen::default(),
        }
    }
}

impl Audience {
    fn ascii(&self) -> bool {
        self.screen.charset == DisplayCharset::Ascii
    }
}

/// The texts in force: the built-in catalogues with the operator's overrides on top.
pub struct Catalogue {
    overrides: MessageOverrides,
    amounts: BTreeMap<Language, AmountFormat>,
}

impl fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalogue")
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

/// One lookup's candidates, most specific first.
type Candidates<'a, T> = Vec<Option<&'a T>>;

impl Catalogue {
    /// The catalogue with these overrides.
    pub fn new(overrides: MessageOverrides) -> Catalogue {
        let amounts = Language::ALL
            .iter()
            .map(|l| (*l, AmountFormat::new(*l)))
            .collect();
        Catalogue { overrides, amounts }
    }

    /// Chooses a terminal's language and screen from its line's configured
    /// language and its HELLO.
    pub fn audience(
        &self,
        terminal: &str,
        configured: Option<Language>,
        display: &DisplayInfo,
    ) -> Audience {
        let declared = display.languages.iter().find_map(|t| Language::from_tag(t));
        let wanted = configured.or(declared).unwrap_or(Language::En);
        if configured.is_some()
            && !display.languages.is_empty()
            && !display
                .languages
                .iter()
                .any(|t| Language::from_tag(t) == configured)
        {
            let declared = &display.languages;
            tracing::warn!(
                terminal,
                language = %wanted,
                ?declared,
                "the configured language is not among those the terminal says it can show"
            );
        }
        let mut screen = display.screen();
        let language = if screen.charset == DisplayCharset::Ascii
            && !BUILTINS.get(&wanted).is_some_and(|b| b.ascii)
        {
            if wanted != Language::En {
                tracing::info!(terminal, language = %wanted, "an ASCII-only screen: texts in English");
            }
            Language::En
        } else {
            wanted
        };
        if display.ambiguous_width.is_none() {
            screen.wide_ambiguous = language.is_east_asian();
        }
        Audience { language, screen }
    }

    /// The first candidate the screen can show: overrides that are not ASCII are
    /// passed over on an ASCII screen.
    fn pick<'a, T, F>(&'a self, audience: Audience, get: F) -> Option<&'a T>
    where
        F: Fn(&'a Texts) -> Option<&'a T>,
        T: Shown + ?Sized,
    {
        let candidates: Candidates<'a, T> = self
            .overrides
            .layers(audience.language)
            .map(&get)
            .chain(
                [audience.language, Language::En]
                    .into_iter()
                    .map(|l| BUILTINS.get(&l).and_then(|b| get(&b.texts))),
            )
            .collect();
        candidates
            .into_iter()
            .flatten()
            .find(|t| !audience.ascii() || t.is_ascii_text())
    }

    fn word(&self, audience: Audience, key: &str) -> String {
        self.pick(audience, |t| t.words.get(key))
            .cloned()
            .unwrap_or_else(|| key.to_owned())
    }

    /// The reason text for a result code.
    fn reason(&self, audience: Audience, code: &str) -> String {
        let bare = bare_code(code);
        let by_code = self.pick(audience, |t| {
            t.codes.get(bare).or_else(|| t.codes.get(code))
        });
        let by_key = || {
            let key = reason_key(code)?;
            self.pick(audience, |t| t.reasons.get(key))
        };
        match by_code.or_else(by_key) {
            Some(text) => text.clone(),
            None => fill(
                &self.word(audience, "UNKNOWN_REASON"),
                &[("code", bare.to_owned())],
            ),
        }
    }

    fn amount(&self, audience: Audience, amount: crate::money::Amount) -> String {
        match self.amounts.get(&audience.language) {
            Some(format) => format.format(amount, audience.ascii()),
            None => amount.to_string(),
        }
    }

    /// The DISPLAY for a refund in its current state.
    pub fn for_refund(&self, refund: &RefundRecord, audience: Audience) -> DisplayMessage {
        let amount = match refund.refunded.or(refund.amount) {
            Some(amount) => self.amount(audience, amount),
            None => self.word(audience, "FULL_AMOUNT"),
        };
        let reason = match &refund.result_code {
            Some(code) => self.reason(audience, code),
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
        let state = refund.state.as_str();
        let templates = self.pick(audience, |t| t.states.get(state));
        DisplayMessage {
            lines: fit_lines(&paragraphs(templates, state, &values), audience.screen),
            tone: tone_of(refund.state),
        }
    }

    /// The DISPLAY that goes with an ERROR.
    pub fn for_error(
        &self,
        code: ErrorCode,
        detail: &str,
        id: Option<&str>,
        audience: Audience,
    ) -> DisplayMessage {
        let values = [
            ("amount", String::new()),
            ("id", id.unwrap_or_default().to_owned()),
            ("refundId", String::new()),
            ("reason", String::new()),
            ("code", code.as_str().to_owned()),
            ("detail", detail.to_owned()),
        ];
        let templates = self
            .pick(audience, |t| t.errors.get(code.as_str()))
            .or_else(|| self.pick(audience, |t| t.errors.get(OTHER_ERROR)));
        DisplayMessage {
            lines: fit_lines(
                &paragraphs(templates, code.as_str(), &values),
                audience.screen,
            ),
            tone: Tone::Error,
        }
    }
}

/// Texts the ASCII check applies to.
trait Shown {
    fn is_ascii_text(&self) -> bool;
}

impl Shown for String {
    fn is_ascii_text(&self) -> bool {
        self.is_ascii()
    }
}

impl Shown for Vec<String> {
    fn is_ascii_text(&self) -> bool {
        self.iter().all(|t| t.is_ascii())
    }
}

fn tone_of(state: RefundState) -> Tone {
    match state {
        RefundState::Succeeded => Tone::Ok,
        RefundState::Failed | RefundState::NeedsAttention => Tone::Error,
        RefundState::Accepted
        | RefundState::Queued
        | RefundState::Processing
        | RefundState::ProviderPending => Tone::Info,
    }
}

/// The filled paragraphs of a text; without one (which the tests rule out), its key.
fn paragraphs(
    templates: Option<&Vec<String>>,
    key: &str,
    values: &[(&str, String)],
) -> Vec<String> {
    match templates {
        Some(templates) => templates
            .iter()
            .map(|t| fill(t, values))
            .filter(|p| !p.trim().is_empty())
            .collect(),
        None => vec![key.to_owned()],
    }
}

/// Replaces placeholders in one pass, so a value holding `{...}` is never expanded.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let value = after.find('}').and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (v, end))
        });
        match value {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A built-in catalogue's name for its language, in that language (`日本語`).
pub fn catalogue_name(language: Language) -> String {
    BUILTINS
        .get(&language)
        .map(|b| b.name.clone())
        .unwrap_or_else(|| language.tag().to_owned())
}

#[cfg(test)]
mod tests;
