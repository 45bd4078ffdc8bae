//! The `posbridge` command line: one subcommand per job, each in its own module.

pub mod cloud;
mod demo;
mod demo_fleet;
mod export;
mod fleet;
mod log;
mod loopback;
mod ops;
mod reconcile;
mod term;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The bridge between a countertop payment terminal and the payment provider's cloud.
#[derive(Parser)]
#[command(
    name = "posbridge",
    version,
    about,
    long_about = "posbridge speaks the terminal's link protocol over the USB cable \
(serial or USB bulk), turns the terminal's refunds into refund calls to the payment \
provider's cloud, and shows the outcome on the terminal's display.",
    after_help = "Logs go to standard error; set their level with RUST_LOG (e.g. RUST_LOG=debug)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// See the whole bridge work on this machine: simulated cloud, cable and terminal.
    Demo(demo::DemoArgs),
    /// Run the bridge: serve the configured terminals and send their refunds.
    #[command(after_help = "Examples:
  posbridge run                                  (reads /etc/posbridge/posbridge.toml)
  posbridge run --config ./posbridge.toml")]
    Run {
        /// The configuration file.
        #[arg(long, default_value = crate::config::DEFAULT_PATH, value_name = "FILE")]
        config: std::path::PathBuf,
    },
    /// Check a configuration file (and its key files) without starting anything.
    #[command(after_help = "Examples:
  posbridge check-config
  posbridge check-config --config ./posbridge.toml")]
    CheckConfig {
        /// The configuration file.
        #[arg(long, default_value = crate::config::DEFAULT_PATH, value_name = "FILE")]
        config: std::path::PathBuf,
    },
    /// Check the installation: configuration, keys, ledger, terminals, ModemManager,
    /// the cloud and the clock; each check says how to fix what fails.
    #[command(
        after_help = "Exit status 0 when every check passes (warnings allowed), 1 otherwise.

Examples:
  sudo -u posbridge posbridge doctor
  posbridge doctor --config ./posbridge.toml"
    )]
    Doctor {
        /// The configuration file.
        #[arg(long, default_value = crate::config::DEFAULT_PATH, value_name = "FILE")]
        config: std::path::PathBuf,
    },
    /// List refunds not yet settled.
    Queue(ops::QueueArgs),
    /// Show one refund's whole history.
    Show(ops::ShowArgs),
    /// Settle a NEEDS_ATTENTION or PROVIDER_PENDING refund as succeeded or failed.
    Resolve(ops::ResolveArgs),
    /// Retry a FAILED refund (new refundRequestId) or send a waiting one now.
    Retry(ops::RetryArgs),
    /// Export the ledger as CSV or JSON lines, for reconciliation.
    Export(export::ExportArgs),
    /// The fleet: receive every box's ledger into PostgreSQL, and ask it.
    Fleet(fleet::FleetArgs),
    /// Compare the ledger with the provider's report; settle what it proves.
    Reconcile(reconcile::ReconcileArgs),
    /// Create a virtual serial line and serve the bridge's side on it.
    Loopback(loopback::LoopbackArgs),
    /// Be a payment terminal: speak the link protocol on a serial line.
    Term(term::TermArgs),
    /// Run the cloud simulator: Antom, OTT Pay and PaymentOptions on loopback.
    SimCloud(cloud::SimCloudArgs),
    /// Send one refund to the configured provider and print the classified outcome.
    Refund(cloud::RefundArgs),
    /// Look a refund up at the configured provider and print the classified outcome.
    Inquire(cloud::InquireArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    #[command(after_help = "Examples:
  posbridge completions bash > /usr/share/bash-completion/completions/posbridge
  posbridge completions zsh > /usr/share/zsh/vendor-completions/_posbridge")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output.
    #[command(after_help = "Examples:
  posbridge man > /usr/share/man/man1/posbridge.1 && man posbridge")]
    Man,
    /// Print the version.
    #[command(after_help = "Examples:
  posbridge version")]
    Version,
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse_from(config_after_command(std::env::args_os().collect()));
    match cli.command {
        // The daemon sets up logging from its configuration.
        Command::Run { .. } => {}
        Command::Loopback(_) | Command::SimCloud(_) => init_logging("info"),
        Command::Fleet(ref f) if f.is_serve() => init_logging("info"),
        // The demo tells its own story; only problems are logged.
        Command::Demo(_) => init_logging("error"),
        _ => init_logging("warn"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("posbridge: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Run { config } => match crate::daemon::run::run(&config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("posbridge: {e}");
                    tracing::error!("{e}");
                    ExitCode::from(2)
                }
            },
            Command::CheckConfig { config } => check_config(&config),
            Command::Doctor { config } => {
                let checks = crate::daemon::doctor::examine(&config).await;
                println!("posbridge doctor — {}", config.display());
                for check in &checks {
                    println!("{check}");
                }
                let failed = checks
                    .iter()
                    .filter(|c| c.verdict == crate::daemon::doctor::Verdict::Fail)
                    .count();
                if failed == 0 {
                    println!("\nAll checks passed.");
                    ExitCode::SUCCESS
                } else {
                    println!("\n{failed} check(s) failed.");
                    ExitCode::from(1)
                }
            }
            Command::Queue(args) => ops::queue(args),
            Command::Demo(args) => demo::run(args).await,
            Command::Show(args) => ops::show(args),
            Command::Resolve(args) => ops::resolve(args),
            Command::Retry(args) => ops::retry(args),
            Command::Export(args) => export::run(args),
            Command::Reconcile(args) => reconcile::run(args),
            Command::Fleet(args) => fleet::run(args).await,
            Command::Loopback(args) => loopback::run(args).await,
            Command::Term(args) => term::run(args).await,
            Command::SimCloud(args) => cloud::sim_cloud(args).await,
            Command::Refund(args) => cloud::refund(args).await,
            Command::Inquire(args) => cloud::inquire(args).await,
            Command::Completions { shell } => {
                let mut command = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut command, "posbridge", &mut std::io::stdout());
                ExitCode::SUCCESS
            }
            Command::Man => {
                let command = <Cli as clap::CommandFactory>::command();
                match clap_mangen::Man::new(command).render(&mut std::io::stdout()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("posbridge: {e}");
                        ExitCode::from(2)
                    }
                }
            }
            Command::Version => {
                println!("posbridge {}", env!("CARGO_PKG_VERSION"));
                ExitCode::SUCCESS
            }
        }
    })
}

/// Loads the configuration and checks everything it points at, as `run` does before
/// it creates anything (keys and their files' modes, notifyRefund, terminals, the
/// ledger's place), and says what it found.
fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match crate::config::Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("✗ {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = crate::daemon::run::preflight(&config) {
        eprintln!("✗ {e}");
        return ExitCode::from(2);
    }
    println!("✓ {} is valid", path.display());
    println!("  ledger    {}", config.ledger.path.display());
    for terminal in &config.terminals {
        match terminal.transport() {
            Ok(t) => println!("  terminal  {} ({t})", terminal.label()),
            Err(e) => println!("  terminal  {}: {e}", terminal.label()),
        }
    }
    println!("  provider  {}", config.provider.name());
    if let Some(fleet) = &config.fleet {
        if let Err(e) = fleet.load_key().and_then(|_| fleet.client().map(|_| ())) {
            eprintln!("✗ {}: {e}", path.display());
            return ExitCode::from(2);
        }
        println!("  fleet     {} to {}", fleet.box_id, fleet.url);
    }
    ExitCode::SUCCESS
}

/// Logs to standard error: plain text (no colours) unless it is a terminal, so the
/// journal gets clean lines; the level comes from `RUST_LOG`, else `default_level`.
pub(crate) fn init_logging(default_level: &str) {
    log::init(default_level, log::LogFormat::Text);
}

/// Starts the daemon's logging as its configuration says.
pub(crate) fn init_daemon_logging(level: &str, format: crate::config::LogFormat) {
    log::init(level, format);
}

/// `posbridge --config FILE COMMAND ...` as `posbridge COMMAND --config FILE ...`:
/// every command that reads the configuration takes `--config` itself, and a person
/// (or a script) may well write it first.
fn config_after_command(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let Some(first) = args.get(1).and_then(|a| a.to_str()).map(str::to_owned) else {
        return args;
    };
    let taken = if first == "--config" && args.len() >= 4 {
        2
    } else if first.starts_with("--config=") && args.len() >= 3 {
        1
    } else {
        return args;
    };
    let option: Vec<_> = args.drain(1..1 + taken).collect();
    // After the command's name.
    let at = 2.min(args.len());
    for (i, part) in option.into_iter().enumerate() {
        args.insert(at + i, part);
    }
    args
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::config_after_command;

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        list.iter().map(Into::into).collect()
    }

    #[test]
    fn config_before_the_command_moves_after_it() {
        assert_eq!(
            config_after_command(args(&[
                "posbridge",
                "--config",
                "/x.toml",
                "queue",
                "--json"
            ])),
            args(&["posbridge", "queue", "--config", "/x.toml", "--json"])
        );
        assert_eq!(
            config_after_command(args(&["posbridge", "--config=/x.toml", "doctor"])),
            args(&["posbridge", "doctor", "--config=/x.toml"])
        );
        let unchanged = args(&["posbridge", "queue", "--config", "/x.toml"]);
        assert_eq!(config_after_command(unchanged.clone()), unchanged);
        let short = args(&["posbridge", "--config"]);
        assert_eq!(config_after_command(short.clone()), short);
    }
}
