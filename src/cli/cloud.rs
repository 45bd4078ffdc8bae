//! The cloud subcommands: `sim-cloud` (the cloud simulator), `refund` and `inquire`
//! (one-shot calls to the configured provider, for field techs).
//!
//! Each command is a [`clap::Args`] struct with a blocking `run_*` function that
//! builds its own runtime, and an `async` twin for callers that already have one.
//! `refund` and `inquire` print the classified outcome and exit with a code per
//! outcome class, so scripts can branch on it ([`super::exit::of_outcome`]; the man
//! page's EXIT STATUS lists them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::exit::{Failure, Status};
use crate::credentials::{CredentialLookup, UnitFiles};
use crate::money::{Amount, Currency, MAX_AMOUNT};
use crate::provider::{InquiryRequest, Outcome, ProviderConfig, RefundRequest, build_provider};
use crate::sim::cloud::{CloudSim, demo};

/// The configuration file read by default.
pub const DEFAULT_CONFIG: &str = "/etc/posbridge/posbridge.toml";

/// Run the cloud simulator (Antom, OTT Pay and PaymentOptions refund APIs).
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Examples:
  posbridge sim-cloud
      Serve on 127.0.0.1:8480 with the demo payments (PAY-SYNC-1, PAY-ASYNC-1, ...).
  posbridge sim-cloud --print-config antom > /tmp/sim.toml
      Print a [provider] config (demo keys inline) for a client of this simulator.
  posbridge sim-cloud --listen 127.0.0.1:9000 --payments payments.toml --async-delay-ms 500
      Own payments ([[payment]] tables: id, amount = { value, currency }, mode, ...).
  curl -s -X POST 127.0.0.1:8480/_sim/faults -d '{\"fault\":{\"kind\":\"hang\"},\"times\":1}'
      Make the next provider call hang (see the admin API: /_sim/stats, /_sim/faults, ...).")]
pub struct SimCloudArgs {
    /// Address to listen on (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:8480")]
    pub listen: SocketAddr,
    /// TOML file of [[payment]] tables to start with, instead of the demo payments.
    #[arg(long, value_name = "FILE")]
    pub payments: Option<PathBuf>,
    /// How long asynchronous refunds stay in process, in milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub async_delay_ms: u64,
    /// Where to post Antom notifyRefund calls (e.g. http://127.0.0.1:8470/antom/notifyRefund).
    #[arg(long, value_name = "URL")]
    pub notify_url: Option<String>,
    /// Print a [provider] config for a client of this simulator and exit: antom, ottpay or paymentoptions.
    #[arg(long, value_name = "KIND")]
    pub print_config: Option<String>,
}

/// Send one refund to the configured provider and print the classified outcome.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Examples:
  posbridge refund --config /tmp/sim.toml --payment-id PAY-SYNC-1 --amount 1250 --currency USD
      Refund 12.50 USD of payment PAY-SYNC-1 (amounts are in minor units: cents, yen, ...).
  posbridge refund --payment-id 2026022593030000001 --refund-request-id tech-001
      Full refund (Antom v2) with a chosen refundRequestId; run it again with the same
      id to retry safely on Antom.
Exit codes: 0 succeeded, 1 failed, 2 bad arguments, 3 bad configuration,
6 no answer (retry with the same id), 10 in progress, 11 accepted (finished later),
12 outcome unknown, 13 needs a new request id.")]
pub struct RefundArgs {
    /// Configuration file with a [provider] table.
    #[arg(long, env = super::CONFIG_ENV, default_value = DEFAULT_CONFIG, value_name = "FILE")]
    pub config: PathBuf,
    /// The directory holding the key files the configuration names relatively (as
    /// systemd's $CREDENTIALS_DIRECTORY would); without it they are found by the
    /// installed unit's LoadCredential= lines.
    #[arg(long, value_name = "DIR")]
    pub credentials: Option<PathBuf>,
    /// The provider's id of the payment to refund.
    #[arg(long, value_name = "ID")]
    pub payment_id: String,
    /// Amount in minor units (1250 = 12.50 USD); omit for a full refund where allowed.
    #[arg(long, requires = "currency", value_name = "MINOR_UNITS")]
    pub amount: Option<i64>,
    /// ISO 4217 currency code of --amount.
    #[arg(long, requires = "amount", value_name = "CODE")]
    pub currency: Option<String>,
    /// Our refundRequestId (at most 64 characters); generated when omitted.
    #[arg(long, value_name = "ID")]
    pub refund_request_id: Option<String>,
    /// The terminal's refund id (Antom USB cable mode).
    #[arg(long, value_name = "ID")]
    pub original_merchant_refund_id: Option<String>,
    /// A note for the provider.
    #[arg(long)]
    pub memo: Option<String>,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Look a refund up at the configured provider and print the classified outcome.
#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(true).args(["refund_id", "refund_request_id"])))]
#[command(after_help = "\
Examples:
  posbridge inquire --config /tmp/sim.toml --refund-id SIMREF000000000001
  posbridge inquire --refund-request-id tech-001     (Antom v1 only: look up by our id)
Exit codes as for `refund`.")]
pub struct InquireArgs {
    /// Configuration file with a [provider] table.
    #[arg(long, env = super::CONFIG_ENV, default_value = DEFAULT_CONFIG, value_name = "FILE")]
    pub config: PathBuf,
    /// The directory holding the key files the configuration names relatively (as
    /// systemd's $CREDENTIALS_DIRECTORY would); without it they are found by the
    /// installed unit's LoadCredential= lines.
    #[arg(long, value_name = "DIR")]
    pub credentials: Option<PathBuf>,
    /// The provider's refund id.
    #[arg(long, value_name = "ID")]
    pub refund_id: Option<String>,
    /// Our refundRequestId.
    #[arg(long, value_name = "ID")]
    pub refund_request_id: Option<String>,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `posbridge sim-cloud`: serves until Ctrl-C.
pub async fn sim_cloud(args: SimCloudArgs) -> ExitCode {
    let base_url = crate::sim::cloud::local_base_url(args.listen);
    if let Some(kind) = &args.print_config {
        return match demo::provider_toml(kind, &base_url) {
            Some(toml) => {
                print!("{toml}");
                ExitCode::SUCCESS
            }
            None => usage(format!(
                "--print-config: unknown provider {kind:?}; use antom, ottpay or paymentoptions"
            )),
        };
    }
    let mut config = match demo::sim_config(args.listen) {
        Ok(config) => config,
        Err(e) => return usage(format!("demo keys: {e}")),
    };
    config.async_delay = Duration::from_millis(args.async_delay_ms);
    config.antom_notify_url = args.notify_url.clone();
    if let Some(path) = &args.payments {
        match demo::read_payments(path) {
            Ok(payments) => config.payments = payments,
            Err(e) => return usage(e.to_string()),
        }
    }
    let payments = config.payments.clone();
    let sim = match CloudSim::start(config).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let url = sim.base_url();
    println!("cloud simulator on {url}");
    println!(
        "  Antom          POST {url}/v2/payments/refund  (also inquiryRefund, v1 /ams/api/v1/...)"
    );
    println!(
        "  OTT Pay        POST {url}/api/v1/auth/token, {url}/api/v1/payment/local-card/refund"
    );
    println!("  PaymentOptions POST {url}/server-to-server-interface/refund");
    println!(
        "  admin          {url}/_sim/stats, /_sim/payments, /_sim/faults, /_sim/down, /_sim/settle"
    );
    println!("payments:");
    for p in &payments {
        println!(
            "  {:<20} {:>14}  {:?}{}",
            p.id,
            p.amount.to_string(),
            p.mode,
            if p.partial_refund {
                ""
            } else {
                ", full refunds only"
            }
        );
    }
    // The address bound, not the one asked for: with port 0 only this one works.
    println!(
        "client config: posbridge sim-cloud --listen {} --print-config antom|ottpay|paymentoptions",
        sim.addr()
    );
    println!("Ctrl-C stops.");
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("error: cannot wait for Ctrl-C: {e}");
    }
    sim.shutdown().await;
    ExitCode::SUCCESS
}

/// `posbridge refund`.
pub async fn refund(args: RefundArgs) -> ExitCode {
    let amount = match (args.amount, &args.currency) {
        (Some(value), Some(code)) => {
            let currency = match Currency::parse(code) {
                Ok(c) => c,
                Err(e) => return usage(e.to_string()),
            };
            match Amount::new(value, currency) {
                Ok(amount) if amount.value > 0 => Some(amount),
                _ => return usage(format!("--amount must be 1..={MAX_AMOUNT} minor units")),
            }
        }
        _ => None,
    };
    let refund_request_id = args
        .refund_request_id
        .clone()
        .unwrap_or_else(|| format!("tech-{}", jiff::Timestamp::now().as_millisecond()));
    if refund_request_id.is_empty() || refund_request_id.len() > 64 {
        return usage("--refund-request-id must be 1..64 characters".into());
    }
    let provider = match load(&args.config, args.credentials.as_deref()) {
        Ok(provider) => provider,
        Err(code) => return code,
    };
    let request = RefundRequest {
        refund_request_id: refund_request_id.clone(),
        original_merchant_refund_id: args.original_merchant_refund_id.clone(),
        payment_id: args.payment_id.clone(),
        amount,
        memo: args.memo.clone(),
    };
    if !args.json {
        let what = amount.map_or("full refund".to_string(), |a| a.to_string());
        println!(
            "{} refund {refund_request_id}: payment {} {what}",
            provider.name(),
            args.payment_id
        );
    }
    let outcome = provider.refund(&request).await;
    report(&outcome, args.json)
}

/// `posbridge inquire`.
pub async fn inquire(args: InquireArgs) -> ExitCode {
    let provider = match load(&args.config, args.credentials.as_deref()) {
        Ok(provider) => provider,
        Err(code) => return code,
    };
    if !provider.supports_inquiry() {
        eprintln!(
            "note: {} has no refund status API; the answer below says so",
            provider.name()
        );
    }
    let request = InquiryRequest {
        refund_request_id: args.refund_request_id.clone().unwrap_or_default(),
        refund_id: args.refund_id.clone(),
        resend: None,
    };
    let outcome = provider.inquire(&request).await;
    report(&outcome, args.json)
}

/// Builds the configured provider, finding relative key files as the unit passes
/// them (or in `credentials`), and says on standard error how each was found.
fn load(
    path: &std::path::Path,
    credentials: Option<&std::path::Path>,
) -> Result<std::sync::Arc<dyn crate::provider::Provider>, ExitCode> {
    let unusable = |e: String| Failure::new(Status::Config, e).report("");
    let mut config = ProviderConfig::from_file(path).map_err(|e| unusable(e.to_string()))?;
    let lookup = CredentialLookup::for_command(credentials, &UnitFiles::installed());
    let found = crate::config::resolve_key_files(&mut config, None, path, &lookup);
    for key in &found {
        eprintln!("key {key}");
    }
    if let Some(missing) = found.iter().find(|k| !k.is_found()) {
        return Err(unusable(format!(
            "{missing}; give --credentials DIR or run as root where the unit's files are"
        )));
    }
    build_provider(&config).map_err(|e| unusable(e.to_string()))
}

fn usage(message: String) -> ExitCode {
    Failure::new(Status::Usage, message).report("")
}

/// Prints an outcome and maps it to the exit code.
fn report(outcome: &Outcome, json: bool) -> ExitCode {
    if json {
        match serde_json::to_string(outcome) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot encode the outcome: {e}"),
        }
    } else {
        println!("{outcome}");
    }
    ExitCode::from(super::exit::of_outcome(outcome))
}
