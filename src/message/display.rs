//! Fitting text to a terminal's display, by display columns (SPEC §6.6).
//!
//! Text is measured in grapheme clusters (UAX #29: what a reader takes for one
//! character, such as `e` with a combining accent, a Hangul syllable from jamo, or an
//! emoji sequence), each as wide as Unicode's East Asian Width (UAX #11) says: 2 for
//! wide and fullwidth characters, 1 otherwise, and 2 for ambiguous ones on a screen
//! that draws them wide. A cluster is never split. Lines wrap at spaces, and where a
//! script is written without them, between clusters as `breaks` allows (Chinese and
//! Japanese between characters, Thai at syllable starts); a run longer than a line
//! is broken between clusters. When the text needs more rows than the screen has,
//! or holds a cluster wider than a line, it is cut and the last line ends with a
//! mark (`…`, or `...` on an ASCII screen) that fits too.
//!
//! Control and format characters (bidirectional overrides, zero-width spaces, ...)
//! are left out: they have no place on a cashier's screen and a DISPLAY may not
//! carry them. A zero-width joiner or non-joiner inside an emoji or a word stays.

mod ascii;
mod breaks;

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::types::DisplayCharset;

/// What a terminal's screen can show: its size in columns and rows, its character
/// set, and whether it draws East Asian ambiguous-width characters (`…`, `°`, `é` on
/// some fonts) two columns wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Screen {
    /// Display columns per line, 1..=80.
    pub cols: u16,
    /// Lines, 1..=16.
    pub rows: u16,
    /// What it can draw.
    pub charset: DisplayCharset,
    /// Ambiguous-width characters take two columns.
    pub wide_ambiguous: bool,
}

impl Default for Screen {
    /// A 4-line, 20-column UTF-8 display, assumed when HELLO declares none.
    fn default() -> Screen {
        Screen::new(20, 4)
    }
}

impl Screen {
    /// A UTF-8 screen of `cols` × `rows` that draws ambiguous characters narrow.
    pub fn new(cols: u16, rows: u16) -> Screen {
        Screen {
            cols,
            rows,
            charset: DisplayCharset::Utf8,
            wide_ambiguous: false,
        }
    }

    /// The mark that ends a cut last line: `…` where it fits, `...` on ASCII screens,
    /// shortened to `.` on a screen too narrow for either.
    pub fn truncation_mark(&self) -> &'static str {
        let cols = usize::from(self.cols.max(1));
        let mark = match self.charset {
            DisplayCharset::Utf8 => "…",
            DisplayCharset::Ascii => "...",
        };
        if text_width(mark, self.wide_ambiguous) <= cols {
            mark
        } else {
            "."
        }
    }
}

/// Lines laid out for a screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fitted {
    /// At most `rows` lines, each at most `cols` columns wide.
    pub lines: Vec<String>,
    /// Whether text was cut; the last line then ends with the truncation mark.
    pub truncated: bool,
}

/// Lays out paragraphs on `screen`: each paragraph starts a new line (an empty one is
/// an empty line), text wraps at the column limit, and what does not fit is cut with
/// a mark on the last line.
pub fn fit_lines<S: AsRef<str>>(paragraphs: &[S], screen: Screen) -> Vec<String> {
    fit(paragraphs, screen).lines
}

/// [`fit_lines`], saying whether text was cut.
pub fn fit<S: AsRef<str>>(paragraphs: &[S], screen: Screen) -> Fitted {
    let mut layout = Layout {
        cols: usize::from(screen.cols.max(1)),
        lines: Vec::new(),
        line: Line::default(),
    };
    let mut cut = false;
    for paragraph in paragraphs {
        let text = shown(paragraph.as_ref(), screen.charset);
        if !layout.paragraph(&text, screen.wide_ambiguous) {
            cut = true;
            break;
        }
    }
    let mut lines = layout.lines;
    let rows = usize::from(screen.rows.max(1));
    if lines.len() > rows {
        lines.truncate(rows);
        cut = true;
    }
    if cut {
        let mark = screen.truncation_mark();
        let mark_width = text_width(mark, screen.wide_ambiguous);
        let cols = usize::from(screen.cols.max(1));
        if let Some(last) = lines.last_mut() {
            while !last.is_empty() && (last.width + mark_width > cols || last.ends_with_space()) {
                last.pop();
            }
            last.push(mark, mark_width);
        }
    }
    let no_break = |line: Line| match screen.charset {
        DisplayCharset::Utf8 => line.text(),
        DisplayCharset::Ascii => line.text().replace(ascii::NO_BREAK, " "),
    };
    Fitted {
        lines: lines.into_iter().map(no_break).collect(),
        truncated: cut,
    }
}

/// A text's width in display columns: the sum of its grapheme clusters' widths.
pub fn text_width(text: &str, wide_ambiguous: bool) -> usize {
    text.graphemes(true)
        .map(|g| cluster_width(g, wide_ambiguous))
        .sum()
}

/// A cluster's width: what UAX #11 gives the cluster, or the sum of its characters'
/// widths for a terminal that draws them one by one, whichever is more, and at least
/// one column (a lone combining mark is drawn on a placeholder).
pub fn cluster_width(cluster: &str, wide_ambiguous: bool) -> usize {
    let (whole, chars) = if wide_ambiguous {
        (
            cluster.width_cjk(),
            cluster.chars().map(|c| c.width_cjk().unwrap_or(0)).sum(),
        )
    } else {
        (
            cluster.width(),
            cluster.chars().map(|c| c.width().unwrap_or(0)).sum(),
        )
    };
    whole.max(chars).max(1)
}

/// Whether a character is left off the screen: control characters, and format
/// characters other than the joiners and emoji tags that shape what is drawn.
pub fn is_hidden(c: char) -> bool {
    use icu_properties::CodePointMapData;
    use icu_properties::props::GeneralCategory;
    if c.is_control() {
        return true;
    }
    CodePointMapData::<GeneralCategory>::new().get(c) == GeneralCategory::Format
        && !matches!(c, '\u{200C}' | '\u{200D}' | '\u{E0020}'..='\u{E007F}')
}

/// Whitespace a line may break at (not the no-break spaces).
fn is_breaking_space(c: char) -> bool {
    c.is_whitespace() && !matches!(c, '\u{00A0}' | '\u{2007}' | '\u{202F}')
}

/// The text as the screen will show it: hidden characters left out, breaking
/// whitespace as plain spaces, and on an ASCII screen folded to ASCII.
fn shown(text: &str, charset: DisplayCharset) -> String {
    let cleaned: String = text
        .chars()
        .filter_map(|c| {
            if is_breaking_space(c) {
                Some(' ')
            } else if is_hidden(c) {
                None
            } else {
                Some(c)
            }
        })
        .collect();
    match charset {
        DisplayCharset::Utf8 => cleaned,
        DisplayCharset::Ascii => ascii::fold(&cleaned),
    }
}

/// One line being filled: its clusters and their total width.
#[derive(Clone, Debug, Default)]
struct Line {
    clusters: Vec<(String, usize)>,
    width: usize,
}

impl Line {
    fn push(&mut self, cluster: &str, width: usize) {
        self.clusters.push((cluster.to_owned(), width));
        self.width += width;
    }

    fn pop(&mut self) {
        if let Some((_, width)) = self.clusters.pop() {
            self.width -= width;
        }
    }

    fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    fn ends_with_space(&self) -> bool {
        self.clusters.last().is_some_and(|(c, _)| c == " ")
    }

    fn text(self) -> String {
        self.clusters.into_iter().map(|(c, _)| c).collect()
    }
}

/// A run of clusters with no break opportunity inside, and what separates it from
/// the run before it.
struct Run<'a> {
    clusters: Vec<(&'a str, usize)>,
    width: usize,
    after_space: bool,
}

struct Layout {
    cols: usize,
    lines: Vec<Line>,
    line: Line,
}

impl Layout {
    /// Lays out one paragraph; false when it holds a cluster wider than a line, which
    /// ends the text there.
    fn paragraph(&mut self, text: &str, wide_ambiguous: bool) -> bool {
        let mut fits = true;
        for run in runs(text, wide_ambiguous) {
            if !self.run(run) {
                fits = false;
                break;
            }
        }
        self.lines.push(std::mem::take(&mut self.line));
        fits
    }

    fn run(&mut self, run: Run) -> bool {
        let gap = usize::from(run.after_space && !self.line.is_empty());
        if self.line.width + gap + run.width <= self.cols {
            if gap == 1 {
                self.line.push(" ", 1);
            }
            for (cluster, width) in run.clusters {
                self.line.push(cluster, width);
            }
            return true;
        }
        if !self.line.is_empty() {
            self.lines.push(std::mem::take(&mut self.line));
        }
        for (cluster, width) in run.clusters {
            if width > self.cols {
                return false;
            }
            if self.line.width + width > self.cols {
                self.lines.push(std::mem::take(&mut self.line));
            }
            self.line.push(cluster, width);
        }
        true
    }
}

/// Splits cleaned text into runs at spaces and at the break opportunities of
/// [`breaks::between`].
fn runs(text: &str, wide_ambiguous: bool) -> Vec<Run<'_>> {
    let clusters: Vec<&str> = text.graphemes(true).collect();
    let mut runs: Vec<Run> = Vec::new();
    let mut after_space = false;
    for (i, cluster) in clusters.iter().enumerate() {
        if *cluster == " " {
            after_space = true;
            continue;
        }
        let previous = i.checked_sub(1).and_then(|p| clusters.get(p));
        let joined = match (previous, runs.last_mut()) {
            (Some(prev), Some(run)) if !after_space => {
                (!breaks::between(prev, cluster, clusters.get(i + 1).copied())).then_some(run)
            }
            _ => None,
        };
        let width = cluster_width(cluster, wide_ambiguous);
        match joined {
            Some(run) => {
                run.clusters.push((cluster, width));
                run.width += width;
            }
            None => runs.push(Run {
                clusters: vec![(cluster, width)],
                width,
                after_space: after_space && !runs.is_empty(),
            }),
        }
        after_space = false;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(cols: u16, rows: u16) -> Screen {
        Screen::new(cols, rows)
    }

    #[test]
    fn wraps_words() {
        assert_eq!(
            fit_lines(&["Refund declined by the bank"], size(12, 4)),
            vec!["Refund", "declined by", "the bank"]
        );
    }

    #[test]
    fn paragraphs_start_lines_and_long_words_break() {
        assert_eq!(
            fit_lines(&["OK", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"], size(10, 4)),
            vec!["OK", "ABCDEFGHIJ", "KLMNOPQRST", "UVWXYZ"]
        );
    }

    #[test]
    fn never_overflows() {
        let fitted = fit(
            &["one two three four five six seven eight nine"],
            size(8, 2),
        );
        assert_eq!(fitted.lines, vec!["one two", "three…"]);
        assert!(fitted.truncated);
    }

    #[test]
    fn wide_text_is_measured_in_columns() {
        // Ten CJK characters are twenty columns: two lines on a ten-column screen.
        assert_eq!(
            fit_lines(&["返金が完了しました。ありがとう"], size(10, 4)),
            vec!["返金が完了", "しました。", "ありがとう"]
        );
        // A line never starts with 。: the character before it moves down with it.
        assert_eq!(
            fit_lines(&["返金が完了した。"], size(14, 2)),
            vec!["返金が完了し", "た。"]
        );
        assert_eq!(text_width("返金", false), 4);
        assert_eq!(text_width("Ａ", false), 2);
    }

    #[test]
    fn clusters_count_once_and_are_never_split() {
        let decomposed = "Mu\u{308}ller Mu\u{308}ller";
        assert_eq!(text_width("Mu\u{308}ller", false), 6);
        assert_eq!(
            fit_lines(&[decomposed], size(6, 2)),
            vec!["Mu\u{308}ller", "Mu\u{308}ller"]
        );
        // A long word of decomposed letters breaks between clusters, not inside one.
        assert_eq!(
            fit_lines(&["e\u{301}e\u{301}e\u{301}"], size(2, 2)),
            vec!["e\u{301}e\u{301}", "e\u{301}"]
        );
        // An emoji sequence is one cluster, at least as wide as its parts.
        let family = "👩\u{200D}👩\u{200D}👧";
        assert!(text_width(family, false) >= 2);
        assert_eq!(fit_lines(&[family], size(80, 1)), vec![family]);
    }

    #[test]
    fn the_mark_fits_and_wide_clusters_that_cannot_fit_are_cut() {
        let ja = fit(&["返金", "完了", "です"], size(4, 2));
        assert_eq!(ja.lines, vec!["返金", "完…"]);
        // On one column a two-column character can never be shown.
        let narrow = fit(&["返金"], size(1, 3));
        assert_eq!(narrow.lines, vec!["…"]);
        assert!(narrow.truncated);
        // Where … is drawn two columns wide, it takes two.
        let wide = Screen {
            wide_ambiguous: true,
            ..size(4, 1)
        };
        assert_eq!(fit_lines(&["ABCDEFG"], wide), vec!["AB…"]);
        let one = Screen {
            wide_ambiguous: true,
            ..size(1, 1)
        };
        assert_eq!(fit_lines(&["ABC", "D"], one), vec!["."]);
    }

    #[test]
    fn hidden_characters_are_left_out() {
        let text = "Re\u{202E}fund\u{200B} ok\u{7}\u{FEFF}";
        assert_eq!(fit_lines(&[text], size(20, 1)), vec!["Refund ok"]);
        assert_eq!(fit_lines(&["a\tb\nc"], size(20, 1)), vec!["a b c"]);
    }

    #[test]
    fn no_break_spaces_hold_an_amount_together() {
        assert_eq!(
            fit_lines(&["Total 1\u{a0}250,00\u{a0}$"], size(12, 2)),
            vec!["Total", "1\u{a0}250,00\u{a0}$"]
        );
    }

    #[test]
    fn ascii_screens_get_ascii() {
        let ascii = Screen {
            charset: DisplayCharset::Ascii,
            ..size(14, 3)
        };
        assert_eq!(
            fit_lines(&["Remboursement approuvé", "12,50\u{a0}$"], ascii),
            vec!["Remboursement", "approuve", "12,50 $"]
        );
        let cut = fit(&["one two three four"], Screen { rows: 1, ..ascii });
        assert_eq!(cut.lines, vec!["one two thr..."]);
        let tiny = fit(
            &["one two"],
            Screen {
                cols: 2,
                rows: 1,
                ..ascii
            },
        );
        assert_eq!(tiny.lines, vec!["o."]);
    }

    #[test]
    fn fits_any_text_in_any_size() {
        let text = "Merchant balance too low — ask the manager: ÄÖÜ 12.50 USD REF-000000000000001 返金 คืนเงิน";
        for cols in 1..30 {
            for rows in 1..5 {
                let lines = fit_lines(&[text, "", "x"], size(cols, rows));
                assert!(lines.len() <= rows as usize);
                assert!(lines.iter().all(|l| text_width(l, false) <= cols as usize));
            }
        }
    }
}
