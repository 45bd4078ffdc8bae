//! Money: integer amounts in a currency's smallest unit, and ISO 4217 currency codes.
//!
//! Amounts never pass through floating point anywhere in posbridge. The terminal,
//! the ledger and every provider speak in minor units (cents for USD, yen for JPY).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount any party accepts: Antom's and the link protocol's limit.
pub const MAX_AMOUNT: i64 = 2_147_483_647;

/// A three-letter upper-case ISO 4217 currency code, such as `USD`. A map keyed by
/// currency can be looked up by the code's text (`limits.get("USD")`): it hashes and
/// orders as that text does.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl std::hash::Hash for Currency {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As its text hashes, which `Borrow<str>` requires.
        self.as_str().hash(state);
    }
}

impl std::borrow::Borrow<str> for Currency {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

/// Why a text is not a currency code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("currency must be three upper-case letters (ISO 4217), got {0:?}")]
pub struct CurrencyError(pub String);

impl Currency {
    /// Parses a code; only `A`–`Z`, exactly three of them.
    pub fn parse(code: &str) -> Result<Currency, CurrencyError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Currency([a, b, c])),
            _ => Err(CurrencyError(code.chars().take(16).collect())),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Currency {
    type Err = CurrencyError;

    fn from_str(s: &str) -> Result<Currency, CurrencyError> {
        Currency::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Currency, D::Error> {
        let text = String::deserialize(d)?;
        Currency::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An amount of money: `value` minor units of `currency`, from 0 to [`MAX_AMOUNT`].
/// A refund asks for at least 1 (the link protocol checks that); a provider may report
/// 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Amount {
    /// Minor units (cents, yen, ...), 0..=2147483647.
    pub value: i64,
    /// The ISO 4217 code.
    pub currency: Currency,
}

/// Why a value is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("amount must be a whole number of minor units from 0 to {MAX_AMOUNT}, got {0}")]
pub struct AmountError(pub i64);

impl Amount {
    /// An amount, if `value` is in range.
    pub fn new(value: i64, currency: Currency) -> Result<Amount, AmountError> {
        if (0..=MAX_AMOUNT).contains(&value) {
            Ok(Amount { value, currency })
        } else {
            Err(AmountError(value))
        }
    }
}

impl Amount {
    /// An amount with `value` brought into range: for sums and limits shown to people,
    /// never for an amount sent anywhere.
    pub fn saturating(value: i64, currency: Currency) -> Amount {
        Amount {
            value: value.clamp(0, MAX_AMOUNT),
            currency,
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            value: i64,
            currency: Currency,
        }
        let raw = Raw::deserialize(d)?;
        Amount::new(raw.value, raw.currency).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Amount {
    /// Renders `1250 USD` as `12.50 USD`, using the currency's minor-unit exponent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exponent = minor_unit_exponent(self.currency);
        if exponent == 0 {
            return write!(f, "{} {}", self.value, self.currency);
        }
        let scale = 10i64.pow(exponent);
        let sign = if self.value < 0 { "-" } else { "" };
        let abs = self.value.unsigned_abs();
        let scale = scale.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs / scale,
            abs % scale,
            self.currency,
            width = exponent as usize
        )
    }
}

/// Digits after the decimal point for a currency (ISO 4217's minor unit). Codes not
/// listed use 2, which is right for most currencies.
pub fn minor_unit_exponent(currency: Currency) -> u32 {
    match currency.as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_shape() {
        assert!(Currency::parse("USD").is_ok());
        for bad in ["usd", "US", "USDD", "U$D", "", "ÄBC"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amount_display_uses_minor_units() {
        let usd = Currency::parse("USD").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(Amount::new(1250, usd).unwrap().to_string(), "12.50 USD");
        assert_eq!(Amount::new(5, usd).unwrap().to_string(), "0.05 USD");
        assert_eq!(Amount::new(1250, jpy).unwrap().to_string(), "1250 JPY");
        assert_eq!(Amount::new(1250, kwd).unwrap().to_string(), "1.250 KWD");
    }

    #[test]
    fn serde_round_trip() {
        let a: Amount = serde_json::from_str(r#"{"value":1250,"currency":"EUR"}"#).unwrap();
        assert_eq!(a.value, 1250);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"value":1250,"currency":"EUR"}"#
        );
        assert!(serde_json::from_str::<Amount>(r#"{"value":1,"currency":"eur"}"#).is_err());
        assert!(serde_json::from_str::<Amount>(r#"{"value":-1,"currency":"EUR"}"#).is_err());
        assert!(
            serde_json::from_str::<Amount>(r#"{"value":2147483648,"currency":"EUR"}"#).is_err()
        );
    }

    #[test]
    fn an_amount_checks_its_own_range() {
        let usd = Currency::parse("USD").unwrap();
        assert!(Amount::new(0, usd).is_ok());
        assert!(Amount::new(MAX_AMOUNT, usd).is_ok());
        assert_eq!(Amount::new(-1, usd), Err(AmountError(-1)));
        assert!(Amount::new(MAX_AMOUNT + 1, usd).is_err());
    }
}
