//! The wire: link protocol v1 frames as bytes, and back.
//!
//! A frame on the line is `0x00 COBS(body) 0x00`, where
//! `body = version | kind | seq | payload | crc32c_le(version..payload)`.
//! This module is pure (no I/O): [`FrameCodec`] is a `tokio_util` codec that turns
//! any byte stream into [`Inbound`] items, resynchronising at the next delimiter after
//! noise and counting every damaged frame by its [`Damage`] cause.
//! See `protocol/SPEC.md` §2 for the normative text.

mod codec;
mod frame;
mod hex;

pub use codec::{FrameCodec, Inbound, WireStats};
pub use frame::{Damage, Frame, Kind, WireError, checksum, encode_body, max_wire_len};
pub use hex::hex;

/// The protocol version carried in every frame's first body byte.
pub const VERSION: u8 = 1;

/// The largest payload a frame may carry, in bytes.
pub const MAX_PAYLOAD: usize = 4096;

/// Bytes of `version`, `kind` and `seq` in front of the payload.
pub const HEADER_LEN: usize = 3;

/// Bytes of the CRC-32C trailer.
pub const CRC_LEN: usize = 4;

/// The smallest valid body: a header and a CRC around an empty payload.
pub const MIN_BODY: usize = HEADER_LEN + CRC_LEN;

/// The largest valid body.
pub const MAX_BODY: usize = HEADER_LEN + MAX_PAYLOAD + CRC_LEN;

/// The longest COBS encoding of a valid body (delimiters not included). Anything
/// longer between two delimiters cannot be a frame and is never buffered whole.
pub const MAX_ENCODED: usize = cobs::max_encoding_length(MAX_BODY);

/// The frame delimiter.
pub const DELIMITER: u8 = 0x00;
