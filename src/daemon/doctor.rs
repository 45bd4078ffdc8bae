//! `posbridge doctor`: what is wrong, in plain words, and how to fix it.
//!
//! Each check prints ✓ or ✗ (or ! for a warning) with what it found and, when it
//! failed, the fix. The checks: the configuration; the key files (readable, private
//! to their owner, the private key matching the merchant public key); the ledger;
//! whether a daemon runs on it (and its pid);
//! every terminal's device (present, openable, and which group or udev rule fixes a
//! permission error); ModemManager; the provider's cloud (DNS, TCP, TLS, and a signed
//! inquiry where the provider has one); and the clock, which signed requests carry.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::ledger::Ledger;
use crate::provider::settings::secret_file_problem;
use crate::provider::{InquiryRequest, Outcome, ProviderConfig, build_provider};
use crate::transport::{OpenError, TransportConfig, UsbDeviceSummary, open, select_device};

/// How one check turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Fine.
    Pass,
    /// Works, but worth fixing.
    Warn,
    /// Broken.
    Fail,
}

/// One check's result.
#[derive(Clone, Debug)]
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

/// Runs every check for the configuration at `path`.
pub async fn examine(path: &Path) -> Vec<Check> {
    let mut checks = Vec::new();
    let config = match Config::load(path) {
        Ok(config) => {
            checks.push(Check::pass(
                "configuration",
                format!(
                    "{} is valid ({} terminal line(s), provider {})",
                    path.display(),
                    config.terminals.len(),
                    config.provider.name()
                ),
            ));
            config
        }
        Err(e) => {
            checks.push(Check::fail(
                "configuration",
                e.to_string(),
                "correct the key named above; config/posbridge.example.toml shows every key with its default",
            ));
            return checks;
        }
    };
    checks.extend(keys(&config));
    checks.push(ledger(&config));
    checks.push(daemon(&config));
    for terminal in &config.terminals {
        checks.push(device(&terminal.label(), terminal.transport()).await);
    }
    checks.push(modem_manager());
    let (cloud, server_time) = cloud(&config).await;
    checks.extend(cloud);
    checks.push(clock(server_time));
    checks
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
                    "{} (or hand the key over with LoadCredential=, \
                     systemd/posbridge-credentials.conf.example)",
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
    if !path.exists() {
        let dir = path.parent().unwrap_or(Path::new("/"));
        return if dir.exists() {
            Check::pass(
                "ledger",
                format!("{} will be created on the first start", path.display()),
            )
        } else {
            Check::warn(
                "ledger",
                format!("{} does not exist yet", dir.display()),
                "systemd creates it (StateDirectory=posbridge); by hand: mkdir -m 700 and chown it to the service user",
            )
        };
    }
    match Ledger::open(path).and_then(|l| l.counts()) {
        Ok(counts) => {
            let attention = counts
                .by_state
                .iter()
                .find(|(s, _)| s == "NEEDS_ATTENTION")
                .map(|(_, n)| *n)
                .unwrap_or(0);
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
        Some(pid) => Check::pass(
            "daemon",
            format!(
                "running, {} (it holds {})",
                pid.map(|p| format!("pid {p}"))
                    .unwrap_or_else(|| "pid unknown".into()),
                lock.display()
            ),
        ),
        None => Check::warn(
            "daemon",
            format!("no posbridge is running on {}", path.display()),
            "systemctl start posbridge (or posbridge run --config FILE)",
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
        OpenError::NotFound { .. } => "plug the terminal in and switch it on; `ls -l /dev/posterminal*` should show its udev link (udev/99-posbridge.rules, with your terminal's VID:PID)".into(),
        OpenError::PermissionDenied { .. } => "install udev/99-posbridge.rules (GROUP=\"posbridge\") and replug the terminal, or add the service user to the device's group: usermod -aG dialout posbridge".into(),
        OpenError::Ambiguous { .. } => "set usb_serial in the [[terminal]] table to the terminal's serial number".into(),
        _ => "see the error; `dmesg | tail` shows what the kernel saw when the terminal was plugged in".into(),
    }
}

fn modem_manager() -> Check {
    let running = std::fs::read_dir("/proc")
        .map(|entries| {
            entries.flatten().any(|e| {
                std::fs::read_to_string(e.path().join("comm"))
                    .map(|c| c.trim() == "ModemManager")
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false);
    if !running {
        return Check::pass("ModemManager", "not running; nothing probes the terminal");
    }
    let rule_installed = [
        "/etc/udev/rules.d/99-posbridge.rules",
        "/lib/udev/rules.d/99-posbridge.rules",
        "/usr/lib/udev/rules.d/99-posbridge.rules",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    if rule_installed {
        Check::pass(
            "ModemManager",
            "running, and the posbridge udev rule tells it to leave the terminal alone",
        )
    } else {
        Check::fail(
            "ModemManager",
            "running, and no posbridge udev rule tells it to leave the terminal alone: it may send AT commands to the terminal",
            "install udev/99-posbridge.rules (ID_MM_DEVICE_IGNORE=1), or: systemctl disable --now ModemManager",
        )
    }
}

/// DNS, TCP, TLS and (for Antom) a signed inquiry; also the server's clock, if seen.
async fn cloud(config: &Config) -> (Vec<Check>, Option<jiff::Timestamp>) {
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
    let mut server_time = None;
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
            Ok(response) => {
                server_time = response
                    .headers()
                    .get("date")
                    .and_then(|d| d.to_str().ok())
                    .and_then(|d| jiff::fmt::rfc2822::parse(d).ok())
                    .map(|z| z.timestamp());
                checks.push(Check::pass(
                    tls_name,
                    if url.scheme() == "https" {
                        "certificate verified, the server answers".to_owned()
                    } else {
                        "the server answers (plain HTTP: a simulator or a test setup)".to_owned()
                    },
                ));
            }
            Err(e) => {
                checks.push(Check::fail(
                    tls_name,
                    e.to_string(),
                    "check the box's clock and CA certificates, or a proxy intercepting TLS",
                ));
                return (checks, server_time);
            }
        },
        Err(e) => checks.push(Check::fail(
            tls_name,
            e.to_string(),
            "the HTTP client could not start; check the installation",
        )),
    }
    if let ProviderConfig::Antom(_) = &config.provider
        && let Ok(provider) = build_provider(&config.provider)
    {
        let inquiry = InquiryRequest {
            refund_request_id: format!(
                "posbridge-doctor-{}",
                jiff::Timestamp::now().as_millisecond()
            ),
            refund_id: Some("posbridge-doctor-check".into()),
            resend: None,
        };
        let outcome = provider.inquire(&inquiry).await;
        let text = outcome.to_string();
        let refused_signature = [
            "SIGNATURE",
            "KEY_NOT_FOUND",
            "ACCESS_DENIED",
            "INVALID_CLIENT",
        ]
        .iter()
        .any(|code| text.contains(code));
        checks.push(match &outcome {
            _ if refused_signature => Check::fail(
                "signed inquiry",
                format!("Antom refused the request: {text}"),
                "the private key must be the one whose public key is uploaded to the Antom dashboard, and client_id must be yours",
            ),
            Outcome::OutcomeUnknown { reason } if reason.contains("signature") => Check::fail(
                "signed inquiry",
                reason.clone(),
                "antom_public_key_file must hold Antom's public key for your client id (from the dashboard)",
            ),
            Outcome::RetrySameRequest { reason } => {
                Check::fail("signed inquiry", reason.clone(), "check base_url (region and api v1/v2) and the network")
            }
            Outcome::OutcomeUnknown { reason } if !reason.contains("resultStatus=") => {
                Check::fail("signed inquiry", reason.clone(), "check base_url (region and api v1/v2) and the network")
            }
            _ => Check::pass(
                "signed inquiry",
                "Antom answered a signed inquiry about a made-up refund, and its answer's signature verified",
            ),
        });
    }
    (checks, server_time)
}

fn clock(server_time: Option<jiff::Timestamp>) -> Check {
    let now = jiff::Timestamp::now();
    if now.as_second() < 1_735_689_600 {
        return Check::fail(
            "clock",
            format!("the clock says {now}, before 2025"),
            "enable time synchronisation: timedatectl set-ntp true",
        );
    }
    match server_time {
        Some(server) => {
            let skew = (now.as_second() - server.as_second()).abs();
            if skew > 300 {
                Check::fail(
                    "clock",
                    format!(
                        "{skew} s off the provider's clock; signed requests carry the time and may be refused"
                    ),
                    "enable time synchronisation: timedatectl set-ntp true",
                )
            } else {
                Check::pass("clock", format!("within {skew} s of the provider's clock"))
            }
        }
        None => Check::pass(
            "clock",
            format!("{now} (the provider sent no time to compare with)"),
        ),
    }
}
