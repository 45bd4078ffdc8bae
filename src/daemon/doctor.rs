//! `posbridge doctor`: what is wrong, in plain words, and how to fix it.
//!
//! Each check prints ✓ or ✗ (or ! for a warning) with what it found and, when it did
//! not pass, the fix. A check passes only on positive evidence; one that could not
//! look says so as a warning. The checks: the configuration; where each relative key
//! file was found (systemd credentials); the key files (readable, private to their
//! owner, the private key matching the merchant public key); the ledger; whether a
//! daemon runs on it; every terminal's device (present, openable, and which group or
//! udev rule fixes a permission error); ModemManager (udev asked whether it marks
//! each terminal `ID_MM_DEVICE_IGNORE=1`); the provider's cloud (DNS, TCP, TLS, and a
//! harmless authenticated call that proves the credentials); and the clock, compared
//! with the provider's.
//!
//! Everything the checks look at on the box comes through [`Environment`], so tests
//! can build broken setups.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::lock::Holder;
use crate::config::Config;
use crate::credentials::{CredentialLookup, FoundKey, How, UnitFiles};
use crate::ledger::{Ledger, Presence};
use crate::provider::probe::{Probe, Proof};
use crate::provider::settings::secret_file_problem;
use crate::provider::{ProviderConfig, build_provider};
use crate::transport::{OpenError, TransportConfig, UsbDeviceSummary, open, select_device};

/// Where the package installs the udev rule (a local copy in /etc/udev/rules.d/
/// overrides it).
pub const INSTALLED_RULE: &str = "/lib/udev/rules.d/99-posbridge.rules";
/// Where a store's own udev rule goes.
pub const LOCAL_RULE: &str = "/etc/udev/rules.d/99-posbridge.rules";
/// The annotated example configuration, as installed.
pub const EXAMPLE_CONFIG: &str = "/usr/share/doc/posbridge/examples/posbridge.example.toml";
/// The credentials drop-in example, as installed.
pub const CREDENTIALS_EXAMPLE: &str =
    "/usr/share/doc/posbridge/examples/posbridge-credentials.conf.example";
/// The example vendor:product id the shipped rule carries until a store sets its own.
pub const EXAMPLE_USB_ID: (u16, u16) = (0x0b00, 0x3070);

/// What the checks look at on the box.
#[derive(Clone)]
pub struct Environment {
    /// The proc file system, to see whether ModemManager runs.
    pub proc_dir: PathBuf,
    /// udev rule directories, highest precedence first.
    pub udev_rule_dirs: Vec<PathBuf>,
    /// The `udevadm` command.
    pub udevadm: PathBuf,
    /// The unit file and drop-ins whose `LoadCredential=` lines name the keys.
    pub units: UnitFiles,
    /// `--credentials DIR`, when given.
    pub credentials: Option<PathBuf>,
    /// The clock compared with the provider's.
    pub now: Arc<dyn Fn() -> Timestamp + Send + Sync>,
}

impl Environment {
    /// The box as it is.
    pub fn system() -> Environment {
        Environment {
            proc_dir: "/proc".into(),
            udev_rule_dirs: [
                "/etc/udev/rules.d",
                "/run/udev/rules.d",
                "/lib/udev/rules.d",
                "/usr/lib/udev/rules.d",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            udevadm: "udevadm".into(),
            units: UnitFiles::installed(),
            credentials: None,
            now: Arc::new(Timestamp::now),
        }
    }
}

/// How one check turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fine.
    Pass,
    /// Works, or could not be looked at, and is worth a look.
    Warn,
    /// Broken.
    Fail,
}

/// One check's result.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The verdict.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// How to fix it, when not passed.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            verdict: Verdict::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            verdict: Verdict::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.verdict {
            Verdict::Pass => "✓",
            Verdict::Warn => "!",
            Verdict::Fail => "✗",
        };
        write!(f, "{mark} {}: {}", self.name, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n    fix: {fix}")?;
        }
        Ok(())
    }
}

/// Runs every check for the configuration at `path`, on the box as it is.
pub async fn examine(path: &Path) -> Vec<Check> {
    examine_with(path, &Environment::system()).await
}

/// Runs every check for the configuration at `path` in `env`.
pub async fn examine_with(path: &Path, env: &Environment) -> Vec<Check> {
    let mut checks = Vec::new();
    let lookup = CredentialLookup::for_command(env.credentials.as_deref(), &env.units);
    let (config, found) = match Config::load_with(path, &lookup) {
        Ok((config, found)) => {
            checks.push(Check::pass(
                "configuration",
                format!(
                    "{} is valid ({} terminal line(s), provider {})",
                    path.display(),
                    config.terminals.len(),
                    config.provider.name()
                ),
            ));
            (config, found)
        }
        Err(e) => {
            let denied = std::fs::File::open(path)
                .err()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
            let fix = if denied {
                "run doctor as root or as the service user: sudo -u posbridge posbridge doctor"
                    .to_owned()
            } else {
                format!(
                    "correct the key named above; {EXAMPLE_CONFIG} shows every key with its \
                     default (man posbridge)"
                )
            };
            checks.push(Check::fail("configuration", e.to_string(), fix));
            return checks;
        }
    };
    checks.extend(found.iter().map(key_source));
    if found.iter().all(FoundKey::is_found) {
        checks.extend(keys(&config));
    }
    checks.push(ledger(&config));
    checks.push(daemon(&config));
    for terminal in &config.terminals {
        checks.push(device(&terminal.label(), terminal.transport()).await);
    }
    checks.extend(modem_manager(&config, env).await);
    let (cloud, probe) = cloud(&config, found.iter().all(FoundKey::is_found)).await;
    checks.extend(cloud);
    checks.push(clock(probe.as_ref(), (env.now)()));
    checks
}

/// Where a relative key file was found, or that it was not.
fn key_source(key: &FoundKey) -> Check {
    let name = format!("key file {}", key.setting);
    match &key.how {
        How::NotFound(_) => Check::fail(
            name,
            key.to_string(),
            format!(
                "give the directory holding the credentials with --credentials DIR, or add \
                 LoadCredential={}:PATH to /etc/systemd/system/posbridge.service.d/credentials.conf \
                 ({CREDENTIALS_EXAMPLE} shows how) and run systemctl daemon-reload",
                key.name.display()
            ),
        ),
        How::Unit(_)
            if std::fs::File::open(&key.path)
                .err()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied) =>
        {
            Check::fail(
                name,
                format!("{key}, which this user may not read"),
                "run doctor as root (sudo posbridge doctor): systemd reads LoadCredential= \
                 files as root and hands them to the service",
            )
        }
        _ => Check::pass(name, key.to_string()),
    }
}

fn keys(config: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    let fleet = config.fleet.iter().flat_map(|f| f.secret_files());
    for (_, path) in config.provider.secret_files().into_iter().chain(fleet) {
        if let Some(problem) = secret_file_problem(path) {
            checks.push(Check::fail(
                "key file permissions",
                problem.detail,
                format!(
                    "{} (or hand the key over with LoadCredential=: {CREDENTIALS_EXAMPLE})",
                    problem.fix
                ),
            ));
        }
    }
    match build_provider(&config.provider) {
        Ok(_) => checks.push(Check::pass(
            "keys and credentials",
            "readable, private to the service and well-formed",
        )),
        Err(e) => {
            checks.push(Check::fail(
                "keys and credentials",
                config.provider_error(&e).to_string(),
                "check the *_file paths in [provider] and that the service user can read them",
            ));
            return checks;
        }
    }
    if let ProviderConfig::Antom(antom) = &config.provider
        && let Some(path) = &antom.merchant_public_key_file
    {
        let pair = antom
            .load_private_key()
            .map(|k| k.public_key())
            .and_then(|mine| {
                crate::provider::antom::keys::PublicKey::from_file(path)
                    .map(|uploaded| mine == uploaded)
                    .map_err(Into::into)
            });
        checks.push(match pair {
            Ok(true) => Check::pass("merchant key pair", "the private key matches merchant_public_key_file"),
            Ok(false) => Check::fail(
                "merchant key pair",
                format!("the private key does not match {}", path.display()),
                "use the private key whose public key you uploaded to the Antom dashboard (or upload the matching one)",
            ),
            Err(e) => Check::fail("merchant key pair", e.to_string(), "check merchant_public_key_file"),
        });
    }
    checks
}

fn ledger(config: &Config) -> Check {
    let path = &config.ledger.path;
    match crate::ledger::presence(path) {
        Presence::Present => {}
        Presence::Missing { dir_exists: true } => {
            return Check::pass(
                "ledger",
                format!("{} will be created on the first start", path.display()),
            );
        }
        Presence::Missing { dir_exists: false } => {
            return Check::warn(
                "ledger",
                format!(
                    "{} does not exist yet",
                    path.parent().unwrap_or(Path::new("/")).display()
                ),
                "systemd creates it (StateDirectory=posbridge); by hand: mkdir -m 700 and chown it to the service user",
            );
        }
        Presence::Denied {
            path: refused,
            reason,
        } => {
            return Check::fail(
                "ledger",
                format!(
                    "permission denied: {}",
                    crate::ledger::denied_text(path, &refused, &reason, "doctor")
                ),
                "sudo -u posbridge posbridge doctor (or sudo posbridge doctor)",
            );
        }
        Presence::Unreadable { reason } => {
            return Check::fail(
                "ledger",
                format!("{}: {reason}", path.display()),
                "check the ledger's path and the disk (dmesg | tail)",
            );
        }
    }
    match Ledger::open(path).and_then(|l| l.counts()) {
        Ok(counts) => {
            let attention = counts.in_state(crate::state::RefundState::NeedsAttention);
            let detail = format!(
                "{}: {} refund(s) not yet settled, {attention} need attention",
                path.display(),
                counts.unfinished
            );
            if attention > 0 {
                Check::warn(
                    "ledger",
                    detail,
                    "posbridge queue; check each in the provider's portal, then posbridge resolve",
                )
            } else {
                Check::pass("ledger", detail)
            }
        }
        Err(e) => Check::fail(
            "ledger",
            e.to_string(),
            "check the ledger file's owner (the service user) and mode (0600)",
        ),
    }
}

fn daemon(config: &Config) -> Check {
    let path = &config.ledger.path;
    let lock = super::lock::path_for(path);
    match super::lock::holder(path) {
        Holder::Daemon(pid) => Check::pass(
            "daemon",
            format!(
                "running, {} (it holds {})",
                pid.map(|p| format!("pid {p}"))
                    .unwrap_or_else(|| "pid unknown".into()),
                lock.display()
            ),
        ),
        Holder::Nobody => Check::warn(
            "daemon",
            format!("no posbridge is running on {}", path.display()),
            "systemctl start posbridge (or posbridge run --config FILE)",
        ),
        Holder::Unknown(why) => Check::warn(
            "daemon",
            format!(
                "cannot tell whether a posbridge runs on {}: {why}",
                path.display()
            ),
            "run doctor as the service user: sudo -u posbridge posbridge doctor --config FILE",
        ),
    }
}

async fn device(label: &str, transport: Result<TransportConfig, String>) -> Check {
    let name = format!("terminal {label}");
    let transport = match transport {
        Ok(t) => t,
        Err(e) => return Check::fail(name, e, "fix the [[terminal]] table"),
    };
    if let TransportConfig::Usb(usb) = &transport {
        // Claiming the interface would take it from a running bridge: find it only.
        return match nusb::list_devices().await {
            Ok(list) => {
                let found: Vec<UsbDeviceSummary> = list
                    .map(|d| UsbDeviceSummary {
                        vid: d.vendor_id(),
                        pid: d.product_id(),
                        serial: d.serial_number().map(str::to_owned),
                    })
                    .collect();
                match select_device(&found, usb) {
                    Ok(_) => Check::pass(name, format!("{transport} is attached")),
                    Err(e) => Check::fail(name, e.to_string(), open_fix(&e)),
                }
            }
            Err(e) => Check::fail(
                name,
                format!("cannot list USB devices: {e}"),
                "run doctor on the box the terminal is plugged into",
            ),
        };
    }
    match open(&transport).await {
        Ok(_) => Check::pass(name, format!("{transport} opens")),
        Err(e @ OpenError::Busy { .. }) => Check::warn(
            name,
            e.to_string(),
            "if posbridge is running it holds the line (fine); otherwise find the holder with `fuser -v` on the device",
        ),
        Err(e) => Check::fail(name, e.to_string(), open_fix(&e)),
    }
}

fn open_fix(e: &OpenError) -> String {
    match e {
        OpenError::NotFound { .. } => format!(
            "plug the terminal in and switch it on; `ls -l /dev/posterminal*` should show its udev \
             link ({INSTALLED_RULE}; with your terminal's VID:PID in a copy at {LOCAL_RULE}; man posbridge)"
        ),
        OpenError::PermissionDenied { .. } => format!(
            "put your terminal's VID:PID in a copy of {INSTALLED_RULE} at {LOCAL_RULE} \
             (GROUP=\"posbridge\") and replug the terminal, or add the service user to the \
             device's group: usermod -aG dialout posbridge"
        ),
        OpenError::Ambiguous { .. } => "set usb_serial in the [[terminal]] table to the terminal's serial number".into(),
        _ => "see the error; `dmesg | tail` shows what the kernel saw when the terminal was plugged in".into(),
    }
}

/// Whether ModemManager runs and, if it does, whether udev tells it to leave each
/// terminal alone.
async fn modem_manager(config: &Config, env: &Environment) -> Vec<Check> {
    const NAME: &str = "ModemManager";
    let proc_dir = &env.proc_dir;
    let entries = match std::fs::read_dir(proc_dir) {
        Ok(entries) => entries,
        Err(e) => {
            return vec![Check::warn(
                NAME,
                format!("cannot read {}: {e}; not checked", proc_dir.display()),
                "run posbridge doctor as root",
            )];
        }
    };
    // With hidepid (or ProtectProc=), other users' processes are invisible: not
    // seeing ModemManager then proves nothing.
    if std::fs::read_to_string(proc_dir.join("1/comm")).is_err() {
        return vec![Check::warn(
            NAME,
            format!(
                "cannot see other users' processes in {} (mounted with hidepid?); not checked",
                proc_dir.display()
            ),
            "run posbridge doctor as root",
        )];
    }
    let running = entries.flatten().any(|e| {
        e.file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            && std::fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|c| c.trim() == "ModemManager")
    });
    if !running {
        return vec![Check::pass(
            NAME,
            format!(
                "no ModemManager process in {}; nothing probes the terminal",
                proc_dir.display()
            ),
        )];
    }
    let rules = RuleFile::find(&env.udev_rule_dirs);
    if config.terminals.is_empty() {
        return vec![by_rules(NAME, &rules, None, "no terminal is configured")];
    }
    let mut checks = Vec::new();
    for terminal in &config.terminals {
        let name = format!("{NAME} (terminal {})", terminal.label());
        checks.push(match terminal.transport() {
            Ok(TransportConfig::Usb(usb)) => by_rules(
                &name,
                &rules,
                Some((usb.vid, usb.pid)),
                "a USB bulk terminal is matched by its VID:PID",
            ),
            Ok(TransportConfig::Serial { path, .. }) => {
                serial_ignored(&name, &path, env, &rules).await
            }
            Err(e) => Check::fail(name, e, "fix the [[terminal]] table"),
        });
    }
    checks
}

/// Asks udev whether it marks a serial terminal `ID_MM_DEVICE_IGNORE=1`, and reads the
/// rule file when udev cannot be asked.
async fn serial_ignored(name: &str, device: &Path, env: &Environment, rules: &RuleFile) -> Check {
    if !device.exists() {
        return by_rules(
            name,
            rules,
            None,
            &format!("{} is not there, so udev cannot be asked", device.display()),
        );
    }
    let asked = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(&env.udevadm)
            .args(["info", "--query=property", "--name"])
            .arg(device)
            .output(),
    )
    .await;
    let output = match asked {
        Ok(Ok(out)) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(Ok(out)) => {
            let why = format!(
                "`{} info --name {}` failed: {}",
                env.udevadm.display(),
                device.display(),
                crate::text::clean_text(&String::from_utf8_lossy(&out.stderr), 160)
            );
            return by_rules(name, rules, None, &why);
        }
        Ok(Err(e)) => {
            let why = format!("{} cannot be run: {e}", env.udevadm.display());
            return by_rules(name, rules, None, &why);
        }
        Err(_) => return by_rules(name, rules, None, "udevadm did not answer within 10 s"),
    };
    let property = |key: &str| {
        output
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
    };
    if property("ID_MM_DEVICE_IGNORE") == Some("1") {
        return Check::pass(
            name,
            format!(
                "running, and udev marks {} ID_MM_DEVICE_IGNORE=1, so it leaves the terminal alone",
                device.display()
            ),
        );
    }
    let id = match (property("ID_VENDOR_ID"), property("ID_MODEL_ID")) {
        (Some(v), Some(p)) => format!("{v}:{p}"),
        _ => "your terminal's VID:PID (lsusb)".to_owned(),
    };
    Check::fail(
        name,
        format!(
            "running, and udev does not mark {} ID_MM_DEVICE_IGNORE=1 (its USB id is {id}): no \
             installed rule matches it, so ModemManager may send AT commands to the terminal",
            device.display()
        ),
        replace_ids_fix(&id),
    )
}

fn replace_ids_fix(id: &str) -> String {
    let (v, p) = EXAMPLE_USB_ID;
    format!(
        "cp {INSTALLED_RULE} {LOCAL_RULE}, put {id} in place of the example {v:04x}:{p:04x} in \
         both rules, then udevadm control --reload && udevadm trigger (man posbridge); or: \
         systemctl disable --now ModemManager"
    )
}

/// The posbridge udev rule in effect (a file of that name in a directory of higher
/// precedence hides the others) and the VID:PIDs it marks `ID_MM_DEVICE_IGNORE=1`.
struct RuleFile {
    path: Option<PathBuf>,
    ignored: Vec<(u16, u16)>,
    looked: Vec<PathBuf>,
}

impl RuleFile {
    fn find(dirs: &[PathBuf]) -> RuleFile {
        let looked: Vec<PathBuf> = dirs.iter().map(|d| d.join("99-posbridge.rules")).collect();
        let Some(path) = looked.iter().find(|p| p.exists()).cloned() else {
            return RuleFile {
                path: None,
                ignored: Vec::new(),
                looked,
            };
        };
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        RuleFile {
            ignored: ignored_ids(&text),
            path: Some(path),
            looked,
        }
    }
}

/// The VID:PIDs of the rules (continuation lines joined) that set
/// `ENV{ID_MM_DEVICE_IGNORE}="1"`.
fn ignored_ids(text: &str) -> Vec<(u16, u16)> {
    let joined = text.replace("\\\n", " ");
    let value = |rule: &str, key: &str| -> Option<u16> {
        let at = rule.find(key)? + key.len();
        let rest = rule
            .get(at..)?
            .trim_start()
            .strip_prefix("==")?
            .trim_start();
        let rest = rest.strip_prefix('"')?;
        u16::from_str_radix(rest.get(..rest.find('"')?)?, 16).ok()
    };
    joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.replace(' ', "")
                .contains("ENV{ID_MM_DEVICE_IGNORE}=\"1\"")
        })
        .filter_map(|rule| {
            let vid = value(rule, "{idVendor}")?;
            let pid = value(rule, "{idProduct}")?;
            Some((vid, pid))
        })
        .collect()
}

/// Judges by the rule file alone, when udev cannot be asked (`why`), for a terminal
/// whose VID:PID is `id` when the configuration says it.
fn by_rules(name: &str, rules: &RuleFile, id: Option<(u16, u16)>, why: &str) -> Check {
    let Some(path) = &rules.path else {
        return Check::fail(
            name,
            format!(
                "running, and no posbridge udev rule tells it to leave the terminal alone (looked \
                 for {}): it may send AT commands to the terminal",
                rules
                    .looked
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "install the posbridge package's rule ({INSTALLED_RULE}) with your terminal's \
                 VID:PID in a copy at {LOCAL_RULE} (ID_MM_DEVICE_IGNORE=1; man posbridge), or: \
                 systemctl disable --now ModemManager"
            ),
        );
    };
    let shown = |ids: &[(u16, u16)]| {
        ids.iter()
            .map(|(v, p)| format!("{v:04x}:{p:04x}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if rules.ignored.is_empty() {
        return Check::fail(
            name,
            format!(
                "running, and {} sets ID_MM_DEVICE_IGNORE=1 for no vendor:product id",
                path.display()
            ),
            replace_ids_fix("your terminal's VID:PID (lsusb)"),
        );
    }
    match id {
        Some(id) if rules.ignored.contains(&id) => Check::pass(
            name,
            format!(
                "running, and {} marks {} ID_MM_DEVICE_IGNORE=1 ({why})",
                path.display(),
                shown(&[id])
            ),
        ),
        Some(id) => Check::fail(
            name,
            format!(
                "running, and {} marks only {} ID_MM_DEVICE_IGNORE=1, not the terminal's {}",
                path.display(),
                shown(&rules.ignored),
                shown(&[id])
            ),
            replace_ids_fix(&shown(&[id])),
        ),
        None if rules.ignored.iter().all(|i| *i == EXAMPLE_USB_ID) => Check::fail(
            name,
            format!(
                "running, and {} still holds the example vendor:product id {} ({why}): it \
                 matches no real terminal",
                path.display(),
                shown(&[EXAMPLE_USB_ID])
            ),
            replace_ids_fix("your terminal's VID:PID (lsusb)"),
        ),
        None => Check::warn(
            name,
            format!(
                "running; {} marks {} ID_MM_DEVICE_IGNORE=1, but whether that is this terminal \
                 cannot be told: {why}",
                path.display(),
                shown(&rules.ignored)
            ),
            "plug the terminal in and run posbridge doctor again: `udevadm info --query=property \
             --name DEVICE` must show ID_MM_DEVICE_IGNORE=1",
        ),
    }
}

/// DNS, TCP, TLS, and the provider's harmless authenticated call (when the keys
/// could be found), whose answer also gives the provider's time.
async fn cloud(config: &Config, keys_found: bool) -> (Vec<Check>, Option<Probe>) {
    let mut checks = Vec::new();
    let url = match reqwest::Url::parse(config.provider.base_url()) {
        Ok(url) => url,
        Err(e) => {
            checks.push(Check::fail(
                "cloud address",
                e.to_string(),
                "fix base_url in [provider]",
            ));
            return (checks, None);
        }
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<std::net::SocketAddr> = match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => {
            checks.push(Check::fail(
                format!("cloud DNS {host}"),
                e.to_string(),
                "check the box's DNS (resolvectl status) and network",
            ));
            return (checks, None);
        }
        Err(_) => {
            checks.push(Check::fail(
                format!("cloud DNS {host}"),
                "no answer within 10 s",
                "check the box's DNS (resolvectl status) and network",
            ));
            return (checks, None);
        }
    };
    checks.push(Check::pass(
        format!("cloud DNS {host}"),
        format!("{} address(es)", addrs.len()),
    ));
    let Some(first) = addrs.first().copied() else {
        checks.push(Check::fail(
            format!("cloud DNS {host}"),
            "no addresses",
            "check the box's DNS",
        ));
        return (checks, None);
    };
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(first),
    )
    .await
    {
        Ok(Ok(_)) => checks.push(Check::pass(format!("cloud TCP {first}"), "connects")),
        Ok(Err(e)) => {
            checks.push(Check::fail(
                format!("cloud TCP {first}"),
                e.to_string(),
                "check the firewall and the shop's internet connection",
            ));
            return (checks, None);
        }
        Err(_) => {
            checks.push(Check::fail(
                format!("cloud TCP {first}"),
                "no answer within 10 s",
                "check the firewall and the shop's internet connection",
            ));
            return (checks, None);
        }
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build();
    let tls_name = if url.scheme() == "https" {
        "cloud TLS"
    } else {
        "cloud HTTP"
    };
    match client {
        Ok(client) => match client.get(url.clone()).send().await {
            Ok(_) => checks.push(Check::pass(
                tls_name,
                if url.scheme() == "https" {
                    "certificate verified, the server answers"
                } else {
                    "the server answers (plain HTTP: a simulator or a test setup)"
                },
            )),
            Err(e) => {
                checks.push(Check::fail(
                    tls_name,
                    crate::provider::http::describe(&e),
                    "check the box's clock and CA certificates, or a proxy intercepting TLS",
                ));
                return (checks, None);
            }
        },
        Err(e) => {
            checks.push(Check::fail(
                tls_name,
                e.to_string(),
                "the HTTP client could not start; check the installation",
            ));
            return (checks, None);
        }
    }
    let name = match &config.provider {
        ProviderConfig::Antom(_) => "signed inquiry",
        _ => "provider credentials",
    };
    if !keys_found {
        checks.push(Check::fail(
            name,
            "not tried: a key file named above cannot be found",
            "find the key files first (see above)",
        ));
        return (checks, None);
    }
    match crate::provider::config::probe(&config.provider).await {
        Ok(probe) => {
            let detail = format!("{}: {}", probe.call, probe.detail);
            let fix = probe.fix.clone().unwrap_or_default();
            checks.push(match probe.proof {
                Proof::Accepted => Check::pass(name, detail),
                Proof::Inconclusive => Check::warn(name, detail, fix),
                Proof::Failed => Check::fail(name, detail, fix),
            });
            (checks, Some(probe))
        }
        Err(e) => {
            checks.push(Check::fail(
                name,
                format!("not tried: {}", config.provider_error(&e)),
                "fix the keys and credentials (see above)",
            ));
            (checks, None)
        }
    }
}

/// The clock against the provider's: the time inside a signed answer where the
/// provider signs one, else the HTTP `Date` of the provider's own answer.
fn clock(probe: Option<&Probe>, now: Timestamp) -> Check {
    const FIX: &str = "enable time synchronisation: timedatectl set-ntp true";
    if now.as_second() < 1_735_689_600 {
        return Check::fail("clock", format!("the clock says {now}, before 2025"), FIX);
    }
    // Only an answer that was the provider's own is a time source.
    let trusted = probe.filter(|p| p.proof != Proof::Failed);
    let source = trusted.and_then(|p| {
        p.signed_time
            .map(|t| (t, "the time Antom signed into its answer (Response-Time)"))
            .or_else(|| p.date.map(|t| (t, "the provider's HTTP Date header")))
    });
    let Some((theirs, what)) = source else {
        return Check::warn(
            "clock",
            format!(
                "{now}; nothing was compared: {}",
                if trusted.is_some() {
                    "the provider's answer carried no time"
                } else {
                    "no answer of the provider's came (see above)"
                }
            ),
            "check with `timedatectl status` that the clock is synchronised",
        );
    };
    let skew = (now.as_second() - theirs.as_second()).abs();
    if skew > 300 {
        Check::fail(
            "clock",
            format!(
                "{skew} s off {what} ({theirs}, here {now}); signed requests carry the time and may be refused"
            ),
            FIX,
        )
    } else if skew > 30 {
        Check::warn("clock", format!("{skew} s off {what}"), FIX)
    } else {
        Check::pass("clock", format!("within {skew} s of {what}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rule_marks_only_the_example_id() {
        let ids = ignored_ids(include_str!("../../udev/99-posbridge.rules"));
        assert!(!ids.is_empty());
        assert!(ids.iter().all(|id| *id == EXAMPLE_USB_ID), "{ids:?}");
        let local = "SUBSYSTEM==\"tty\", ATTRS{idVendor}==\"1d6b\", \\\n  ATTRS{idProduct}==\"0104\", ENV{ID_MM_DEVICE_IGNORE}=\"1\"\n\
                     # SUBSYSTEM==\"tty\", ATTRS{idVendor}==\"aaaa\", ATTRS{idProduct}==\"bbbb\", ENV{ID_MM_DEVICE_IGNORE}=\"1\"\n\
                     SUBSYSTEM==\"tty\", ATTRS{idVendor}==\"cccc\", ATTRS{idProduct}==\"dddd\", GROUP=\"posbridge\"\n";
        assert_eq!(ignored_ids(local), vec![(0x1d6b, 0x0104)]);
    }

    #[test]
    fn the_clock_passes_only_when_something_was_compared() {
        let now = Timestamp::now();
        assert_eq!(clock(None, now).verdict, Verdict::Warn);
        assert!(clock(None, now).detail.contains("nothing was compared"));
        let old = Timestamp::from_second(1_600_000_000).unwrap();
        assert_eq!(clock(None, old).verdict, Verdict::Fail);
    }
}
