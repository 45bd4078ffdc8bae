//! The message of every data frame kind, as typed structs.
//!
//! Each struct serializes to the camelCase JSON of the specification and has a
//! `read` function that validates an incoming object field by field.

use serde::{Deserialize, Serialize};

use super::display::Screen;
use super::validate::{Charset, ErrorCode, Fields, Invalid};
use crate::money::Amount;
pub use crate::state::RefundState;

/// Limits of the specification (SPEC §6), in characters unless said otherwise.
pub mod limits {
    /// `terminalId`.
    pub const TERMINAL_ID: usize = 32;
    /// `originalMerchantRefundId`, `paymentId`, `refundRequestId`, `refundId`.
    pub const REFUND_ID: usize = 64;
    /// `memo`.
    pub const MEMO: usize = 256;
    /// `model`, `firmware`, `bridgeVersion`, `provider`.
    pub const LABEL: usize = 64;
    /// `resultCode`.
    pub const RESULT_CODE: usize = 64;
    /// `resultMessage` and ERROR `message`.
    pub const MESSAGE: usize = 256;
    /// Times (`time`, `refundTime`, `lastCloudContact`).
    pub const TIME: usize = 40;
    /// Widest display a terminal may declare.
    pub const MAX_COLS: i64 = 80;
    /// Tallest display a terminal may declare.
    pub const MAX_ROWS: i64 = 16;
    /// Entries of `display.languages`.
    pub const LANGUAGES: usize = 8;
    /// One language tag of `display.languages`.
    pub const LANGUAGE_TAG: usize = 35;
}

/// The characters a terminal's display can draw (HELLO `display.charset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DisplayCharset {
    /// Any Unicode text, laid out by display columns.
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// Printable ASCII only (`0x20`–`0x7E`).
    #[serde(rename = "ascii")]
    Ascii,
}

/// A terminal's display as HELLO declares it: its size, and optionally what it can
/// draw. Terminals that declare only the size are shown UTF-8 text in English.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisplayInfo {
    /// Display columns per line, 1..=80.
    pub cols: u16,
    /// Lines, 1..=16.
    pub rows: u16,
    /// What it can draw; absent means UTF-8.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub charset: Option<DisplayCharset>,
    /// Languages it has fonts for, as BCP 47 tags, the preferred first.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub languages: Vec<String>,
    /// Columns an East Asian ambiguous-width character takes, 1 or 2; absent lets
    /// the bridge assume 2 for Chinese, Japanese and Korean text and 1 otherwise.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ambiguous_width: Option<u8>,
}

impl Default for DisplayInfo {
    /// A 4-line, 20-column display, assumed when HELLO declares none.
    fn default() -> DisplayInfo {
        DisplayInfo::size(20, 4)
    }
}

impl DisplayInfo {
    /// A display that declares only its size.
    pub fn size(cols: u16, rows: u16) -> DisplayInfo {
        DisplayInfo {
            cols,
            rows,
            charset: None,
            languages: Vec::new(),
            ambiguous_width: None,
        }
    }

    /// The screen text is fitted to; ambiguous characters are narrow unless the
    /// terminal said they are wide.
    pub fn screen(&self) -> Screen {
        Screen {
            cols: self.cols,
            rows: self.rows,
            charset: self.charset.unwrap_or_default(),
            wide_ambiguous: self.ambiguous_width == Some(2),
        }
    }

    fn read(d: &Fields) -> Result<DisplayInfo, Invalid> {
        let cols = d.int("cols", 1..=limits::MAX_COLS)? as u16;
        let rows = d.int("rows", 1..=limits::MAX_ROWS)? as u16;
        let charset = match d.opt_text("charset", 16, Charset::Id)? {
            None => None,
            Some(name) if name.eq_ignore_ascii_case("utf-8") => Some(DisplayCharset::Utf8),
            Some(name) if name.eq_ignore_ascii_case("ascii") => Some(DisplayCharset::Ascii),
            Some(_) => return Err(d.invalid("charset", "must be utf-8 or ascii")),
        };
        let languages = d
            .opt_strings(
                "languages",
                limits::LANGUAGES,
                limits::LANGUAGE_TAG,
                Charset::Id,
            )?
            .unwrap_or_default();
        for (i, tag) in languages.iter().enumerate() {
            if !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(d.invalid(
                    &format!("languages[{i}]"),
                    "must be a BCP 47 language tag (letters, digits and hyphens), such as ja or zh-Hant",
                ));
            }
        }
        Ok(DisplayInfo {
            cols,
            rows,
            charset,
            languages,
            ambiguous_width: d.opt_int("ambiguousWidth", 1..=2)?.map(|w| w as u8),
        })
    }
}

/// HELLO (0x10, terminal → bridge): opens a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// Identifies the terminal; refunds are keyed by it.
    pub terminal_id: String,
    /// The terminal's model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The terminal's firmware version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// The link protocol version the terminal speaks; 1.
    pub protocol_version: u8,
    /// The terminal's display.
    pub display: DisplayInfo,
}

impl Hello {
    pub(crate) fn read(f: &Fields) -> Result<Hello, Invalid> {
        let terminal_id = f.text("terminalId", limits::TERMINAL_ID, Charset::Id)?;
        let model = f.opt_text("model", limits::LABEL, Charset::Text)?;
        let firmware = f.opt_text("firmware", limits::LABEL, Charset::Text)?;
        let protocol_version = f.opt_int("protocolVersion", 0..=255)?.unwrap_or(1);
        if protocol_version != 1 {
            return Err(Invalid {
                code: ErrorCode::UnsupportedVersion,
                field: Some("protocolVersion".into()),
                detail: format!("this bridge speaks protocol version 1, not {protocol_version}"),
            });
        }
        let display = match f.opt_object("display")? {
            None => DisplayInfo::default(),
            Some(d) => DisplayInfo::read(&d)?,
        };
        Ok(Hello {
            terminal_id,
            model,
            firmware,
            protocol_version: 1,
            display,
        })
    }
}

/// WELCOME (0x11, bridge → terminal): the answer to HELLO.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    /// The bridge's version.
    pub bridge_version: String,
    /// Whether the provider's cloud is reachable right now.
    pub online: bool,
    /// Refunds waiting to be sent.
    pub queued: u32,
    /// The bridge's clock, RFC 3339.
    pub time: String,
}

impl Welcome {
    pub(crate) fn read(f: &Fields) -> Result<Welcome, Invalid> {
        Ok(Welcome {
            bridge_version: f.text("bridgeVersion", limits::LABEL, Charset::Text)?,
            online: f.boolean("online")?,
            queued: f.int("queued", 0..=i64::from(u32::MAX))? as u32,
            time: f.text("time", limits::TIME, Charset::Id)?,
        })
    }
}

/// REFUND (0x20, terminal → bridge): asks for a refund of a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    /// The terminal's own id for this refund; with `terminalId` it identifies it.
    pub original_merchant_refund_id: String,
    /// The provider's id of the payment to refund.
    pub payment_id: String,
    /// How much; absent means the full payment where the provider allows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_amount: Option<Amount>,
    /// A note passed to the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

impl Refund {
    pub(crate) fn read(f: &Fields) -> Result<Refund, Invalid> {
        Ok(Refund {
            original_merchant_refund_id: f.text(
                "originalMerchantRefundId",
                limits::REFUND_ID,
                Charset::Id,
            )?,
            payment_id: f.text("paymentId", limits::REFUND_ID, Charset::Id)?,
            refund_amount: f.opt_amount("refundAmount")?,
            memo: f.opt_text("memo", limits::MEMO, Charset::Text)?,
        })
    }
}

/// REFUND_UPDATE (0x21, bridge → terminal): a refund's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundUpdate {
    /// Which refund.
    pub original_merchant_refund_id: String,
    /// Its state.
    pub state: RefundState,
    /// The bridge's id for the request sent to the provider.
    pub refund_request_id: String,
    /// The provider's refund id, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// When the provider completed the refund.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_time: Option<String>,
    /// The amount refunded (or requested).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_amount: Option<Amount>,
    /// The provider's result code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_code: Option<String>,
    /// The provider's result message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_message: Option<String>,
}

const STATES: [(&str, RefundState); 6] = [
    ("ACCEPTED", RefundState::Accepted),
    ("QUEUED", RefundState::Queued),
    ("PROCESSING", RefundState::Processing),
    ("SUCCEEDED", RefundState::Succeeded),
    ("FAILED", RefundState::Failed),
    ("NEEDS_ATTENTION", RefundState::NeedsAttention),
];

impl RefundUpdate {
    pub(crate) fn read(f: &Fields) -> Result<RefundUpdate, Invalid> {
        Ok(RefundUpdate {
            original_merchant_refund_id: f.text(
                "originalMerchantRefundId",
                limits::REFUND_ID,
                Charset::Id,
            )?,
            state: f.one_of("state", &STATES)?,
            refund_request_id: f.text("refundRequestId", limits::REFUND_ID, Charset::Id)?,
            refund_id: f.opt_text("refundId", limits::REFUND_ID, Charset::Id)?,
            refund_time: f.opt_text("refundTime", limits::TIME, Charset::Id)?,
            refund_amount: f.opt_amount("refundAmount")?,
            result_code: f.opt_text("resultCode", limits::RESULT_CODE, Charset::Id)?,
            result_message: f.opt_text("resultMessage", limits::MESSAGE, Charset::Text)?,
        })
    }
}

/// INQUIRY (0x22, terminal → bridge): asks for a refund's current state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inquiry {
    /// Which refund.
    pub original_merchant_refund_id: String,
}

impl Inquiry {
    pub(crate) fn read(f: &Fields) -> Result<Inquiry, Invalid> {
        Ok(Inquiry {
            original_merchant_refund_id: f.text(
                "originalMerchantRefundId",
                limits::REFUND_ID,
                Charset::Id,
            )?,
        })
    }
}

/// How the terminal should sound or colour a DISPLAY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tone {
    /// Good news.
    Ok,
    /// Bad news.
    Error,
    /// Neither.
    Info,
}

/// DISPLAY (0x30, bridge → terminal): lines for the terminal's screen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplayMessage {
    /// At most the terminal's `rows` lines, each at most its `cols` display columns.
    pub lines: Vec<String>,
    /// The tone.
    pub tone: Tone,
}

impl DisplayMessage {
    pub(crate) fn read(f: &Fields) -> Result<DisplayMessage, Invalid> {
        Ok(DisplayMessage {
            lines: f
                .opt_lines(
                    "lines",
                    limits::MAX_ROWS as usize,
                    limits::MAX_COLS as usize,
                )?
                .unwrap_or_default(),
            tone: f.one_of(
                "tone",
                &[
                    ("ok", Tone::Ok),
                    ("error", Tone::Error),
                    ("info", Tone::Info),
                ],
            )?,
        })
    }
}

/// STATUS (0x40, terminal → bridge): asks for the bridge's status. Its payload is `{}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {}

/// STATUS_REPORT (0x41, bridge → terminal): the answer to STATUS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// Whether the cloud is reachable right now.
    pub online: bool,
    /// Refunds waiting to be sent.
    pub queued: u32,
    /// When the cloud last answered, RFC 3339; absent if never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_cloud_contact: Option<String>,
    /// The provider refunds go to.
    pub provider: String,
}

impl StatusReport {
    pub(crate) fn read(f: &Fields) -> Result<StatusReport, Invalid> {
        Ok(StatusReport {
            online: f.boolean("online")?,
            queued: f.int("queued", 0..=i64::from(u32::MAX))? as u32,
            last_cloud_contact: f.opt_text("lastCloudContact", limits::TIME, Charset::Id)?,
            provider: f.text("provider", limits::LABEL, Charset::Text)?,
        })
    }
}

/// ERROR (0x7F, bridge → terminal): a data frame was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// One of the codes of SPEC §6, such as `MISSING_FIELD`.
    pub code: String,
    /// What was wrong, naming the field.
    pub message: String,
    /// The `originalMerchantRefundId` it concerns, if any.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl ErrorMessage {
    /// An ERROR for a refused payload; the text is cut to the 256-character limit.
    pub fn new(code: ErrorCode, message: &str, reference: Option<String>) -> ErrorMessage {
        ErrorMessage {
            code: code.as_str().to_owned(),
            message: message.chars().take(limits::MESSAGE).collect(),
            reference,
        }
    }

    pub(crate) fn read(f: &Fields) -> Result<ErrorMessage, Invalid> {
        Ok(ErrorMessage {
            code: f.text("code", 32, Charset::Id)?,
            message: f.text("message", limits::MESSAGE, Charset::Text)?,
            reference: f.opt_text("ref", limits::REFUND_ID, Charset::Id)?,
        })
    }
}

/// The current time as RFC 3339 in UTC, to the second: a WELCOME's `time`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| jiff::Timestamp::now().to_string())
}
