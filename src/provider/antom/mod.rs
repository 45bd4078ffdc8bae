//! Antom: signed refund and inquiryRefund calls, v2 ("omnichannel") paths by default
//! and v1 ("AMS") paths by configuration, plus the notifyRefund receiver.
//!
//! Every request is signed with the merchant's private key (see [`signing`]) and every
//! response's signature is checked with Antom's public key before anything in it is
//! believed. A response with a bad signature proves nothing. An unsigned answer is
//! believed only when its `resultStatus` is `U` (it asks to call again or to wait,
//! which costs nothing to believe); an unsigned `S` or `F` is never trusted.
//!
//! Antom is idempotent by `refundRequestId`, so an answer that proves nothing leads to
//! the same request again, never to a second refund.
//!
//! - [`config`]: the settings; [`keys`] and [`signing`]: RSA keys and signatures;
//! - [`client`]: the calls; [`reply`]: reading their answers; [`wire`]: the JSON;
//! - [`notify`]: the notifyRefund receiver.

pub mod client;
pub mod config;
pub mod keys;
pub mod notify;
pub mod reply;
pub mod signing;
pub mod wire;

pub use client::AntomProvider;
pub use config::{AntomApi, AntomConfig, RequestTimeFormat};
pub use reply::{ReplySignature, classify_inquiry_reply, classify_refund_reply};
pub use wire::{ResultStatus, parse_time};
