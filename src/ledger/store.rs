//! [`Ledger`]: the operations on the file, each one transaction.
//!
//! Every writing operation runs in a savepoint, so it is its own transaction when
//! called alone and a nested, all-or-nothing part when [`super::LedgerHandle`] groups
//! several into one commit.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::model::{
    AcceptPolicy, Acceptance, AttemptRecord, AttemptStatus, Change, Counts, History, NewRefund,
    RefundRecord, Settlement, TransitionRecord, parse_state,
};
use super::{LedgerError, schema};
use crate::money::{Amount, Currency};
use crate::state::RefundState;

/// States in which the bridge still owes a refund something; a later refund of the
/// same payment waits for it.
const ACTIVE_STATES: &str = "('ACCEPTED', 'QUEUED', 'PROCESSING')";

/// States in which a refund is not settled: the active ones, those the provider
/// finishes later, and those waiting for a person. Neither of the last two holds later
/// refunds of its payment back: nothing more will be sent for them, the provider still
/// guards the refundable amount, and otherwise the later ones would wait, and the
/// cashier be told they wait for the network, until a report or a person settles them.
const UNSETTLED_STATES: &str =
    "('ACCEPTED', 'QUEUED', 'PROCESSING', 'PROVIDER_PENDING', 'NEEDS_ATTENTION')";

const SELECT_REFUND: &str = "SELECT r.id, r.terminal_id, r.original_merchant_refund_id, \
    r.payment_id, r.amount_value, r.amount_currency, r.memo, r.provider, r.state, \
    r.attempt_id, a.refund_request_id, a.status, r.provider_refund_id, r.refund_time, \
    r.refunded_value, r.refunded_currency, r.result_code, r.result_message, r.created_ms, \
    r.updated_ms, r.next_action_ms, r.tries, r.delivered_state, \
    (SELECT MAX(t.id) FROM transitions t WHERE t.refund_id = r.id) \
    FROM refunds r JOIN attempts a ON a.id = r.attempt_id";

/// The ledger file.
pub struct Ledger {
    pub(super) conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> LedgerError {
    LedgerError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Creates the ledger's directory (0700, and any parents) if it is not there yet.
pub fn ensure_directory(path: &Path) -> Result<(), LedgerError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| file_error(dir, format!("cannot create the directory: {e}")))?;
    }
    Ok(())
}

/// The files SQLite keeps for a ledger: the database, its write-ahead log and its
/// shared-memory index.
fn ledger_files(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_path_buf(), with("-wal"), with("-shm")]
}

/// Takes every permission from group and others on the ledger's files: they hold
/// every refund. SQLite gives new `-wal` and `-shm` files the database's mode, so
/// fixing all three keeps them private from now on.
fn make_private(path: &Path) -> Result<(), LedgerError> {
    for file in ledger_files(path) {
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            continue;
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o700)).map_err(
            |e| {
                file_error(
                    &file,
                    format!(
                        "is readable by others (mode {mode:o}) and its mode cannot be changed \
                         ({e}); run chmod 600 {}",
                        file.display()
                    ),
                )
            },
        )?;
        tracing::warn!(
            file = %file.display(),
            "ledger file was mode {mode:o}, readable by others; made {:o}",
            mode & 0o700
        );
    }
    Ok(())
}

/// SQLite needs to write the file and to create its `-wal` and `-shm` beside it;
/// without this check it says only "attempt to write a readonly database".
fn check_writable(path: &Path) -> Result<(), LedgerError> {
    use nix::unistd::{AccessFlags, access};
    let user = || {
        let uid = nix::unistd::geteuid();
        nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| format!("{} (uid {uid})", u.name))
            .unwrap_or_else(|| format!("uid {uid}"))
    };
    if let Err(e) = access(path, AccessFlags::R_OK | AccessFlags::W_OK) {
        return Err(file_error(
            path,
            format!(
                "the file is not writable by {}: {}; chown it to the service user and chmod 600 it",
                user(),
                e.desc()
            ),
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Err(e) = access(dir, AccessFlags::W_OK | AccessFlags::X_OK) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(file_error(
            path,
            format!(
                "its directory {} is not writable by {} ({}), and SQLite keeps {name}-wal \
                 and {name}-shm there; chown the directory to the service user and chmod 700 it",
                dir.display(),
                user(),
                e.desc()
            ),
        ));
    }
    Ok(())
}

impl Ledger {
    /// Opens the ledger at `path`, creating it (0600, its directory 0700) if it does
    /// not exist, and brings its schema up to date. A ledger others could read is
    /// made private again (with its `-wal` and `-shm`), and said so.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        ensure_directory(path)?;
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => make_private(path)?,
            Err(e) => return Err(file_error(path, format!("cannot create: {e}"))),
        }
        check_writable(path)?;
        let mut conn = Connection::open(path).map_err(|e| file_error(path, e))?;
        let sqlite = |e: rusqlite::Error| file_error(path, e);
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sqlite)?;
        let mode: String = conn
            .prepare_cached("PRAGMA journal_mode = WAL")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(sqlite)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(file_error(
                path,
                format!("cannot use WAL (journal mode {mode})"),
            ));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sqlite)?;
        schema::migrate(&mut conn).map_err(|e| match e {
            LedgerError::Sqlite(reason) => file_error(path, reason),
            e => e,
        })?;
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Whether a ledger at `path` could be opened for writing, without creating or
    /// changing anything: an existing one and its directory must be writable, and
    /// for a new one the nearest directory that exists.
    pub fn check_location(path: &Path) -> Result<(), LedgerError> {
        if path.exists() {
            return check_writable(path);
        }
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if d.exists() {
                use nix::unistd::{AccessFlags, access};
                return access(d, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
                    file_error(
                        path,
                        format!(
                            "cannot be created: {} is not writable by uid {} ({})",
                            d.display(),
                            nix::unistd::geteuid(),
                            e.desc()
                        ),
                    )
                });
            }
            dir = d.parent();
        }
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    pub(super) fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }

    /// A second connection to the same file, for background checkpoints.
    pub(super) fn checkpointer(&self) -> Result<Checkpointer, LedgerError> {
        let conn = Connection::open(&self.path).map_err(|e| file_error(&self.path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Checkpointer { conn })
    }

    /// Leaves checkpoints to a [`Checkpointer`]: commits then only append to the
    /// write-ahead log. A large automatic threshold stays as a safety net.
    pub(super) fn leave_checkpoints_to_background(&mut self) -> Result<(), LedgerError> {
        self.conn
            .pragma_update(None, "wal_autocheckpoint", 20_000)?;
        Ok(())
    }

    /// Runs `change` as one write transaction that takes the write lock first
    /// (`BEGIN IMMEDIATE`, waiting for the daemon's writes as long as the busy timeout
    /// allows). Another process's commands on a ledger the daemon is writing use this:
    /// a transaction that only reads first and then writes fails at once when the
    /// daemon wrote in between, instead of waiting.
    pub fn write<T>(
        &mut self,
        change: impl FnOnce(&mut Ledger) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        if !self.conn.is_autocommit() {
            return change(self);
        }
        self.begin_batch()?;
        match change(self) {
            Ok(value) => {
                self.commit_batch()?;
                Ok(value)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Starts a transaction that groups the next operations into one commit.
    pub(super) fn begin_batch(&mut self) -> Result<(), LedgerError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    /// Commits the group; if that fails, rolls it back so nothing half-done stays.
    pub(super) fn commit_batch(&mut self) -> Result<(), LedgerError> {
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        Ok(())
    }

    /// Records a refund the terminal asked for, or says why not. Duplicates and limits
    /// are checked in the same transaction as the insert.
    pub fn accept(
        &mut self,
        new: &NewRefund,
        policy: &AcceptPolicy,
        now_ms: i64,
    ) -> Result<Acceptance, LedgerError> {
        let sp = self.conn.savepoint()?;
        if let Some(existing) =
            find_terminal_refund(&sp, &new.terminal_id, &new.original_merchant_refund_id)?
        {
            let same = existing.payment_id == new.payment_id
                && existing.amount == new.amount
                && existing.memo == new.memo;
            return Ok(if same {
                Acceptance::Duplicate(existing)
            } else {
                Acceptance::Mismatch(existing)
            });
        }
        if let (Some(limit), Some(amount)) = (policy.daily_limit, new.amount) {
            let used: i64 = sp
                .prepare_cached(
                    "SELECT COALESCE(SUM(amount_value), 0) FROM refunds \
                 WHERE terminal_id = ?1 AND amount_currency = ?2 AND created_ms >= ?3 \
                 AND state != 'FAILED'",
                )?
                .query_row(
                    params![new.terminal_id, amount.currency.as_str(), limit.since_ms],
                    |r| r.get(0),
                )?;
            if used.saturating_add(amount.value) > limit.max.value {
                return Ok(Acceptance::OverDailyLimit {
                    max: limit.max,
                    used,
                });
            }
        }
        let waits_for_earlier: bool = sp.prepare_cached(&format!(
                "SELECT EXISTS (SELECT 1 FROM refunds WHERE payment_id = ?1 AND state IN {ACTIVE_STATES})"
            ))?.query_row(params![new.payment_id],
            |r| r.get(0),
        )?;
        let state = if policy.queued {
            RefundState::Queued
        } else {
            RefundState::Accepted
        };
        sp.prepare_cached(
            "INSERT INTO refunds (terminal_id, original_merchant_refund_id, payment_id, \
             amount_value, amount_currency, memo, provider, state, attempt_id, created_ms, \
             updated_ms, next_action_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?9, ?9)",
        )?
        .execute(params![
            new.terminal_id,
            new.original_merchant_refund_id,
            new.payment_id,
            new.amount.map(|a| a.value),
            new.amount.map(|a| a.currency.as_str().to_owned()),
            new.memo,
            policy.provider,
            state.as_str(),
            now_ms,
        ])?;
        let id = sp.last_insert_rowid();
        let attempt_id = insert_attempt(&sp, id, &policy.refund_request_id, now_ms)?;
        sp.prepare_cached("UPDATE refunds SET attempt_id = ?1 WHERE id = ?2")?
            .execute(params![attempt_id, id])?;
        insert_transition(
            &sp,
            id,
            now_ms,
            None,
            state,
            &format!("REFUND from terminal {}", new.terminal_id),
            None,
            Some(attempt_id),
        )?;
        let refund = get(&sp, id)?;
        sp.commit()?;
        Ok(Acceptance::Recorded {
            refund,
            waits_for_earlier,
        })
    }

    /// Notes, before a request leaves, that the attempt is being sent: if the bridge
    /// stops before the outcome is recorded, the attempt reads as possibly sent.
    ///
    /// A compare-and-set: it succeeds only if the refund is still waiting to be sent
    /// and the attempt is still in the status the caller saw, so a caller holding an
    /// old copy of the refund can never send it a second time.
    pub fn begin_send(
        &mut self,
        refund_id: i64,
        attempt_id: i64,
        seen: AttemptStatus,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        let sp = self.conn.savepoint()?;
        let changed = sp
            .prepare_cached(
                "UPDATE attempts SET status = 'SENDING', sends = sends + 1, last_sent_ms = ?1 \
             WHERE id = ?2 AND refund_id = ?3 AND status = ?4 \
             AND EXISTS (SELECT 1 FROM refunds WHERE id = ?3 AND attempt_id = ?2 \
                         AND state IN ('ACCEPTED', 'QUEUED'))",
            )?
            .execute(params![now_ms, attempt_id, refund_id, seen.as_str()])?;
        if changed != 1 {
            let current = get(&sp, refund_id)?;
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state.to_string(),
                what: format!(
                    "attempt {attempt_id} is {} (expected {seen}); not sent again",
                    current.attempt_status
                ),
            });
        }
        sp.commit()?;
        Ok(())
    }

    /// Applies a change to a refund's current attempt `attempt_id`, with its
    /// transition row, and returns the refund as it now is.
    pub fn apply(
        &mut self,
        refund_id: i64,
        attempt_id: i64,
        change: &Change,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        let sp = self.conn.savepoint()?;
        let current = get(&sp, refund_id)?;
        if current.state.is_final() {
            // Settled (by the provider, a notification or a person): a late outcome of
            // the same attempt changes nothing.
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state.to_string(),
                what: "the refund is settled already".into(),
            });
        }
        if current.attempt_id != attempt_id {
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state.to_string(),
                what: format!("attempt {attempt_id} is no longer the current one"),
            });
        }
        let state = change.state.unwrap_or(current.state);
        let next_action = match change.next_action_ms {
            Some(next) => next,
            None => current.next_action_ms,
        };
        let refunded = change.refunded.or(current.refunded);
        let (code, message) = match &change.result {
            Some((code, message)) => (Some(code.clone()), Some(message.clone())),
            None => (current.result_code.clone(), current.result_message.clone()),
        };
        sp.prepare_cached(
            "UPDATE refunds SET state = ?1, next_action_ms = ?2, tries = ?3, \
             provider_refund_id = ?4, refund_time = ?5, refunded_value = ?6, \
             refunded_currency = ?7, result_code = ?8, result_message = ?9, updated_ms = ?10 \
             WHERE id = ?11",
        )?
        .execute(params![
            state.as_str(),
            next_action,
            change.tries.unwrap_or(current.tries),
            change
                .provider_refund_id
                .clone()
                .or(current.provider_refund_id.clone()),
            change.refund_time.clone().or(current.refund_time.clone()),
            refunded.map(|a| a.value),
            refunded.map(|a| a.currency.as_str().to_owned()),
            code,
            message,
            now_ms,
            refund_id,
        ])?;
        if change.attempt.is_some() || change.outcome.is_some() {
            sp.prepare_cached(
                "UPDATE attempts SET status = COALESCE(?1, status), \
                 last_outcome = COALESCE(?2, last_outcome) WHERE id = ?3",
            )?
            .execute(params![
                change.attempt.map(AttemptStatus::as_str),
                change.outcome,
                attempt_id
            ])?;
        }
        insert_transition(
            &sp,
            refund_id,
            now_ms,
            Some(current.state),
            state,
            &change.cause,
            change.result.as_ref().map(|(code, _)| code.as_str()),
            Some(attempt_id),
        )?;
        let refund = get(&sp, refund_id)?;
        sp.commit()?;
        Ok(refund)
    }

    /// Starts a new attempt (a new `refundRequestId`) for a FAILED refund, as an
    /// operator's retry does; the refund goes back to `state` and is due now.
    pub fn new_attempt(
        &mut self,
        refund_id: i64,
        refund_request_id: &str,
        state: RefundState,
        cause: &str,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        let sp = self.conn.savepoint()?;
        let current = get(&sp, refund_id)?;
        if current.state != RefundState::Failed {
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state.to_string(),
                what: "only a FAILED refund can be retried".into(),
            });
        }
        let attempt_id = insert_attempt(&sp, refund_id, refund_request_id, now_ms)?;
        sp.prepare_cached(
            "UPDATE refunds SET attempt_id = ?1, state = ?2, next_action_ms = ?3, tries = 0, \
             result_code = NULL, result_message = NULL, updated_ms = ?3 WHERE id = ?4",
        )?
        .execute(params![attempt_id, state.as_str(), now_ms, refund_id])?;
        insert_transition(
            &sp,
            refund_id,
            now_ms,
            Some(current.state),
            state,
            cause,
            None,
            Some(attempt_id),
        )?;
        let refund = get(&sp, refund_id)?;
        sp.commit()?;
        Ok(refund)
    }

    /// Makes an unfinished refund due now (an operator's "retry now" for a refund
    /// waiting out its backoff), with the same `refundRequestId`.
    pub fn due_now(
        &mut self,
        refund_id: i64,
        cause: &str,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        let sp = self.conn.savepoint()?;
        let current = get(&sp, refund_id)?;
        if !matches!(
            current.state,
            RefundState::Accepted | RefundState::Queued | RefundState::Processing
        ) {
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state.to_string(),
                what: "only a refund the bridge is still working on can be made due now".into(),
            });
        }
        sp.prepare_cached(
            "UPDATE refunds SET next_action_ms = ?1, tries = 0, updated_ms = ?1 WHERE id = ?2",
        )?
        .execute(params![now_ms, refund_id])?;
        insert_transition(
            &sp,
            refund_id,
            now_ms,
            Some(current.state),
            current.state,
            cause,
            None,
            Some(current.attempt_id),
        )?;
        let refund = get(&sp, refund_id)?;
        sp.commit()?;
        Ok(refund)
    }

    /// Settles a refund nobody else will: one that needs a person, or one its provider
    /// finishes later, by a person's word (`posbridge resolve`).
    pub fn resolve(
        &mut self,
        refund_id: i64,
        to: RefundState,
        cause: &str,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        self.settle(refund_id, &Settlement::to(to), cause, now_ms)
    }

    /// Settles a refund by a person's word or a provider's report: a NEEDS_ATTENTION
    /// or PROVIDER_PENDING refund becomes SUCCEEDED or FAILED; a FAILED refund whose
    /// refund the provider's report shows carried out becomes SUCCEEDED (the money did
    /// move, and nobody may refund it again). Nothing else may be settled this way.
    pub fn settle(
        &mut self,
        refund_id: i64,
        settlement: &Settlement,
        cause: &str,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        let sp = self.conn.savepoint()?;
        let current = get(&sp, refund_id)?;
        let to = settlement.to;
        let allowed = match current.state {
            RefundState::NeedsAttention | RefundState::ProviderPending => {
                matches!(to, RefundState::Succeeded | RefundState::Failed)
            }
            RefundState::Failed => to == RefundState::Succeeded && settlement.by_report,
            _ => false,
        };
        if !allowed {
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state.to_string(),
                what: match current.state {
                    RefundState::NeedsAttention | RefundState::ProviderPending => {
                        format!("it can be settled as SUCCEEDED or FAILED, not {to}")
                    }
                    _ => "only a NEEDS_ATTENTION or PROVIDER_PENDING refund can be resolved \
                          (and a FAILED one by a report that shows it refunded)"
                        .into(),
                },
            });
        }
        let result = settlement.result.as_ref();
        sp.prepare_cached(
            "UPDATE refunds SET state = ?1, next_action_ms = NULL, updated_ms = ?2, \
             provider_refund_id = COALESCE(?3, provider_refund_id), \
             refunded_value = COALESCE(?4, refunded_value), \
             refunded_currency = COALESCE(?5, refunded_currency), \
             refund_time = COALESCE(?6, refund_time), \
             result_code = COALESCE(?7, result_code), result_message = COALESCE(?8, result_message) \
             WHERE id = ?9",
        )?
        .execute(params![
            to.as_str(),
            now_ms,
            settlement.provider_refund_id,
            settlement.refunded.map(|a| a.value),
            settlement.refunded.map(|a| a.currency.as_str().to_owned()),
            settlement.refund_time,
            result.map(|r| r.0.as_str()),
            result.map(|r| r.1.as_str()),
            refund_id
        ])?;
        sp.prepare_cached("UPDATE attempts SET status = 'DONE' WHERE id = ?1")?
            .execute(params![current.attempt_id])?;
        insert_transition(
            &sp,
            refund_id,
            now_ms,
            Some(current.state),
            to,
            cause,
            result.map(|r| r.0.as_str()),
            Some(current.attempt_id),
        )?;
        let refund = get(&sp, refund_id)?;
        sp.commit()?;
        Ok(refund)
    }

    /// Records something learned about a refund without changing its state (a
    /// notification that disagrees with a settled refund, a report's finding): a
    /// transition from its state to the same state, with `cause` and `result_code`.
    pub fn note(
        &mut self,
        refund_id: i64,
        cause: &str,
        result_code: Option<&str>,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        let sp = self.conn.savepoint()?;
        let current = get(&sp, refund_id)?;
        sp.prepare_cached("UPDATE refunds SET updated_ms = ?1 WHERE id = ?2")?
            .execute(params![now_ms, refund_id])?;
        insert_transition(
            &sp,
            refund_id,
            now_ms,
            Some(current.state),
            current.state,
            cause,
            result_code,
            Some(current.attempt_id),
        )?;
        let refund = get(&sp, refund_id)?;
        sp.commit()?;
        Ok(refund)
    }

    /// Records the amount a SUCCEEDED refund's provider says it refunded, where the
    /// ledger did not know it (a whole-payment refund answered without its amount), and
    /// the provider's refund id if it was not known either. A refund whose amount is
    /// known already, or that is not SUCCEEDED, is not changed.
    pub fn learn_amount(
        &mut self,
        refund_id: i64,
        amount: Amount,
        provider_refund_id: Option<&str>,
        cause: &str,
        now_ms: i64,
    ) -> Result<RefundRecord, LedgerError> {
        let sp = self.conn.savepoint()?;
        let current = get(&sp, refund_id)?;
        if current.state != RefundState::Succeeded || current.refunded.is_some() {
            return Err(LedgerError::NotAllowed {
                id: refund_id,
                state: current.state.to_string(),
                what: "only a SUCCEEDED refund whose amount is unknown can learn it".into(),
            });
        }
        sp.prepare_cached(
            "UPDATE refunds SET refunded_value = ?1, refunded_currency = ?2, \
             provider_refund_id = COALESCE(provider_refund_id, ?3), updated_ms = ?4 WHERE id = ?5",
        )?
        .execute(params![
            amount.value,
            amount.currency.as_str(),
            provider_refund_id,
            now_ms,
            refund_id
        ])?;
        insert_transition(
            &sp,
            refund_id,
            now_ms,
            Some(current.state),
            current.state,
            cause,
            None,
            Some(current.attempt_id),
        )?;
        let refund = get(&sp, refund_id)?;
        sp.commit()?;
        Ok(refund)
    }

    /// Records that the terminal acknowledged the refund in `state`; ignored if the
    /// refund has moved on meanwhile.
    pub fn mark_delivered(
        &mut self,
        refund_id: i64,
        state: RefundState,
        now_ms: i64,
    ) -> Result<bool, LedgerError> {
        let sp = self.conn.savepoint()?;
        let changed = sp.prepare_cached("UPDATE refunds SET delivered_state = ?1, delivered_ms = ?2 WHERE id = ?3 AND state = ?1")?.execute(params![state.as_str(), now_ms, refund_id])?;
        sp.commit()?;
        Ok(changed == 1)
    }

    /// Moves every ACCEPTED refund to QUEUED: the cloud was just found unreachable, so
    /// refunds accepted a moment before must say so too. Returns them as they now are.
    ///
    /// A refund whose request is on its way (its attempt is SENDING) is left alone: its
    /// own answer decides what it becomes, and the cashier must not be told it waits
    /// for the network while the provider may be refunding it.
    pub fn queue_accepted(
        &mut self,
        cause: &str,
        now_ms: i64,
    ) -> Result<Vec<RefundRecord>, LedgerError> {
        let sp = self.conn.savepoint()?;
        let ids: Vec<(i64, i64)> = {
            let mut stmt = sp.prepare(
                "SELECT r.id, r.attempt_id FROM refunds r JOIN attempts a ON a.id = r.attempt_id \
                 WHERE r.state = 'ACCEPTED' AND a.status != 'SENDING' ORDER BY r.id",
            )?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut moved = Vec::with_capacity(ids.len());
        for (id, attempt_id) in ids {
            sp.prepare_cached(
                "UPDATE refunds SET state = 'QUEUED', updated_ms = ?1 WHERE id = ?2",
            )?
            .execute(params![now_ms, id])?;
            insert_transition(
                &sp,
                id,
                now_ms,
                Some(RefundState::Accepted),
                RefundState::Queued,
                cause,
                None,
                Some(attempt_id),
            )?;
            moved.push(get(&sp, id)?);
        }
        sp.commit()?;
        Ok(moved)
    }

    /// Makes every QUEUED refund due now: the cloud is back.
    pub fn requeue_now(&mut self, now_ms: i64) -> Result<usize, LedgerError> {
        let sp = self.conn.savepoint()?;
        let n = sp.prepare_cached("UPDATE refunds SET next_action_ms = ?1 WHERE state = 'QUEUED' AND next_action_ms > ?1")?.execute(params![now_ms])?;
        sp.commit()?;
        Ok(n)
    }

    /// One refund by its number.
    pub fn get(&self, id: i64) -> Result<RefundRecord, LedgerError> {
        get(&self.conn, id)
    }

    /// A terminal's refund by the terminal's id for it.
    pub fn find(
        &self,
        terminal_id: &str,
        original_merchant_refund_id: &str,
    ) -> Result<Option<RefundRecord>, LedgerError> {
        find_terminal_refund(&self.conn, terminal_id, original_merchant_refund_id)
    }

    /// The refunds the provider knows by this refund id (one, unless the provider
    /// reused an id).
    pub fn find_by_provider_refund_id(
        &self,
        provider_refund_id: &str,
    ) -> Result<Vec<RefundRecord>, LedgerError> {
        collect(
            &self.conn,
            &format!("{SELECT_REFUND} WHERE r.provider_refund_id = ?1 ORDER BY r.id"),
            params![provider_refund_id],
        )
    }

    /// The number of the latest transition (0 for an empty ledger).
    pub fn last_transition_id(&self) -> Result<i64, LedgerError> {
        Ok(self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM transitions")?
            .query_row([], |r| r.get(0))?)
    }

    /// Changes people and reports made (`posbridge resolve`, `retry`, `reconcile
    /// --apply`) after transition `after`, oldest first, at most `limit`: the refund
    /// as it now is and the change's cause. Reads only the transitions after `after`.
    pub fn operator_changes_since(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, RefundRecord, String)>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, refund_id, cause FROM transitions WHERE id > ?1 \
             AND (cause LIKE 'operator %' OR cause LIKE 'reconcile:%') ORDER BY id LIMIT ?2",
        )?;
        let rows: Vec<(i64, i64, String)> = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(id, refund, cause)| Ok((id, get(&self.conn, refund)?, cause)))
            .collect()
    }

    /// Every refund of a payment, oldest first.
    pub fn refunds_of_payment(&self, payment_id: &str) -> Result<Vec<RefundRecord>, LedgerError> {
        collect(
            &self.conn,
            &format!("{SELECT_REFUND} WHERE r.payment_id = ?1 ORDER BY r.id"),
            params![payment_id],
        )
    }

    /// The refund whose attempt has this `refundRequestId`.
    pub fn find_by_request_id(
        &self,
        refund_request_id: &str,
    ) -> Result<Option<RefundRecord>, LedgerError> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT refund_id FROM attempts WHERE refund_request_id = ?1",
                params![refund_request_id],
                |r| r.get(0),
            )
            .optional()?;
        id.map(|id| get(&self.conn, id)).transpose()
    }

    /// A refund named by a person: its ledger number, the terminal's id for it, a
    /// `refundRequestId` or the provider's refund id.
    pub fn lookup(&self, text: &str) -> Result<RefundRecord, LedgerError> {
        if let Ok(id) = text.parse::<i64>()
            && let Ok(refund) = get(&self.conn, id)
        {
            return Ok(refund);
        }
        // One indexed search per kind of id; an OR across the join would read every row.
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM refunds WHERE original_merchant_refund_id = ?1 \
             UNION SELECT id FROM refunds WHERE provider_refund_id = ?1 \
             UNION SELECT refund_id FROM attempts WHERE refund_request_id = ?1 ORDER BY 1",
        )?;
        let ids: Vec<i64> = stmt
            .query_map(params![text], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        match ids.as_slice() {
            [] => Err(LedgerError::NotFound(text.to_owned())),
            [id] => get(&self.conn, *id),
            many => Err(LedgerError::Ambiguous(
                text.to_owned(),
                many.iter()
                    .map(|id| format!("#{id}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// Refunds the bridge must act on by `now_ms`, oldest first, skipping any whose
    /// payment has an earlier refund still open (one refund per payment at a time,
    /// in the order they were accepted).
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<RefundRecord>, LedgerError> {
        let sql = format!(
            "{SELECT_REFUND} WHERE r.next_action_ms <= ?1 \
             AND r.state IN {ACTIVE_STATES} \
             AND NOT EXISTS (SELECT 1 FROM refunds e WHERE e.payment_id = r.payment_id \
                             AND e.id < r.id AND e.state IN {ACTIVE_STATES}) \
             ORDER BY r.next_action_ms, r.id LIMIT ?2"
        );
        collect(&self.conn, &sql, params![now_ms, limit as i64])
    }

    /// When the next refund falls due, if any is waiting.
    pub fn next_due_ms(&self) -> Result<Option<i64>, LedgerError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT MIN(next_action_ms) FROM refunds WHERE state IN {ACTIVE_STATES}"
            ))?
            .query_row([], |r| r.get(0))?)
    }

    /// A terminal's refunds whose final state it has not acknowledged, oldest first.
    pub fn undelivered_finals(
        &self,
        terminal_id: &str,
        limit: usize,
    ) -> Result<Vec<RefundRecord>, LedgerError> {
        let sql = format!(
            "{SELECT_REFUND} WHERE r.terminal_id = ?1 \
             AND r.state IN ('PROVIDER_PENDING', 'SUCCEEDED', 'FAILED', 'NEEDS_ATTENTION') \
             AND (r.delivered_state IS NULL OR r.delivered_state != r.state) \
             ORDER BY r.id LIMIT ?2"
        );
        collect(&self.conn, &sql, params![terminal_id, limit as i64])
    }

    /// Every refund not yet settled (NEEDS_ATTENTION included), oldest first.
    pub fn unfinished(&self) -> Result<Vec<RefundRecord>, LedgerError> {
        collect(
            &self.conn,
            &format!("{SELECT_REFUND} WHERE r.state IN {UNSETTLED_STATES} ORDER BY r.id"),
            [],
        )
    }

    /// Refunds whose current attempt may have been sent with no outcome recorded.
    pub fn in_doubt(&self) -> Result<Vec<RefundRecord>, LedgerError> {
        collect(
            &self.conn,
            &format!(
                "{SELECT_REFUND} WHERE a.status = 'SENDING' \
                 AND r.state IN ('ACCEPTED', 'QUEUED') ORDER BY r.id"
            ),
            [],
        )
    }

    /// How many refunds stand where.
    pub fn counts(&self) -> Result<Counts, LedgerError> {
        // Kept by triggers (schema version 5): no refund row is read.
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, n FROM state_counts")?;
        let rows: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let by_state: Vec<(String, u64)> = RefundState::ALL
            .iter()
            .map(|s| {
                let n = rows
                    .iter()
                    .find(|(name, _)| name == s.as_str())
                    .map(|(_, n)| *n)
                    .unwrap_or(0);
                (s.as_str().to_owned(), n.max(0) as u64)
            })
            .collect();
        let (unfinished, oldest): (i64, Option<i64>) = self
            .conn
            .prepare_cached(&format!(
                "SELECT COUNT(*), MIN(created_ms) FROM refunds WHERE state IN {ACTIVE_STATES}"
            ))?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(Counts {
            by_state,
            unfinished: unfinished.max(0) as u64,
            oldest_unfinished_ms: oldest,
        })
    }

    /// A refund's whole story.
    pub fn history(&self, id: i64) -> Result<History, LedgerError> {
        let refund = get(&self.conn, id)?;
        let mut stmt = self.conn.prepare(
            "SELECT id, refund_request_id, status, sends, created_ms, last_sent_ms, last_outcome \
             FROM attempts WHERE refund_id = ?1 ORDER BY id",
        )?;
        let attempts = stmt
            .query_map(params![id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|(aid, rrid, status, sends, created, last_sent, outcome)| {
                Ok(AttemptRecord {
                    id: aid,
                    refund_request_id: rrid,
                    status: AttemptStatus::parse(&status)
                        .ok_or_else(|| corrupt(id, format!("attempt status {status:?}")))?,
                    sends: sends.clamp(0, i64::from(u32::MAX)) as u32,
                    created_ms: created,
                    last_sent_ms: last_sent,
                    last_outcome: outcome,
                })
            })
            .collect::<Result<Vec<_>, LedgerError>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT at_ms, from_state, to_state, cause, result_code, attempt_id \
             FROM transitions WHERE refund_id = ?1 ORDER BY id",
        )?;
        let transitions = stmt
            .query_map(params![id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|(at, from, to, cause, code, attempt)| {
                Ok(TransitionRecord {
                    at_ms: at,
                    from_state: match from {
                        None => None,
                        Some(s) => Some(
                            parse_state(&s).ok_or_else(|| corrupt(id, format!("state {s:?}")))?,
                        ),
                    },
                    to_state: parse_state(&to)
                        .ok_or_else(|| corrupt(id, format!("state {to:?}")))?,
                    cause,
                    result_code: code,
                    attempt_id: attempt,
                })
            })
            .collect::<Result<Vec<_>, LedgerError>>()?;
        Ok(History {
            refund,
            attempts,
            transitions,
        })
    }

    /// Visits every refund accepted at or after `since_ms` (and before `until_ms`),
    /// oldest first, one row in memory at a time.
    pub fn export(
        &self,
        since_ms: i64,
        until_ms: Option<i64>,
        mut visit: impl FnMut(&RefundRecord),
    ) -> Result<u64, LedgerError> {
        let sql =
            // In the time index's order, so rows stream without a sort of the range first.
            format!("{SELECT_REFUND} WHERE r.created_ms >= ?1 AND r.created_ms < ?2 ORDER BY r.created_ms, r.id");
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(params![since_ms, until_ms.unwrap_or(i64::MAX)])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            visit(&refund_from_row(row)?);
            n += 1;
        }
        Ok(n)
    }
}

/// Folds the write-ahead log into the database file without blocking writers.
pub(super) struct Checkpointer {
    conn: Connection,
}

impl Checkpointer {
    /// A passive checkpoint: copies what no reader still needs, never waits.
    pub(super) fn checkpoint(&mut self) -> Result<(), LedgerError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }
}

fn corrupt(id: i64, what: String) -> LedgerError {
    LedgerError::Corrupt { id, what }
}

fn insert_attempt(
    conn: &Connection,
    refund_id: i64,
    refund_request_id: &str,
    now_ms: i64,
) -> Result<i64, LedgerError> {
    conn.prepare_cached(
        "INSERT INTO attempts (refund_id, refund_request_id, status, created_ms) \
         VALUES (?1, ?2, 'NEW', ?3)",
    )?
    .execute(params![refund_id, refund_request_id, now_ms])?;
    Ok(conn.last_insert_rowid())
}

#[allow(clippy::too_many_arguments)]
fn insert_transition(
    conn: &Connection,
    refund_id: i64,
    at_ms: i64,
    from: Option<RefundState>,
    to: RefundState,
    cause: &str,
    result_code: Option<&str>,
    attempt_id: Option<i64>,
) -> Result<(), LedgerError> {
    conn.prepare_cached("INSERT INTO transitions (refund_id, at_ms, from_state, to_state, cause, result_code, attempt_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(params![
            refund_id,
            at_ms,
            from.map(RefundState::as_str),
            to.as_str(),
            cause,
            result_code,
            attempt_id
        ])?;
    Ok(())
}

fn get(conn: &Connection, id: i64) -> Result<RefundRecord, LedgerError> {
    let sql = format!("{SELECT_REFUND} WHERE r.id = ?1");
    collect(conn, &sql, params![id])?
        .pop()
        .ok_or_else(|| LedgerError::NotFound(format!("#{id}")))
}

fn find_terminal_refund(
    conn: &Connection,
    terminal_id: &str,
    original_merchant_refund_id: &str,
) -> Result<Option<RefundRecord>, LedgerError> {
    let sql =
        format!("{SELECT_REFUND} WHERE r.terminal_id = ?1 AND r.original_merchant_refund_id = ?2");
    Ok(collect(
        conn,
        &sql,
        params![terminal_id, original_merchant_refund_id],
    )?
    .pop())
}

fn collect(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RefundRecord>, LedgerError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(refund_from_row(row)?);
    }
    Ok(out)
}

fn amount(
    id: i64,
    value: Option<i64>,
    currency: Option<String>,
) -> Result<Option<Amount>, LedgerError> {
    match (value, currency) {
        (Some(value), Some(code)) => Currency::parse(&code)
            .map_err(|e| corrupt(id, e.to_string()))
            .and_then(|c| Amount::new(value, c).map_err(|e| corrupt(id, e.to_string())))
            .map(Some),
        (None, None) => Ok(None),
        _ => Err(corrupt(id, "amount without currency".into())),
    }
}

fn refund_from_row(row: &Row) -> Result<RefundRecord, LedgerError> {
    let id: i64 = row.get(0)?;
    let state: String = row.get(8)?;
    let attempt_status: String = row.get(11)?;
    let delivered: Option<String> = row.get(22)?;
    let tries: i64 = row.get(21)?;
    let revision: Option<i64> = row.get(23)?;
    Ok(RefundRecord {
        id,
        terminal_id: row.get(1)?,
        original_merchant_refund_id: row.get(2)?,
        payment_id: row.get(3)?,
        amount: amount(id, row.get(4)?, row.get(5)?)?,
        memo: row.get(6)?,
        provider: row.get(7)?,
        state: parse_state(&state).ok_or_else(|| corrupt(id, format!("state {state:?}")))?,
        attempt_id: row.get(9)?,
        refund_request_id: row.get(10)?,
        attempt_status: AttemptStatus::parse(&attempt_status)
            .ok_or_else(|| corrupt(id, format!("attempt status {attempt_status:?}")))?,
        provider_refund_id: row.get(12)?,
        refund_time: row.get(13)?,
        refunded: amount(id, row.get(14)?, row.get(15)?)?,
        result_code: row.get(16)?,
        result_message: row.get(17)?,
        created_ms: row.get(18)?,
        updated_ms: row.get(19)?,
        next_action_ms: row.get(20)?,
        tries: tries.clamp(0, i64::from(u32::MAX)) as u32,
        delivered_state: match delivered {
            None => None,
            Some(s) => {
                Some(parse_state(&s).ok_or_else(|| corrupt(id, format!("delivered state {s:?}")))?)
            }
        },
        revision: revision.ok_or_else(|| corrupt(id, "no transition recorded".into()))?,
    })
}
