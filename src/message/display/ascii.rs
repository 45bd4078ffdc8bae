//! Text for a screen that shows only ASCII (HELLO `display.charset` = `ascii`).
//!
//! The bridge's own texts for such a screen come from an ASCII catalogue; this is for
//! whatever else reaches it (a provider's message, an operator's override). Letters
//! lose their accents (`é` → `e`, by canonical decomposition), typographic punctuation
//! becomes its ASCII counterpart (`…` → `...`, `–` → `-`), fullwidth forms their
//! ASCII twins, and what has no ASCII form is left out: a screen never shows `?` or
//! mojibake for a character it cannot draw.

use icu_normalizer::DecomposingNormalizerBorrowed;
use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;

/// The no-break space that stands for every no-break space until the lines are laid
/// out; it becomes a plain space afterwards.
pub(super) const NO_BREAK: char = '\u{00A0}';

/// `text` in printable ASCII, keeping [`NO_BREAK`] for the layout.
pub(super) fn fold(text: &str) -> String {
    let categories = CodePointMapData::<GeneralCategory>::new();
    let decomposed = DecomposingNormalizerBorrowed::new_nfd().normalize(text);
    let mut out = String::with_capacity(decomposed.len());
    for c in decomposed.chars() {
        if c == ' ' || c.is_ascii_graphic() || c == NO_BREAK {
            out.push(c);
            continue;
        }
        if matches!(
            categories.get(c),
            GeneralCategory::NonspacingMark | GeneralCategory::EnclosingMark
        ) {
            continue;
        }
        if let Some(ascii) = counterpart(c) {
            out.push_str(ascii);
        } else if let Some(twin) = fullwidth_twin(c) {
            out.push(twin);
        }
    }
    out
}

/// ASCII for letters without a decomposition and for common punctuation.
fn counterpart(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{2007}' | '\u{202F}' => "\u{00A0}",
        '\u{3000}' => " ",
        '‘' | '’' | '‚' | '‛' | '′' => "'",
        '“' | '”' | '„' | '‟' | '″' | '«' | '»' => "\"",
        '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' | 'ー' => "-",
        '…' => "...",
        '•' | '·' | '・' => "*",
        '×' => "x",
        'ß' => "ss",
        'æ' => "ae",
        'Æ' => "AE",
        'œ' => "oe",
        'Œ' => "OE",
        'ø' => "o",
        'Ø' => "O",
        'đ' => "d",
        'Đ' => "D",
        'ł' => "l",
        'Ł' => "L",
        'ı' => "i",
        'þ' => "th",
        'Þ' => "Th",
        'ð' => "d",
        'Ð' => "D",
        '€' => "EUR",
        '£' => "GBP",
        '。' => ".",
        '、' => ",",
        _ => return None,
    })
}

/// The ASCII character a fullwidth form (U+FF01–U+FF5E) stands for.
fn fullwidth_twin(c: char) -> Option<char> {
    let code = u32::from(c);
    (0xFF01..=0xFF5E)
        .contains(&code)
        .then(|| char::from_u32(code - 0xFEE0))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_go_and_what_cannot_be_written_is_left_out() {
        assert_eq!(fold("Remboursement refusé"), "Remboursement refuse");
        assert_eq!(fold("Cre\u{300}me bru\u{302}le\u{301}e"), "Creme brulee");
        assert_eq!(fold("Straße … “ok” – Ø"), "Strasse ... \"ok\" - O");
        assert_eq!(fold("ＡＢＣ１２３！"), "ABC123!");
        assert_eq!(fold("余额不足 (code 42)"), " (code 42)");
        assert_eq!(fold("12,50\u{00A0}$"), "12,50\u{00A0}$");
        assert_eq!(fold("1\u{202F}250"), "1\u{00A0}250");
        assert!(fold("返金 คืนเงิน 환불 🙂").trim().is_empty());
    }
}
