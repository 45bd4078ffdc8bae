//! The `posbridge` command line: one subcommand per job, each in its own module.

pub mod cloud;
mod demo;
mod demo_fleet;
mod doctor;
mod exit;
mod export;
mod fleet;
mod log;
mod loopback;
mod man;
mod ops;
mod reconcile;
mod term;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The environment variable naming the configuration file, for every command that
/// takes `--config`: an operator on a box with its configuration elsewhere (or a
/// test of a whole store) sets it once instead of writing `--config` each time.
pub const CONFIG_ENV: &str = "POSBRIDGE_CONFIG";

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
        #[arg(
            long,
            env = CONFIG_ENV,
            default_value = crate::config::DEFAULT_PATH,
            value_name = "FILE"
        )]
        config: std::path::PathBuf,
    },
    /// Check a configuration file (and its key files) without starting anything.
    #[command(after_help = "Examples:
  posbridge check-config
  posbridge check-config --config ./posbridge.toml
  posbridge check-config --json | jq .valid")]
    CheckConfig {
        /// The configuration file.
        #[arg(
            long,
            env = CONFIG_ENV,
            default_value = crate::config::DEFAULT_PATH,
            value_name = "FILE"
        )]
        config: std::path::PathBuf,
        /// One JSON object: `valid`, and `error` or what the configuration sets up.
        #[arg(long)]
        json: bool,
    },
    /// Check the installation: configuration, keys, ledger, terminals, ModemManager,
    /// the cloud and the clock; each check says how to fix what fails.
    Doctor(doctor::DoctorArgs),
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
            return exit::Status::Failed.into();
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Run { config } => run_daemon(&config).await,
            Command::CheckConfig { config, json } => check_config(&config, json),
            Command::Doctor(args) => doctor::run(args).await,
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
                match man::render(command, &mut std::io::stdout()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("posbridge: {e}");
                        exit::Status::Failed.into()
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

/// What `check-config` found.
#[derive(serde::Serialize)]
struct ConfigReport {
    config: String,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ledger: Option<String>,
    terminals: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fleet: Option<String>,
}

/// Loads the configuration and checks everything it points at, as `run` does before
/// it creates anything (keys and their files' modes, notifyRefund, terminals, the
/// ledger's place), and says what it found, as text or one JSON object.
fn check_config(path: &std::path::Path, json: bool) -> ExitCode {
    let mut report = ConfigReport {
        config: path.display().to_string(),
        valid: false,
        error: None,
        ledger: None,
        terminals: Vec::new(),
        provider: None,
        fleet: None,
    };
    let status = examine_config(path, &mut report);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else if let Some(error) = &report.error {
        eprintln!("✗ {error}");
    } else {
        println!("✓ {} is valid", report.config);
        if let Some(ledger) = &report.ledger {
            println!("  ledger    {ledger}");
        }
        for terminal in &report.terminals {
            println!("  terminal  {terminal}");
        }
        if let Some(provider) = &report.provider {
            println!("  provider  {provider}");
        }
        if let Some(fleet) = &report.fleet {
            println!("  fleet     {fleet}");
        }
    }
    status
}

fn examine_config(path: &std::path::Path, report: &mut ConfigReport) -> ExitCode {
    let config = match crate::config::Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            report.error = Some(e.to_string());
            return exit::Failure::from(e).status.into();
        }
    };
    if let Err(e) = crate::daemon::run::preflight(&config) {
        report.error = Some(e.to_string());
        return exit::Status::Config.into();
    }
    report.valid = true;
    report.ledger = Some(config.ledger.path.display().to_string());
    for terminal in &config.terminals {
        report.terminals.push(match terminal.transport() {
            Ok(t) => format!("{} ({t})", terminal.label()),
            Err(e) => format!("{}: {e}", terminal.label()),
        });
    }
    report.provider = Some(config.provider.name().to_string());
    report.fleet = config
        .fleet
        .as_ref()
        .map(|f| format!("{} to {}", f.box_id, f.url));
    ExitCode::SUCCESS
}

/// Logs to standard error: plain text (no colours) unless it is a terminal, so the
/// journal gets clean lines; the level comes from `RUST_LOG`, else `default_level`.
pub(crate) fn init_logging(default_level: &str) {
    log::init(default_level, log::LogFormat::Text);
}

/// `posbridge run`: loads the configuration, starts logging as it says, and runs the
/// daemon until SIGTERM or Ctrl-C.
async fn run_daemon(path: &std::path::Path) -> ExitCode {
    let config = match crate::config::Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("posbridge: {e}");
            return exit::Status::Config.into();
        }
    };
    log::init(
        config.log.level.as_deref().unwrap_or("info"),
        config.log.format,
    );
    match crate::daemon::run::run(&config, stop_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("posbridge: {e}");
            tracing::error!("{e}");
            if e.ledger_held() {
                exit::Status::WrongState.into()
            } else {
                exit::Status::Config.into()
            }
        }
    }
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

/// The commands docs/OPERATIONS.md shows, checked against the command line itself.
#[cfg(test)]
mod operations_doc {
    use clap::Parser;

    /// Splits a shell line into words: spaces separate, quotes group, `#` outside
    /// quotes starts a comment; a pipe, `&`, `;` or redirection ends the command.
    fn words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut quote = None;
        let mut in_word = false;
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => word.push(c),
                (None, '"' | '\'') => {
                    quote = Some(c);
                    in_word = true;
                }
                (None, '#' | '|' | '&' | ';' | '>' | '<') if !in_word || c != '#' => break,
                (None, c) if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                (None, c) => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        if in_word {
            words.push(word);
        }
        words
    }

    /// Every `posbridge …` command in the document's shell blocks, as words (a `sudo`
    /// or `sudo -u USER` in front dropped, continued lines joined), with its line.
    fn commands(doc: &str) -> Vec<(usize, Vec<String>)> {
        let mut found = Vec::new();
        let mut in_block = false;
        let mut pending: Option<(usize, String)> = None;
        for (n, line) in doc.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                continue;
            }
            if !in_block {
                continue;
            }
            let (start, text) = match pending.take() {
                Some((start, mut text)) => {
                    text.push(' ');
                    text.push_str(line.trim());
                    (start, text)
                }
                None => (n + 1, line.trim().to_owned()),
            };
            if let Some(head) = text.strip_suffix('\\') {
                pending = Some((start, head.to_owned()));
                continue;
            }
            let mut w = words(&text);
            if w.first().is_some_and(|w| w == "sudo") {
                w.remove(0);
                if w.first().is_some_and(|w| w == "-u") {
                    w.drain(..2.min(w.len()));
                }
            }
            if w.first().is_some_and(|w| w == "posbridge") {
                found.push((start, w));
            }
        }
        found
    }

    #[test]
    fn every_command_in_operations_parses_as_written() {
        let doc = include_str!("../../docs/OPERATIONS.md");
        let found = commands(doc);
        assert!(found.len() >= 15, "only {} commands found", found.len());
        let mut wrong = Vec::new();
        for (line, words) in &found {
            let words = super::config_after_command(words.iter().map(Into::into).collect());
            if let Err(e) = super::Cli::try_parse_from(words) {
                let first = e.to_string().lines().next().unwrap_or("").to_owned();
                wrong.push(format!("docs/OPERATIONS.md:{line}: {first}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn the_splitter_reads_shell_as_a_person_writes_it() {
        assert_eq!(
            words(r#"posbridge resolve R-1 --note "checked by J." # comment"#),
            ["posbridge", "resolve", "R-1", "--note", "checked by J."]
        );
        assert_eq!(
            words("posbridge doctor --json | jq ."),
            ["posbridge", "doctor", "--json"]
        );
        assert_eq!(words("posbridge sim-cloud &"), ["posbridge", "sim-cloud"]);
        let doc = "```sh\nsudo -u posbridge posbridge queue\nposbridge reconcile --report a \\\n  --apply\n```\nposbridge outside\n";
        let found = commands(doc);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            found[1].1,
            ["posbridge", "reconcile", "--report", "a", "--apply"]
        );
    }
}
