//! `posbridge fleet`: the central receiver, its questions, and boxes' keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::fleet::batch;
use crate::fleet::store::{self, Database, Question};
use crate::fleet::{Receiver, ReceiverSettings};

/// Arguments of `posbridge fleet`.
#[derive(Args)]
#[command(after_help = "Examples:
  posbridge fleet serve --listen 127.0.0.1:8443 --database 'host=/run/postgresql dbname=fleet' \\
      --secret-file /etc/posbridge/fleet.secret
  posbridge fleet box-key --secret-file /etc/posbridge/fleet.secret --box-id store-112
  posbridge fleet query attention --database 'postgres://fleet@db.example.com/fleet'

See docs/FLEET.md.")]
pub struct FleetArgs {
    #[command(subcommand)]
    command: FleetCommand,
}

impl FleetArgs {
    /// Whether this is the long-running receiver (which logs at info).
    pub fn is_serve(&self) -> bool {
        matches!(self.command, FleetCommand::Serve(_))
    }
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Receive batches from the boxes and store them in PostgreSQL.
    Serve(ServeArgs),
    /// Print what the documented views say.
    Query(QueryArgs),
    /// Print the key a box signs with (its `[fleet] secret_file`).
    BoxKey(BoxKeyArgs),
}

/// The database, shared by `serve` and `query`.
#[derive(Args)]
struct DatabaseArgs {
    /// The database: a `postgres://` URL or `key=value` settings (`host=/run/postgresql
    /// dbname=fleet`); better given in the environment, where `ps` does not show it.
    #[arg(
        long,
        env = "POSBRIDGE_FLEET_DATABASE",
        value_name = "URL",
        hide_env_values = true
    )]
    database: String,
    /// A CA certificate (PEM) for the database server's certificate, when it is not
    /// signed by a public CA (`sslmode=require` in the URL turns TLS on).
    #[arg(long, value_name = "FILE")]
    database_ca: Option<PathBuf>,
}

#[derive(Args)]
#[command(after_help = "Examples:
  posbridge fleet serve --listen 127.0.0.1:8443 --database 'host=/run/postgresql dbname=fleet' \\
      --secret-file /etc/posbridge/fleet.secret           (behind a TLS proxy)
  posbridge fleet serve --listen 0.0.0.0:8443 --secret-file fleet.secret \\
      --tls-cert fleet.crt --tls-key fleet.key [--client-ca boxes-ca.crt]")]
struct ServeArgs {
    /// Where to listen.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    #[command(flatten)]
    database: DatabaseArgs,
    /// The fleet's secret (at least 16 bytes; `openssl rand -hex 32`).
    #[arg(long, value_name = "FILE")]
    secret_file: PathBuf,
    /// The receiver's certificate chain (PEM); without it, plain HTTP for a TLS proxy
    /// in front.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require boxes to present a certificate signed by this CA (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// Database connections; each box always uses the same one.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    connections: u16,
    /// Largest batch accepted, in bytes.
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    max_body_bytes: usize,
}

#[derive(Args)]
#[command(after_help = "Examples:
  posbridge fleet query attention --database 'host=/run/postgresql dbname=fleet'
  posbridge fleet query totals --day 2026-12-01 --box-id store-112
  posbridge fleet query not-final --minutes 30

Days are in the database session's time zone (PGTZ, or the server's TimeZone).")]
struct QueryArgs {
    /// Which view.
    #[arg(value_enum)]
    question: QuestionArg,
    #[command(flatten)]
    database: DatabaseArgs,
    /// totals: only this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    day: Option<jiff::civil::Date>,
    /// totals: only this box.
    #[arg(long, value_name = "ID")]
    box_id: Option<String>,
    /// not-final: older than this many minutes.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(i32).range(0..=10_000_000))]
    minutes: i32,
    /// Tab-separated values instead of aligned columns.
    #[arg(long)]
    tsv: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum QuestionArg {
    /// Refunds waiting for a person, by store.
    Attention,
    /// Refunds and amounts per store, day, provider and currency.
    Totals,
    /// Refunds not final after --minutes.
    NotFinal,
}

#[derive(Args)]
#[command(after_help = "Examples:
  posbridge fleet box-key --secret-file /etc/posbridge/fleet.secret --box-id store-112 \\
      > store-112.key      (copy it to the box as its [fleet] secret_file, mode 0600)")]
struct BoxKeyArgs {
    /// The fleet's secret, as given to `fleet serve`.
    #[arg(long, value_name = "FILE")]
    secret_file: PathBuf,
    /// The box's id, as in its `[fleet] box_id`.
    #[arg(long, value_name = "ID")]
    box_id: String,
}

/// Runs `posbridge fleet …`.
pub async fn run(args: FleetArgs) -> ExitCode {
    let result = match args.command {
        FleetCommand::Serve(args) => serve(args).await,
        FleetCommand::Query(args) => query(args).await,
        FleetCommand::BoxKey(args) => read_secret(&args.secret_file)
            .and_then(|secret| batch::box_key(&secret, &args.box_id).map_err(|e| e.to_string()))
            .map(|key| println!("{key}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("posbridge fleet: {e}");
            ExitCode::from(2)
        }
    }
}

/// The fleet's secret: the file's text, without surrounding whitespace.
fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--secret-file {}: cannot read: {e}", path.display()))?;
    let secret = text.trim().as_bytes().to_vec();
    if secret.len() < batch::MIN_SECRET_BYTES {
        return Err(format!(
            "--secret-file {}: holds {} bytes; at least {} are needed (openssl rand -hex 32)",
            path.display(),
            secret.len(),
            batch::MIN_SECRET_BYTES
        ));
    }
    Ok(secret)
}

fn database(args: &DatabaseArgs) -> Result<Database, String> {
    Database::new(&args.database, args.database_ca.as_deref()).map_err(|e| e.to_string())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(crate::fleet::receiver::tls_config(
            cert,
            key,
            args.client_ca.as_deref(),
        )?),
        _ => None,
    };
    if tls.is_none() && !args.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %args.listen,
            "no --tls-cert: batches arrive in plain HTTP; put a TLS proxy in front"
        );
    }
    let settings = ReceiverSettings {
        listen: args.listen,
        database: database(&args.database)?,
        fleet_secret: read_secret(&args.secret_file)?,
        tls,
        connections: usize::from(args.connections),
        max_body_bytes: args.max_body_bytes,
        header_read_timeout: Duration::from_secs(10),
    };
    let receiver = Receiver::start(settings).await?;
    tracing::info!(listen = %receiver.local_addr(), "fleet receiver on");
    // Tests and supervisors read the bound address (useful with port 0).
    println!("listening on {}", receiver.local_addr());
    crate::daemon::systemd::ready(&format!("receiving on {}", receiver.local_addr()));
    crate::cli::stop_signal().await;
    crate::daemon::systemd::stopping();
    receiver.shutdown().await;
    Ok(())
}

async fn query(args: QueryArgs) -> Result<(), String> {
    if let Some(id) = &args.box_id {
        batch::validate_box_id(id).map_err(|e| format!("--box-id: {e}"))?;
    }
    let question = match args.question {
        QuestionArg::Attention => Question::Attention,
        QuestionArg::Totals => Question::Totals {
            day: args.day.map(|d| d.to_string()),
            box_id: args.box_id.clone(),
        },
        QuestionArg::NotFinal => Question::NotFinal {
            minutes: args.minutes,
        },
    };
    let mut client = database(&args.database)?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    store::migrate(&mut client)
        .await
        .map_err(|e| e.to_string())?;
    let answer = store::ask(&client, &question)
        .await
        .map_err(|e| e.to_string())?;
    print!("{}", render(&answer, args.tsv));
    Ok(())
}

/// Aligned columns (or TSV), every cell shown safely.
pub(crate) fn render(answer: &store::Answer, tsv: bool) -> String {
    let cell = |c: &Option<String>| match c {
        Some(text) => crate::text::visible(text).replace(['\t', '\n'], " "),
        None => "-".into(),
    };
    let rows: Vec<Vec<String>> = answer
        .rows
        .iter()
        .map(|r| r.iter().map(cell).collect())
        .collect();
    let mut out = String::new();
    if tsv {
        out.push_str(&answer.columns.join("\t"));
        out.push('\n');
        for row in &rows {
            out.push_str(&row.join("\t"));
            out.push('\n');
        }
        return out;
    }
    let widths: Vec<usize> = answer
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|s| unicode_width::UnicodeWidthStr::width(s.as_str()))
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| {
                let pad = w.saturating_sub(unicode_width::UnicodeWidthStr::width(c));
                format!("{c}{}", " ".repeat(pad))
            })
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut answer.columns.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}
