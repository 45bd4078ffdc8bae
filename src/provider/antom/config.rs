//! Antom's settings: `[provider]` with `kind = "antom"`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::keys::{KeyError, PrivateKey, PublicKey};
use super::notify::NotifyConfig;
use crate::provider::Secret;
use crate::provider::http::HttpSettings;
use crate::provider::settings::{self, SettingsError};

/// Which of Antom's API families the paths follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AntomApi {
    /// In-store omnichannel API: `/v2/payments/refund`, result codes with `DPOS_`.
    #[default]
    V2,
    /// Online API: `/ams/api/v1/payments/refund` (`/ams/sandbox/api/...` for a
    /// `SANDBOX_` client id, as the official SDKs do).
    V1,
}

/// What the `Request-Time` header carries. Whatever is sent is what is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestTimeFormat {
    /// Milliseconds since the epoch, as v1's documents show (`1685599933871`).
    EpochMillis,
    /// ISO 8601 to the millisecond with an offset, as v2's documents ask
    /// (`2019-04-04T12:08:56.253Z`).
    Rfc3339,
}

impl RequestTimeFormat {
    /// The format an API family's documents ask for.
    pub fn documented_for(api: AntomApi) -> RequestTimeFormat {
        match api {
            AntomApi::V2 => RequestTimeFormat::Rfc3339,
            AntomApi::V1 => RequestTimeFormat::EpochMillis,
        }
    }

    /// `now` in this format.
    pub fn render(self, now: jiff::Timestamp) -> String {
        match self {
            RequestTimeFormat::EpochMillis => now.as_millisecond().to_string(),
            RequestTimeFormat::Rfc3339 => now.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        }
    }
}

/// `kind = "antom"` settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AntomConfig {
    /// Scheme, host and any path prefix, e.g. `https://open-na-global.alipay.com`.
    pub base_url: String,
    /// `v2` (default) or `v1`.
    #[serde(default)]
    pub api: AntomApi,
    /// The merchant's client id.
    pub client_id: String,
    /// The `keyVersion` in the Signature header.
    #[serde(default = "default_key_version")]
    pub key_version: u32,
    /// The merchant private key inline (PEM or bare Base64 PKCS#8).
    #[serde(default)]
    pub private_key: Option<Secret>,
    /// A file with the merchant private key (preferred over inline).
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// Antom's public key inline (PEM or bare Base64 X.509 SPKI).
    #[serde(default)]
    pub antom_public_key: Option<String>,
    /// A file with Antom's public key.
    #[serde(default)]
    pub antom_public_key_file: Option<PathBuf>,
    /// The merchant's own public key, as uploaded to the Antom dashboard; optional,
    /// only `posbridge doctor` reads it, to check it matches the private key.
    #[serde(default)]
    pub merchant_public_key_file: Option<PathBuf>,
    /// The `Request-Time` format; by default what the API family's documents ask for.
    #[serde(default)]
    pub request_time: Option<RequestTimeFormat>,
    /// Timeouts and connection reuse.
    #[serde(default)]
    pub http: HttpSettings,
    /// The notifyRefund receiver; absent means off.
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
}

fn default_key_version() -> u32 {
    1
}

impl AntomConfig {
    /// A configuration with defaults for everything but the endpoint and client id
    /// (keys are then given to [`AntomProvider::with_keys`]).
    pub fn new(base_url: impl Into<String>, client_id: impl Into<String>) -> AntomConfig {
        AntomConfig {
            base_url: base_url.into(),
            api: AntomApi::V2,
            client_id: client_id.into(),
            key_version: 1,
            private_key: None,
            private_key_file: None,
            antom_public_key: None,
            antom_public_key_file: None,
            merchant_public_key_file: None,
            request_time: None,
            http: HttpSettings::default(),
            notify: None,
        }
    }

    /// Loads the merchant private key named by the configuration. Errors name the
    /// setting (and the file), never the key's text.
    pub fn load_private_key(&self) -> Result<PrivateKey, SettingsError> {
        let text = settings::resolve_secret(
            "private_key",
            self.private_key.as_ref(),
            self.private_key_file.as_ref(),
        )?;
        PrivateKey::parse(text.expose()).map_err(|e| match &self.private_key_file {
            Some(path) => {
                SettingsError::invalid("private_key_file", format!("{}: {e}", path.display()))
            }
            None => SettingsError::invalid("private_key", e.to_string()),
        })
    }

    /// Loads Antom's public key named by the configuration.
    pub fn load_antom_public_key(&self) -> Result<PublicKey, SettingsError> {
        match (&self.antom_public_key, &self.antom_public_key_file) {
            (Some(_), Some(_)) => Err(SettingsError::invalid(
                "antom_public_key",
                "give either `antom_public_key` or `antom_public_key_file`, not both",
            )),
            (Some(text), None) => PublicKey::parse(text)
                .map_err(|e| SettingsError::invalid("antom_public_key", e.to_string())),
            (None, Some(path)) => PublicKey::from_file(path).map_err(|e| match e {
                KeyError::Read { .. } => {
                    SettingsError::invalid("antom_public_key_file", e.to_string())
                }
                e => SettingsError::invalid(
                    "antom_public_key_file",
                    format!("{}: {e}", path.display()),
                ),
            }),
            (None, None) => Err(SettingsError::invalid(
                "antom_public_key",
                "missing: give `antom_public_key_file` or `antom_public_key`",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_time_as_each_api_documents_it() {
        let t: jiff::Timestamp = "2019-04-04T06:38:56.253871Z".parse().unwrap();
        assert_eq!(RequestTimeFormat::EpochMillis.render(t), "1554359936253");
        assert_eq!(
            RequestTimeFormat::Rfc3339.render(t),
            "2019-04-04T06:38:56.253Z"
        );
        let whole: jiff::Timestamp = "2019-04-04T06:38:56Z".parse().unwrap();
        assert_eq!(
            RequestTimeFormat::Rfc3339.render(whole),
            "2019-04-04T06:38:56.000Z"
        );
        assert_eq!(
            RequestTimeFormat::documented_for(AntomApi::V2),
            RequestTimeFormat::Rfc3339
        );
        assert_eq!(
            RequestTimeFormat::documented_for(AntomApi::V1),
            RequestTimeFormat::EpochMillis
        );
    }
}
