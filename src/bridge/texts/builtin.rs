//! The catalogue files built into the binary, parsed once.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde::Deserialize;

use super::language::Language;
use super::overrides::Texts;

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
pub(super) const FILES: [(Language, &str); 9] = [
    (Language::En, include_str!("en.toml")),
    (Language::ZhHans, include_str!("zh-Hans.toml")),
    (Language::ZhHant, include_str!("zh-Hant.toml")),
    (Language::Ja, include_str!("ja.toml")),
    (Language::Ko, include_str!("ko.toml")),
    (Language::Th, include_str!("th.toml")),
    (Language::Ms, include_str!("ms.toml")),
    (Language::Id, include_str!("id.toml")),
    (Language::FrCa, include_str!("fr-CA.toml")),
];

/// A built-in catalogue: its texts, and whether they are all ASCII.
pub(super) struct Builtin {
    pub(super) name: String,
    pub(super) texts: Texts,
    pub(super) ascii: bool,
}

pub(super) fn parse_file(language: Language, text: &str) -> Result<Builtin, String> {
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
    texts
        .validate(language.tag())
        .map_err(|bad| bad.to_string())?;
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
pub(super) static BUILTINS: LazyLock<BTreeMap<Language, Builtin>> = LazyLock::new(|| {
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
