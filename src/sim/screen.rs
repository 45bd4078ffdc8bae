//! Drawing a terminal's display, and frames for `--trace`, as text for a person.

use crate::link::TraceDirection;
use unicode_segmentation::UnicodeSegmentation;

use crate::message::{DisplayMessage, Message, Screen, Tone, cluster_width};
use crate::wire::{Frame, Inbound, hex};

/// Draws a DISPLAY as the terminal's screen: a box of `size`, every row shown, with
/// the tone under it. Lines are measured in display columns, so wide characters keep
/// the box straight; a line wider than the screen (from a bridge that got it wrong)
/// is cut at a grapheme cluster, and a two-column cluster that would straddle the
/// edge is left off.
pub fn draw_screen(display: &DisplayMessage, size: Screen) -> String {
    let cols = usize::from(size.cols);
    let border = "─".repeat(cols);
    let mut out = format!("┌{border}┐\n");
    for row in 0..usize::from(size.rows) {
        let line = display.lines.get(row).map(String::as_str).unwrap_or("");
        let mut shown = String::new();
        let mut width = 0;
        for cluster in line.graphemes(true) {
            let w = cluster_width(cluster, size.wide_ambiguous);
            if width + w > cols {
                break;
            }
            shown.push_str(cluster);
            width += w;
        }
        let pad = cols.saturating_sub(width);
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
        let display = DisplayMessage {
            lines: vec!["Refund OK".into(), "12.50 USD".into()],
            tone: Tone::Ok,
        };
        let screen = draw_screen(&display, Screen::new(12, 3));
        let rows: Vec<&str> = screen.lines().collect();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[1], "│Refund OK   │");
        assert_eq!(rows[3], "│            │");
        assert!(rows[4].ends_with("tone: ok"));
    }

    #[test]
    fn wide_text_keeps_the_box_straight() {
        let display = DisplayMessage {
            lines: vec![
                "返金完了".into(),
                "￥1,250".into(),
                "Mu\u{308}ller".into(),
                "返金が完了しました".into(),
            ],
            tone: Tone::Ok,
        };
        let screen = draw_screen(&display, Screen::new(9, 4));
        let rows: Vec<&str> = screen.lines().collect();
        assert_eq!(rows[1], "│返金完了 │");
        assert_eq!(rows[2], "│￥1,250  │");
        assert_eq!(rows[3], "│Mu\u{308}ller   │");
        // Cut at the edge: the fifth character would straddle it.
        assert_eq!(rows[4], "│返金が完 │");
        for row in &rows[..5] {
            assert_eq!(crate::message::text_width(row, false), 11, "{row}");
        }
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
