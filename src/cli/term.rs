//! `posbridge term`: a payment terminal on the command line.
//!
//! One-shot flags send one request and wait for its answer; without them, requests
//! are typed (or piped) one per line. Everything the bridge sends is printed: refund
//! updates, errors, and DISPLAY messages drawn as the terminal's screen.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::link::{TraceDirection, Tracer};
use crate::message::{
    DisplayCharset, DisplayInfo, Inquiry, Message, Refund, RefundState, Screen, Status, limits,
};
use crate::money::{Amount, Currency};
use crate::sim::screen::{draw_screen, trace_line};
use crate::sim::terminal::{Terminal, TerminalEvent, TerminalIdentity};
use crate::transport::{Reopen, TransportConfig};
use crate::wire::{Inbound, Kind};

/// Arguments of `posbridge term`.
#[derive(Args)]
#[command(after_help = "Examples:
  posbridge term /dev/pts/5 --refund PAY-1 --amount 1250 --currency USD --id REF-1
  posbridge term /dev/posterminal0 --inquire REF-1
  posbridge term /dev/pts/5 --cols 16 --languages ja --refund PAY-1 --amount 1250 --currency JPY
  posbridge term /tmp/posterminal --trace          (interactive; type `help`)
  printf 'refund PAY-1 500 EUR REF-2\\nstatus\\n' | posbridge term /dev/pts/5 --json

Exit status of one-shot requests: 0 the refund succeeded (or the answer came),
1 the refund failed, needs attention or was refused with ERROR, 6 no answer in time.")]
pub struct TermArgs {
    /// The serial device or pseudo-terminal the bridge listens on.
    path: PathBuf,
    /// The line's baud rate.
    #[arg(long, default_value_t = crate::transport::DEFAULT_BAUD)]
    baud: u32,
    /// Wait for the device to appear (a terminal about to be plugged in) instead of
    /// stopping at once when it does not exist.
    #[arg(long)]
    wait_for_device: bool,
    /// The terminalId sent in HELLO.
    #[arg(long, default_value = "TERM-1")]
    terminal_id: String,
    /// Display width declared in HELLO, in display columns (1-80).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=80))]
    cols: u16,
    /// Display height declared in HELLO, in lines (1-16).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=16))]
    rows: u16,
    /// What the display can draw, declared in HELLO (`ascii`: printable ASCII only).
    #[arg(long, value_enum)]
    charset: Option<CharsetArg>,
    /// Languages the display can draw, declared in HELLO, preferred first
    /// (BCP 47 tags, comma-separated: `ja,en`).
    #[arg(long, value_delimiter = ',', value_name = "TAGS")]
    languages: Vec<String>,
    /// Hex-dump every frame in both directions with its meaning (to standard error).
    #[arg(long)]
    trace: bool,
    /// Print one JSON object per event instead of text.
    #[arg(long)]
    json: bool,
    /// One-shot: refund this payment id.
    #[arg(long, value_name = "PAYMENT_ID", conflicts_with_all = ["inquire", "status"])]
    refund: Option<String>,
    /// Amount in minor units (cents); without it the whole payment is refunded.
    #[arg(long, requires = "refund", requires = "currency")]
    amount: Option<i64>,
    /// ISO 4217 currency of --amount.
    #[arg(long, requires = "amount")]
    currency: Option<String>,
    /// The refund's originalMerchantRefundId (default: REF-<unix time>).
    #[arg(long, requires = "refund")]
    id: Option<String>,
    /// A note sent with the refund.
    #[arg(long, requires = "refund")]
    memo: Option<String>,
    /// One-shot: ask for the state of this originalMerchantRefundId.
    #[arg(long, value_name = "REFUND_ID", conflicts_with = "status")]
    inquire: Option<String>,
    /// One-shot: ask for the bridge's status.
    #[arg(long)]
    status: bool,
    /// With --refund, stop at the first state (`accepted`) or at the final one.
    #[arg(long, value_enum, default_value_t = Until::Final)]
    until: Until,
    /// How long to wait for answers, in seconds.
    #[arg(long, default_value_t = 30)]
    wait: u64,
}

/// `--charset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CharsetArg {
    /// Any Unicode text.
    #[value(name = "utf-8")]
    Utf8,
    /// Printable ASCII only.
    Ascii,
}

/// How far to follow a refund.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Until {
    /// The first REFUND_UPDATE (ACCEPTED or QUEUED).
    Accepted,
    /// A final state: SUCCEEDED, FAILED or NEEDS_ATTENTION.
    Final,
}

/// A request typed at the prompt or given by flags.
#[derive(Clone, Debug, PartialEq)]
enum Request {
    Refund(Refund),
    Inquire(String),
    Status,
    Help,
    Quit,
}

/// What a request waits for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Awaiting {
    Refund(String),
    Inquiry(String),
    Status,
}

/// How an awaited answer turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Good,
    Bad,
}

/// How long to keep listening after the last awaited answer, for its DISPLAY.
const SETTLE_GRACE: Duration = Duration::from_millis(300);

const HELP: &str = "commands:
  refund <paymentId> [<amount> <currency>] [<refundId>] [memo=<text>]
  inquire <refundId>
  status
  quit";

/// Runs `posbridge term`.
pub async fn run(args: TermArgs) -> ExitCode {
    let one_shot = match one_shot_request(&args) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("posbridge term: {e}");
            return super::exit::Status::Usage.into();
        }
    };
    let identity = TerminalIdentity {
        terminal_id: args.terminal_id.clone(),
        display: DisplayInfo {
            charset: args.charset.map(|c| match c {
                CharsetArg::Utf8 => DisplayCharset::Utf8,
                CharsetArg::Ascii => DisplayCharset::Ascii,
            }),
            languages: args.languages.clone(),
            ..DisplayInfo::size(args.cols, args.rows)
        },
        ..TerminalIdentity::default()
    };
    if let Err(e) = Message::parse(
        Kind::HELLO,
        &Message::Hello(identity.hello()).to_frame_payload(),
    ) {
        eprintln!("posbridge term: --terminal-id or --languages: {e}");
        return super::exit::Status::Usage.into();
    }
    if !args.wait_for_device && !args.path.exists() {
        eprintln!(
            "posbridge term: {} does not exist (is the cable plugged in? `ls -l /dev/posterminal*`); \
             --wait-for-device waits for it",
            args.path.display()
        );
        return super::exit::Status::NotFound.into();
    }
    let transport = TransportConfig::Serial {
        path: args.path.clone(),
        baud: args.baud,
    };
    let tracer: Option<Tracer> = args.trace.then(|| {
        Arc::new(|dir: TraceDirection, raw: &[u8], item: &Inbound| {
            eprintln!("{}", trace_line(dir, raw, item));
        }) as Tracer
    });
    let connector = Reopen::new(transport, Duration::from_millis(500));
    let (terminal, events) = Terminal::start(&identity, Some(args.baud), tracer, connector);
    let mut session = Session {
        out: Printer {
            json: args.json,
            size: identity.display.screen(),
        },
        terminal,
        events,
        awaiting: HashMap::new(),
        until: args.until,
        failures: 0,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait);
    match one_shot {
        Some(request) => session.one_shot(request, deadline).await,
        None => session.interactive(Duration::from_secs(args.wait)).await,
    }
}

fn one_shot_request(args: &TermArgs) -> Result<Option<Request>, String> {
    if let Some(payment_id) = &args.refund {
        let amount = match (args.amount, &args.currency) {
            (Some(value), Some(code)) => Some(
                Amount::new(
                    value,
                    Currency::parse(code).map_err(|e| format!("--currency: {e}"))?,
                )
                .map_err(|e| format!("--amount: {e}"))?,
            ),
            _ => None,
        };
        let refund = Refund {
            original_merchant_refund_id: args.id.clone().unwrap_or_else(default_refund_id),
            payment_id: payment_id.clone(),
            refund_amount: amount,
            memo: args.memo.clone(),
        };
        return validated(refund).map(Some);
    }
    if let Some(id) = &args.inquire {
        return Ok(Some(Request::Inquire(id.clone())));
    }
    Ok(args.status.then_some(Request::Status))
}

/// Checks a refund by the bridge's own rules, so a typo is caught here, by field name.
fn validated(refund: Refund) -> Result<Request, String> {
    let message = Message::Refund(refund);
    match Message::parse(Kind::REFUND, &message.to_frame_payload()) {
        Ok(Message::Refund(refund)) => Ok(Request::Refund(refund)),
        Ok(_) => Err("not a refund".into()),
        Err(e) => Err(format!("refund not sent: {e}")),
    }
}

fn default_refund_id() -> String {
    format!("REF-{}", jiff::Timestamp::now().as_millisecond())
}

/// Parses one typed line.
fn parse_line(line: &str) -> Result<Option<Request>, String> {
    let mut words: Vec<&str> = line.split_whitespace().collect();
    let Some(command) = words.first().copied() else {
        return Ok(None);
    };
    words.remove(0);
    match command {
        "refund" | "r" => {
            let memo = words
                .iter()
                .position(|w| w.starts_with("memo="))
                .map(|at| words.drain(at..).collect::<Vec<_>>().join(" "))
                .and_then(|m| m.strip_prefix("memo=").map(str::to_owned));
            let (payment_id, rest) = words
                .split_first()
                .ok_or("refund needs a payment id (try `help`)")?;
            let (amount, rest) = match rest {
                [value, code, rest @ ..] if value.parse::<i64>().is_ok() => {
                    let value = value.parse::<i64>().map_err(|e| e.to_string())?;
                    let currency = Currency::parse(code).map_err(|e| e.to_string())?;
                    let amount = Amount::new(value, currency).map_err(|e| e.to_string())?;
                    (Some(amount), rest)
                }
                [value] if value.parse::<i64>().is_ok() => {
                    return Err(
                        "an amount needs a currency: refund <paymentId> <amount> <currency>".into(),
                    );
                }
                rest => (None, rest),
            };
            let id = match rest {
                [] => default_refund_id(),
                [id] => (*id).to_owned(),
                _ => {
                    return Err(format!(
                        "unexpected words after the refund id: {}",
                        rest.join(" ")
                    ));
                }
            };
            validated(Refund {
                original_merchant_refund_id: id,
                payment_id: (*payment_id).to_owned(),
                refund_amount: amount,
                memo,
            })
            .map(Some)
        }
        "inquire" | "i" => match words.as_slice() {
            [id] if id.chars().count() <= limits::REFUND_ID => {
                Ok(Some(Request::Inquire((*id).to_owned())))
            }
            _ => Err("usage: inquire <refundId>".into()),
        },
        "status" | "s" => Ok(Some(Request::Status)),
        "help" | "h" | "?" => Ok(Some(Request::Help)),
        "quit" | "exit" | "q" => Ok(Some(Request::Quit)),
        other => Err(format!("unknown command {other:?} (try `help`)")),
    }
}

/// Prints what a terminal sends and receives, as text or JSON lines.
pub(super) struct Printer {
    pub(super) json: bool,
    pub(super) size: Screen,
}

impl Printer {
    pub(super) fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn json(&self, value: serde_json::Value) {
        self.line(&value.to_string());
    }

    pub(super) fn sent(&self, message: &Message) {
        if self.json {
            self.json(serde_json::json!({
                "event": "sent",
                "kind": message.kind().to_string(),
                "body": body(message),
            }));
        } else {
            self.line(&format!("-> {} {}", message.kind(), body(message)));
        }
    }

    pub(super) fn event(&self, event: &TerminalEvent) {
        if self.json {
            let value = match event {
                TerminalEvent::Up => serde_json::json!({"event": "up"}),
                TerminalEvent::Down(reason) => {
                    serde_json::json!({"event": "down", "reason": reason.to_string()})
                }
                TerminalEvent::Message(m) => serde_json::json!({
                    "event": "message",
                    "kind": m.kind().to_string(),
                    "body": body(m),
                }),
                TerminalEvent::Invalid { kind, error } => serde_json::json!({
                    "event": "invalid",
                    "kind": kind.to_string(),
                    "error": error.to_string(),
                }),
            };
            return self.json(value);
        }
        match event {
            TerminalEvent::Up => self.line("== connected to the bridge"),
            TerminalEvent::Down(reason) => self.line(&format!("== link down: {reason}")),
            TerminalEvent::Message(Message::Display(display)) => {
                self.line(&draw_screen(display, self.size))
            }
            TerminalEvent::Message(Message::RefundUpdate(u)) => {
                let mut text = format!(
                    "<- REFUND_UPDATE {} {} (refundRequestId {})",
                    u.original_merchant_refund_id, u.state, u.refund_request_id
                );
                if let Some(id) = &u.refund_id {
                    text.push_str(&format!(" refundId {id}"));
                }
                if let Some(amount) = &u.refund_amount {
                    text.push_str(&format!(" {amount}"));
                }
                if let Some(code) = &u.result_code {
                    text.push_str(&format!(" [{code}"));
                    if let Some(msg) = &u.result_message {
                        text.push_str(&format!(": {msg}"));
                    }
                    text.push(']');
                }
                self.line(&text);
            }
            TerminalEvent::Message(m) => self.line(&format!("<- {} {}", m.kind(), body(m))),
            TerminalEvent::Invalid { kind, error } => {
                self.line(&format!("<- {kind} (invalid, ignored: {error})"))
            }
        }
    }
}

fn body(message: &Message) -> serde_json::Value {
    serde_json::from_slice(&message.to_frame_payload()).unwrap_or(serde_json::Value::Null)
}

struct Session {
    out: Printer,
    terminal: Terminal,
    events: mpsc::Receiver<TerminalEvent>,
    awaiting: HashMap<Awaiting, Option<Outcome>>,
    until: Until,
    failures: u32,
}

impl Session {
    /// Sends a request from its own task (so events keep flowing while the ACK is
    /// awaited) and notes what answer it waits for.
    fn submit(&mut self, request: Request) {
        let (message, awaiting) = match request {
            Request::Refund(refund) => {
                let id = refund.original_merchant_refund_id.clone();
                (Message::Refund(refund), Awaiting::Refund(id))
            }
            Request::Inquire(id) => (
                Message::Inquiry(Inquiry {
                    original_merchant_refund_id: id.clone(),
                }),
                Awaiting::Inquiry(id),
            ),
            Request::Status => (Message::Status(Status {}), Awaiting::Status),
            Request::Help | Request::Quit => return,
        };
        self.out.sent(&message);
        self.awaiting.insert(awaiting, None);
        let terminal = self.terminal.clone();
        tokio::spawn(async move {
            if let Err(e) = terminal.send(&message).await {
                tracing::warn!("{} not sent: {e}", message.kind());
            }
        });
    }

    /// Matches an incoming event against what is awaited.
    fn observe(&mut self, event: &TerminalEvent) {
        let TerminalEvent::Message(message) = event else {
            return;
        };
        let mut settle = |key: Awaiting, outcome: Outcome| {
            if let Some(slot) = self.awaiting.get_mut(&key)
                && slot.is_none()
            {
                *slot = Some(outcome);
            }
        };
        match message {
            Message::RefundUpdate(u) => {
                let id = u.original_merchant_refund_id.clone();
                settle(Awaiting::Inquiry(id.clone()), Outcome::Good);
                let done = u.state.is_final() || self.until == Until::Accepted;
                if done {
                    let good = match u.state {
                        RefundState::Succeeded => true,
                        RefundState::Failed | RefundState::NeedsAttention => false,
                        _ => true,
                    };
                    settle(
                        Awaiting::Refund(id),
                        if good { Outcome::Good } else { Outcome::Bad },
                    );
                }
            }
            Message::Error(e) => {
                if let Some(id) = &e.reference {
                    settle(Awaiting::Refund(id.clone()), Outcome::Bad);
                    settle(Awaiting::Inquiry(id.clone()), Outcome::Bad);
                }
            }
            Message::StatusReport(_) => settle(Awaiting::Status, Outcome::Good),
            _ => {}
        }
    }

    fn settled(&self) -> bool {
        self.awaiting.values().all(Option::is_some)
    }

    fn exit_code(&self) -> ExitCode {
        if !self.settled() {
            return super::exit::Status::NoAnswer.into();
        }
        let bad = self.awaiting.values().any(|o| *o == Some(Outcome::Bad));
        if bad || self.failures > 0 {
            super::exit::Status::Findings.into()
        } else {
            ExitCode::SUCCESS
        }
    }

    /// Handles events until everything awaited is answered or the deadline passes,
    /// then a moment longer: the bridge follows each update with its DISPLAY.
    async fn drain_until_settled(&mut self, deadline: tokio::time::Instant) {
        while !self.settled() {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    self.observe(&event);
                    self.out.event(&event);
                }
                Ok(None) | Err(_) => return,
            }
        }
        while let Ok(Some(event)) = tokio::time::timeout(SETTLE_GRACE, self.events.recv()).await {
            self.observe(&event);
            self.out.event(&event);
        }
    }

    async fn one_shot(&mut self, request: Request, deadline: tokio::time::Instant) -> ExitCode {
        self.submit(request);
        self.drain_until_settled(deadline).await;
        if !self.settled() && !self.out.json {
            eprintln!("posbridge term: no answer within the wait time");
        }
        self.exit_code()
    }

    async fn interactive(&mut self, wait: Duration) -> ExitCode {
        let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
        if interactive && !self.out.json {
            self.out.line(HELP);
        }
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) => match parse_line(&line) {
                        Ok(Some(Request::Quit)) => break,
                        Ok(Some(Request::Help)) => self.out.line(HELP),
                        Ok(Some(request)) => self.submit(request),
                        Ok(None) => {}
                        Err(e) => {
                            self.failures += 1;
                            if self.out.json {
                                self.out.json(serde_json::json!({"event": "error", "error": e}));
                            } else {
                                self.out.line(&format!("!! {e}"));
                            }
                        }
                    },
                    // End of input: finish what was asked, then stop.
                    Ok(None) | Err(_) => break,
                },
                event = self.events.recv() => match event {
                    Some(event) => {
                        self.observe(&event);
                        self.out.event(&event);
                    }
                    None => break,
                },
            }
        }
        self.drain_until_settled(tokio::time::Instant::now() + wait)
            .await;
        self.exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refund(line: &str) -> Refund {
        match parse_line(line) {
            Ok(Some(Request::Refund(r))) => r,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn parses_refund_lines() {
        let r = refund("refund PAY-1 1250 USD REF-1");
        assert_eq!(r.payment_id, "PAY-1");
        assert_eq!(r.original_merchant_refund_id, "REF-1");
        assert_eq!(r.refund_amount.map(|a| a.value), Some(1250));
        let full = refund("refund PAY-2 REF-2 memo=box damaged");
        assert_eq!(full.refund_amount, None);
        assert_eq!(full.original_merchant_refund_id, "REF-2");
        assert_eq!(full.memo.as_deref(), Some("box damaged"));
        assert!(
            refund("r PAY-3")
                .original_merchant_refund_id
                .starts_with("REF-")
        );
    }

    #[test]
    fn refuses_bad_lines_by_field() {
        for (line, expect) in [
            ("refund", "payment id"),
            ("refund PAY-1 12", "currency"),
            ("refund PAY-1 12 usd", "ISO 4217"),
            ("refund PAY-1 0 USD R", "refundAmount.value"),
            ("refund PAY-1 5 USD R extra", "unexpected words"),
            ("inquire", "usage"),
            ("dance", "unknown command"),
        ] {
            let err = parse_line(line).unwrap_err();
            assert!(err.contains(expect), "{line}: {err}");
        }
        assert_eq!(parse_line("   "), Ok(None));
        assert_eq!(parse_line("status"), Ok(Some(Request::Status)));
        assert_eq!(
            parse_line("inquire REF-1"),
            Ok(Some(Request::Inquire("REF-1".into())))
        );
    }
}
