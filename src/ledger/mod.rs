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

mod error;
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

pub use error::{FileCause, LedgerError, StoredAmountError};
pub use handle::LedgerHandle;
pub use model::{
    AcceptPolicy, Acceptance, AttemptRecord, AttemptStatus, Change, Counts, DailyLimit, History,
    NewRefund, RefundRecord, Settlement, TransitionRecord,
};
pub use open::{Ledger, ensure_directory};
pub use outbox::{FleetPosition, OutboxEntry, OutboxRefund};
pub use presence::{Presence, denied_text, presence};
pub use schema::VERSION as SCHEMA_VERSION;

#[cfg(test)]
mod tests;
