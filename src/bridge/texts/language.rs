//! The languages the bridge has catalogues for, and matching BCP 47 tags to them.

use std::fmt;
use std::str::FromStr;

use icu_locale_core::{LanguageIdentifier, subtags};
use serde::{Deserialize, Deserializer};

/// A language with a built-in catalogue of cashier texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    /// English (`en`).
    En,
    /// Simplified Chinese (`zh-Hans`).
    ZhHans,
    /// Traditional Chinese (`zh-Hant`).
    ZhHant,
    /// Japanese (`ja`).
    Ja,
    /// Korean (`ko`).
    Ko,
    /// Thai (`th`).
    Th,
    /// Malay (`ms`).
    Ms,
    /// Indonesian (`id`).
    Id,
    /// Canadian French (`fr-CA`).
    FrCa,
}

impl Language {
    /// Every language, English first.
    pub const ALL: [Language; 9] = [
        Language::En,
        Language::ZhHans,
        Language::ZhHant,
        Language::Ja,
        Language::Ko,
        Language::Th,
        Language::Ms,
        Language::Id,
        Language::FrCa,
    ];

    /// The tag the configuration and the catalogue files use.
    pub fn tag(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::ZhHans => "zh-Hans",
            Language::ZhHant => "zh-Hant",
            Language::Ja => "ja",
            Language::Ko => "ko",
            Language::Th => "th",
            Language::Ms => "ms",
            Language::Id => "id",
            Language::FrCa => "fr-CA",
        }
    }

    /// Whether text in it is Chinese, Japanese or Korean, whose fonts usually draw
    /// East Asian ambiguous-width characters two columns wide.
    pub fn is_east_asian(self) -> bool {
        matches!(
            self,
            Language::ZhHans | Language::ZhHant | Language::Ja | Language::Ko
        )
    }

    /// The catalogue for a BCP 47 tag, if there is one: by language, and for Chinese
    /// by script, or by region where no script is given (TW, HK and MO write
    /// Traditional). Any French gets the Canadian catalogue; `in` is the old tag for
    /// Indonesian. Case and `_` for `-` do not matter.
    pub fn from_tag(tag: &str) -> Option<Language> {
        let id = LanguageIdentifier::try_from_str(&tag.replace('_', "-")).ok()?;
        let language = id.language.as_str();
        Some(match language {
            "en" => Language::En,
            "zh" | "yue" => {
                let traditional = match id.script {
                    Some(script) => script == subtags::script!("Hant"),
                    None => {
                        language == "yue"
                            || id.region.is_some_and(|r| {
                                [
                                    subtags::region!("TW"),
                                    subtags::region!("HK"),
                                    subtags::region!("MO"),
                                ]
                                .contains(&r)
                            })
                    }
                };
                if traditional {
                    Language::ZhHant
                } else {
                    Language::ZhHans
                }
            }
            "ja" => Language::Ja,
            "ko" => Language::Ko,
            "th" => Language::Th,
            "ms" => Language::Ms,
            "id" | "in" => Language::Id,
            "fr" => Language::FrCa,
            _ => return None,
        })
    }

    /// The tags, for messages that list them.
    pub fn tags() -> String {
        Language::ALL.map(Language::tag).join(", ")
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

impl FromStr for Language {
    type Err = String;

    fn from_str(tag: &str) -> Result<Language, String> {
        Language::from_tag(tag).ok_or_else(|| {
            format!(
                "no catalogue for language {:?}; use one of {}",
                tag.chars().take(40).collect::<String>(),
                Language::tags()
            )
        })
    }
}

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Language, D::Error> {
        let tag = String::deserialize(d)?;
        tag.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_match_the_catalogue_a_reader_expects() {
        for (tag, language) in [
            ("en", Language::En),
            ("en-CA", Language::En),
            ("EN_us", Language::En),
            ("zh", Language::ZhHans),
            ("zh-CN", Language::ZhHans),
            ("zh-Hans-SG", Language::ZhHans),
            ("zh-TW", Language::ZhHant),
            ("zh-HK", Language::ZhHant),
            ("zh-Hant", Language::ZhHant),
            ("zh-hant-tw", Language::ZhHant),
            ("zh-Hans-HK", Language::ZhHans),
            ("yue", Language::ZhHant),
            ("ja-JP", Language::Ja),
            ("ko", Language::Ko),
            ("th-TH", Language::Th),
            ("ms-MY", Language::Ms),
            ("id", Language::Id),
            ("in", Language::Id),
            ("fr-CA", Language::FrCa),
            ("fr", Language::FrCa),
        ] {
            assert_eq!(Language::from_tag(tag), Some(language), "{tag}");
        }
        for tag in ["de", "", "x", "not a tag", "ar-EG"] {
            assert_eq!(Language::from_tag(tag), None, "{tag}");
        }
        for language in Language::ALL {
            assert_eq!(Language::from_tag(language.tag()), Some(language));
        }
        let err = "de".parse::<Language>().unwrap_err();
        assert!(err.contains("zh-Hant"), "{err}");
    }
}
