//! The link-test responder: the bridge's side of the link with no cloud behind it.
//!
//! It checks a cable and a terminal's protocol implementation end to end without
//! touching money: HELLO gets WELCOME, STATUS gets STATUS_REPORT, an invalid frame
//! gets the ERROR the bridge would send, and a REFUND gets a REFUND_UPDATE in state
//! FAILED with result code `LINK_TEST` ("no refund was made") and a DISPLAY, so the
//! terminal's screen shows the round trip worked.

use tokio::sync::mpsc;

use crate::link::{
    Connector, Link, LinkConfig, LinkEvent, LinkHandle, LinkStatsSnapshot, Role, Tracer,
};
use crate::message::{
    Direction, DisplayMessage, ErrorCode, ErrorMessage, Message, RefundState, RefundUpdate, Screen,
    StatusReport, Tone, Welcome, fit_lines, now_rfc3339,
};

/// The result code of every REFUND_UPDATE the responder sends.
pub const LINK_TEST_CODE: &str = "LINK_TEST";

/// What the responder received, for logs and tests.
#[derive(Clone, Debug, PartialEq)]
pub enum ResponderEvent {
    /// A session began.
    Up,
    /// The session ended.
    Down(String),
    /// A valid message arrived (and was answered).
    Received(Message),
    /// An invalid data frame arrived and was answered with ERROR.
    Refused(ErrorMessage),
}

/// A running link-test responder.
pub struct Responder {
    link: LinkHandle,
}

impl Responder {
    /// Starts the responder on the line `connector` opens; what arrives is reported
    /// through the returned receiver, which ends when the line is gone for good.
    pub fn start(
        connector: impl Connector,
        baud: Option<u32>,
        tracer: Option<Tracer>,
    ) -> (Responder, mpsc::UnboundedReceiver<ResponderEvent>) {
        let mut config = LinkConfig::new(Role::Bridge, baud);
        config.tracer = tracer;
        let (link, link_events) = Link::spawn(config, connector);
        let (events, events_rx) = mpsc::unbounded_channel();
        tokio::spawn(respond(link.clone(), link_events, events));
        (Responder { link }, events_rx)
    }

    /// The link's counters.
    pub fn stats(&self) -> LinkStatsSnapshot {
        self.link.stats()
    }
}

async fn respond(
    link: LinkHandle,
    mut link_events: mpsc::Receiver<LinkEvent>,
    events: mpsc::UnboundedSender<ResponderEvent>,
) {
    let replies = spawn_sender(link);
    let mut display = Screen::default();
    while let Some(event) = link_events.recv().await {
        let delivery = match event {
            LinkEvent::Up { .. } => {
                let _ = events.send(ResponderEvent::Up);
                continue;
            }
            LinkEvent::Down { reason, .. } => {
                let _ = events.send(ResponderEvent::Down(reason.to_string()));
                continue;
            }
            LinkEvent::Data(delivery) => delivery,
        };
        let message =
            match Message::parse_from(Direction::ToBridge, delivery.kind, &delivery.payload) {
                Ok(message) => message,
                Err(invalid) => {
                    let error = invalid.to_error_message(&delivery.payload);
                    let _ = events.send(ResponderEvent::Refused(error.clone()));
                    let _ = replies.send(Message::Error(error));
                    continue;
                }
            };
        for reply in answer(&message, &mut display) {
            let _ = replies.send(reply);
        }
        let _ = events.send(ResponderEvent::Received(message));
    }
}

/// Sends replies in order from a task of their own, so that waiting for their ACKs
/// never holds up reading (and acknowledging) what the terminal sends meanwhile.
fn spawn_sender(link: LinkHandle) -> mpsc::UnboundedSender<Message> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            loop {
                match link.send(message.kind(), message.to_frame_payload()).await {
                    Ok(()) => break,
                    // WELCOME and DISPLAY belong to a session: a new one gets its own.
                    Err(_) if !matches!(message, Message::RefundUpdate(_)) => break,
                    Err(crate::link::SendError::Closed) => return,
                    Err(_) => continue,
                }
            }
        }
    });
    tx
}

/// The responder's answers to one valid message.
fn answer(message: &Message, display: &mut Screen) -> Vec<Message> {
    match message {
        Message::Hello(hello) => {
            *display = hello.display.screen();
            vec![
                Message::Welcome(Welcome {
                    bridge_version: env!("CARGO_PKG_VERSION").into(),
                    online: false,
                    queued: 0,
                    time: now_rfc3339(),
                }),
                screen(
                    &["Link test", "Connected", &hello.terminal_id],
                    Tone::Info,
                    *display,
                ),
            ]
        }
        Message::Refund(refund) => {
            let amount = refund
                .refund_amount
                .map(|a| a.to_string())
                .unwrap_or_else(|| "full amount".into());
            vec![
                Message::RefundUpdate(RefundUpdate {
                    original_merchant_refund_id: refund.original_merchant_refund_id.clone(),
                    state: RefundState::Failed,
                    refund_request_id: format!("LINKTEST-{}", refund.original_merchant_refund_id),
                    refund_id: None,
                    refund_time: None,
                    refund_amount: refund.refund_amount,
                    result_code: Some(LINK_TEST_CODE.into()),
                    result_message: Some("Link test only: no refund was made".into()),
                }),
                screen(
                    &[
                        "Link test OK",
                        &refund.original_merchant_refund_id,
                        &amount,
                        "No refund made",
                    ],
                    Tone::Info,
                    *display,
                ),
            ]
        }
        Message::Inquiry(inquiry) => vec![Message::Error(ErrorMessage::new(
            ErrorCode::UnknownRefund,
            "link test: no refunds are recorded",
            Some(inquiry.original_merchant_refund_id.clone()),
        ))],
        Message::Status(_) => vec![Message::StatusReport(StatusReport {
            online: false,
            queued: 0,
            last_cloud_contact: None,
            provider: "link-test".into(),
        })],
        // parse_from(ToBridge) admits nothing else.
        _ => Vec::new(),
    }
}

fn screen(paragraphs: &[&str], tone: Tone, size: Screen) -> Message {
    Message::Display(DisplayMessage {
        lines: fit_lines(paragraphs, size),
        tone,
    })
}
