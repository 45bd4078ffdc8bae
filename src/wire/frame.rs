//! One frame: its kind, sequence number and payload, and how its body is laid out.

use std::fmt;

use bytes::{BufMut, Bytes};
use crc::{Crc, Table};

use super::{HEADER_LEN, MAX_PAYLOAD, VERSION};

/// CRC-32C (Castagnoli; reflected, init and xor-out `0xFFFFFFFF`), the `crc` crate's
/// `CRC_32_ISCSI`. The 16-table variant keeps 4 KiB frames well above line rate.
static CRC32C: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&crc::CRC_32_ISCSI);

/// A frame kind: the body's second byte.
///
/// Kinds below `0x10` are link frames (ACK, NAK, PING, PONG, RESET); `0x10` and above
/// are data frames, acknowledged by ACK. Unknown values are representable so that the
/// link can acknowledge them and the message layer can refuse them by name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(pub u8);

impl Kind {
    /// Acknowledges the data frame whose `seq` it carries.
    pub const ACK: Kind = Kind(0x01);
    /// Sent when a damaged frame arrives; the sender retransmits at once.
    pub const NAK: Kind = Kind(0x02);
    /// Liveness probe, answered by PONG with the same `seq`.
    pub const PING: Kind = Kind(0x03);
    /// Answer to PING.
    pub const PONG: Kind = Kind(0x04);
    /// Sent by a bridge that has no session: the terminal must send HELLO.
    pub const RESET: Kind = Kind(0x05);
    /// Terminal introduces itself; opens a session.
    pub const HELLO: Kind = Kind(0x10);
    /// Bridge's answer to HELLO.
    pub const WELCOME: Kind = Kind(0x11);
    /// Terminal asks for a refund.
    pub const REFUND: Kind = Kind(0x20);
    /// Bridge reports a refund's state.
    pub const REFUND_UPDATE: Kind = Kind(0x21);
    /// Terminal asks for a refund's current state.
    pub const INQUIRY: Kind = Kind(0x22);
    /// Bridge draws lines on the terminal's display.
    pub const DISPLAY: Kind = Kind(0x30);
    /// Terminal asks for the bridge's status.
    pub const STATUS: Kind = Kind(0x40);
    /// Bridge's answer to STATUS.
    pub const STATUS_REPORT: Kind = Kind(0x41);
    /// Bridge refuses a data frame, naming why.
    pub const ERROR: Kind = Kind(0x7F);

    /// Every kind this version defines, link kinds first.
    pub const ALL: [Kind; 14] = [
        Kind::ACK,
        Kind::NAK,
        Kind::PING,
        Kind::PONG,
        Kind::RESET,
        Kind::HELLO,
        Kind::WELCOME,
        Kind::REFUND,
        Kind::REFUND_UPDATE,
        Kind::INQUIRY,
        Kind::DISPLAY,
        Kind::STATUS,
        Kind::STATUS_REPORT,
        Kind::ERROR,
    ];

    /// Whether frames of this kind carry a message and are acknowledged by ACK.
    pub fn is_data(self) -> bool {
        self.0 >= 0x10
    }

    /// The kind's name as the specification spells it, if it has one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Kind::ACK => "ACK",
            Kind::NAK => "NAK",
            Kind::PING => "PING",
            Kind::PONG => "PONG",
            Kind::RESET => "RESET",
            Kind::HELLO => "HELLO",
            Kind::WELCOME => "WELCOME",
            Kind::REFUND => "REFUND",
            Kind::REFUND_UPDATE => "REFUND_UPDATE",
            Kind::INQUIRY => "INQUIRY",
            Kind::DISPLAY => "DISPLAY",
            Kind::STATUS => "STATUS",
            Kind::STATUS_REPORT => "STATUS_REPORT",
            Kind::ERROR => "ERROR",
            _ => return None,
        })
    }

    /// Looks a kind up by its specification name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == Some(name))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "KIND_0x{:02X}", self.0),
        }
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A frame as the link layer sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame is.
    pub kind: Kind,
    /// The sequence number (data frames), the acknowledged number (ACK) or the PING's
    /// number (PING/PONG).
    pub seq: u8,
    /// The payload: UTF-8 JSON for data frames, empty for link frames.
    pub payload: Bytes,
}

impl Frame {
    /// A frame with no payload (ACK, NAK, PING, PONG, RESET).
    pub fn control(kind: Kind, seq: u8) -> Frame {
        Frame {
            kind,
            seq,
            payload: Bytes::new(),
        }
    }

    /// A frame carrying `payload`.
    pub fn data(kind: Kind, seq: u8, payload: impl Into<Bytes>) -> Frame {
        Frame {
            kind,
            seq,
            payload: payload.into(),
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} seq={}", self.kind, self.seq)?;
        if !self.payload.is_empty() {
            write!(f, " {}", String::from_utf8_lossy(&self.payload))?;
        }
        Ok(())
    }
}

/// Why bytes between two delimiters were not a frame. Each is counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Damage {
    /// The bytes are not a valid COBS encoding.
    Cobs,
    /// The decoded body is shorter than a header and a CRC.
    TooShort,
    /// The CRC-32C does not match.
    Crc,
    /// The CRC matches but the version byte is not 1.
    Version,
    /// More bytes than the largest frame, or a payload over 4096 bytes.
    Oversize,
    /// The stream ended in the middle of a frame.
    Truncated,
}

impl Damage {
    /// Every cause, in the order statistics list them.
    pub const ALL: [Damage; 6] = [
        Damage::Cobs,
        Damage::TooShort,
        Damage::Crc,
        Damage::Version,
        Damage::Oversize,
        Damage::Truncated,
    ];

    /// A stable lower-case name for logs, metrics and vectors.
    pub fn name(self) -> &'static str {
        match self {
            Damage::Cobs => "cobs",
            Damage::TooShort => "too_short",
            Damage::Crc => "crc",
            Damage::Version => "version",
            Damage::Oversize => "oversize",
            Damage::Truncated => "truncated",
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A frame that cannot be put on the wire.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The payload is longer than [`MAX_PAYLOAD`].
    #[error("payload of {len} bytes exceeds the {MAX_PAYLOAD}-byte maximum")]
    PayloadTooLong {
        /// The offending length.
        len: usize,
    },
}

/// The CRC-32C of `header` followed by `payload`.
pub fn checksum(header: &[u8; HEADER_LEN], payload: &[u8]) -> u32 {
    let mut digest = CRC32C.digest();
    digest.update(header);
    digest.update(payload);
    digest.finalize()
}

/// Appends the frame's body (before COBS) to `out`.
pub fn encode_body(frame: &Frame, out: &mut impl BufMut) -> Result<(), WireError> {
    if frame.payload.len() > MAX_PAYLOAD {
        return Err(WireError::PayloadTooLong {
            len: frame.payload.len(),
        });
    }
    let header = [VERSION, frame.kind.0, frame.seq];
    out.put_slice(&header);
    out.put_slice(&frame.payload);
    out.put_u32_le(checksum(&header, &frame.payload));
    Ok(())
}

/// The most bytes a frame with `payload_len` bytes of payload occupies on the wire,
/// both delimiters included. The link sizes its ACK timeout to the line's speed by it.
pub fn max_wire_len(payload_len: usize) -> usize {
    cobs::max_encoding_length(HEADER_LEN + payload_len + super::CRC_LEN) + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The catalogue check value of CRC-32C over "123456789".
        assert_eq!(CRC32C.checksum(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in Kind::ALL {
            let name = kind.name().expect("every listed kind is named");
            assert_eq!(Kind::from_name(name), Some(kind));
        }
        assert_eq!(Kind(0x55).to_string(), "KIND_0x55");
        assert!(!Kind::RESET.is_data());
        assert!(Kind::HELLO.is_data());
    }

    #[test]
    fn body_refuses_long_payload() {
        let frame = Frame::data(Kind::REFUND, 0, vec![b'x'; MAX_PAYLOAD + 1]);
        let mut out = Vec::new();
        assert_eq!(
            encode_body(&frame, &mut out),
            Err(WireError::PayloadTooLong {
                len: MAX_PAYLOAD + 1
            })
        );
        assert!(out.is_empty());
    }
}
