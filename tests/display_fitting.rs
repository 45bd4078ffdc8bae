//! Fitting text to a terminal's screen, for any text and any screen: every line
//! fits its declared columns (measured by clusters, and by characters the way a
//! terminal without cluster support would), no cluster is split, and nothing is
//! lost except where the last line says so with the truncation mark.

use std::collections::HashSet;

use posbridge::message::{
    DisplayCharset, DisplayMessage, Message, Screen, Tone, fit, is_hidden, text_width,
};
use posbridge::wire::Kind;
use proptest::prelude::*;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthChar;

/// Pieces of text from every script the catalogues use, and the hard cases.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9.,:;!?$-]{1,12}",
        "[ \t\n]{1,3}",
        Just("\u{a0}".to_owned()),
        Just("\u{202f}".to_owned()),
        Just("\u{3000}".to_owned()),
        "[\u{4e00}-\u{4fff}]{1,10}",
        "[\u{3041}-\u{30ff}]{1,10}",
        "[、。「」（）ー]{1,3}",
        "[\u{ac00}-\u{ad00}]{1,6}",
        "[\u{0e01}-\u{0e4e}]{1,12}",
        Just("e\u{301}".to_owned()),
        Just("\u{301}".to_owned()),
        Just("\u{1100}\u{1161}\u{11a8}".to_owned()),
        Just("👩\u{200d}👩\u{200d}👧".to_owned()),
        Just("🇯🇵".to_owned()),
        Just("❤\u{fe0f}".to_owned()),
        Just("👍🏽".to_owned()),
        Just("\u{202e}".to_owned()),
        Just("\u{200b}".to_owned()),
        Just("\u{feff}".to_owned()),
        Just("\u{7}".to_owned()),
        Just("…°×é".to_owned()),
        Just("ＡＢＣ１２３".to_owned()),
        any::<char>().prop_map(String::from),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..12).prop_map(|pieces| pieces.concat())
}

fn screen() -> impl Strategy<Value = Screen> {
    (1u16..=80, 1u16..=16, any::<bool>(), any::<bool>()).prop_map(
        |(cols, rows, ascii, wide_ambiguous)| Screen {
            cols,
            rows,
            charset: if ascii {
                DisplayCharset::Ascii
            } else {
                DisplayCharset::Utf8
            },
            wide_ambiguous,
        },
    )
}

fn is_breaking_space(c: char) -> bool {
    c.is_whitespace() && !matches!(c, '\u{a0}' | '\u{2007}' | '\u{202f}')
}

/// Width as a terminal that draws characters one by one would count it.
fn width_by_chars(line: &str, wide: bool) -> usize {
    line.chars()
        .map(|c| {
            if wide {
                c.width_cjk().unwrap_or(0)
            } else {
                c.width().unwrap_or(0)
            }
        })
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_line_fits_and_only_a_marked_cut_loses_text(
        paragraphs in prop::collection::vec(text(), 0..5),
        screen in screen(),
    ) {
        let fitted = fit(&paragraphs, screen);
        let cols = usize::from(screen.cols);
        prop_assert!(fitted.lines.len() <= usize::from(screen.rows));
        for line in &fitted.lines {
            prop_assert!(text_width(line, screen.wide_ambiguous) <= cols, "{line:?}");
            prop_assert!(width_by_chars(line, screen.wide_ambiguous) <= cols, "{line:?}");
            prop_assert!(!line.chars().any(|c| c.is_control() || is_hidden(c)), "{line:?}");
            prop_assert!(!line.chars().any(|c| is_breaking_space(c) && c != ' '), "{line:?}");
            if screen.charset == DisplayCharset::Ascii {
                prop_assert!(line.bytes().all(|b| (0x20..0x7f).contains(&b)), "{line:?}");
            }
        }
        // What the bridge sends is a valid DISPLAY.
        let payload = Message::Display(DisplayMessage { lines: fitted.lines.clone(), tone: Tone::Info })
            .to_frame_payload();
        prop_assert!(Message::parse(Kind::DISPLAY, &payload).is_ok());
        if fitted.truncated {
            let last = fitted.lines.last().cloned().unwrap_or_default();
            prop_assert!(last.ends_with(screen.truncation_mark()), "{last:?}");
        }
        if screen.charset == DisplayCharset::Ascii {
            return Ok(());
        }

        // The text as shown: hidden characters out, whitespace as plain spaces; and
        // where each of its grapheme clusters ends, counted without the spaces.
        let mut expected = String::new();
        let mut ends = HashSet::from([0]);
        for paragraph in &paragraphs {
            let cleaned: String = paragraph
                .chars()
                .filter_map(|c| if is_breaking_space(c) { Some(' ') } else if is_hidden(c) { None } else { Some(c) })
                .collect();
            for cluster in cleaned.graphemes(true) {
                expected.extend(cluster.chars().filter(|c| *c != ' '));
                ends.insert(expected.len());
            }
        }
        let mut got = String::new();
        for (i, line) in fitted.lines.iter().enumerate() {
            let line = if fitted.truncated && i + 1 == fitted.lines.len() {
                line.strip_suffix(screen.truncation_mark()).unwrap_or(line)
            } else {
                line
            };
            got.extend(line.chars().filter(|c| *c != ' '));
            prop_assert!(ends.contains(&got.len()), "a line ends inside a cluster: {:?}", fitted.lines);
        }
        if fitted.truncated {
            prop_assert!(expected.starts_with(&got), "{expected:?} / {got:?}");
            prop_assert!(got.len() < expected.len() || fitted.lines.len() == usize::from(screen.rows));
        } else {
            prop_assert_eq!(&got, &expected);
        }
    }
}

#[test]
fn a_screen_too_narrow_for_a_wide_character_says_so() {
    let fitted = fit(&["返金"], Screen::new(1, 4));
    assert!(fitted.truncated);
    assert_eq!(fitted.lines, vec!["…"]);
}
