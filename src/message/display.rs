//! Fitting text to a terminal's display: word wrap, hard breaks, never overflow.

use super::types::DisplaySize;

/// Lays out paragraphs on a display of `size`: each paragraph starts a new line, words
/// wrap at the column limit, a word longer than a line is broken, and when there are
/// more lines than rows the last row ends with `…` to show text was cut.
pub fn fit_lines<S: AsRef<str>>(paragraphs: &[S], size: DisplaySize) -> Vec<String> {
    let cols = usize::from(size.cols.max(1));
    let rows = usize::from(size.rows.max(1));
    let mut lines: Vec<String> = Vec::new();
    for paragraph in paragraphs {
        let mut line = String::new();
        let mut line_len = 0;
        for word in paragraph.as_ref().split_whitespace() {
            let mut word: Vec<char> = word.chars().filter(|c| !c.is_control()).collect();
            if line_len > 0 && line_len + 1 + word.len() <= cols {
                line.push(' ');
                line.extend(word.iter());
                line_len += 1 + word.len();
                continue;
            }
            if line_len > 0 {
                lines.push(std::mem::take(&mut line));
            }
            while word.len() > cols {
                let rest = word.split_off(cols);
                lines.push(word.into_iter().collect());
                word = rest;
            }
            line_len = word.len();
            line = word.into_iter().collect();
        }
        lines.push(line);
    }
    if lines.len() > rows {
        lines.truncate(rows);
        if let Some(last) = lines.last_mut() {
            let mut chars: Vec<char> = last.chars().collect();
            chars.truncate(cols.saturating_sub(1));
            chars.push('…');
            *last = chars.into_iter().collect();
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(cols: u16, rows: u16) -> DisplaySize {
        DisplaySize { cols, rows }
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
        let lines = fit_lines(
            &["one two three four five six seven eight nine"],
            size(8, 2),
        );
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.chars().count() <= 8));
        assert!(lines[1].ends_with('…'));
    }

    #[test]
    fn fits_any_text_in_any_size() {
        let text = "Merchant balance too low — ask the manager: ÄÖÜ 12.50 USD REF-000000000000001";
        for cols in 1..30 {
            for rows in 1..5 {
                let lines = fit_lines(&[text, "", "x"], size(cols, rows));
                assert!(lines.len() <= rows as usize);
                assert!(lines.iter().all(|l| l.chars().count() <= cols as usize));
            }
        }
    }
}
