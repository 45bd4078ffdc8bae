//! The fleet: every box's ledger streamed to one PostgreSQL database.
//!
//! On a box, the [`shipper`] reads the ledger's outbox (its transitions in
//! sequence, each with the refund as it left it) and posts it in signed [`batch`]es
//! to the receiver named by `[fleet]` ([`config`]), recording in the ledger how far
//! the receiver has confirmed. At the centre, the [`receiver`] (`posbridge fleet
//! serve`) checks each batch and stores it in PostgreSQL in one transaction
//! ([`store`]), exactly once and in order per box, and the team asks the documented
//! views (`posbridge fleet query`). Uses the ledger below it; the daemon starts the
//! shipper and the command line the receiver.

pub mod batch;
pub mod config;
pub mod receiver;
pub mod shipper;
pub mod store;

pub use config::FleetConfig;
pub use receiver::{Receiver, ReceiverSettings};
pub use shipper::{Shipper, ShipperSnapshot, ShipperStatus};
