//! The ledger's schema and its migrations, versioned from the first one.
//!
//! `PRAGMA user_version` holds the schema version. Each migration takes the file from
//! one version to the next inside one transaction; a file from a newer posbridge is
//! refused rather than guessed at. Times are milliseconds since the Unix epoch (UTC);
//! amounts are integers in minor units.

use rusqlite::Connection;

use super::LedgerError;

/// Migrations in order: `MIGRATIONS[n]` takes version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    r#"
    CREATE TABLE refunds (
        id                          INTEGER PRIMARY KEY,
        terminal_id                 TEXT    NOT NULL,
        original_merchant_refund_id TEXT    NOT NULL,
        payment_id                  TEXT    NOT NULL,
        amount_value                INTEGER,
        amount_currency             TEXT,
        memo                        TEXT,
        provider                    TEXT    NOT NULL,
        state                       TEXT    NOT NULL CHECK (state IN
            ('ACCEPTED', 'QUEUED', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'NEEDS_ATTENTION')),
        attempt_id                  INTEGER NOT NULL,
        provider_refund_id          TEXT,
        refund_time                 TEXT,
        refunded_value              INTEGER,
        refunded_currency           TEXT,
        result_code                 TEXT,
        result_message              TEXT,
        created_ms                  INTEGER NOT NULL,
        updated_ms                  INTEGER NOT NULL,
        next_action_ms              INTEGER,
        tries                       INTEGER NOT NULL DEFAULT 0,
        delivered_state             TEXT,
        delivered_ms                INTEGER,
        UNIQUE (terminal_id, original_merchant_refund_id),
        CHECK ((amount_value IS NULL) = (amount_currency IS NULL))
    );
    CREATE INDEX refunds_due ON refunds (next_action_ms) WHERE next_action_ms IS NOT NULL;
    CREATE INDEX refunds_payment ON refunds (payment_id, id);
    CREATE INDEX refunds_terminal_day ON refunds (terminal_id, created_ms);
    CREATE INDEX refunds_state ON refunds (state);

    CREATE TABLE attempts (
        id                INTEGER PRIMARY KEY,
        refund_id         INTEGER NOT NULL REFERENCES refunds (id),
        refund_request_id TEXT    NOT NULL UNIQUE,
        status            TEXT    NOT NULL CHECK (status IN
            ('NEW', 'SENDING', 'RETRY', 'PROCESSING', 'DONE')),
        sends             INTEGER NOT NULL DEFAULT 0,
        created_ms        INTEGER NOT NULL,
        last_sent_ms      INTEGER,
        last_outcome      TEXT
    );
    CREATE INDEX attempts_refund ON attempts (refund_id);

    CREATE TABLE transitions (
        id          INTEGER PRIMARY KEY,
        refund_id   INTEGER NOT NULL REFERENCES refunds (id),
        at_ms       INTEGER NOT NULL,
        from_state  TEXT,
        to_state    TEXT    NOT NULL,
        cause       TEXT    NOT NULL,
        result_code TEXT,
        attempt_id  INTEGER
    );
    CREATE INDEX transitions_refund ON transitions (refund_id, id);
    "#,
    // Version 2: final states a terminal has not acknowledged, found without reading
    // every refund the terminal ever made (the sweep asks every two seconds).
    r#"
    CREATE INDEX refunds_undelivered ON refunds (terminal_id, id)
        WHERE state IN ('SUCCEEDED', 'FAILED', 'NEEDS_ATTENTION')
          AND (delivered_state IS NULL OR delivered_state != state);
    "#,
    // Version 3: the state PROVIDER_PENDING (accepted by a provider that finishes it
    // later and cannot be asked). SQLite cannot change a CHECK constraint in place, so
    // the table is rebuilt as its documentation describes (foreign keys are off while
    // migrations run, and checked before the commit).
    r#"
    CREATE TABLE refunds_v3 (
        id                          INTEGER PRIMARY KEY,
        terminal_id                 TEXT    NOT NULL,
        original_merchant_refund_id TEXT    NOT NULL,
        payment_id                  TEXT    NOT NULL,
        amount_value                INTEGER,
        amount_currency             TEXT,
        memo                        TEXT,
        provider                    TEXT    NOT NULL,
        state                       TEXT    NOT NULL CHECK (state IN
            ('ACCEPTED', 'QUEUED', 'PROCESSING', 'PROVIDER_PENDING', 'SUCCEEDED', 'FAILED',
             'NEEDS_ATTENTION')),
        attempt_id                  INTEGER NOT NULL,
        provider_refund_id          TEXT,
        refund_time                 TEXT,
        refunded_value              INTEGER,
        refunded_currency           TEXT,
        result_code                 TEXT,
        result_message              TEXT,
        created_ms                  INTEGER NOT NULL,
        updated_ms                  INTEGER NOT NULL,
        next_action_ms              INTEGER,
        tries                       INTEGER NOT NULL DEFAULT 0,
        delivered_state             TEXT,
        delivered_ms                INTEGER,
        UNIQUE (terminal_id, original_merchant_refund_id),
        CHECK ((amount_value IS NULL) = (amount_currency IS NULL))
    );
    INSERT INTO refunds_v3 SELECT * FROM refunds;
    DROP TABLE refunds;
    ALTER TABLE refunds_v3 RENAME TO refunds;
    CREATE INDEX refunds_due ON refunds (next_action_ms) WHERE next_action_ms IS NOT NULL;
    CREATE INDEX refunds_payment ON refunds (payment_id, id);
    CREATE INDEX refunds_terminal_day ON refunds (terminal_id, created_ms);
    CREATE INDEX refunds_state ON refunds (state);
    CREATE INDEX refunds_undelivered ON refunds (terminal_id, id)
        WHERE state IN ('PROVIDER_PENDING', 'SUCCEEDED', 'FAILED', 'NEEDS_ATTENTION')
          AND (delivered_state IS NULL OR delivered_state != state);
    -- Reconciliation finds refunds by the provider's id for them.
    CREATE INDEX refunds_provider_refund_id ON refunds (provider_refund_id)
        WHERE provider_refund_id IS NOT NULL;
    "#,
    // Version 4: the fleet outbox. The sequence of a box's transitions is their `id`
    // (append-only, assigned in commit order by one writer). While a sink is
    // configured (`fleet_sink` has its row) a trigger keeps, beside each transition,
    // the refund's changing columns as that transition left them, so the sink gets
    // every state in order, not today's row repeated; `fleet_sink` records how far
    // the sink has confirmed. Every writer of a refund updates the row before it
    // inserts the transition, in the same transaction, so the copy is exact.
    r#"
    CREATE TABLE fleet_sink (
        id             INTEGER PRIMARY KEY CHECK (id = 1),
        box_id         TEXT    NOT NULL,
        confirmed_seq  INTEGER NOT NULL DEFAULT 0,
        confirmed_ms   INTEGER
    );
    CREATE TABLE fleet_snapshots (
        seq                INTEGER PRIMARY KEY,
        state              TEXT    NOT NULL,
        attempt_id         INTEGER NOT NULL,
        provider_refund_id TEXT,
        refund_time        TEXT,
        refunded_value     INTEGER,
        refunded_currency  TEXT,
        result_code        TEXT,
        result_message     TEXT,
        updated_ms         INTEGER NOT NULL
    );
    CREATE TRIGGER fleet_snapshot AFTER INSERT ON transitions
        WHEN EXISTS (SELECT 1 FROM fleet_sink)
    BEGIN
        INSERT INTO fleet_snapshots (seq, state, attempt_id, provider_refund_id, refund_time,
            refunded_value, refunded_currency, result_code, result_message, updated_ms)
        SELECT NEW.id, r.state, r.attempt_id, r.provider_refund_id, r.refund_time,
            r.refunded_value, r.refunded_currency, r.result_code, r.result_message, r.updated_ms
        FROM refunds r WHERE r.id = NEW.refund_id;
    END;
    "#,
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the file's schema up to [`VERSION`].
pub(super) fn migrate(conn: &mut Connection) -> Result<(), LedgerError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > VERSION {
        return Err(LedgerError::NewerSchema {
            found,
            known: VERSION,
        });
    }
    if found == VERSION {
        return Ok(());
    }
    // A table rebuild drops the table its rows' references point at; foreign keys
    // cannot be switched off inside a transaction, so they are off around it.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let migrated = run_migrations(conn, found);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrated
}

fn run_migrations(conn: &mut Connection, found: i64) -> Result<(), LedgerError> {
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        let broken: i64 =
            tx.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |row| {
                row.get(0)
            })?;
        if broken > 0 {
            return Err(LedgerError::Corrupt {
                id: 0,
                what: format!(
                    "migrating to schema version {} would leave {broken} rows pointing at \
                     nothing; nothing was changed",
                    from + 1
                ),
            });
        }
        tx.pragma_update(None, "user_version", from as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = from + 1, "ledger schema migrated");
    }
    Ok(())
}
