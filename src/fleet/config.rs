//! `[fleet]`: where a box ships its ledger, under which name, with which key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::provider::http::HttpSettings;
use crate::provider::settings::{base_url, secret_file_problem};

use super::batch::{self, MAX_ROWS};

/// `[fleet]` in the daemon's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// The receiver, `https://…` (plain `http://` only to loopback); batches go to
    /// `{url}/v1/batch`.
    pub url: String,
    /// This box's name in the fleet's database (`store-112`).
    pub box_id: String,
    /// The file holding this box's key (`posbridge fleet box-key` prints it).
    pub secret_file: PathBuf,
    /// Most transitions in one batch.
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// How often the outbox is looked at when there was nothing to send.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Longest wait between two tries after failures.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// A CA certificate (PEM) for a receiver with a certificate of its own; without
    /// it the public roots are used.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// For mutual TLS: this box's certificate chain (PEM).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// For mutual TLS: its private key (PEM).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Timeouts and connection reuse, as for providers.
    #[serde(default)]
    pub http: HttpSettings,
}

fn default_batch_max() -> usize {
    500
}
fn default_interval_ms() -> u64 {
    1_000
}
fn default_retry_max_ms() -> u64 {
    60_000
}

impl FleetConfig {
    /// Checks what types cannot; returns the key to blame and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        base_url("fleet.url", &self.url).map_err(|e| ("fleet.url".into(), reason(e)))?;
        batch::validate_box_id(&self.box_id).map_err(|e| ("fleet.box_id".into(), e.to_string()))?;
        let bad = |b: crate::bounds::BadSetting| (format!("fleet.{}", b.key), b.why);
        crate::bounds::check("batch_max", self.batch_max, 1..=MAX_ROWS, "").map_err(bad)?;
        crate::bounds::check("interval_ms", self.interval_ms, 10..=600_000, " ms").map_err(bad)?;
        crate::bounds::check("retry_max_ms", self.retry_max_ms, 100..=3_600_000, " ms")
            .map_err(bad)?;
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return Err((
                "fleet.client_cert_file".into(),
                "give client_cert_file and client_key_file together".into(),
            ));
        }
        self.http.validate().map_err(|e| match e {
            crate::provider::settings::SettingsError::Invalid { field, reason } => {
                (format!("fleet.{field}"), reason)
            }
            other => ("fleet.http".into(), other.to_string()),
        })?;
        Ok(())
    }

    /// Relative files are relative to `base` (the configuration's directory, or
    /// systemd's credentials directory).
    pub fn resolve_relative_files(&mut self, base: &Path) {
        self.resolve_relative_files_with(&mut |_, p| base.join(p));
    }

    /// Replaces every relative file path by what `resolve` makes of it, given the
    /// setting's name (`fleet.secret_file`...) and the path.
    pub fn resolve_relative_files_with(
        &mut self,
        resolve: &mut dyn FnMut(&'static str, &Path) -> PathBuf,
    ) {
        for (setting, path) in [
            ("fleet.secret_file", Some(&mut self.secret_file)),
            ("fleet.ca_file", self.ca_file.as_mut()),
            ("fleet.client_cert_file", self.client_cert_file.as_mut()),
            ("fleet.client_key_file", self.client_key_file.as_mut()),
        ] {
            if let Some(path) = path
                && path.is_relative()
            {
                *path = resolve(setting, path);
            }
        }
    }

    /// Files whose contents are secret, for the permissions warning.
    pub fn secret_files(&self) -> Vec<(&'static str, &Path)> {
        let mut out = vec![("fleet.secret_file", self.secret_file.as_path())];
        if let Some(key) = &self.client_key_file {
            out.push(("fleet.client_key_file", key.as_path()));
        }
        out
    }

    /// The batch endpoint.
    pub fn batch_url(&self) -> String {
        format!(
            "{}{}",
            self.url.trim().trim_end_matches('/'),
            batch::BATCH_PATH
        )
    }

    /// Reads the box's key and builds the client: everything shipping needs, checked
    /// before the daemon creates or opens anything.
    pub fn prepare(&self) -> Result<FleetKeys, FleetFileError> {
        Ok(FleetKeys {
            key: self.load_key()?,
            client: self.client()?,
        })
    }

    /// Reads the box's key.
    pub fn load_key(&self) -> Result<Vec<u8>, FleetFileError> {
        for (key, path) in self.secret_files() {
            if let Some(problem) = secret_file_problem(path) {
                return Err(FleetFileError::new(key, problem.to_string()));
            }
        }
        let path = &self.secret_file;
        let text = std::fs::read_to_string(path).map_err(|e| {
            FleetFileError::new(
                "fleet.secret_file",
                format!("{}: cannot read: {e}", path.display()),
            )
        })?;
        let key = text.trim();
        if key.len() < batch::MIN_SECRET_BYTES {
            return Err(FleetFileError::new(
                "fleet.secret_file",
                format!(
                    "{}: holds {} bytes; a box key (`posbridge fleet box-key`) has 64",
                    path.display(),
                    key.len()
                ),
            ));
        }
        Ok(key.as_bytes().to_vec())
    }

    /// The HTTP client: the provider settings' client, with the receiver's CA and
    /// this box's certificate when configured.
    pub fn client(&self) -> Result<reqwest::Client, FleetFileError> {
        let read = |setting: &'static str, path: &Path| {
            std::fs::read(path).map_err(|e| {
                FleetFileError::new(setting, format!("{}: cannot read: {e}", path.display()))
            })
        };
        let mut builder = self
            .http
            .builder()
            .map_err(|e| FleetFileError::new("fleet.http", reason(e)))?;
        if let Some(ca) = &self.ca_file {
            let cert =
                reqwest::Certificate::from_pem(&read("fleet.ca_file", ca)?).map_err(|e| {
                    FleetFileError::new(
                        "fleet.ca_file",
                        format!("{}: not a PEM certificate: {e}", ca.display()),
                    )
                })?;
            builder = builder.add_root_certificate(cert);
        }
        if let (Some(cert), Some(key)) = (&self.client_cert_file, &self.client_key_file) {
            let mut pem = read("fleet.client_cert_file", cert)?;
            pem.push(b'\n');
            pem.extend(read("fleet.client_key_file", key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                FleetFileError::new(
                    "fleet.client_cert_file",
                    format!("with client_key_file, not a PEM certificate and key: {e}"),
                )
            })?;
            builder = builder.identity(identity);
        }
        builder.build().map_err(|e| {
            FleetFileError::new("fleet.http", format!("cannot build the HTTP client: {e}"))
        })
    }
}

/// What shipping needs, read and checked: the box's key and the receiver's client.
pub struct FleetKeys {
    /// The box's key, for the batches' HMAC.
    pub key: Vec<u8>,
    /// The client, with the receiver's CA and this box's certificate.
    pub client: reqwest::Client,
}

/// A `[fleet]` file or setting that cannot be used: which setting, and why. The
/// reason names the file and never holds its content.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct FleetFileError {
    /// The setting to blame, `fleet.secret_file`...
    pub setting: &'static str,
    /// Why it cannot be used.
    pub reason: String,
}

impl FleetFileError {
    fn new(setting: &'static str, reason: impl Into<String>) -> FleetFileError {
        FleetFileError {
            setting,
            reason: reason.into(),
        }
    }
}

fn reason(e: crate::provider::settings::SettingsError) -> String {
    match e {
        crate::provider::settings::SettingsError::Invalid { reason, .. } => reason,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FleetConfig, String> {
        toml::from_str::<FleetConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn checks_url_box_and_bounds() {
        let ok =
            "url = \"https://fleet.example.com/\"\nbox_id = \"store-112\"\nsecret_file = \"k\"\n";
        let config = parse(ok).unwrap();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.batch_url(), "https://fleet.example.com/v1/batch");
        let bad = [
            ("http://fleet.example.com", "store-112", "", "fleet.url"),
            ("https://fleet.example.com", "store 112", "", "fleet.box_id"),
            (
                "https://fleet.example.com",
                "s",
                "batch_max = 0",
                "fleet.batch_max",
            ),
            (
                "https://fleet.example.com",
                "s",
                "batch_max = 5001",
                "fleet.batch_max",
            ),
            (
                "https://fleet.example.com",
                "s",
                "interval_ms = 1",
                "fleet.interval_ms",
            ),
            (
                "https://fleet.example.com",
                "s",
                "client_cert_file = \"c\"",
                "fleet.client_cert_file",
            ),
        ];
        for (url, box_id, extra, key) in bad {
            let config = parse(&format!(
                "url = \"{url}\"\nbox_id = \"{box_id}\"\nsecret_file = \"k\"\n{extra}\n"
            ))
            .unwrap();
            assert_eq!(
                config.validate().unwrap_err().0,
                key,
                "{url} {box_id} {extra}"
            );
        }
        let loopback =
            parse("url = \"http://127.0.0.1:9000\"\nbox_id = \"b\"\nsecret_file = \"k\"\n")
                .unwrap();
        assert_eq!(loopback.validate(), Ok(()));
        assert!(
            parse("url = \"x\"\nbox_id = \"b\"\nsecret_file = \"k\"\nsecret = \"s\"\n").is_err()
        );
    }
}
