//! The ledger: the single source of truth for every refund.
//!
//! A SQLite file (bundled SQLite, WAL, `synchronous=FULL`, created 0600) holding
//! refunds keyed by (terminal id, `originalMerchantRefundId`), their attempts
//! (`refundRequestId`s), every state transition with its time and cause, and what the
//! terminal has acknowledged. Every change is one transaction, committed to disk
//! before anyone is told about it. Nothing else writes refund state.
//!
//! [`Ledger`] is the synchronous store; [`LedgerHandle`] runs it on a thread of its
//! own for the async bridge and commits whatever changes are waiting together, so a
//! busy bridge pays for one disk flush per batch rather than per change.

mod handle;
mod model;
mod open;
mod outbox;
mod presence;
mod read;
mod rows;
mod schema;
mod settle;
mod write;

pub use handle::LedgerHandle;
pub use model::{
    AcceptPolicy, Acceptance, AttemptRecord, AttemptStatus, Change, Counts, DailyLimit, History,
    NewRefund, RefundRecord, Settlement, TransitionRecord,
};
pub use open::{Ledger, ensure_directory};
pub use outbox::{FleetPosition, OutboxEntry, OutboxRefund};
pub use presence::{Presence, denied_text, presence};
pub use schema::VERSION as SCHEMA_VERSION;

use crate::state::RefundState;

/// Why the ledger could not do something.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The file could not be created, opened or given its permissions.
    #[error("ledger {path}: {reason}")]
    File {
        /// The ledger's path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// SQLite refused an operation.
    #[error("ledger: {0}")]
    Sqlite(String),
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

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite(e.to_string())
    }
}

#[cfg(test)]
mod tests;
