//! The ranges numeric settings must fall in, and the error that names one outside.
//!
//! Every numeric key of the configuration has a documented range
//! (`config/posbridge.example.toml` gives each one); a value outside it, such as
//! `baud = 0` or a zero timeout, cannot work and is refused before anything starts.
//! Shared by every layer that owns settings (the providers, the bridge, the daemon).

use std::fmt::Display;
use std::ops::RangeInclusive;

/// A setting that cannot be used: its key, dotted below the table that checked it
/// (`http.connect_timeout_ms`), and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadSetting {
    /// The key.
    pub key: String,
    /// What is wrong, saying what is expected.
    pub why: String,
}

impl BadSetting {
    /// A bad setting named `key`.
    pub fn new(key: impl Into<String>, why: impl Into<String>) -> BadSetting {
        BadSetting {
            key: key.into(),
            why: why.into(),
        }
    }

    /// The same, with its key below `table` (`retry` + `first_retry_ms`).
    pub fn under(self, table: &str) -> BadSetting {
        BadSetting {
            key: format!("{table}.{}", self.key),
            why: self.why,
        }
    }
}

impl std::fmt::Display for BadSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.key, self.why)
    }
}

/// `value` of `key` must lie in `range`; `unit` follows the numbers (` ms`, ` bytes`).
pub fn check<T: PartialOrd + Display>(
    key: &str,
    value: T,
    range: RangeInclusive<T>,
    unit: &str,
) -> Result<(), BadSetting> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(BadSetting::new(
        key,
        format!(
            "must be from {} to {}{unit}, got {value}",
            range.start(),
            range.end()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_passes_and_outside_names_the_key_and_range() {
        assert!(check("baud", 115_200u32, 300..=4_000_000, "").is_ok());
        assert!(check("baud", 300u32, 300..=4_000_000, "").is_ok());
        assert!(check("baud", 4_000_000u32, 300..=4_000_000, "").is_ok());
        let err = check("baud", 0u32, 300..=4_000_000, "").unwrap_err();
        assert_eq!(err.key, "baud");
        assert_eq!(err.why, "must be from 300 to 4000000, got 0");
        let err = check("grace_ms", 700_000u64, 0..=600_000, " ms")
            .unwrap_err()
            .under("shutdown");
        assert_eq!(
            err.to_string(),
            "`shutdown.grace_ms`: must be from 0 to 600000 ms, got 700000"
        );
    }
}
