//! The messages data frames carry: typed, validated JSON.
//!
//! [`Message::parse`] turns a data frame's kind and payload into a [`Message`] or an
//! [`Invalid`] that names the offending field and the ERROR code to answer with;
//! [`Message::to_frame_payload`] goes the other way. Unknown JSON fields are ignored
//! so that newer terminals can add fields without breaking older bridges. The
//! [`fit_lines`] fits text to a terminal's screen by display columns.

mod display;
mod types;
mod validate;

use bytes::Bytes;

pub use display::{Fitted, Screen, cluster_width, fit, fit_lines, is_hidden, text_width};
pub use types::{
    DisplayCharset, DisplayInfo, DisplayMessage, ErrorMessage, Hello, Inquiry, Refund, RefundState,
    RefundUpdate, Status, StatusReport, Tone, Welcome, limits, now_rfc3339,
};
pub use validate::{ErrorCode, Invalid};

use crate::wire::Kind;
use validate::{Charset, Fields, object};

/// Which way a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Sent by the terminal, read by the bridge.
    ToBridge,
    /// Sent by the bridge, read by the terminal.
    ToTerminal,
}

/// Any data frame's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// HELLO (0x10).
    Hello(Hello),
    /// WELCOME (0x11).
    Welcome(Welcome),
    /// REFUND (0x20).
    Refund(Refund),
    /// REFUND_UPDATE (0x21).
    RefundUpdate(RefundUpdate),
    /// INQUIRY (0x22).
    Inquiry(Inquiry),
    /// DISPLAY (0x30).
    Display(DisplayMessage),
    /// STATUS (0x40).
    Status(Status),
    /// STATUS_REPORT (0x41).
    StatusReport(StatusReport),
    /// ERROR (0x7F).
    Error(ErrorMessage),
}

impl Message {
    /// The frame kind that carries this message.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Hello(_) => Kind::HELLO,
            Message::Welcome(_) => Kind::WELCOME,
            Message::Refund(_) => Kind::REFUND,
            Message::RefundUpdate(_) => Kind::REFUND_UPDATE,
            Message::Inquiry(_) => Kind::INQUIRY,
            Message::Display(_) => Kind::DISPLAY,
            Message::Status(_) => Kind::STATUS,
            Message::StatusReport(_) => Kind::STATUS_REPORT,
            Message::Error(_) => Kind::ERROR,
        }
    }

    /// Which way a data kind travels; `None` for kinds this version does not define.
    pub fn direction(kind: Kind) -> Option<Direction> {
        match kind {
            Kind::HELLO | Kind::REFUND | Kind::INQUIRY | Kind::STATUS => Some(Direction::ToBridge),
            Kind::WELCOME
            | Kind::REFUND_UPDATE
            | Kind::DISPLAY
            | Kind::STATUS_REPORT
            | Kind::ERROR => Some(Direction::ToTerminal),
            _ => None,
        }
    }

    /// Parses and validates a data frame's payload.
    pub fn parse(kind: Kind, payload: &[u8]) -> Result<Message, Invalid> {
        if Message::direction(kind).is_none() {
            return Err(Invalid::payload(
                ErrorCode::UnknownKind,
                format!("kind 0x{:02X} is not defined by protocol version 1", kind.0),
            ));
        }
        let map = object(payload)?;
        let f = Fields::new(&map);
        Ok(match kind {
            Kind::HELLO => Message::Hello(Hello::read(&f)?),
            Kind::WELCOME => Message::Welcome(Welcome::read(&f)?),
            Kind::REFUND => Message::Refund(Refund::read(&f)?),
            Kind::REFUND_UPDATE => Message::RefundUpdate(RefundUpdate::read(&f)?),
            Kind::INQUIRY => Message::Inquiry(Inquiry::read(&f)?),
            Kind::DISPLAY => Message::Display(DisplayMessage::read(&f)?),
            Kind::STATUS => Message::Status(Status {}),
            Kind::STATUS_REPORT => Message::StatusReport(StatusReport::read(&f)?),
            _ => Message::Error(ErrorMessage::read(&f)?),
        })
    }

    /// Parses a payload that must travel in `direction`: a kind sent the other way is
    /// refused with `UNEXPECTED_KIND`.
    pub fn parse_from(
        direction: Direction,
        kind: Kind,
        payload: &[u8],
    ) -> Result<Message, Invalid> {
        match Message::direction(kind) {
            Some(d) if d != direction => Err(Invalid::payload(
                ErrorCode::UnexpectedKind,
                format!("{kind} is never sent in this direction"),
            )),
            _ => Message::parse(kind, payload),
        }
    }

    /// The JSON payload for the data frame.
    pub fn to_frame_payload(&self) -> Bytes {
        let json = match self {
            Message::Hello(m) => serde_json::to_vec(m),
            Message::Welcome(m) => serde_json::to_vec(m),
            Message::Refund(m) => serde_json::to_vec(m),
            Message::RefundUpdate(m) => serde_json::to_vec(m),
            Message::Inquiry(m) => serde_json::to_vec(m),
            Message::Display(m) => serde_json::to_vec(m),
            Message::Status(m) => serde_json::to_vec(m),
            Message::StatusReport(m) => serde_json::to_vec(m),
            Message::Error(m) => serde_json::to_vec(m),
        };
        // These types hold only strings, integers, booleans and string-keyed maps,
        // which serde_json always serializes.
        Bytes::from(json.unwrap_or_else(|_| b"{}".to_vec()))
    }

    /// The `originalMerchantRefundId` a payload names, if it holds a valid one, so an
    /// ERROR about an otherwise invalid REFUND can still say which refund it concerns.
    pub fn reference_in(payload: &[u8]) -> Option<String> {
        let map = object(payload).ok()?;
        Fields::new(&map)
            .opt_text("originalMerchantRefundId", limits::REFUND_ID, Charset::Id)
            .ok()
            .flatten()
    }
}

impl Invalid {
    /// The ERROR message that answers the refused `payload`, naming the refund it
    /// concerns when the payload holds a usable `originalMerchantRefundId`.
    pub fn to_error_message(&self, payload: &[u8]) -> ErrorMessage {
        ErrorMessage::new(self.code, &self.to_string(), Message::reference_in(payload))
    }
}

#[cfg(test)]
mod tests;
