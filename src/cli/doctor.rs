//! `posbridge doctor`: runs the installation checks of [`crate::daemon::doctor`] and
//! prints them as text or as one JSON document.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use crate::daemon::doctor::{self, Check, Environment, Verdict};

/// Check the installation.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status 0 when no check failed (warnings allowed), 1 otherwise.

Checks: the configuration; where each relative key file was found (systemd
credentials); the key files; the ledger; whether a daemon runs; each terminal's
device; ModemManager (udev asked whether it marks each terminal
ID_MM_DEVICE_IGNORE=1); the provider's cloud (DNS, TCP, TLS, a harmless
authenticated call: a signed Antom inquiry, OTT Pay's auth/token, PaymentOptions'
transaction status); the clock against the provider's.

Examples:
  sudo posbridge doctor
  sudo -u posbridge posbridge doctor --credentials /etc/posbridge/keys
  posbridge doctor --config ./posbridge.toml --json | jq '.checks[] | select(.verdict != \"pass\")'"
)]
pub struct DoctorArgs {
    /// The configuration file.
    #[arg(
        long,
        env = super::CONFIG_ENV,
        default_value = crate::config::DEFAULT_PATH,
        value_name = "FILE"
    )]
    pub config: PathBuf,
    /// The directory holding the key files the configuration names relatively (as
    /// systemd's $CREDENTIALS_DIRECTORY would); without it they are found by the
    /// installed unit's LoadCredential= lines.
    #[arg(long, value_name = "DIR")]
    pub credentials: Option<PathBuf>,
    /// Print one JSON document: every check and the overall result.
    #[arg(long)]
    pub json: bool,
}

/// The JSON document.
#[derive(Serialize)]
struct Report<'a> {
    config: String,
    result: Verdict,
    failed: usize,
    warnings: usize,
    checks: &'a [Check],
}

/// `posbridge doctor`.
pub async fn run(args: DoctorArgs) -> ExitCode {
    let env = Environment {
        credentials: args.credentials.clone(),
        ..Environment::system()
    };
    let checks = doctor::examine_with(&args.config, &env).await;
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    let (failed, warnings) = (count(Verdict::Fail), count(Verdict::Warn));
    if args.json {
        let report = Report {
            config: args.config.display().to_string(),
            result: if failed > 0 {
                Verdict::Fail
            } else if warnings > 0 {
                Verdict::Warn
            } else {
                Verdict::Pass
            },
            failed,
            warnings,
            checks: &checks,
        };
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("posbridge: cannot encode the report: {e}");
                return super::exit::Status::Findings.into();
            }
        }
    } else {
        println!("posbridge doctor — {}", args.config.display());
        for check in &checks {
            println!("{check}");
        }
        if failed == 0 {
            println!("\nAll checks passed.");
        } else {
            println!("\n{failed} check(s) failed.");
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        super::exit::Status::Findings.into()
    }
}
