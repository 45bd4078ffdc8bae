//! Drawing a terminal's display, and frames for `--trace`, as text for a person.

use crate::link::TraceDirection;
use crate::message::{Display, DisplaySize, Message, Tone};
use crate::wire::{Frame, Inbound, hex};

/// Draws a DISPLAY as the terminal's screen: a box of `size`, every row shown, with
/// the tone under it.
pub fn draw_screen(display: &Display, size: DisplaySize) -> String {
    let cols = usize::from(size.cols);
    let border = "─".repeat(cols);
    let mut out = format!("┌{border}┐\n");
    for row in 0..usize::from(size.rows) {
        let line = display.lines.get(row).map(String::as_str).unwrap_or("");
        let shown: String = line.chars().take(cols).collect();
        let pad = cols.saturating_sub(shown.chars().count());
        out.push_str(&format!("│{shown}{}│\n", " ".repeat(pad)));
    }
    let tone = match display.tone {
        Tone::Ok => "ok",
        Tone::Error => "error",
        Tone::Info => "info",
    };
    out.push_str(&format!("└{border}┘ tone: {tone}"));
    if display.lines.len() > usize::from(size.rows) {
        out.push_str(&format!(
            " ({} lines did not fit)",
            display.lines.len() - usize::from(size.rows)
        ));
    }
    out
}

/// One `--trace` line: direction, wire bytes in hex, and what they mean.
pub fn trace_line(direction: TraceDirection, raw: &[u8], item: &Inbound) -> String {
    let arrow = match direction {
        TraceDirection::In => "<-",
        TraceDirection::Out => "->",
    };
    let meaning = match item {
        Inbound::Frame(frame) => describe(frame),
        Inbound::Damaged(cause) => format!("DAMAGED ({cause}): dropped, answered with NAK"),
    };
    format!("{arrow} [{}] {}\n   {meaning}", raw.len(), hex(raw))
}

fn describe(frame: &Frame) -> String {
    let mut text = format!("{} seq={}", frame.kind, frame.seq);
    if frame.kind.is_data() {
        match Message::parse(frame.kind, &frame.payload) {
            Ok(_) => text.push_str(&format!(" {}", String::from_utf8_lossy(&frame.payload))),
            Err(e) => text.push_str(&format!(
                " {} (invalid: {e})",
                String::from_utf8_lossy(&frame.payload)
            )),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Kind;

    #[test]
    fn screen_is_a_box_of_the_declared_size() {
        let display = Display {
            lines: vec!["Refund OK".into(), "12.50 USD".into()],
            tone: Tone::Ok,
        };
        let screen = draw_screen(&display, DisplaySize { cols: 12, rows: 3 });
        let rows: Vec<&str> = screen.lines().collect();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[1], "│Refund OK   │");
        assert_eq!(rows[3], "│            │");
        assert!(rows[4].ends_with("tone: ok"));
    }

    #[test]
    fn trace_shows_hex_and_meaning() {
        let frame = Frame::control(Kind::ACK, 7);
        let raw = crate::wire::FrameCodec::to_wire(&frame).unwrap();
        let line = trace_line(TraceDirection::In, &raw, &Inbound::Frame(frame));
        assert!(line.starts_with("<- ["), "{line}");
        assert!(line.contains("ACK seq=7"), "{line}");
        assert!(line.contains("00 "), "{line}");
    }
}
