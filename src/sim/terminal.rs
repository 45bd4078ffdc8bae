//! The terminal emulator: the terminal's side of link protocol v1, as a library.
//!
//! `posbridge term`, the demo and the end-to-end tests all drive the bridge through
//! this one implementation, so the tests exercise exactly what field techs use. It
//! opens every session with HELLO, turns frames into typed [`Message`]s, and re-sends
//! a request whose frame went unconfirmed (REFUND, INQUIRY and STATUS are idempotent).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::link::{
    Connector, DownReason, Link, LinkConfig, LinkEvent, LinkHandle, LinkStatsSnapshot, Role,
    SendError, SequenceAudit, Tracer,
};
use crate::message::{Direction, DisplayInfo, Hello, Invalid, Message, RefundUpdate};
use crate::wire::Kind;

/// Who the emulated terminal says it is.
#[derive(Clone, Debug)]
pub struct TerminalIdentity {
    /// `terminalId` in HELLO.
    pub terminal_id: String,
    /// `model` in HELLO.
    pub model: Option<String>,
    /// `firmware` in HELLO.
    pub firmware: Option<String>,
    /// The display it declares.
    pub display: DisplayInfo,
}

impl Default for TerminalIdentity {
    fn default() -> TerminalIdentity {
        TerminalIdentity {
            terminal_id: "TERM-1".into(),
            model: Some("posbridge-emulator".into()),
            firmware: Some(env!("CARGO_PKG_VERSION").into()),
            display: DisplayInfo::default(),
        }
    }
}

impl TerminalIdentity {
    /// The HELLO message this identity sends.
    pub fn hello(&self) -> Hello {
        Hello {
            terminal_id: self.terminal_id.clone(),
            model: self.model.clone(),
            firmware: self.firmware.clone(),
            protocol_version: 1,
            display: self.display.clone(),
        }
    }
}

/// What the emulated terminal saw.
#[derive(Clone, Debug, PartialEq)]
pub enum TerminalEvent {
    /// A session with the bridge began.
    Up,
    /// The session ended.
    Down(DownReason),
    /// The bridge sent a message.
    Message(Message),
    /// The bridge sent a frame that is not a valid message.
    Invalid {
        /// The frame's kind.
        kind: Kind,
        /// What was wrong.
        error: Invalid,
    },
}

impl TerminalEvent {
    /// The REFUND_UPDATE this event carries, if it is one.
    pub fn refund_update(&self) -> Option<&RefundUpdate> {
        match self {
            TerminalEvent::Message(Message::RefundUpdate(u)) => Some(u),
            _ => None,
        }
    }
}

/// A running emulated terminal.
#[derive(Clone)]
pub struct Terminal {
    link: LinkHandle,
    audit: Arc<Mutex<SequenceAudit>>,
}

impl Terminal {
    /// Starts a terminal on the line `connector` opens (reopened after every unplug).
    pub fn start(
        identity: &TerminalIdentity,
        baud: Option<u32>,
        tracer: Option<Tracer>,
        connector: impl Connector,
    ) -> (Terminal, mpsc::Receiver<TerminalEvent>) {
        let hello = Message::Hello(identity.hello()).to_frame_payload();
        let mut config = LinkConfig::new(Role::Terminal { hello }, baud);
        config.tracer = tracer;
        let (link, mut link_events) = Link::spawn(config, connector);
        let (tx, rx) = mpsc::channel(256);
        // Every session of the bridge's frames starts at seq 0 (SPEC 4.1.5).
        let audit = Arc::new(Mutex::new(SequenceAudit::new(Some(0))));
        let audit_in = audit.clone();
        tokio::spawn(async move {
            while let Some(event) = link_events.recv().await {
                let event = match event {
                    LinkEvent::Up { .. } => TerminalEvent::Up,
                    LinkEvent::Down { reason, .. } => TerminalEvent::Down(reason),
                    LinkEvent::Data(delivery) => {
                        if let Ok(mut audit) = audit_in.lock()
                            && let Err(fault) = audit.observe(delivery.session, delivery.seq)
                        {
                            tracing::error!(%fault, "link delivered a frame out of sequence");
                        }
                        match Message::parse_from(
                            Direction::ToTerminal,
                            delivery.kind,
                            &delivery.payload,
                        ) {
                            Ok(message) => TerminalEvent::Message(message),
                            Err(error) => TerminalEvent::Invalid {
                                kind: delivery.kind,
                                error,
                            },
                        }
                    }
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        (Terminal { link, audit }, rx)
    }

    /// Sends a message and waits for the bridge's ACK, sending it again in the next
    /// session if the frame went unconfirmed. Only for idempotent messages.
    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        self.send_raw(message.kind(), message.to_frame_payload())
            .await
    }

    /// Sends any kind and payload, valid or not (tests of the bridge's validation).
    pub async fn send_raw(&self, kind: Kind, payload: Bytes) -> Result<(), SendError> {
        loop {
            match self.link.send(kind, payload.clone()).await {
                Err(SendError::Unconfirmed(reason)) => {
                    tracing::debug!(%kind, %reason, "unconfirmed; sending again in the next session");
                }
                other => return other,
            }
        }
    }

    /// The link's counters.
    pub fn stats(&self) -> LinkStatsSnapshot {
        self.link.stats()
    }

    /// What the terminal's own check of the bridge's frame sequence saw: deliveries
    /// and any frame delivered twice or skipped.
    pub fn audit(&self) -> SequenceAudit {
        self.audit.lock().map(|a| a.clone()).unwrap_or_default()
    }
}
