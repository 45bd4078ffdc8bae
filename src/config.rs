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
use crate::transport::{DEFAULT_BAUD, TransportConfig, UsbConfig, parse_vid_pid};

pub mod dropin;

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
    /// The file and text it was read from, for errors found after parsing.
    #[serde(skip)]
    source: Source,
}

/// Where a configuration came from. Its `Debug` names the file only: the text may hold
/// secrets.
#[derive(Clone, Default)]
struct Source {
    file: String,
    text: String,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({:?})", self.file)
    }
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
    /// What is wrong, naming the key and what is expected.
    pub message: String,
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
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let (mut line, key) = match e.span() {
                Some(span) => locate(text, span.start),
                None => (None, None),
            };
            // The provider table is read as a whole (its `kind` picks the shape), so
            // its errors point at the table; read it again, field by field, to name
            // the field and its line.
            if key.as_deref().is_some_and(|k| k.starts_with("provider"))
                && let Some((field, message)) = provider_error(text)
            {
                line = line_of_field(text, &field).or(line);
                return ConfigFileError {
                    file: file.to_owned(),
                    line,
                    message: format!("`{field}`: {message}"),
                };
            }
            let message = match key {
                Some(key) => format!("`{key}`: {}", redact(e.message())),
                None => redact(e.message()),
            };
            ConfigFileError {
                file: file.to_owned(),
                line,
                message,
            }
        })?;
        config.source = Source {
            file: file.to_owned(),
            text: text.to_owned(),
        };
        config
            .check()
            .map_err(|(key, message)| config.error_at(key.as_deref(), &message))?;
        Ok(config)
    }

    /// An error about `key` (a dotted key such as `provider.private_key_file`, or
    /// none for the whole file) found after parsing, pointing at the key's line.
    pub fn error_at(&self, key: Option<&str>, message: &str) -> ConfigFileError {
        ConfigFileError {
            file: self.source.file.clone(),
            line: line_of_check(&self.source.text, key, message),
            message: match key {
                Some(key) => format!("`{key}`: {message}"),
                None => message.to_owned(),
            },
        }
    }

    /// A provider's error (building it, reading its keys), pointing at the line of
    /// the `[provider]` setting it names.
    pub fn provider_error(
        &self,
        error: &crate::provider::settings::SettingsError,
    ) -> ConfigFileError {
        use crate::provider::settings::SettingsError as ProviderError;
        match error {
            ProviderError::Invalid { field, reason } => {
                self.error_at(Some(&format!("provider.{field}")), reason)
            }
            other => self.error_at(Some("provider"), &other.to_string()),
        }
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
        self.limits
            .validate()
            .map_err(|e| (Some("limits".into()), e))?;
        self.messages
            .validate()
            .map_err(|e| (Some("messages".into()), e))?;
        self.provider.validate().map_err(|e| match e {
            crate::provider::settings::SettingsError::Invalid { field, reason } => {
                (Some(format!("provider.{field}")), reason)
            }
            other => (Some("provider".into()), other.to_string()),
        })?;
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

/// The `[provider]` table's first error, with the dotted key of the field to blame.
fn provider_error(text: &str) -> Option<(String, String)> {
    use crate::provider::{
        antom::AntomConfig, ottpay::OttPayConfig, paymentoptions::PaymentOptionsConfig,
    };
    let table: toml::Table = text.parse().ok()?;
    let mut provider = table.get("provider")?.as_table()?.clone();
    let kind = provider.remove("kind")?.as_str()?.to_owned();
    let value = toml::Value::Table(provider);
    let error = match kind.as_str() {
        "antom" => serde_path_to_error::deserialize::<_, AntomConfig>(value).err(),
        "ottpay" => serde_path_to_error::deserialize::<_, OttPayConfig>(value).err(),
        "paymentoptions" => {
            serde_path_to_error::deserialize::<_, PaymentOptionsConfig>(value).err()
        }
        _ => None,
    }?;
    // The first line only: the rest repeats the key ("in `merchant_id`").
    let message = redact(error.inner().to_string().lines().next().unwrap_or_default());
    let mut path = error.path().to_string();
    // An unknown field is named in the message, not in the path.
    if let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        if path == "." {
            path = name.to_owned();
        } else if path.rsplit('.').next() != Some(name) {
            path = format!("{path}.{name}");
        }
    }
    let field = if path == "." {
        "provider".to_owned()
    } else {
        format!("provider.{path}")
    };
    Some((field, message))
}

/// The line where a dotted key (`provider.http.connect_timeout_ms`, or
/// `terminal[1].baud` in the second `[[terminal]]`) is set.
fn line_of_field(text: &str, dotted: &str) -> Option<usize> {
    let (table, name) = dotted.rsplit_once('.')?;
    let (table, nth) = match table.strip_suffix(']').and_then(|t| t.split_once('[')) {
        Some((table, index)) => (table, Some(index.parse::<usize>().ok()?)),
        None => (table, None),
    };
    let mut current = String::new();
    let mut index = None;
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        if let Some(path) = header_path(line) {
            index = None;
            if path == table && line.trim_start().starts_with("[[") {
                index = Some(seen);
                seen += 1;
            }
            current = path;
            continue;
        }
        if current == table
            && (nth.is_none() || nth == index)
            && let Some((key, _)) = line.trim().split_once('=')
            && unquote(key) == name
        {
            return Some(i + 1);
        }
    }
    None
}

/// The dotted path a table header line opens (`[a."b"]` → `a.b`), ignoring a
/// comment after it; `None` for other lines.
fn header_path(line: &str) -> Option<String> {
    let inner = line.trim().strip_prefix('[')?;
    // Up to the closing bracket: a comment may follow it.
    let inner = inner
        .trim_start_matches('[')
        .split(']')
        .next()
        .unwrap_or_default();
    Some(inner.split('.').map(unquote).collect::<Vec<_>>().join("."))
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

/// The line of a byte offset, and the dotted key defined on that line (the table
/// headers above it give the prefix).
fn locate(text: &str, offset: usize) -> (Option<usize>, Option<String>) {
    let before = text.get(..offset).unwrap_or(text);
    let line_no = before.matches('\n').count() + 1;
    let mut table = String::new();
    let mut key = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if i + 1 > line_no {
            break;
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            table = header
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
                .to_owned();
            if i + 1 == line_no {
                key = Some(table.clone());
            }
            continue;
        }
        if i + 1 == line_no
            && let Some((name, _)) = trimmed.split_once('=')
        {
            let name = name.trim();
            key = Some(if table.is_empty() {
                name.to_owned()
            } else {
                format!("{table}.{name}")
            });
        }
    }
    (Some(line_no), key)
}

/// The line to blame for an error found after parsing: the entry the message names
/// (`limits.per_refund.usd: ...`), else the key itself, else its table.
fn line_of_check(text: &str, key: Option<&str>, message: &str) -> Option<usize> {
    let named = message
        .split_once(": ")
        .map(|(named, _)| named)
        .filter(|named| named.contains('.') && !named.contains(' '));
    named
        .and_then(|named| line_of_field(text, named))
        .or_else(|| key.and_then(|key| line_of_field(text, key)))
        .or_else(|| key.and_then(|key| line_of_key(text, key)))
}

/// The line where a key's table appears, for errors found after parsing: for
/// `terminal[2]` the third `[[terminal]]`; otherwise the first table header or
/// top-level dotted key at or below the key (`[messages.states]` for `messages`),
/// else the nearest table above it (`[shutdown]` for `shutdown.grace_ms`).
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let (table, nth) = match key.strip_suffix(']').and_then(|k| k.split_once('[')) {
        Some((table, index)) => (table, index.parse::<usize>().ok()),
        None => (key, None),
    };
    let header = header_path;
    let within = |path: &str, of: &str| {
        path == of
            || path
                .strip_prefix(of)
                .is_some_and(|rest| rest.starts_with('.'))
    };
    if let Some(nth) = nth {
        let found = text
            .lines()
            .enumerate()
            .filter(|(_, line)| line.trim().starts_with("[["))
            .filter(|(_, line)| header(line).as_deref() == Some(table))
            .nth(nth);
        if let Some((i, _)) = found {
            return Some(i + 1);
        }
    }
    // A table header at or below the key, or a top-level `key.sub = ...`.
    let mut top_level = true;
    for (i, line) in text.lines().enumerate() {
        if let Some(path) = header(line) {
            top_level = false;
            if within(&path, table) {
                return Some(i + 1);
            }
        } else if top_level && let Some((name, _)) = line.split_once('=') {
            let path = name.split('.').map(unquote).collect::<Vec<_>>().join(".");
            if within(&path, table) {
                return Some(i + 1);
            }
        }
    }
    // The nearest table above the key.
    let mut parent = table;
    while let Some((up, _)) = parent.rsplit_once('.') {
        parent = up;
        if let Some(i) = text
            .lines()
            .position(|line| header(line).as_deref() == Some(parent))
        {
            return Some(i + 1);
        }
    }
    None
}

/// A bare or quoted TOML key part, without its quotes and surrounding spaces.
fn unquote(part: &str) -> &str {
    let part = part.trim();
    part.strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .or_else(|| part.strip_prefix('\'').and_then(|p| p.strip_suffix('\'')))
        .unwrap_or(part)
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
    fn secrets_are_not_quoted() {
        let text = GOOD.replace("api_key = \"k\"", "api_key = 12345678");
        let err = Config::parse(&text, "f").unwrap_err();
        assert!(!err.to_string().contains("12345678"), "{err}");
    }
}
