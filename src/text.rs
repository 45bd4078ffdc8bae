//! Text from outside (providers' answers, a terminal's memo) made safe to keep, to send
//! to a terminal and to print.
//!
//! A provider's `resultMessage` is shown to a cashier and printed to an operator's
//! terminal. Some characters in it do harm there: control characters (a tab or newline
//! makes a conforming terminal refuse the whole REFUND_UPDATE; an escape sequence
//! repaints an operator's screen), bidirectional overrides and isolates (they reorder
//! what is shown, so "refund 100" can read as something else), and invisible
//! characters (zero-width spaces and joiners, the byte-order mark, tags) that make two
//! texts look the same while they differ. Shared by every layer, like [`crate::money`].
//!
//! - [`clean_text`]: for free text that is kept and shown — whitespace controls become
//!   a space, other harmful characters are dropped, runs of spaces collapse, and the
//!   length is bounded in characters.
//! - [`clean_code`]: for result codes — visible ASCII only, bounded.
//! - [`clean_id`]: for a provider's ids — kept exactly when they are visible ASCII,
//!   otherwise percent-encoded, so nothing is lost and nothing harmful remains.
//! - [`visible`]: for printing stored text to an operator — every harmful character
//!   is shown as an escape (`\u{202e}`) instead of taking effect.

use std::fmt::Write as _;

/// Whether `c` is an invisible formatting character that can make text read
/// differently from what it holds: soft hyphen, Arabic letter mark, Mongolian vowel
/// separator, zero-width space / non-joiner / joiner, left-to-right and right-to-left
/// marks, embeddings, overrides and isolates, word joiner and invisible operators,
/// deprecated format controls, the byte-order mark, interlinear annotation marks and
/// tag characters (Unicode general category Cf, less the few visible ones).
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Whether `c` does harm in shown text: a control character or an invisible format
/// character.
pub fn is_harmful(c: char) -> bool {
    c.is_control() || is_invisible_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

fn is_breaking_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\r' | '\u{000B}' | '\u{000C}' | '\u{0085}' | '\u{2028}' | '\u{2029}'
    )
}

/// Free text made safe: tabs, newlines and other line or page breaks become a space,
/// every other control or invisible format character is dropped, runs of spaces become
/// one, the ends are trimmed, and the result is at most `max_chars` characters (the
/// last one `…` when text was cut).
pub fn clean_text(raw: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(raw.len().min(max_chars * 4));
    let mut pending_space = false;
    for c in raw.chars() {
        let c = if is_breaking_space(c) { ' ' } else { c };
        if c != ' ' && is_harmful(c) {
            continue;
        }
        if c == ' ' {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    truncate_chars(out, max_chars)
}

fn truncate_chars(text: String, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text;
    }
    if max_chars == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(max_chars - 1).collect();
    let trimmed = cut.trim_end().len();
    cut.truncate(trimmed);
    cut.push('…');
    cut
}

/// A result code made safe: visible ASCII only (anything else becomes `_`), at most
/// `max_chars` characters; an empty code becomes `UNKNOWN`.
pub fn clean_code(raw: &str, max_chars: usize) -> String {
    let code: String = raw
        .trim()
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max_chars)
        .collect();
    if code.is_empty() {
        "UNKNOWN".to_owned()
    } else {
        code
    }
}

/// A provider's id made safe without losing it: visible ASCII other than `%` is kept,
/// every other byte is written `%XX`. An id that was visible ASCII already comes back
/// unchanged.
pub fn clean_id(raw: &str) -> String {
    if raw.bytes().all(|b| b.is_ascii_graphic() && b != b'%') {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len() * 3);
    for b in raw.bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Stored text for an operator's screen: every control and invisible format character
/// is written as a Rust-style escape (`\u{1b}`), so it shows instead of acting.
pub fn visible(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_harmful) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_harmful(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_controls_become_one_space_and_the_rest_goes() {
        assert_eq!(
            clean_text("Refund\tdeclined\r\n by  bank", 256),
            "Refund declined by bank"
        );
        assert_eq!(clean_text("\u{1b}[2Jcleared\u{7}", 256), "[2Jcleared");
        assert_eq!(clean_text("  \n ", 256), "");
        assert_eq!(clean_text("a\u{0}b", 256), "ab");
    }

    #[test]
    fn bidi_and_invisible_characters_are_dropped() {
        // "Refund 001" written with a right-to-left override would show reversed.
        assert_eq!(clean_text("Refund \u{202e}100\u{202c}", 256), "Refund 100");
        assert_eq!(clean_text("pa\u{200b}id\u{feff}", 256), "paid");
        assert_eq!(clean_text("\u{2066}x\u{2069}\u{e0041}", 256), "x");
        // Visible text of every script stays.
        assert_eq!(
            clean_text("退款成功 返金完了 환불 완료", 256),
            "退款成功 返金完了 환불 완료"
        );
        assert_eq!(clean_text("คืนเงินสำเร็จ", 256), "คืนเงินสำเร็จ");
    }

    #[test]
    fn length_is_bounded_in_characters_and_marked() {
        let long = "é".repeat(300);
        let cut = clean_text(&long, 256);
        assert_eq!(cut.chars().count(), 256);
        assert!(cut.ends_with('…'));
        assert_eq!(clean_text("exactly", 7), "exactly");
        assert_eq!(clean_text("word word", 6), "word…");
        assert_eq!(clean_text("abc", 0), "");
    }

    #[test]
    fn codes_are_visible_ascii() {
        assert_eq!(
            clean_code("DPOS_REFUND_IN_PROCESS", 64),
            "DPOS_REFUND_IN_PROCESS"
        );
        assert_eq!(clean_code("BAD CODE\n", 64), "BAD_CODE");
        assert_eq!(clean_code("", 64), "UNKNOWN");
        assert_eq!(clean_code(&"X".repeat(100), 64).len(), 64);
    }

    #[test]
    fn ids_are_kept_exactly_or_encoded_without_loss() {
        assert_eq!(
            clean_id("20260410194010890100111670209"),
            "20260410194010890100111670209"
        );
        assert_eq!(clean_id("REF 1\u{1b}"), "REF%201%1B");
        assert_eq!(clean_id("50%"), "50%25");
        assert_eq!(clean_id("退"), "%E9%80%80");
    }

    #[test]
    fn operators_see_escapes_not_effects() {
        assert_eq!(visible("plain"), "plain");
        assert_eq!(visible("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(visible("x\u{202e}y"), "x\\u{202e}y");
    }
}
