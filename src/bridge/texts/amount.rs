//! Amounts as each catalogue's readers write them: `$12.50`, `￥1,250`, `12,50 $`.
//!
//! The number comes from ICU4X's decimal formatter (`icu_decimal`), which carries
//! CLDR's decimal and grouping separators for every locale, with as many fraction
//! digits as the currency's ISO 4217 minor unit ([`minor_unit_exponent`]). Where the
//! currency sign goes and which sign a locale uses come from the table below, taken
//! from CLDR 47 (`cldr-json`, `cldr-numbers-full/main/<locale>/numbers.json`,
//! `currencyFormats-numberSystem-latn`: the `standard` and `standard-alphaNextToNumber`
//! patterns, and `currencies.json`: each currency's `symbol`, resolved through the
//! locale's parents). Currencies the table does not list are written with their ISO
//! code, as CLDR does for a currency without a symbol. A sign that ends (or, after
//! the number, starts) with a letter is kept apart from the digits by a no-break
//! space, as CLDR's `currencySpacing` says: `RM 12.50`, `USD 12.50`.

use icu_decimal::DecimalFormatter;
use icu_decimal::input::Decimal;
use icu_locale_core::Locale;
use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;

use super::Language;
use crate::money::{Amount, minor_unit_exponent};

const NO_BREAK: char = '\u{a0}';

/// A locale's currency format.
struct CurrencyFormat {
    /// The CLDR locale the numbers are formatted for.
    locale: &'static str,
    /// The sign follows the number (`12,50 $`) instead of preceding it (`$12.50`).
    sign_after: bool,
    /// Currencies whose sign is not their ISO code.
    signs: &'static [(&'static str, &'static str)],
}

fn format_of(language: Language) -> CurrencyFormat {
    let (locale, sign_after, signs): (&str, bool, &[(&str, &str)]) = match language {
        Language::En => (
            "en",
            false,
            &[
                ("AUD", "A$"),
                ("CAD", "CA$"),
                ("CNY", "CN¥"),
                ("EUR", "€"),
                ("GBP", "£"),
                ("HKD", "HK$"),
                ("INR", "₹"),
                ("JPY", "¥"),
                ("KRW", "₩"),
                ("NZD", "NZ$"),
                ("PHP", "₱"),
                ("TWD", "NT$"),
                ("USD", "$"),
                ("VND", "₫"),
            ],
        ),
        Language::ZhHans => (
            "zh",
            false,
            &[
                ("AUD", "AU$"),
                ("CAD", "CA$"),
                ("CNY", "¥"),
                ("EUR", "€"),
                ("GBP", "£"),
                ("HKD", "HK$"),
                ("INR", "₹"),
                ("JPY", "JP¥"),
                ("KRW", "₩"),
                ("NZD", "NZ$"),
                ("TWD", "NT$"),
                ("USD", "US$"),
                ("VND", "₫"),
            ],
        ),
        Language::ZhHant => (
            "zh-Hant",
            false,
            &[
                ("AUD", "AU$"),
                ("CAD", "CA$"),
                ("CNY", "CN¥"),
                ("EUR", "€"),
                ("GBP", "£"),
                ("HKD", "HK$"),
                ("INR", "₹"),
                ("JPY", "¥"),
                ("KRW", "￦"),
                ("NZD", "NZ$"),
                ("TWD", "$"),
                ("USD", "US$"),
                ("VND", "₫"),
            ],
        ),
        Language::Ja => (
            "ja",
            false,
            &[
                ("AUD", "A$"),
                ("CAD", "CA$"),
                ("CNY", "元"),
                ("EUR", "€"),
                ("GBP", "£"),
                ("HKD", "HK$"),
                ("INR", "₹"),
                ("JPY", "￥"),
                ("KRW", "₩"),
                ("NZD", "NZ$"),
                ("TWD", "NT$"),
                ("USD", "$"),
                ("VND", "₫"),
            ],
        ),
        Language::Ko => (
            "ko",
            false,
            &[
                ("AUD", "AU$"),
                ("CAD", "CA$"),
                ("CNY", "CN¥"),
                ("EUR", "€"),
                ("GBP", "£"),
                ("HKD", "HK$"),
                ("INR", "₹"),
                ("JPY", "JP¥"),
                ("KRW", "₩"),
                ("NZD", "NZ$"),
                ("TWD", "NT$"),
                ("USD", "US$"),
                ("VND", "₫"),
            ],
        ),
        Language::Th => (
            "th",
            false,
            &[
                ("AUD", "AU$"),
                ("CAD", "CA$"),
                ("CNY", "CN¥"),
                ("EUR", "€"),
                ("GBP", "£"),
                ("HKD", "HK$"),
                ("INR", "₹"),
                ("JPY", "¥"),
                ("KRW", "₩"),
                ("NZD", "NZ$"),
                ("THB", "฿"),
                ("TWD", "NT$"),
                ("USD", "US$"),
                ("VND", "₫"),
            ],
        ),
        Language::Ms => (
            "ms",
            false,
            &[
                ("AUD", "A$"),
                ("CNY", "CN¥"),
                ("EUR", "€"),
                ("GBP", "£"),
                ("HKD", "HK$"),
                ("INR", "₹"),
                ("JPY", "JP¥"),
                ("KRW", "₩"),
                ("MYR", "RM"),
                ("NZD", "NZ$"),
                ("TWD", "NT$"),
                ("VND", "₫"),
            ],
        ),
        Language::Id => (
            "id",
            false,
            &[
                ("AUD", "AU$"),
                ("CAD", "CA$"),
                ("CNY", "CN¥"),
                ("EUR", "€"),
                ("GBP", "£"),
                ("HKD", "HK$"),
                ("IDR", "Rp"),
                ("INR", "Rs"),
                ("JPY", "JP¥"),
                ("KRW", "₩"),
                ("NZD", "NZ$"),
                ("THB", "฿"),
                ("TWD", "NT$"),
                ("USD", "US$"),
                ("VND", "₫"),
            ],
        ),
        Language::FrCa => (
            "fr-CA",
            true,
            &[
                ("AUD", "$\u{a0}AU"),
                ("CAD", "$"),
                ("CNY", "CN¥"),
                ("EUR", "€"),
                ("GBP", "£"),
                ("HKD", "$\u{a0}HK"),
                ("JPY", "¥"),
                ("NZD", "$\u{a0}NZ"),
                ("SGD", "$\u{a0}SG"),
                ("USD", "$\u{a0}US"),
            ],
        ),
    };
    CurrencyFormat {
        locale,
        sign_after,
        signs,
    }
}

/// Formats amounts for one language.
pub(super) struct AmountFormat {
    format: CurrencyFormat,
    numbers: Option<DecimalFormatter>,
}

impl AmountFormat {
    /// The format for `language`.
    pub(super) fn new(language: Language) -> AmountFormat {
        let format = format_of(language);
        // The baked CLDR data has every one of these locales; without it the
        // number would still be written, with ASCII separators.
        let numbers = Locale::try_from_str(format.locale).ok().and_then(|locale| {
            DecimalFormatter::try_new((&locale).into(), Default::default()).ok()
        });
        AmountFormat { format, numbers }
    }

    /// `amount` as text; on an ASCII screen a sign that is not ASCII gives way to
    /// the ISO code (`JPY 1,250`).
    pub(super) fn format(&self, amount: Amount, ascii: bool) -> String {
        let exponent = minor_unit_exponent(amount.currency);
        let mut decimal = Decimal::from(amount.value);
        decimal.multiply_pow10(-(exponent as i16));
        let number = match &self.numbers {
            Some(formatter) => formatter.format(&decimal).to_string(),
            None => decimal.to_string(),
        };
        let code = amount.currency.as_str();
        let sign = self
            .format
            .signs
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, sign)| *sign)
            .filter(|sign| !ascii || sign.is_ascii())
            .unwrap_or(code);
        if self.format.sign_after {
            format!("{number}{NO_BREAK}{sign}")
        } else if sign.chars().last().is_some_and(is_letter_like) {
            format!("{sign}{NO_BREAK}{number}")
        } else {
            format!("{sign}{number}")
        }
    }
}

/// CLDR's `currencySpacing` test: a sign character that is neither a symbol nor a
/// separator is spaced from the digits.
fn is_letter_like(c: char) -> bool {
    let category = CodePointMapData::<GeneralCategory>::new().get(c);
    !matches!(
        category,
        GeneralCategory::CurrencySymbol
            | GeneralCategory::MathSymbol
            | GeneralCategory::ModifierSymbol
            | GeneralCategory::OtherSymbol
            | GeneralCategory::SpaceSeparator
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn amount(value: i64, code: &str) -> Amount {
        Amount::new(value, Currency::parse(code).unwrap()).unwrap()
    }

    fn shown(language: Language, value: i64, code: &str) -> String {
        AmountFormat::new(language)
            .format(amount(value, code), false)
            .replace(NO_BREAK, "~")
    }

    /// The usual cases, with `~` for a no-break space (ICU4C writes the same, see
    /// `amounts_match_icu4c`).
    #[test]
    fn amounts_follow_cldr() {
        for (language, value, code, expected) in [
            (Language::En, 1250, "USD", "$12.50"),
            (Language::En, 1250, "JPY", "¥1,250"),
            (Language::En, 123456789, "CAD", "CA$1,234,567.89"),
            (Language::En, 1250, "MYR", "MYR~12.50"),
            (Language::En, 1250, "KWD", "KWD~1.250"),
            (Language::ZhHans, 1250, "CNY", "¥12.50"),
            (Language::ZhHans, 1250, "USD", "US$12.50"),
            (Language::ZhHant, 125000, "TWD", "$1,250.00"),
            (Language::ZhHant, 1250, "HKD", "HK$12.50"),
            (Language::Ja, 1250, "JPY", "￥1,250"),
            (Language::Ja, 1250, "USD", "$12.50"),
            (Language::Ja, 1250, "CNY", "元~12.50"),
            (Language::Ko, 12500, "KRW", "₩12,500"),
            (Language::Th, 12500, "THB", "฿125.00"),
            (Language::Ms, 1250, "MYR", "RM~12.50"),
            (Language::Ms, 1250, "USD", "USD~12.50"),
            (Language::Id, 12500000, "IDR", "Rp~125.000,00"),
            (Language::FrCa, 1250, "CAD", "12,50~$"),
            (Language::FrCa, 125000, "CAD", "1~250,00~$"),
            (Language::FrCa, 1250, "USD", "12,50~$~US"),
            (Language::FrCa, 1250, "EUR", "12,50~€"),
        ] {
            assert_eq!(shown(language, value, code), expected, "{language} {code}");
        }
    }

    /// Every language with every currency the table knows (and two it does not), as
    /// ICU4C formats them: `tests/fixtures/icu4c-currency-amounts.tsv` says how it
    /// was made.
    #[test]
    fn amounts_match_icu4c() {
        let table = include_str!("../../../tests/fixtures/icu4c-currency-amounts.tsv");
        let mut checked = 0;
        for row in table.lines().filter(|l| !l.starts_with('#')) {
            let fields: Vec<&str> = row.split('\t').collect();
            let [tag, code, value, expected] = fields[..] else {
                panic!("bad row {row:?}");
            };
            let language = Language::from_tag(tag).unwrap();
            let expected = expected
                .replace("\\u{a0}", "\u{a0}")
                .replace("\\u{202f}", "\u{202f}");
            let got =
                AmountFormat::new(language).format(amount(value.parse().unwrap(), code), false);
            assert_eq!(got, expected, "{tag} {code} {value}");
            checked += 1;
        }
        assert_eq!(checked, 9 * 21 * 2);
    }

    #[test]
    fn ascii_screens_get_iso_codes_for_other_signs() {
        let en = AmountFormat::new(Language::En);
        assert_eq!(en.format(amount(1250, "JPY"), true), "JPY\u{a0}1,250");
        assert_eq!(en.format(amount(1250, "USD"), true), "$12.50");
        assert_eq!(en.format(amount(1250, "EUR"), true), "EUR\u{a0}12.50");
        assert!(
            en.format(amount(i64::from(i32::MAX), "USD"), true)
                .is_ascii()
        );
    }
}
