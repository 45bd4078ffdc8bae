//! Safety limits: the most one refund may be, and the most one terminal may refund in
//! a day, per currency. Checked when a REFUND arrives; above them it is refused with
//! ERROR `LIMIT_EXCEEDED` and nothing is recorded.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer};

use crate::bounds::{self, BadSetting};
use crate::ledger::DailyLimit;
use crate::money::{Amount, Currency, MAX_AMOUNT};

/// `[limits]` in the configuration; amounts in minor units per currency. A code that
/// is not one and a zone that is not known are refused as the table is read, so the
/// error names their line.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The most one refund may be (`USD = 50000` is 500.00 USD).
    pub per_refund: BTreeMap<Currency, i64>,
    /// The most one terminal may refund in a day.
    pub per_terminal_per_day: BTreeMap<Currency, i64>,
    /// The time zone whose midnight starts a day, written as its IANA name.
    #[serde(deserialize_with = "known_zone")]
    pub time_zone: TimeZone,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_refund: BTreeMap::new(),
            per_terminal_per_day: BTreeMap::new(),
            time_zone: TimeZone::UTC,
        }
    }
}

/// An IANA zone name, looked up once, when the configuration is read.
fn known_zone<'de, D: Deserializer<'de>>(d: D) -> Result<TimeZone, D::Error> {
    let name = String::deserialize(d)?;
    TimeZone::get(&name)
        .map_err(|e| serde::de::Error::custom(format!("{name:?} is not a known time zone ({e})")))
}

/// Why a refund is over a limit, in words for the ERROR and the display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverLimit(pub String);

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        !self.per_refund.is_empty() || !self.per_terminal_per_day.is_empty()
    }

    /// Checks the amounts; a bad one is named below `[limits]` (`per_refund.USD`).
    pub fn validate(&self) -> Result<(), BadSetting> {
        for (table, map) in [
            ("per_refund", &self.per_refund),
            ("per_terminal_per_day", &self.per_terminal_per_day),
        ] {
            for (code, value) in map {
                bounds::check(
                    &format!("{table}.{code}"),
                    *value,
                    1..=MAX_AMOUNT,
                    " (minor units)",
                )?;
            }
        }
        Ok(())
    }

    /// Checks a refund against the per-refund limit and returns the daily limit the
    /// ledger must check in the same transaction as the insert.
    pub fn check(
        &self,
        amount: Option<Amount>,
        now: jiff::Timestamp,
    ) -> Result<Option<DailyLimit>, OverLimit> {
        if !self.any() {
            return Ok(None);
        }
        let Some(amount) = amount else {
            return Err(OverLimit(
                "a full refund has no amount to check against the limits; enter the amount".into(),
            ));
        };
        let per_refund = self.per_refund.get(&amount.currency);
        let per_day = self.per_terminal_per_day.get(&amount.currency);
        if per_refund.is_none() && per_day.is_none() {
            return Err(OverLimit(format!(
                "no limit is set for {}",
                amount.currency
            )));
        }
        if let Some(&max) = per_refund
            && amount.value > max
        {
            return Err(OverLimit(format!(
                "over the {} limit per refund",
                Amount::saturating(max, amount.currency)
            )));
        }
        Ok(per_day.map(|&max| DailyLimit {
            max: Amount::saturating(max, amount.currency),
            since_ms: self.day_start_ms(now),
        }))
    }

    /// Midnight of `now`'s day in the configured zone, in ms since the epoch.
    pub fn day_start_ms(&self, now: jiff::Timestamp) -> i64 {
        now.to_zoned_datetime(self.time_zone.clone())
            .start_of_day()
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or_else(|_| now.as_millisecond())
    }
}

/// The words for a refusal by the ledger's daily check.
pub fn over_daily(max: Amount, used: i64) -> OverLimit {
    OverLimit(format!(
        "over the {max} daily limit ({} refunded today)",
        Amount::saturating(used, max.currency)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        toml::from_str(
            r#"
            time_zone = "America/Toronto"
            [per_refund]
            USD = 50000
            [per_terminal_per_day]
            USD = 200000
            CAD = 100000
            "#,
        )
        .unwrap()
    }

    fn usd(v: i64) -> Option<Amount> {
        Some(Amount::new(v, Currency::parse("USD").unwrap()).unwrap())
    }

    #[test]
    fn per_refund_and_daily() {
        let l = limits();
        assert_eq!(l.time_zone.iana_name(), Some("America/Toronto"));
        l.validate().unwrap();
        let now: jiff::Timestamp = "2026-11-24T18:00:00Z".parse().unwrap();
        let daily = l.check(usd(50000), now).unwrap().unwrap();
        assert_eq!(daily.max.value, 200000);
        // Midnight in Toronto is 05:00 UTC in November.
        let midnight: jiff::Timestamp = "2026-11-24T05:00:00Z".parse().unwrap();
        assert_eq!(daily.since_ms, midnight.as_millisecond());
        let over = l.check(usd(50001), now).unwrap_err();
        assert!(over.0.contains("500.00 USD"), "{}", over.0);
        assert!(l.check(None, now).unwrap_err().0.contains("full refund"));
        let eur = Some(Amount::new(1, Currency::parse("EUR").unwrap()).unwrap());
        assert!(l.check(eur, now).unwrap_err().0.contains("EUR"));
        assert!(matches!(Limits::default().check(None, now), Ok(None)));
    }

    #[test]
    fn bad_limits_are_named() {
        for (text, says) in [
            ("[per_refund]\nusd = 5", "per_refund.usd"),
            ("[per_refund]\nUSD = 0", "from 1"),
            ("time_zone = \"Mars/Base\"", "time zone"),
        ] {
            // A code or a zone that cannot be is refused as the table is read, at its
            // key or value (named here as the configuration's error names it: the
            // table, then what the span covers); an amount when checked.
            let err = match toml::from_str::<Limits>(text) {
                Ok(l) => l.validate().unwrap_err().to_string(),
                Err(e) => {
                    let span = e.span().unwrap();
                    let table = text[..span.start]
                        .lines()
                        .filter_map(|l| l.strip_prefix('[')?.strip_suffix(']'))
                        .next_back()
                        .map(|t| format!("{t}."))
                        .unwrap_or_default();
                    format!("{table}{}: {}", &text[span], e.message())
                }
            };
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
