//! The fleet's PostgreSQL database: its schema and migrations, one transaction per
//! batch, and the views the payments team asks.
//!
//! `boxes` holds each box's position (the last sequence stored); a batch is stored
//! only if it follows that position exactly, under a row lock, so transitions go in
//! in order whatever arrives twice, late or out of turn, and however many receivers
//! share the database. `transitions` is keyed by (box, sequence); `refunds` holds
//! each refund as its latest stored transition left it, keyed by (box, ledger id).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tokio_postgres::{Client, NoTls};

use super::batch::Batch;
use crate::ledger::OutboxEntry;

/// Migrations in order: `MIGRATIONS[n]` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE boxes (
    box_id        text        PRIMARY KEY,
    last_seq      bigint      NOT NULL DEFAULT 0,
    batches       bigint      NOT NULL DEFAULT 0,
    first_seen    timestamptz NOT NULL DEFAULT now(),
    last_batch_at timestamptz
);
CREATE TABLE refunds (
    box_id                      text   NOT NULL REFERENCES boxes,
    ledger_id                   bigint NOT NULL,
    terminal_id                 text   NOT NULL,
    original_merchant_refund_id text   NOT NULL,
    payment_id                  text   NOT NULL,
    amount_value                bigint,
    amount_currency             text,
    memo                        text,
    provider                    text   NOT NULL,
    state                       text   NOT NULL,
    refund_request_id           text,
    provider_refund_id          text,
    refund_time                 text,
    refunded_value              bigint,
    refunded_currency           text,
    result_code                 text,
    result_message              text,
    created_ms                  bigint NOT NULL,
    updated_ms                  bigint NOT NULL,
    created_at timestamptz GENERATED ALWAYS AS (to_timestamp(created_ms::float8 / 1000)) STORED,
    updated_at timestamptz GENERATED ALWAYS AS (to_timestamp(updated_ms::float8 / 1000)) STORED,
    seq                         bigint NOT NULL,
    PRIMARY KEY (box_id, ledger_id)
);
CREATE INDEX refunds_created_at ON refunds (created_at);
CREATE INDEX refunds_open ON refunds (state, created_at)
    WHERE state NOT IN ('SUCCEEDED', 'FAILED');
CREATE TABLE transitions (
    box_id      text   NOT NULL,
    seq         bigint NOT NULL,
    ledger_id   bigint NOT NULL,
    at_ms       bigint NOT NULL,
    at          timestamptz GENERATED ALWAYS AS (to_timestamp(at_ms::float8 / 1000)) STORED,
    from_state  text,
    to_state    text   NOT NULL,
    cause       text   NOT NULL,
    result_code text,
    attempt_id  bigint,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- The order rows arrived in, across boxes: per box it follows seq.
    arrival     bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (box_id, seq),
    FOREIGN KEY (box_id, ledger_id) REFERENCES refunds
);
CREATE INDEX transitions_refund ON transitions (box_id, ledger_id, seq);

CREATE VIEW refunds_needing_attention AS
    SELECT box_id, ledger_id, terminal_id, original_merchant_refund_id, payment_id, provider,
           amount_value, amount_currency, result_code, result_message, created_at, updated_at
    FROM refunds WHERE state = 'NEEDS_ATTENTION';
CREATE VIEW attention_by_store AS
    SELECT box_id, count(*) AS refunds, min(updated_at) AS oldest, max(updated_at) AS newest
    FROM refunds WHERE state = 'NEEDS_ATTENTION' GROUP BY box_id;
CREATE VIEW refund_totals AS
    SELECT box_id, created_at::date AS day, provider,
           COALESCE(refunded_currency, amount_currency) AS currency,
           count(*) AS refunds,
           count(*) FILTER (WHERE state = 'SUCCEEDED') AS succeeded,
           COALESCE(sum(COALESCE(refunded_value, amount_value))
                    FILTER (WHERE state = 'SUCCEEDED'), 0) AS succeeded_minor,
           count(*) FILTER (WHERE state = 'FAILED') AS failed,
           count(*) FILTER (WHERE state = 'NEEDS_ATTENTION') AS needs_attention,
           count(*) FILTER (WHERE state NOT IN ('SUCCEEDED', 'FAILED', 'NEEDS_ATTENTION'))
               AS not_final
    FROM refunds GROUP BY 1, 2, 3, 4;
CREATE VIEW refunds_not_final AS
    SELECT box_id, ledger_id, terminal_id, original_merchant_refund_id, payment_id, provider,
           state, amount_value, amount_currency, created_at, updated_at, now() - created_at AS age
    FROM refunds WHERE state NOT IN ('SUCCEEDED', 'FAILED', 'NEEDS_ATTENTION');
CREATE FUNCTION refunds_not_final_older_than(minutes integer)
    RETURNS SETOF refunds_not_final LANGUAGE sql STABLE AS
    $$ SELECT * FROM refunds_not_final WHERE age > make_interval(mins => minutes)
       ORDER BY age DESC $$;
CREATE VIEW box_positions AS
    SELECT box_id, last_seq, batches, first_seen, last_batch_at,
           now() - last_batch_at AS since_last_batch
    FROM boxes;
"#];

/// The schema version this build creates.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Why the database could not do something.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (down, restarting, connection lost): try later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused a statement.
    #[error("database refused: {0}")]
    Refused(String),
    /// A re-sent transition differs from the one stored under its sequence.
    #[error("{0}")]
    Conflict(String),
    /// The database URL or its settings are unusable.
    #[error("{0}")]
    Config(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        match e.as_db_error() {
            // Shutting down, starting up, out of connections: it will pass.
            Some(db)
                if db.code().code().starts_with("57") || db.code().code().starts_with("53") =>
            {
                StoreError::Unavailable(db.message().to_owned())
            }
            Some(db) => StoreError::Refused(format!("{} ({})", db.message(), db.code().code())),
            None => StoreError::Unavailable(e.to_string()),
        }
    }
}

/// What became of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Stored; the box's position is now `last`.
    Stored {
        /// The new position.
        last: i64,
        /// Transitions stored (re-sent ones not counted).
        rows: usize,
    },
    /// Everything in it was stored already; the position is `last`.
    AlreadyHeld {
        /// The position.
        last: i64,
    },
    /// It does not follow the stored position `last`: the box must send from there.
    Gap {
        /// The position.
        last: i64,
    },
}

/// How to reach the database: a `postgres://` URL or a `key=value` string (a unix
/// socket is `host=/path/to/dir`), with `sslmode` as libpq reads it.
#[derive(Clone)]
pub struct Database {
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Database")
            .field("dbname", &self.config.get_dbname())
            .finish()
    }
}

impl Database {
    /// Reads the connection string; `ca_file` adds a CA for the server's certificate
    /// to the public roots. Errors never repeat the string (it may hold a password).
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Database, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Config(format!("the database connection string is not usable: {e}"))
        })?;
        if config.get_application_name().is_none() {
            config.application_name("posbridge-fleet");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca_file {
            use tokio_rustls::rustls::pki_types::{CertificateDer, pem::PemObject};
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| StoreError::Config(format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(StoreError::Config(format!(
                    "{}: no PEM certificate in it",
                    path.display()
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| StoreError::Config(format!("{}: {e}", path.display())))?;
            }
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let tls = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Database {
            config,
            tls: tokio_postgres_rustls::MakeRustlsConnect::new(tls),
        })
    }

    /// Opens a connection, driven by a task of its own until it closes.
    pub async fn connect(&self) -> Result<Client, StoreError> {
        let unix_only = self
            .config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
        // A unix socket never negotiates TLS; the plain connector avoids asking.
        let client = if unix_only {
            let (client, connection) = self.config.connect(NoTls).await?;
            tokio::spawn(drive(connection));
            client
        } else {
            let (client, connection) = self.config.connect(self.tls.clone()).await?;
            tokio::spawn(drive(connection));
            client
        };
        Ok(client)
    }
}

async fn drive<F>(connection: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::debug!("database connection ended: {e}");
    }
}

/// Creates the schema or brings it up to [`SCHEMA_VERSION`]; receivers starting
/// together take turns. A database from a newer posbridge is refused.
pub async fn migrate(client: &mut Client) -> Result<i32, StoreError> {
    let tx = client.transaction().await?;
    // Any constant; it only has to be the same for every receiver.
    tx.execute("SELECT pg_advisory_xact_lock(7468253014)", &[])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS fleet_schema (version integer NOT NULL)")
        .await?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM fleet_schema", &[])
        .await?
        .map(|row| row.get(0));
    let found = match found {
        Some(v) => v,
        None => {
            tx.execute("INSERT INTO fleet_schema (version) VALUES (0)", &[])
                .await?;
            0
        }
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::Config(format!(
            "the fleet database's schema is version {found}, newer than this posbridge knows \
             ({SCHEMA_VERSION}); run the newer receiver"
        )));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "UPDATE fleet_schema SET version = $1",
            &[&(from as i32 + 1)],
        )
        .await?;
        tracing::info!(version = from + 1, "fleet database schema migrated");
    }
    tx.commit().await?;
    Ok(SCHEMA_VERSION)
}

/// Stores a verified batch in one transaction: every transition after the box's
/// position, and each refund as the last of them left it.
pub async fn apply(client: &mut Client, batch: &Batch) -> Result<Applied, StoreError> {
    let box_id = batch.header.box_id.as_str();
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO boxes (box_id) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&box_id],
    )
    .await?;
    let last: i64 = tx
        .query_one(
            "SELECT last_seq FROM boxes WHERE box_id = $1 FOR UPDATE",
            &[&box_id],
        )
        .await?
        .get(0);
    if batch.header.prev > last {
        return Ok(Applied::Gap { last });
    }
    let split = batch.entries.partition_point(|e| e.seq <= last);
    let (held, new) = batch.entries.split_at(split);
    check_same(&tx, box_id, held).await?;
    if new.is_empty() {
        return Ok(Applied::AlreadyHeld { last });
    }
    upsert_refunds(&tx, box_id, new).await?;
    insert_transitions(&tx, box_id, new).await?;
    tx.execute(
        "UPDATE boxes SET last_seq = $2, batches = batches + 1, last_batch_at = now() \
         WHERE box_id = $1",
        &[&box_id, &batch.header.last],
    )
    .await?;
    tx.commit().await?;
    Ok(Applied::Stored {
        last: batch.header.last,
        rows: new.len(),
    })
}

/// A re-sent transition must be the one stored: otherwise two boxes share a box id,
/// or a box's ledger was replaced, and nobody should trust either.
async fn check_same(
    tx: &tokio_postgres::Transaction<'_>,
    box_id: &str,
    held: &[OutboxEntry],
) -> Result<(), StoreError> {
    if held.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = held.iter().map(|e| e.seq).collect();
    let rows = tx
        .query(
            "SELECT seq, ledger_id, at_ms, to_state FROM transitions \
             WHERE box_id = $1 AND seq = ANY($2)",
            &[&box_id, &seqs],
        )
        .await?;
    let stored: HashMap<i64, (i64, i64, String)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    for e in held {
        if let Some((ledger_id, at_ms, to_state)) = stored.get(&e.seq)
            && (*ledger_id, *at_ms, to_state.as_str())
                != (e.refund.id, e.at_ms, e.to_state.as_str())
        {
            return Err(StoreError::Conflict(format!(
                "box {box_id:?} sent sequence {} again with other contents than stored: two \
                 boxes may share this box_id, or a ledger was replaced",
                e.seq
            )));
        }
    }
    Ok(())
}

async fn upsert_refunds(
    tx: &tokio_postgres::Transaction<'_>,
    box_id: &str,
    entries: &[OutboxEntry],
) -> Result<(), StoreError> {
    // One row per refund (a statement may not update a row twice): its last state.
    let mut latest: HashMap<i64, &OutboxEntry> = HashMap::new();
    for e in entries {
        latest.insert(e.refund.id, e);
    }
    let mut rows: Vec<&OutboxEntry> = latest.into_values().collect();
    rows.sort_by_key(|e| e.seq);
    macro_rules! column {
        ($($field:tt)+) => {
            rows.iter().map(|e| e.refund.$($field)+.clone()).collect::<Vec<_>>()
        };
    }
    let seqs: Vec<i64> = rows.iter().map(|e| e.seq).collect();
    tx.execute(
        "INSERT INTO refunds (box_id, ledger_id, terminal_id, original_merchant_refund_id, \
             payment_id, amount_value, amount_currency, memo, provider, state, \
             refund_request_id, provider_refund_id, refund_time, refunded_value, \
             refunded_currency, result_code, result_message, created_ms, updated_ms, seq) \
         SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], \
             $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
             $12::text[], $13::text[], $14::bigint[], $15::text[], $16::text[], $17::text[], \
             $18::bigint[], $19::bigint[], $20::bigint[]) \
         ON CONFLICT (box_id, ledger_id) DO UPDATE SET \
             terminal_id = EXCLUDED.terminal_id, \
             original_merchant_refund_id = EXCLUDED.original_merchant_refund_id, \
             payment_id = EXCLUDED.payment_id, amount_value = EXCLUDED.amount_value, \
             amount_currency = EXCLUDED.amount_currency, memo = EXCLUDED.memo, \
             provider = EXCLUDED.provider, state = EXCLUDED.state, \
             refund_request_id = EXCLUDED.refund_request_id, \
             provider_refund_id = EXCLUDED.provider_refund_id, \
             refund_time = EXCLUDED.refund_time, refunded_value = EXCLUDED.refunded_value, \
             refunded_currency = EXCLUDED.refunded_currency, \
             result_code = EXCLUDED.result_code, result_message = EXCLUDED.result_message, \
             created_ms = EXCLUDED.created_ms, updated_ms = EXCLUDED.updated_ms, \
             seq = EXCLUDED.seq \
         WHERE refunds.seq < EXCLUDED.seq",
        &[
            &box_id,
            &column!(id),
            &column!(terminal_id),
            &column!(original_merchant_refund_id),
            &column!(payment_id),
            &column!(amount_value),
            &column!(amount_currency),
            &column!(memo),
            &column!(provider),
            &column!(state),
            &column!(refund_request_id),
            &column!(provider_refund_id),
            &column!(refund_time),
            &column!(refunded_value),
            &column!(refunded_currency),
            &column!(result_code),
            &column!(result_message),
            &column!(created_ms),
            &column!(updated_ms),
            &seqs,
        ],
    )
    .await?;
    Ok(())
}

async fn insert_transitions(
    tx: &tokio_postgres::Transaction<'_>,
    box_id: &str,
    entries: &[OutboxEntry],
) -> Result<(), StoreError> {
    macro_rules! column {
        ($($field:tt)+) => {
            entries.iter().map(|e| e.$($field)+.clone()).collect::<Vec<_>>()
        };
    }
    tx.execute(
        "INSERT INTO transitions (box_id, seq, ledger_id, at_ms, from_state, to_state, cause, \
             result_code, attempt_id) \
         SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::bigint[])",
        &[
            &box_id,
            &column!(seq),
            &column!(refund.id),
            &column!(at_ms),
            &column!(from_state),
            &column!(to_state),
            &column!(cause),
            &column!(result_code),
            &column!(attempt_id),
        ],
    )
    .await?;
    Ok(())
}

/// A question the payments team asks, as `posbridge fleet query` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Question {
    /// Refunds waiting for a person, by store.
    Attention,
    /// Totals per store, day, provider and currency; optionally one day, one store.
    Totals {
        /// `YYYY-MM-DD`, in the session's time zone.
        day: Option<String>,
        /// One box.
        box_id: Option<String>,
    },
    /// Refunds not final after this many minutes.
    NotFinal {
        /// Minutes.
        minutes: i32,
    },
}

/// A question's answer: column names and rows of text (`None` for NULL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The columns.
    pub columns: Vec<&'static str>,
    /// The rows.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Asks the database one of the documented views.
pub async fn ask(client: &Client, question: &Question) -> Result<Answer, StoreError> {
    let (columns, from, params): (&[&'static str], String, Vec<Option<String>>) = match question {
        Question::Attention => (
            &[
                "box_id",
                "ledger_id",
                "terminal_id",
                "original_merchant_refund_id",
                "payment_id",
                "provider",
                "amount_value",
                "amount_currency",
                "result_code",
                "updated_at",
            ],
            "refunds_needing_attention ORDER BY box_id, updated_at".into(),
            vec![],
        ),
        Question::Totals { day, box_id } => (
            &[
                "box_id",
                "day",
                "provider",
                "currency",
                "refunds",
                "succeeded",
                "succeeded_minor",
                "failed",
                "needs_attention",
                "not_final",
            ],
            "refund_totals WHERE ($1::text IS NULL OR day = $1::text::date) \
             AND ($2::text IS NULL OR box_id = $2) ORDER BY day, box_id, provider, currency"
                .into(),
            vec![day.clone(), box_id.clone()],
        ),
        Question::NotFinal { minutes } => (
            &[
                "box_id",
                "ledger_id",
                "terminal_id",
                "original_merchant_refund_id",
                "payment_id",
                "provider",
                "state",
                "created_at",
                "age",
            ],
            format!("refunds_not_final_older_than({minutes})"),
            vec![],
        ),
    };
    let select: Vec<String> = columns.iter().map(|c| format!("{c}::text")).collect();
    let sql = format!("SELECT {} FROM {from}", select.join(", "));
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let rows = client.query(&sql, &params).await?;
    Ok(Answer {
        columns: columns.to_vec(),
        rows: rows
            .iter()
            .map(|row| (0..columns.len()).map(|i| row.try_get(i)).collect())
            .collect::<Result<_, _>>()?,
    })
}
