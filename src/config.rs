//! The daemon's configuration: one TOML file (`/etc/posbridge/posbridge.toml` unless
//! `--config` says otherwise) and the drop-ins in `posbridge.toml.d/` beside it
//! ([`dropin`]), documented key by key in `config/posbridge.example.toml`.
//!
//! Errors name the file, the line and the key, and say what was expected. They never
//! quote a line's value, because it might be a secret.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bounds::{self, BadSetting};
use crate::bridge::BridgeSettings;
use crate::bridge::limits::Limits;
use crate::bridge::policy::RetrySettings;
use crate::bridge::texts::{Language, MessageOverrides};
use crate::credentials::{CredentialLookup, FoundKey};
use crate::provider::ProviderConfig;
use crate::provider::settings::SettingsError;
use crate::transport::{DEFAULT_BAUD, TransportConfig, UsbConfig, parse_vid_pid};

pub mod dropin;
mod position;

use position::Positions;

/// Where the configuration is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/posbridge/posbridge.toml";

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[ledger]`.
    #[serde(default)]
    pub ledger: LedgerConfig,
    /// `[[terminal]]`, one per terminal line.
    #[serde(default, rename = "terminal")]
    pub terminals: Vec<TerminalConfig>,
    /// `[provider]`.
    pub provider: ProviderConfig,
    /// `[retry]`.
    #[serde(default)]
    pub retry: RetrySettings,
    /// `[limits]`.
    #[serde(default)]
    pub limits: Limits,
    /// `[messages]`.
    #[serde(default)]
    pub messages: MessageOverrides,
    /// `[log]`.
    #[serde(default)]
    pub log: LogConfig,
    /// `[metrics]`; absent means no metrics endpoint.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// `[shutdown]`.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// `[fleet]`; absent means the ledger is not shipped anywhere.
    #[serde(default)]
    pub fleet: Option<crate::fleet::FleetConfig>,
    /// The file it was read from and its keys' lines, for errors found after parsing.
    #[serde(skip)]
    source: Source,
}

/// Where a configuration came from: the file, and where each key is in it (not the
/// text, which may hold secrets).
#[derive(Clone, Debug, Default)]
struct Source {
    file: String,
    positions: Positions,
}

/// `[ledger]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerConfig {
    /// The SQLite file.
    pub path: PathBuf,
}

impl Default for LedgerConfig {
    fn default() -> LedgerConfig {
        LedgerConfig {
            path: PathBuf::from("/var/lib/posbridge/ledger.sqlite"),
        }
    }
}

/// `[[terminal]]`: one terminal line, either a serial device or a USB id.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalConfig {
    /// A name for logs.
    pub name: Option<String>,
    /// A serial device path.
    pub device: Option<PathBuf>,
    /// The serial line rate.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// A USB bulk terminal's `VID:PID`.
    pub usb: Option<String>,
    /// Its serial number, to choose among several.
    pub usb_serial: Option<String>,
    /// Its vendor interface number.
    #[serde(default)]
    pub usb_interface: u8,
    /// Its bulk IN endpoint.
    #[serde(default = "default_ep_in")]
    pub usb_endpoint_in: u8,
    /// Its bulk OUT endpoint.
    #[serde(default = "default_ep_out")]
    pub usb_endpoint_out: u8,
    /// The cashier texts' language (`ja`, `zh-Hant`, `fr-CA`, ...); without it the
    /// terminal's HELLO chooses, else English.
    #[serde(default)]
    pub language: Option<Language>,
}

fn default_baud() -> u32 {
    DEFAULT_BAUD
}
fn default_ep_in() -> u8 {
    0x81
}
fn default_ep_out() -> u8 {
    0x01
}

impl TerminalConfig {
    /// The transport this entry names.
    pub fn transport(&self) -> Result<TransportConfig, String> {
        match (&self.device, &self.usb) {
            (Some(path), None) => Ok(TransportConfig::Serial {
                path: path.clone(),
                baud: self.baud,
            }),
            (None, Some(ids)) => {
                let (vid, pid) = parse_vid_pid(ids)?;
                Ok(TransportConfig::Usb(UsbConfig {
                    vid,
                    pid,
                    serial: self.usb_serial.clone(),
                    interface: self.usb_interface,
                    endpoint_in: self.usb_endpoint_in,
                    endpoint_out: self.usb_endpoint_out,
                }))
            }
            (Some(_), Some(_)) => Err("give either `device` or `usb`, not both".into()),
            (None, None) => Err("give `device` (a serial path) or `usb` (VID:PID)".into()),
        }
    }

    /// How logs name it.
    pub fn label(&self) -> String {
        match (&self.name, &self.device, &self.usb) {
            (Some(name), _, _) => name.clone(),
            (None, Some(path), _) => path.display().to_string(),
            (None, None, Some(usb)) => format!("USB {usb}"),
            (None, None, None) => "terminal".into(),
        }
    }
}

/// `[log]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `RUST_LOG`-style filter (`info`, `posbridge=debug`); `RUST_LOG` wins.
    pub level: Option<String>,
    /// `text` (logfmt fields; with syslog priorities under systemd) or `json`.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text, fields in logfmt.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[metrics]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where to serve Prometheus text (loopback only by default).
    pub listen: SocketAddr,
    /// Connections served at once; more wait in the kernel's queue.
    #[serde(default = "default_metrics_connections")]
    pub max_connections: usize,
    /// Time a client gets to send its request headers.
    #[serde(default = "default_metrics_header_timeout")]
    pub header_read_timeout_ms: u64,
}

fn default_metrics_connections() -> usize {
    16
}
fn default_metrics_header_timeout() -> u64 {
    5000
}

/// `[shutdown]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long calls in flight may take to finish on SIGTERM, in milliseconds.
    pub grace_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> ShutdownConfig {
        ShutdownConfig { grace_ms: 20_000 }
    }
}

/// Why the configuration file cannot be used: the file, the line and the key to blame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigFileError {
    /// The file.
    pub file: String,
    /// The line, when one is to blame.
    pub line: Option<usize>,
    /// The dotted key to blame (`terminal[1].baud`), when one is.
    pub key: Option<String>,
    /// What is wrong, naming the key and what is expected.
    pub message: String,
}

impl ConfigFileError {
    /// An error in `file` at `line`, about `key` when one is to blame; the message
    /// starts with the key.
    fn new(file: &str, line: Option<usize>, key: Option<&str>, why: &str) -> ConfigFileError {
        ConfigFileError {
            file: file.to_owned(),
            line,
            key: key.map(str::to_owned),
            message: match key {
                Some(key) => format!("`{key}`: {why}"),
                None => why.to_owned(),
            },
        }
    }

    /// The `toml` crate's error, at the line and key of its span in the text whose
    /// keys are at `positions`.
    fn from_toml(file: &str, positions: &Positions, error: &toml::de::Error) -> ConfigFileError {
        let offset = error.span().map(|span| span.start);
        ConfigFileError::new(
            file,
            offset.map(|o| positions.line(o)),
            offset.and_then(|o| positions.key_at(o)),
            &redact(error.message()),
        )
    }
}

impl Config {
    /// Reads and checks the file and its drop-ins, as the daemon does: a relative key file names a
    /// systemd credential in `$CREDENTIALS_DIRECTORY` when the service has one, and
    /// otherwise a file beside the configuration.
    pub fn load(path: &Path) -> Result<Config, ConfigFileError> {
        Config::load_with(path, &CredentialLookup::service()).map(|(config, _)| config)
    }

    /// Reads and checks the file and its drop-ins, finding relative key files with
    /// `lookup`; says
    /// where each was found (or that it was not).
    pub fn load_with(
        path: &Path,
        lookup: &CredentialLookup,
    ) -> Result<(Config, Vec<FoundKey>), ConfigFileError> {
        let mut config = dropin::Sources::read(path)?.parse()?;
        let found = resolve_key_files(&mut config.provider, config.fleet.as_mut(), path, lookup);
        Ok((config, found))
    }

    /// Parses and checks a configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigFileError> {
        let position::Parsed {
            document,
            positions,
            error,
        } = position::parse(text);
        if let Some(e) = error {
            return Err(ConfigFileError::from_toml(file, &positions, &e));
        }
        // The provider table is read as a whole (its `kind` picks the shape), so its
        // errors point at the table; it is read again alone, keeping the spans, to
        // point at the field.
        let provider = document.get_ref().get("provider").cloned();
        let mut config =
            Config::deserialize(toml::de::Deserializer::from(document)).map_err(|e| {
                let in_provider = e
                    .span()
                    .and_then(|span| positions.key_at(span.start))
                    .is_some_and(|key| key == "provider" || key.starts_with("provider."));
                let inner = provider.filter(|_| in_provider).and_then(provider_error);
                ConfigFileError::from_toml(file, &positions, inner.as_ref().unwrap_or(&e))
            })?;
        config.source = Source {
            file: file.to_owned(),
            positions,
        };
        config
            .check()
            .map_err(|(key, message)| config.error_at(key.as_deref(), &message))?;
        Ok(config)
    }

    /// An error about `key` (a dotted key such as `provider.private_key_file`, or
    /// none for the whole file) found after parsing, pointing at the key's line.
    pub fn error_at(&self, key: Option<&str>, message: &str) -> ConfigFileError {
        let line = key.and_then(|key| self.source.positions.line_of(key));
        ConfigFileError::new(&self.source.file, line, key, message)
    }

    /// A provider's error (building it, reading its keys), pointing at the line of
    /// the `[provider]` setting it names.
    pub fn provider_error(&self, error: &SettingsError) -> ConfigFileError {
        self.error_at(Some(&provider_key(error)), &error.reason())
    }

    /// Checks what types alone cannot: returns the offending key and why.
    fn check(&self) -> Result<(), (Option<String>, String)> {
        if self.terminals.is_empty() {
            return Err((
                None,
                "no [[terminal]] is configured; add one with `device = \"/dev/posterminal-<serial number>\"`"
                    .into(),
            ));
        }
        for (i, terminal) in self.terminals.iter().enumerate() {
            let at = |bad: BadSetting| (Some(format!("terminal[{i}].{}", bad.key)), bad.why);
            terminal
                .transport()
                .map_err(|e| (Some(format!("terminal[{i}]")), e))?;
            bounds::check("baud", terminal.baud, 300..=4_000_000, "").map_err(at)?;
            bounds::check(
                "usb_endpoint_in",
                terminal.usb_endpoint_in,
                0x81..=0x8F,
                " (an IN endpoint address has bit 7 set)",
            )
            .map_err(at)?;
            bounds::check(
                "usb_endpoint_out",
                terminal.usb_endpoint_out,
                0x01..=0x0F,
                " (an OUT endpoint address has bit 7 clear)",
            )
            .map_err(at)?;
        }
        let at = |table: &str, bad: BadSetting| {
            let bad = bad.under(table);
            (Some(bad.key), bad.why)
        };
        self.retry.validate().map_err(|bad| at("retry", bad))?;
        self.limits.validate().map_err(|bad| at("limits", bad))?;
        self.messages
            .validate()
            .map_err(|bad| (Some(bad.key), bad.why))?;
        self.provider
            .validate()
            .map_err(|e| (Some(provider_key(&e)), e.reason()))?;
        if let Some(metrics) = &self.metrics {
            bounds::check("max_connections", metrics.max_connections, 1..=256, "")
                .map_err(|bad| at("metrics", bad))?;
            bounds::check(
                "header_read_timeout_ms",
                metrics.header_read_timeout_ms,
                100..=60_000,
                " ms",
            )
            .map_err(|bad| at("metrics", bad))?;
        }
        bounds::check("grace_ms", self.shutdown.grace_ms, 0..=600_000, " ms")
            .map_err(|bad| at("shutdown", bad))?;
        if let Some(level) = &self.log.level {
            // A filter that does not parse would leave the daemon silent.
            tracing_subscriber::EnvFilter::builder()
                .parse(level)
                .map_err(|e| {
                    (
                        Some("log.level".into()),
                        format!(
                            "not a log filter ({e}); write a level (error, warn, info, debug, \
                             trace) or `target=level` pairs separated by commas"
                        ),
                    )
                })?;
        }
        if let Some(fleet) = &self.fleet {
            fleet.validate().map_err(|(key, e)| (Some(key), e))?;
        }
        Ok(())
    }

    /// The bridge's part.
    pub fn bridge_settings(&self) -> BridgeSettings {
        BridgeSettings {
            retry: self.retry.clone(),
            limits: self.limits.clone(),
            messages: self.messages.clone(),
        }
    }
}

/// The dotted key a provider's error blames: its setting, else the whole table.
fn provider_key(error: &SettingsError) -> String {
    match error.setting() {
        Some(setting) => format!("provider.{setting}"),
        None => "provider".into(),
    }
}

/// The `[provider]` table's first error when read alone as the shape its `kind`
/// names, with spans into the text it was parsed from; `None` when it reads without
/// error.
fn provider_error(mut provider: toml::Spanned<toml::de::DeValue<'_>>) -> Option<toml::de::Error> {
    use crate::provider::{
        antom::AntomConfig, ottpay::OttPayConfig, paymentoptions::PaymentOptionsConfig,
    };
    let toml::de::DeValue::Table(table) = provider.get_mut() else {
        return None;
    };
    let kind = table.remove("kind")?.into_inner();
    let value = toml::de::ValueDeserializer::from(provider);
    match kind.as_str()? {
        "antom" => AntomConfig::deserialize(value).err(),
        "ottpay" => OttPayConfig::deserialize(value).err(),
        "paymentoptions" => PaymentOptionsConfig::deserialize(value).err(),
        _ => None,
    }
}

/// Drops the offending value from serde's "invalid type/value" messages: it might be
/// a secret. `invalid type: integer `1234`, expected a string` keeps its kind and
/// what was expected.
fn redact(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            let kind = found.split_whitespace().next().unwrap_or("value");
            return format!("{prefix}{kind}, expected {expected}");
        }
    }
    message.to_owned()
}

/// Makes the relative key files of a `[provider]` (and `[fleet]`) table absolute:
/// each is looked up with `lookup` (a credentials directory, or the unit's
/// `LoadCredential=` lines), else beside the configuration file `config_path`.
/// Returns where each was found, or that it was not.
pub fn resolve_key_files(
    provider: &mut ProviderConfig,
    fleet: Option<&mut crate::fleet::FleetConfig>,
    config_path: &Path,
    lookup: &CredentialLookup,
) -> Vec<FoundKey> {
    let dir = config_path.parent().unwrap_or(Path::new(""));
    let mut found = Vec::new();
    let mut resolve = |setting: &'static str, name: &Path| {
        let key = lookup.resolve(setting, name, dir);
        let path = key.path.clone();
        found.push(key);
        path
    };
    provider.resolve_relative_files_with(&mut resolve);
    if let Some(fleet) = fleet {
        fleet.resolve_relative_files_with(&mut resolve);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[ledger]
path = "/tmp/ledger.sqlite"

[[terminal]]
device = "/dev/posterminal0"

[provider]
kind = "paymentoptions"
base_url = "https://api.example.com/api/v1"
api_key = "k"
merchant_id = "M1"

[limits.per_refund]
USD = 50000
"#;

    #[test]
    fn a_good_file_loads() {
        let config = Config::parse(GOOD, "posbridge.toml").unwrap();
        assert_eq!(config.terminals.len(), 1);
        assert_eq!(config.terminals[0].baud, 115_200);
        assert!(matches!(
            config.terminals[0].transport(),
            Ok(TransportConfig::Serial { .. })
        ));
        assert_eq!(
            config.bridge_settings().limits.per_refund.get("USD"),
            Some(&50000)
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            (GOOD.replace("device = ", "devise = "), 6, "terminal.devise"),
            (
                GOOD.replace("USD = 50000", "USD = \"lots\""),
                15,
                "limits.per_refund.USD",
            ),
            (
                GOOD.replace("path = \"/tmp/ledger.sqlite\"", "path = 7"),
                3,
                "ledger.path",
            ),
            (GOOD.replace("[ledger]", "[ledgre]"), 2, "ledgre"),
            (
                GOOD.replace(
                    "device = \"/dev/posterminal0\"",
                    "device = \"/dev/posterminal0\"\nlanguage = \"tlh\"",
                ),
                7,
                "terminal.language",
            ),
        ];
        for (text, line, key) in cases {
            let err = Config::parse(&text, "/etc/posbridge/posbridge.toml").unwrap_err();
            let shown = err.to_string();
            assert_eq!(err.line, Some(line), "{shown}");
            assert!(
                shown.starts_with(&format!("/etc/posbridge/posbridge.toml:{line}: ")),
                "{shown}"
            );
            assert!(shown.contains(key), "{shown}");
        }
    }

    #[test]
    fn meaning_is_checked_after_types() {
        let both = GOOD.replace(
            "device = \"/dev/posterminal0\"",
            "device = \"/dev/posterminal0\"\nusb = \"0b00:3070\"",
        );
        let err = Config::parse(&both, "f").unwrap_err();
        assert!(err.message.contains("not both"), "{err}");
        assert_eq!(err.line, Some(5), "{err}");
        let none = GOOD.replace("[[terminal]]\ndevice = \"/dev/posterminal0\"\n", "");
        assert!(
            Config::parse(&none, "f")
                .unwrap_err()
                .message
                .contains("[[terminal]]")
        );
        let bad_usb = GOOD.replace("device = \"/dev/posterminal0\"", "usb = \"0b00\"");
        assert!(
            Config::parse(&bad_usb, "f")
                .unwrap_err()
                .message
                .contains("VID:PID")
        );
        let bad_limit = GOOD.replace("USD = 50000", "usd = 50000");
        let err = Config::parse(&bad_limit, "f").unwrap_err();
        assert!(err.message.contains("limits.per_refund.usd"), "{err}");
    }

    #[test]
    fn errors_found_after_parsing_name_a_line() {
        let cases = [
            // Only a sub-table of [messages]: the entry the message names.
            (
                GOOD.replace(
                    "[limits.per_refund]",
                    "[messages.states]\n\"-SUCCEEDED\" = [\"ok\"]\n[limits.per_refund]",
                ),
                15,
            ),
            // A key of a table: the key's own line.
            (format!("{GOOD}[shutdown]\ngrace_ms = 700000\n"), 17),
            // The key's own line, under a header with a comment after it.
            (format!("{GOOD}[retry] # backoff\nfirst_retry_ms = 0\n"), 17),
            // A key of the second terminal: its line, not the first one's.
            (
                format!("{GOOD}[[terminal]]\ndevice = \"/dev/ttyACM0\"\nbaud = 0\n"),
                18,
            ),
            // The second terminal: its own header, not the first one's.
            (
                format!("{GOOD}[[terminal]]\ndevice = \"/dev/ttyACM0\"\nusb = \"0b00:3070\"\n"),
                16,
            ),
            // Set with a dotted key at the top: that line.
            (format!("shutdown.grace_ms = 700000\n{GOOD}"), 1),
        ];
        for (text, line) in cases {
            let err = Config::parse(&text, "f").unwrap_err();
            assert_eq!(err.line, Some(line), "{err}\n{text}");
        }
    }

    #[test]
    fn provider_errors_name_the_field_and_its_line() {
        let cases = [
            (
                GOOD.replace("merchant_id = \"M1\"", "merchant_id = 7"),
                12,
                "provider.merchant_id",
            ),
            (
                GOOD.replace("api_key = \"k\"", "api_kee = \"k\""),
                11,
                "provider.api_kee",
            ),
            (
                GOOD.replace(
                    "merchant_id = \"M1\"",
                    "merchant_id = \"M1\"\n[provider.http]\nconnect_timeout_ms = \"soon\"",
                ),
                14,
                "provider.http.connect_timeout_ms",
            ),
        ];
        for (text, line, key) in cases {
            let err = Config::parse(&text, "f").unwrap_err();
            assert_eq!(err.line, Some(line), "{err}\n{text}");
            assert!(err.message.contains(key), "{err}");
            assert!(!err.message.contains('\n'), "{err}");
        }
    }

    #[test]
    fn languages_and_their_overrides_are_checked() {
        let text = GOOD.replace(
            "device = \"/dev/posterminal0\"",
            "device = \"/dev/posterminal0\"\nlanguage = \"zh-TW\"",
        );
        let config = Config::parse(&text, "f").unwrap();
        assert_eq!(config.terminals[0].language, Some(Language::ZhHant));
        let err = Config::parse(
            &GOOD.replace("[ledger]", "language = \"klingon\"\n[ledger]"),
            "f",
        )
        .unwrap_err();
        assert!(err.message.contains("language"), "{err}");
        let wrong = format!("{GOOD}[messages.ja.states]\nDONE = [\"x\"]\n");
        let err = Config::parse(&wrong, "f").unwrap_err();
        assert!(err.message.contains("messages.ja.states.DONE"), "{err}");
        assert_eq!(err.line, Some(17), "{err}");
        let unknown = format!("{GOOD}[messages.tlh.states]\nSUCCEEDED = [\"x\"]\n");
        let err = Config::parse(&unknown, "f").unwrap_err();
        assert!(err.message.contains("unknown table `tlh`"), "{err}");
    }

    #[test]
    fn an_unknown_time_zone_is_refused_at_its_line() {
        let text = GOOD.replace(
            "[limits.per_refund]",
            "[limits]\ntime_zone = \"Mars/Base\"\n[limits.per_refund]",
        );
        let err = Config::parse(&text, "/etc/posbridge/posbridge.toml").unwrap_err();
        assert_eq!(err.line, Some(15), "{err}");
        assert_eq!(err.key.as_deref(), Some("limits.time_zone"), "{err}");
        assert!(
            err.to_string()
                .starts_with("/etc/posbridge/posbridge.toml:15: `limits.time_zone`: "),
            "{err}"
        );
        assert!(err.message.contains("not a known time zone"), "{err}");
        let known = GOOD.replace(
            "[limits.per_refund]",
            "[limits]\ntime_zone = \"Asia/Tokyo\"\n[limits.per_refund]",
        );
        let config = Config::parse(&known, "f").unwrap();
        assert_eq!(config.limits.time_zone.iana_name(), Some("Asia/Tokyo"));
    }

    #[test]
    fn secrets_are_not_quoted() {
        let text = GOOD.replace("api_key = \"k\"", "api_key = 12345678");
        let err = Config::parse(&text, "f").unwrap_err();
        assert!(!err.to_string().contains("12345678"), "{err}");
    }
}
