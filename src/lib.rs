//! posbridge: the bridge between a countertop payment terminal on a USB cable and the
//! payment provider's cloud.
//!
//! The layers, each a module that owns one concern, in the order bytes flow through
//! them:
//!
//! - [`wire`]: frames as bytes (COBS, CRC-32C), pure and panic-free.
//! - [`link`]: a session over any byte stream: ACK/NAK, sequence numbers,
//!   retransmission, HELLO and PING/PONG liveness.
//! - [`money`]: integer amounts and currency codes, shared by every layer.
//! - [`bounds`]: the ranges numeric settings must fall in, shared likewise.
//! - [`state`]: where a refund stands, shared by the ledger and the messages.
//! - [`throttle`]: warnings outsiders can provoke, logged a few per interval.
//! - [`locks`]: a poisoned lock stops the process instead of being skipped.
//! - [`text`]: text from outside made safe to keep, show and print, shared likewise.
//! - [`message`]: the typed JSON messages carried by data frames, and their validation.
//! - [`transport`]: serial devices, USB bulk endpoints and pseudo-terminals, reopened
//!   when they come back after an unplug.
//! - [`provider`]: the payment providers' cloud refund APIs (Antom, OTT Pay,
//!   PaymentOptions) behind one trait, and how each outcome is classified.
//! - [`ledger`]: the SQLite ledger, the single source of truth for refunds.
//! - [`reconcile`]: the ledger against the provider's report of the refunds it made.
//! - [`fleet`]: every box's ledger shipped to a central PostgreSQL: the outbox's
//!   shipper and the receiver.
//! - [`bridge`]: the refund life cycle: sessions, the scheduler, store-and-forward,
//!   display texts and limits.
//! - [`config`]: the daemon's TOML configuration; [`credentials`]: where the key
//!   files it names as systemd credentials are.
//! - [`sim`]: the terminal emulator and the virtual-serial loopback field techs use.
//! - [`daemon`]: `posbridge run`: the service's main loop.
//! - [`cli`]: the `posbridge` command line.

pub mod bounds;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod fleet;
pub mod ledger;
pub mod link;
pub mod locks;
pub mod message;
pub mod money;
pub mod provider;
pub mod reconcile;
pub mod sim;
pub mod state;
pub mod text;
pub mod throttle;
pub mod transport;
pub mod wire;
