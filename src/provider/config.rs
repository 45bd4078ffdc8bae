//! The `[provider]` configuration table and building a provider from it.
//!
//! A configuration names one provider by `kind` and carries its endpoint, credentials
//! and HTTP settings:
//!
//! ```toml
//! [provider]
//! kind = "antom"                 # antom | ottpay | paymentoptions
//! base_url = "https://open-na-global.alipay.com"
//! client_id = "SANDBOX_5YBZ1Z2Z0000"
//! private_key_file = "/etc/credstore/posbridge/antom-merchant.pem"
//! antom_public_key_file = "/etc/posbridge/antom-public.pem"
//! [provider.http]
//! connect_timeout_ms = 10000
//! ```
//!
//! Secrets are given either inline or, better, as a file path (`*_file`), so a config
//! can be shown to someone without its secrets. Parse errors name the line and never
//! quote it, because the line may hold a secret.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::Provider;
use super::Secret;
use super::antom::keys::KeyError;
use super::antom::{AntomConfig, AntomProvider};
use super::ottpay::{OttPayConfig, OttPayProvider};
use super::paymentoptions::{PaymentOptionsConfig, PaymentOptionsProvider};

/// Which provider, and its settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProviderConfig {
    /// Antom (Alipay+ / Ant International).
    Antom(AntomConfig),
    /// OTT Pay (Canada).
    Ottpay(OttPayConfig),
    /// PaymentOptions.
    Paymentoptions(PaymentOptionsConfig),
}

/// A file holding a `[provider]` table (other tables are ignored, so the daemon's
/// whole configuration file can be given).
#[derive(Debug, Deserialize)]
struct ProviderFile {
    provider: ProviderConfig,
}

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The TOML is malformed or has wrong fields.
    #[error("{path}: {reason}")]
    Parse {
        /// The file (or `<string>`).
        path: String,
        /// What is wrong and on which line.
        reason: String,
    },
    /// A value is unusable.
    #[error("provider setting `{field}`: {reason}")]
    Invalid {
        /// The setting.
        field: String,
        /// Why.
        reason: String,
    },
    /// A key could not be loaded.
    #[error("{0}")]
    Key(#[from] KeyError),
}

impl ConfigError {
    /// An `Invalid` error.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl ProviderConfig {
    /// Parses a TOML text with a `[provider]` table.
    pub fn from_toml(text: &str) -> Result<ProviderConfig, ConfigError> {
        parse_toml(text, "<string>")
    }

    /// Reads a TOML file with a `[provider]` table.
    pub fn from_file(path: &Path) -> Result<ProviderConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        parse_toml(&text, &path.display().to_string())
    }

    /// The files holding secrets (private keys, API keys), by setting name.
    pub fn secret_files(&self) -> Vec<(&'static str, &Path)> {
        match self {
            ProviderConfig::Antom(a) => a
                .private_key_file
                .as_deref()
                .map(|p| ("private_key_file", p))
                .into_iter()
                .collect(),
            ProviderConfig::Ottpay(o) => o
                .app_key_file
                .as_deref()
                .map(|p| ("app_key_file", p))
                .into_iter()
                .collect(),
            ProviderConfig::Paymentoptions(p) => p
                .api_key_file
                .as_deref()
                .map(|f| ("api_key_file", f))
                .into_iter()
                .collect(),
        }
    }

    /// Makes every relative `*_file` path absolute against `base` (systemd's
    /// credentials directory, or the configuration file's directory).
    pub fn resolve_relative_files(&mut self, base: &Path) {
        let fix = |path: &mut Option<PathBuf>| {
            if let Some(p) = path
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        };
        match self {
            ProviderConfig::Antom(a) => {
                fix(&mut a.private_key_file);
                fix(&mut a.antom_public_key_file);
                fix(&mut a.merchant_public_key_file);
            }
            ProviderConfig::Ottpay(o) => fix(&mut o.app_key_file),
            ProviderConfig::Paymentoptions(p) => fix(&mut p.api_key_file),
        }
    }

    /// The configured `base_url`, as written.
    pub fn base_url(&self) -> &str {
        match self {
            ProviderConfig::Antom(a) => &a.base_url,
            ProviderConfig::Ottpay(o) => &o.base_url,
            ProviderConfig::Paymentoptions(p) => &p.base_url,
        }
    }

    /// The provider's name.
    pub fn name(&self) -> &'static str {
        match self {
            ProviderConfig::Antom(_) => "antom",
            ProviderConfig::Ottpay(_) => "ottpay",
            ProviderConfig::Paymentoptions(_) => "paymentoptions",
        }
    }
}

fn parse_toml(text: &str, path: &str) -> Result<ProviderConfig, ConfigError> {
    toml::from_str::<ProviderFile>(text)
        .map(|file| file.provider)
        .map_err(|e| ConfigError::Parse {
            path: path.to_string(),
            // The message only, with a line number: the default rendering quotes the
            // offending line, which may be a secret.
            reason: match e.span() {
                Some(span) => format!(
                    "line {}: {}",
                    text.get(..span.start)
                        .map_or(0, |t| t.lines().count().max(1)),
                    e.message()
                ),
                None => e.message().to_string(),
            },
        })
}

/// Builds the configured provider.
pub fn build_provider(config: &ProviderConfig) -> Result<Arc<dyn Provider>, ConfigError> {
    Ok(match config {
        ProviderConfig::Antom(c) => Arc::new(AntomProvider::new(c)?),
        ProviderConfig::Ottpay(c) => Arc::new(OttPayProvider::new(c)?),
        ProviderConfig::Paymentoptions(c) => Arc::new(PaymentOptionsProvider::new(c)?),
    })
}

/// A secret given inline or as a file; exactly one of the two.
pub fn resolve_secret(
    field: &str,
    inline: Option<&Secret>,
    file: Option<&PathBuf>,
) -> Result<Secret, ConfigError> {
    let secret = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                field,
                format!("give either `{field}` or `{field}_file`, not both"),
            ));
        }
        (Some(secret), None) => secret.clone(),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            Secret::new(text.trim().to_string())
        }
        (None, None) => {
            return Err(ConfigError::invalid(
                field,
                format!("missing: give `{field}_file` (preferred) or `{field}`"),
            ));
        }
    };
    if secret.is_empty() {
        return Err(ConfigError::invalid(field, "is empty"));
    }
    Ok(secret)
}

/// Checks and parses a base URL: https with a host, no query or fragment. Plain
/// `http://` is accepted only for a loopback host (`127.0.0.0/8`, `::1`,
/// `localhost`): the cloud simulator on this machine. There is no way to send a
/// refund to a remote host without TLS, nor to turn certificate checks off.
/// The returned text has no trailing `/`, so API paths can be appended.
pub fn base_url(field: &str, text: &str) -> Result<String, ConfigError> {
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| ConfigError::invalid(field, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            field,
            "must start with https:// (http:// only for a simulator on 127.0.0.1 or localhost)",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(field, "has no host"));
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(ConfigError::invalid(
            field,
            "https is required: plain http:// is accepted only for a simulator on this \
             machine (127.0.0.0/8, ::1 or localhost)",
        ));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(ConfigError::invalid(
            field,
            "must not carry a query, fragment or credentials",
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Whether `text` is a plain `http://` URL to a loopback host, which [`base_url`]
/// accepts: calls to it go without TLS (a local simulator). `false` for anything else,
/// unparsable text included.
pub fn is_plain_http_loopback(text: &str) -> bool {
    reqwest::Url::parse(text.trim()).is_ok_and(|url| url.scheme() == "http" && is_loopback(&url))
}

fn is_loopback(url: &reqwest::Url) -> bool {
    // The URL parser has already normalised the host: IPv4 in dotted decimal (also
    // when written as `0x7f.1` or `2130706433`), IPv6 in brackets, names lower case.
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_line_not_its_text() {
        let text = "[provider]\nkind = \"ottpay\"\napp_key = \"s3cret-value\" junk\n";
        let err = ProviderConfig::from_toml(text).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn unknown_kind_is_named() {
        let err = ProviderConfig::from_toml("[provider]\nkind = \"paypal\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("paypal"), "{err}");
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("u", "https://h.example/openapi/").unwrap(),
            "https://h.example/openapi"
        );
        assert_eq!(
            base_url("u", "http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
        for bad in [
            "",
            "ftp://h",
            "https://h/?a=1",
            "https://u:p@h/",
            "not a url",
        ] {
            assert!(base_url("u", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_only_for_loopback() {
        for local in [
            "http://127.0.0.1:8480",
            "http://127.9.8.7/x",
            "http://[::1]:8480",
            "http://localhost:8480",
            "http://LOCALHOST",
            "http://2130706433/",
        ] {
            assert!(base_url("base_url", local).is_ok(), "{local}");
            assert!(is_plain_http_loopback(local), "{local}");
        }
        for remote in [
            "http://example.com",
            "http://open-na-global.alipay.com/",
            "http://localhost.example.com",
            "http://127.0.0.1.example.com",
            "http://0.0.0.0:8480",
            "http://10.0.0.5",
            "http://[::ffff:7f00:1]",
            "http://[fe80::1]",
        ] {
            let err = base_url("base_url", remote).unwrap_err().to_string();
            assert!(
                err.contains("`base_url`") && err.contains("https is required"),
                "{remote}: {err}"
            );
            assert!(!is_plain_http_loopback(remote), "{remote}");
        }
        assert!(base_url("base_url", "https://example.com").is_ok());
        assert!(!is_plain_http_loopback("https://127.0.0.1"));
        assert!(!is_plain_http_loopback("not a url"));
    }

    #[test]
    fn a_key_to_turn_certificate_checks_off_is_unknown() {
        for (kind, rest) in [
            ("antom", "client_id = \"C\"\nprivate_key = \"k\"\n"),
            ("ottpay", "app_id = \"A\"\napp_key = \"k\"\n"),
            ("paymentoptions", "api_key = \"k\"\nmerchant_id = \"M\"\n"),
        ] {
            for key in [
                "danger_accept_invalid_certs",
                "accept_invalid_certs",
                "insecure",
            ] {
                let top = format!(
                    "[provider]\nkind = \"{kind}\"\nbase_url = \"https://h.example\"\n{rest}{key} = true\n"
                );
                let err = ProviderConfig::from_toml(&top).unwrap_err().to_string();
                assert!(err.contains(key) && err.contains("unknown"), "{top}: {err}");
                let http = format!(
                    "[provider]\nkind = \"{kind}\"\nbase_url = \"https://h.example\"\n{rest}[provider.http]\n{key} = true\n"
                );
                let err = ProviderConfig::from_toml(&http).unwrap_err().to_string();
                assert!(
                    err.contains(key) && err.contains("unknown"),
                    "{http}: {err}"
                );
            }
        }
    }

    #[test]
    fn secrets_inline_or_file_exactly_one() {
        let s = Secret::new("k");
        assert_eq!(
            resolve_secret("app_key", Some(&s), None).unwrap().expose(),
            "k"
        );
        assert!(resolve_secret("app_key", None, None).is_err());
        let p = PathBuf::from("/x");
        assert!(resolve_secret("app_key", Some(&s), Some(&p)).is_err());
        let blank = Secret::new("  ");
        assert!(resolve_secret("app_key", Some(&blank), None).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "from-file\n").unwrap();
        assert_eq!(
            resolve_secret("app_key", None, Some(&file))
                .unwrap()
                .expose(),
            "from-file"
        );
    }
}
