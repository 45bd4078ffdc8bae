//! Sets of texts and the operator's overrides (`[messages]`), checked key by key.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::keys::{ERROR_CODES, OTHER_ERROR, PLACEHOLDERS, REASONS, WORDS};
use super::language::Language;
use crate::bounds::BadSetting;
use crate::message::RefundState;

/// A set of texts, as a catalogue file or an override table holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Texts {
    /// Per refund state (`SUCCEEDED = ["Refund OK", "{amount}"]`).
    pub states: HashMap<String, Vec<String>>,
    /// Per ERROR code, and `OTHER` for the rest (`LIMIT_EXCEEDED = ["Over the limit"]`).
    pub errors: HashMap<String, Vec<String>>,
    /// The `{reason}` for a provider result code, without any `DPOS_` prefix
    /// (`MERCHANT_BALANCE_NOT_ENOUGH = "Balance too low"`); only in overrides.
    pub codes: HashMap<String, String>,
    /// The `{reason}` texts by reason key (`BALANCE_LOW = "Balance too low"`).
    pub reasons: HashMap<String, String>,
    /// Single words and phrases (`FULL_AMOUNT`, `UNKNOWN_REASON`).
    pub words: HashMap<String, String>,
}

impl Texts {
    /// Checks every key is known and every placeholder too; `at` prefixes the keys
    /// named in errors (`messages.ja`).
    pub(super) fn validate(&self, at: &str) -> Result<(), BadSetting> {
        for key in self.states.keys() {
            if !RefundState::ALL.iter().any(|s| s.as_str() == key) {
                return Err(BadSetting::new(
                    format!("{at}.states.{key}"),
                    "not a refund state (ACCEPTED, QUEUED, PROCESSING, SUCCEEDED, FAILED, NEEDS_ATTENTION)",
                ));
            }
        }
        for key in self.errors.keys() {
            if key != OTHER_ERROR && !ERROR_CODES.iter().any(|c| c.as_str() == key) {
                return Err(BadSetting::new(
                    format!("{at}.errors.{key}"),
                    "not an ERROR code (or OTHER for the rest)",
                ));
            }
        }
        for key in self.reasons.keys() {
            if !REASONS.iter().any(|(k, _)| k == key) {
                return Err(BadSetting::new(
                    format!("{at}.reasons.{key}"),
                    format!(
                        "not a reason; use one of {}",
                        REASONS
                            .iter()
                            .map(|(k, _)| *k)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        for key in self.words.keys() {
            if !WORDS.contains(&key.as_str()) {
                return Err(BadSetting::new(
                    format!("{at}.words.{key}"),
                    format!("not a word; use one of {}", WORDS.join(", ")),
                ));
            }
        }
        let lists = [("states", &self.states), ("errors", &self.errors)];
        let singles = [
            ("codes", &self.codes),
            ("reasons", &self.reasons),
            ("words", &self.words),
        ];
        for (table, entries) in lists {
            for (key, paragraphs) in entries {
                for paragraph in paragraphs {
                    check_placeholders(&format!("{at}.{table}.{key}"), paragraph)?;
                }
            }
        }
        for (table, entries) in singles {
            for (key, text) in entries {
                check_placeholders(&format!("{at}.{table}.{key}"), text)?;
            }
        }
        Ok(())
    }
}

fn check_placeholders(key: &str, text: &str) -> Result<(), BadSetting> {
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            return Err(BadSetting::new(
                key,
                format!("`{{` without a closing `}}` in {text:?}"),
            ));
        };
        let name = &rest[start + 1..start + len];
        if !PLACEHOLDERS.contains(&name) {
            return Err(BadSetting::new(
                key,
                format!(
                    "unknown placeholder {{{name}}}; use {}",
                    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                ),
            ));
        }
        rest = &rest[start + len + 1..];
    }
    Ok(())
}

/// `[messages]` in the configuration: texts that replace the catalogues' for every
/// language (`[messages.states]`, ...), and for one (`[messages.ja.states]`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageOverrides {
    /// For every language.
    pub all: Texts,
    /// For one language; these win over `all`.
    pub languages: BTreeMap<Language, Texts>,
}

impl MessageOverrides {
    /// Checks every key names something that has a text and every placeholder is
    /// known.
    pub fn validate(&self) -> Result<(), BadSetting> {
        self.all.validate("messages")?;
        for (language, texts) in &self.languages {
            texts.validate(&format!("messages.{language}"))?;
        }
        Ok(())
    }

    /// The overrides for `language`, the specific ones first.
    pub(super) fn layers(&self, language: Language) -> impl Iterator<Item = &Texts> {
        self.languages.get(&language).into_iter().chain([&self.all])
    }
}

impl<'de> Deserialize<'de> for MessageOverrides {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MessageOverrides, D::Error> {
        struct Tables;
        const FIELDS: &[&str] = &["states", "errors", "codes", "reasons", "words"];
        impl<'de> Visitor<'de> for Tables {
            type Value = MessageOverrides;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of states, errors, codes, reasons, words or a language")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<MessageOverrides, A::Error> {
                let mut out = MessageOverrides::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "states" => out.all.states = map.next_value()?,
                        "errors" => out.all.errors = map.next_value()?,
                        "codes" => out.all.codes = map.next_value()?,
                        "reasons" => out.all.reasons = map.next_value()?,
                        "words" => out.all.words = map.next_value()?,
                        other => match Language::ALL.iter().find(|l| l.tag() == other) {
                            Some(language) => {
                                out.languages.insert(*language, map.next_value()?);
                            }
                            None => {
                                return Err(de::Error::custom(format!(
                                    "unknown table `{other}`: use {} or a language ({})",
                                    FIELDS.join(", "),
                                    Language::tags()
                                )));
                            }
                        },
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Tables)
    }
}
