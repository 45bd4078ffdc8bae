//! Safety limits: the most one refund may be, and the most one terminal may refund in
//! a day, per currency. Checked when a REFUND arrives; above them it is refused with
//! ERROR `LIMIT_EXCEEDED` and nothing is recorded.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::bounds::{self, BadSetting};
use crate::ledger::DailyLimit;
use crate::money::{Amount, Currency, MAX_AMOUNT};

/// `[limits]` in the configuration; amounts in minor units per currency code.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The most one refund may be (`USD = 50000` is 500.00 USD).
    pub per_refund: BTreeMap<String, i64>,
    /// The most one terminal may refund in a day.
    pub per_terminal_per_day: BTreeMap<String, i64>,
    /// The time zone whose midnight starts a day (IANA name).
    pub time_zone: String,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_refund: BTreeMap::new(),
            per_terminal_per_day: BTreeMap::new(),
            time_zone: "UTC".into(),
        }
    }
}

/// Why a refund is over a limit, in words for the ERROR and the display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverLimit(pub String);

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        !self.per_refund.is_empty() || !self.per_terminal_per_day.is_empty()
    }

    /// Checks codes, amounts and the time zone; a bad one is named below `[limits]`
    /// (`per_refund.usd`).
    pub fn validate(&self) -> Result<(), BadSetting> {
        for (table, map) in [
            ("per_refund", &self.per_refund),
            ("per_terminal_per_day", &self.per_terminal_per_day),
        ] {
            for (code, value) in map {
                let key = format!("{table}.{code}");
                Currency::parse(code).map_err(|e| BadSetting::new(&key, e.to_string()))?;
                bounds::check(&key, *value, 1..=MAX_AMOUNT, " (minor units)")?;
            }
        }
        jiff::tz::TimeZone::get(&self.time_zone).map_err(|e| {
            BadSetting::new(
                "time_zone",
                format!("{:?} is not a known time zone ({e})", self.time_zone),
            )
        })?;
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
        let code = amount.currency.as_str();
        let per_refund = self.per_refund.get(code);
        let per_day = self.per_terminal_per_day.get(code);
        if per_refund.is_none() && per_day.is_none() {
            return Err(OverLimit(format!("no limit is set for {code}")));
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
        let zone = jiff::tz::TimeZone::get(&self.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
        now.to_zoned_datetime(zone)
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
            let l: Limits = toml::from_str(text).unwrap();
            let err = l.validate().unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
