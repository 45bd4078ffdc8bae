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
mod language;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::LazyLock;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::ledger::RefundRecord;
use crate::message::{
    Display, DisplayCharset, DisplayInfo, ErrorCode, RefundState, Screen, Tone, fit_lines,
};
pub use language::Language;

use amount::AmountFormat;

/// The placeholders a text may hold.
const PLACEHOLDERS: [&str; 6] = ["amount", "id", "refundId", "reason", "code", "detail"];

/// The `errors` key for every ERROR code without a text of its own.
const OTHER_ERROR: &str = "OTHER";

/// The `words` keys.
const WORDS: [&str; 2] = ["FULL_AMOUNT", "UNKNOWN_REASON"];

/// Each `reasons` key and the provider result codes it explains: Antom's (without
/// the `DPOS_` prefixes of v2), OTT Pay's numeric codes and `refundStatus`, the
/// bridge's own (`POSBRIDGE_*`, and `OUTCOME_UNKNOWN` on a refund a person settled
/// as failed), and HTTP statuses that say the merchant's credentials are refused.
pub const REASONS: &[(&str, &[&str])] = &[
    ("BALANCE_LOW", &["MERCHANT_BALANCE_NOT_ENOUGH", "20007"]),
    ("AMOUNT_TOO_HIGH", &["REFUND_AMOUNT_EXCEED", "20014"]),
    ("WINDOW_OVER", &["REFUND_WINDOW_EXCEED"]),
    ("FULL_REFUND_ONLY", &["PARTIAL_REFUND_NOT_SUPPORTED"]),
    (
        "METHOD_NOT_REFUNDABLE",
        &[
            "PAYMENT_METHOD_NOT_SUPPORTED",
            "REFUND_NOT_SUPPORTED",
            "20008",
            "20021",
        ],
    ),
    (
        "ALREADY_REFUNDED",
        &["MULTIPLE_REFUNDS_NOT_SUPPORTED", "20041"],
    ),
    ("PAYMENT_NOT_FOUND", &["ORDER_NOT_EXIST", "20019"]),
    ("NOT_REFUNDABLE_NOW", &["ORDER_STATUS_INVALID"]),
    ("PAYMENT_CLOSED", &["ORDER_IS_CLOSED", "ORDER_IS_CANCELED"]),
    ("RISK_DECLINED", &["RISK_REJECT"]),
    ("CURRENCY_NOT_SUPPORTED", &["CURRENCY_NOT_SUPPORT"]),
    ("REQUEST_MISMATCH", &["REPEAT_REQ_INCONSISTENT"]),
    (
        "MERCHANT_SETUP",
        &[
            "ACCESS_DENIED",
            "INVALID_MERCHANT_STATUS",
            "KEY_NOT_FOUND",
            "INVALID_API",
            "API_INVALID",
            "HTTP_401",
            "HTTP_403",
        ],
    ),
    ("PROVIDER_ERROR", &["SYSTEM_ERROR", "PROCESS_FAIL"]),
    (
        "PROVIDER_FAILED",
        &["REFUND_FAILED", "REFUND_FAIL", "failure", "50001"],
    ),
    ("TIMED_OUT", &["50002"]),
    ("AMOUNT_REQUIRED", &["POSBRIDGE_AMOUNT_REQUIRED"]),
    ("AMOUNT_INVALID", &["POSBRIDGE_INVALID_AMOUNT"]),
    (
        "REQUEST_INVALID",
        &["POSBRIDGE_INVALID_REQUEST_ID", "10005"],
    ),
    (
        "CHECKED_NOT_REFUNDED",
        &["OUTCOME_UNKNOWN", "IN_PROGRESS_NO_INQUIRY"],
    ),
];

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

/// Strips the v2 prefixes so one entry serves both API versions.
pub fn bare_code(code: &str) -> &str {
    for prefix in ["DPOS_PAYMENT_", "DPOS_REFUND_", "DPOS_"] {
        if let Some(rest) = code.strip_prefix(prefix) {
            return rest;
        }
    }
    code
}

/// The `reasons` key that explains a result code, if any.
pub fn reason_key(code: &str) -> Option<&'static str> {
    let bare = bare_code(code);
    REASONS
        .iter()
        .find(|(_, codes)| codes.contains(&bare) || codes.contains(&code))
        .map(|(key, _)| *key)
}

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
    fn validate(&self, at: &str) -> Result<(), String> {
        for key in self.states.keys() {
            if !RefundState::ALL.iter().any(|s| s.as_str() == key) {
                return Err(format!(
                    "{at}.states.{key}: not a refund state (ACCEPTED, QUEUED, PROCESSING, SUCCEEDED, FAILED, NEEDS_ATTENTION)"
                ));
            }
        }
        for key in self.errors.keys() {
            if key != OTHER_ERROR && !ERROR_CODES.iter().any(|c| c.as_str() == key) {
                return Err(format!(
                    "{at}.errors.{key}: not an ERROR code (or OTHER for the rest)"
                ));
            }
        }
        for key in self.reasons.keys() {
            if !REASONS.iter().any(|(k, _)| k == key) {
                return Err(format!(
                    "{at}.reasons.{key}: not a reason; use one of {}",
                    REASONS
                        .iter()
                        .map(|(k, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        for key in self.words.keys() {
            if !WORDS.contains(&key.as_str()) {
                return Err(format!(
                    "{at}.words.{key}: not a word; use one of {}",
                    WORDS.join(", ")
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
    pub fn validate(&self) -> Result<(), String> {
        self.all.validate("messages")?;
        for (language, texts) in &self.languages {
            texts.validate(&format!("messages.{language}"))?;
        }
        Ok(())
    }

    /// The overrides for `language`, the specific ones first.
    fn layers(&self, language: Language) -> impl Iterator<Item = &Texts> {
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

/// A built-in catalogue file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    language: String,
    name: String,
    states: HashMap<String, Vec<String>>,
    errors: HashMap<String, Vec<String>>,
    reasons: HashMap<String, String>,
    words: HashMap<String, String>,
}

/// The catalogue files, built in.
const FILES: [(Language, &str); 9] = [
    (Language::En, include_str!("texts/en.toml")),
    (Language::ZhHans, include_str!("texts/zh-Hans.toml")),
    (Language::ZhHant, include_str!("texts/zh-Hant.toml")),
    (Language::Ja, include_str!("texts/ja.toml")),
    (Language::Ko, include_str!("texts/ko.toml")),
    (Language::Th, include_str!("texts/th.toml")),
    (Language::Ms, include_str!("texts/ms.toml")),
    (Language::Id, include_str!("texts/id.toml")),
    (Language::FrCa, include_str!("texts/fr-CA.toml")),
];

/// A built-in catalogue: its texts, and whether they are all ASCII.
struct Builtin {
    name: String,
    texts: Texts,
    ascii: bool,
}

fn parse_file(language: Language, text: &str) -> Result<Builtin, String> {
    let file: CatalogueFile =
        toml::from_str(text).map_err(|e| format!("{language}.toml: {}", e.message()))?;
    if file.language != language.tag() {
        return Err(format!("{language}.toml: says it is {:?}", file.language));
    }
    let texts = Texts {
        states: file.states,
        errors: file.errors,
        codes: HashMap::new(),
        reasons: file.reasons,
        words: file.words,
    };
    texts.validate(language.tag())?;
    let ascii = texts
        .states
        .values()
        .chain(texts.errors.values())
        .flatten()
        .all(|t| t.is_ascii())
        && texts
            .reasons
            .values()
            .chain(texts.words.values())
            .all(|t| t.is_ascii());
    Ok(Builtin {
        name: file.name,
        texts,
        ascii,
    })
}

/// Every built-in catalogue, parsed once. A file that does not parse (which the
/// tests rule out) leaves its language to fall back to English key by key.
static BUILTINS: LazyLock<BTreeMap<Language, Builtin>> = LazyLock::new(|| {
    FILES
        .iter()
        .filter_map(|(language, text)| match parse_file(*language, text) {
            Ok(builtin) => Some((*language, builtin)),
            Err(e) => {
                tracing::error!("built-in catalogue: {e}");
                None
            }
        })
        .collect()
});

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
    pub fn for_refund(&self, refund: &RefundRecord, audience: Audience) -> Display {
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
        Display {
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
    ) -> Display {
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
        Display {
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
