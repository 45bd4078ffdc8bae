//! Why the ledger could not do something. Each error keeps the error it came from as
//! its source, so nothing SQLite or the system said is lost; the message says it too,
//! in the same words as it always did.
//!
//! The errors are cheap to clone (the ledger thread answers every caller of a batch
//! whose commit failed with the same error), so the sources that cannot be cloned are
//! shared: such a source is an `Arc` of the error (`downcast_ref::<Arc<rusqlite::Error>>`),
//! which says what the error says and leads on to that error's own source.

use std::sync::Arc;

use nix::errno::Errno;
use rusqlite::ErrorCode;

use crate::money::{AmountError, CurrencyError};
use crate::state::RefundState;

/// Why the ledger could not do something.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LedgerError {
    /// The file could not be created, opened or given its permissions.
    #[error("ledger {path}: {reason}")]
    File {
        /// The ledger's path.
        path: String,
        /// What went wrong, with the system's words for why.
        reason: String,
        /// The system's error, when one said why.
        #[source]
        cause: Option<FileCause>,
    },
    /// SQLite could not open the file or set it up (its pragmas, its schema).
    #[error("ledger {path}: {source}")]
    Open {
        /// The ledger's path.
        path: String,
        /// SQLite's error.
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// SQLite refused an operation.
    #[error("ledger: {0}")]
    Sqlite(#[source] Arc<rusqlite::Error>),
    /// The file was written by a newer posbridge.
    #[error(
        "ledger schema version {found} is newer than this posbridge knows ({known}); \
         install the newer posbridge again or restore the ledger from before the upgrade"
    )]
    NewerSchema {
        /// The file's version.
        found: i64,
        /// This build's version.
        known: i64,
    },
    /// A stored value cannot be read back.
    #[error("ledger record {id}: {what}")]
    Corrupt {
        /// The refund's number.
        id: i64,
        /// What is wrong.
        what: String,
    },
    /// A stored amount cannot be read back.
    #[error("ledger record {id}: {source}")]
    CorruptAmount {
        /// The refund's number.
        id: i64,
        /// What is wrong with it.
        #[source]
        source: StoredAmountError,
    },
    /// A row the same transaction wrote is not there: the ledger contradicts itself.
    #[error("ledger: {0}")]
    Inconsistent(&'static str),
    /// No such refund.
    #[error("no refund matches {0:?}")]
    NotFound(String),
    /// Several refunds match an id given by a person.
    #[error("{0:?} matches several refunds ({1}); use the ledger number")]
    Ambiguous(String, String),
    /// The change is not allowed from the refund's current state.
    #[error("refund {id} is {state}: {what}")]
    NotAllowed {
        /// The refund's number.
        id: i64,
        /// Its state.
        state: RefundState,
        /// What was refused.
        what: String,
    },
    /// The fleet's sink says it holds more of this box than the ledger ever wrote.
    #[error(
        "the fleet sink says it holds box {box_id:?} up to sequence {seq}, beyond this \
         ledger's last ({last}): another box uses the same box_id, or this ledger was \
         restored from an older copy"
    )]
    FleetAhead {
        /// The box id.
        box_id: String,
        /// The sequence the sink says it holds.
        seq: i64,
        /// The ledger's last sequence.
        last: i64,
    },
    /// The fleet's sink confirmed a box the outbox is not on for.
    #[error("the fleet outbox is not on for box {box_id:?}")]
    FleetOff {
        /// The box id confirmed.
        box_id: String,
    },
    /// The ledger thread has stopped.
    #[error("the ledger is closed")]
    Closed,
}

/// The system's error behind a [`LedgerError::File`].
#[derive(Clone, Debug, thiserror::Error)]
pub enum FileCause {
    /// A file or directory operation failed, or a thread could not start.
    #[error(transparent)]
    Io(Arc<std::io::Error>),
    /// The system says this user may not use the file or its directory as SQLite needs.
    #[error(transparent)]
    Access(Errno),
}

/// Why a stored amount cannot be read back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoredAmountError {
    /// Its currency is no currency code.
    #[error(transparent)]
    Currency(#[from] CurrencyError),
    /// Its value is out of range.
    #[error(transparent)]
    Value(#[from] AmountError),
    /// A value without a currency, or a currency without a value.
    #[error("amount without currency")]
    Half,
}

impl LedgerError {
    /// Whether the system refused this user the ledger's file or its directory (the
    /// service user's commands must be run as that user).
    pub fn permission_denied(&self) -> bool {
        match self {
            LedgerError::File {
                cause: Some(cause), ..
            } => match cause {
                FileCause::Io(e) => e.raw_os_error() == Some(Errno::EACCES as i32),
                FileCause::Access(errno) => *errno == Errno::EACCES,
            },
            _ => false,
        }
    }

    /// Whether SQLite gave up waiting for another connection's lock (another
    /// process writing the ledger for longer than the busy timeout).
    pub fn busy(&self) -> bool {
        matches!(
            self,
            LedgerError::Sqlite(e) if matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            )
        )
    }
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn sqlite_errors_keep_their_source_and_their_words() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = crate::ledger::Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let e: LedgerError = ledger
            .conn_for_tests()
            .execute("INSERT INTO nowhere VALUES (1)", [])
            .unwrap_err()
            .into();
        assert_eq!(e.to_string(), "ledger: no such table: nowhere");
        // The source is shared (see the module's notes), so it is found as one.
        let source = e
            .source()
            .and_then(|s| s.downcast_ref::<Arc<rusqlite::Error>>())
            .map(|s| &**s);
        assert!(
            matches!(source, Some(rusqlite::Error::SqliteFailure(..))),
            "{source:?}"
        );
        assert!(!e.busy());
    }

    #[test]
    fn a_refused_directory_is_told_by_the_system_error_not_its_words() {
        let denied = LedgerError::File {
            path: "/x".into(),
            reason: "its directory / is not writable by uid 1 (Permission denied)".into(),
            cause: Some(FileCause::Access(Errno::EACCES)),
        };
        assert!(denied.permission_denied());
        assert!(denied.source().is_some());
        let read_only = LedgerError::File {
            path: "/x".into(),
            reason: "cannot create: Read-only file system (os error 30)".into(),
            cause: Some(FileCause::Io(Arc::new(std::io::Error::from_raw_os_error(
                Errno::EROFS as i32,
            )))),
        };
        assert!(!read_only.permission_denied());
    }
}
