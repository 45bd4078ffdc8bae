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
use super::antom::{AntomConfig, AntomProvider};
use super::ottpay::{OttPayConfig, OttPayProvider};
use super::paymentoptions::{PaymentOptionsConfig, PaymentOptionsProvider};
use super::probe::Probe;
use super::settings::{self, SettingsError};
use crate::bounds::{self, BadSetting};

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

impl ProviderConfig {
    /// Parses a TOML text with a `[provider]` table.
    pub fn from_toml(text: &str) -> Result<ProviderConfig, SettingsError> {
        parse_toml(text, "<string>")
    }

    /// Reads a TOML file with a `[provider]` table.
    pub fn from_file(path: &Path) -> Result<ProviderConfig, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError::Read {
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
        self.resolve_relative_files_with(&mut |_, p| base.join(p));
    }

    /// Replaces every relative `*_file` path by what `resolve` makes of it, given the
    /// setting's name and the path.
    pub fn resolve_relative_files_with(
        &mut self,
        resolve: &mut dyn FnMut(&'static str, &Path) -> PathBuf,
    ) {
        let mut fix = |setting: &'static str, path: &mut Option<PathBuf>| {
            if let Some(p) = path
                && p.is_relative()
            {
                *p = resolve(setting, p);
            }
        };
        match self {
            ProviderConfig::Antom(a) => {
                fix("private_key_file", &mut a.private_key_file);
                fix("antom_public_key_file", &mut a.antom_public_key_file);
                fix("merchant_public_key_file", &mut a.merchant_public_key_file);
            }
            ProviderConfig::Ottpay(o) => fix("app_key_file", &mut o.app_key_file),
            ProviderConfig::Paymentoptions(p) => fix("api_key_file", &mut p.api_key_file),
        }
    }

    /// Checks what needs no file: the base URL and every numeric setting's range.
    /// Keys and secrets are read, and checked, when the provider is built.
    pub fn validate(&self) -> Result<(), SettingsError> {
        settings::base_url("base_url", self.base_url())?;
        let http = match self {
            ProviderConfig::Antom(a) => {
                bounds::check("key_version", a.key_version, 1..=u32::MAX, "").map_err(invalid)?;
                if let Some(notify) = &a.notify {
                    notify
                        .validate()
                        .map_err(|bad| invalid(bad.under("notify")))?;
                }
                &a.http
            }
            ProviderConfig::Ottpay(o) => {
                bounds::check(
                    "token_refresh_margin_ms",
                    o.token_refresh_margin_ms,
                    0..=600_000,
                    " ms",
                )
                .map_err(invalid)?;
                &o.http
            }
            ProviderConfig::Paymentoptions(p) => &p.http,
        };
        http.validate()
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

fn invalid(bad: BadSetting) -> SettingsError {
    SettingsError::invalid(bad.key, bad.why)
}

fn parse_toml(text: &str, path: &str) -> Result<ProviderConfig, SettingsError> {
    toml::from_str::<ProviderFile>(text)
        .map(|file| file.provider)
        .map_err(|e| SettingsError::Parse {
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
pub fn build_provider(config: &ProviderConfig) -> Result<Arc<dyn Provider>, SettingsError> {
    Ok(match config {
        ProviderConfig::Antom(c) => Arc::new(AntomProvider::new(c)?),
        ProviderConfig::Ottpay(c) => Arc::new(OttPayProvider::new(c)?),
        ProviderConfig::Paymentoptions(c) => Arc::new(PaymentOptionsProvider::new(c)?),
    })
}

/// Makes the configured provider's harmless call (see [`super::probe`], which judges
/// the replies; the choice of provider stays here, with [`build_provider`], so the
/// judging needs none of the providers).
pub async fn probe(config: &ProviderConfig) -> Result<Probe, SettingsError> {
    Ok(match config {
        ProviderConfig::Antom(c) => AntomProvider::new(c)?.probe().await,
        ProviderConfig::Ottpay(c) => OttPayProvider::new(c)?.probe().await,
        ProviderConfig::Paymentoptions(c) => PaymentOptionsProvider::new(c)?.probe().await,
    })
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
}
