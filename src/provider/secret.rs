//! A wrapper for secrets (private keys, API keys, tokens) that never prints them.
//!
//! Every error, log line and `Debug` dump in posbridge may end up in a journal or a
//! support ticket. Secrets are held in [`Secret`], whose `Debug` and `Display` both
//! print `[redacted]`; the value is reachable only through [`Secret::expose`], which
//! is easy to find in review.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret text. Prints as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; only for putting it where it belongs (a header, a signer).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty (a configuration mistake worth naming).
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "hunter2");
    }
}
