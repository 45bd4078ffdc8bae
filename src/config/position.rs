//! Where each key of a configuration text is. The `toml` crate's parser gives every
//! key and value a byte span; they are read once into a list of dotted keys, so an
//! error can name the line of any key (`terminal[1].baud`) without scanning the text.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A text parsed once: its document, with the span of every key and value, and
/// where each key is.
pub(crate) struct Parsed<'t> {
    /// The document, as far as it could be read.
    pub(crate) document: Spanned<DeTable<'t>>,
    /// Where each key read is.
    pub(crate) positions: Positions,
    /// The first syntax error, if any.
    pub(crate) error: Option<toml::de::Error>,
}

/// Parses `text`; a text that is not TOML throughout still gives the keys before
/// its first error, so that error can be placed.
pub(crate) fn parse(text: &str) -> Parsed<'_> {
    let (document, errors) = DeTable::parse_recoverable(text);
    let positions = Positions::new(text, document.get_ref());
    Parsed {
        document,
        positions,
        error: errors.into_iter().next(),
    }
}

/// One key, or one element of an array, and where it is.
#[derive(Clone, Debug)]
struct Entry {
    /// Its dotted key with array indices (`terminal[1].baud`).
    path: String,
    /// The same without indices (`terminal.baud`), as parse errors name keys.
    plain: String,
    /// How many keys and indices deep it is, so the innermost of several wins.
    depth: usize,
    /// The key (for an array element, the element itself: a `[[table]]` header).
    key: Range<usize>,
    /// The value (for a table, its header).
    value: Range<usize>,
}

/// The position of every key of one TOML text. Its `Debug` shows keys and offsets,
/// never values.
#[derive(Clone, Debug, Default)]
pub(crate) struct Positions {
    /// In the order they appear in the text.
    entries: Vec<Entry>,
    /// The byte offset where each line starts.
    line_starts: Vec<usize>,
}

impl Positions {
    /// Reads the positions of `text`; a text that is not TOML throughout still gives
    /// the keys before its first error.
    #[cfg(test)]
    fn of(text: &str) -> Positions {
        parse(text).positions
    }

    /// The positions of the keys of `document`, parsed from `text`.
    fn new(text: &str, document: &DeTable<'_>) -> Positions {
        let mut entries = Vec::new();
        collect(document, "", "", 0, &mut entries);
        entries.sort_by_key(|e| (e.key.start, e.depth));
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Positions {
            entries,
            line_starts,
        }
    }

    /// The line (from 1) of a byte offset.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&start| start <= offset)
            .max(1)
    }

    /// The innermost key at a byte offset, without array indices (`terminal.devise`).
    /// Only a key on the offset's own line counts: after a syntax error the table
    /// being read when it stopped may span lines it never understood.
    pub(crate) fn key_at(&self, offset: usize) -> Option<&str> {
        let within = |span: &Range<usize>| span.contains(&offset) || span.start == offset;
        let line = self.line(offset);
        self.entries
            .iter()
            .filter(|e| within(&e.key) || within(&e.value))
            .filter(|e| self.line(e.key.start) == line)
            .max_by_key(|e| e.depth)
            .map(|e| e.plain.as_str())
    }

    /// The line to blame for a dotted key (`shutdown.grace_ms`, `terminal[2]`): where
    /// it is set; else the first key set below it (`[messages.states]` for
    /// `messages`); else the nearest table above it that is there.
    pub(crate) fn line_of(&self, path: &str) -> Option<usize> {
        let exact = |path: &str| self.entries.iter().find(|e| e.path == path);
        let below = self.entries.iter().find(|e| {
            e.path
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with(['.', '[']))
        });
        let mut found = exact(path).or(below);
        let mut up = path;
        while found.is_none()
            && let Some(cut) = up.rfind(['.', '['])
        {
            up = up.get(..cut).unwrap_or_default();
            found = exact(up);
        }
        found.map(|e| self.line(e.key.start))
    }
}

/// Adds an entry for every key of `table` and below, their paths after `path`.
fn collect(table: &DeTable<'_>, path: &str, plain: &str, depth: usize, out: &mut Vec<Entry>) {
    for (key, value) in table {
        let join = |prefix: &str| match prefix {
            "" => key.get_ref().to_string(),
            _ => format!("{prefix}.{}", key.get_ref()),
        };
        let (path, plain) = (join(path), join(plain));
        out.push(Entry {
            path: path.clone(),
            plain: plain.clone(),
            depth: depth + 1,
            key: key.span(),
            value: value.span(),
        });
        descend(value.get_ref(), &path, &plain, depth + 1, out);
    }
}

/// Adds the entries inside a value: a table's keys, an array's elements.
fn descend(value: &DeValue<'_>, path: &str, plain: &str, depth: usize, out: &mut Vec<Entry>) {
    match value {
        DeValue::Table(table) => collect(table, path, plain, depth, out),
        DeValue::Array(array) => {
            for (i, element) in array.iter().enumerate() {
                let path = format!("{path}[{i}]");
                out.push(Entry {
                    path: path.clone(),
                    plain: plain.to_owned(),
                    depth: depth + 1,
                    key: element.span(),
                    value: element.span(),
                });
                descend(element.get_ref(), &path, plain, depth + 1, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
top.dotted = 1
[[terminal]]
device = \"a\"
[[terminal]] # the second
device = \"b\"
baud = 0
[messages.states]
\"-SUCCEEDED\" = [\"ok\"]
[shutdown]
";

    #[test]
    fn keys_are_found_by_their_dotted_path() {
        let at = Positions::of(TEXT);
        assert_eq!(at.line_of("top.dotted"), Some(1));
        assert_eq!(at.line_of("terminal[0].device"), Some(3));
        assert_eq!(at.line_of("terminal[1].baud"), Some(6));
        assert_eq!(at.line_of("terminal[1]"), Some(4));
        assert_eq!(at.line_of("messages.states.-SUCCEEDED"), Some(8));
        // Not set: the first key below it, else the nearest table above it.
        assert_eq!(at.line_of("messages"), Some(7));
        assert_eq!(at.line_of("shutdown.grace_ms"), Some(9));
        assert_eq!(at.line_of("nowhere"), None);
    }

    #[test]
    fn an_offset_names_the_innermost_key_there() {
        let at = Positions::of(TEXT);
        let offset = TEXT.find("baud").unwrap();
        assert_eq!(at.line(offset), 6);
        assert_eq!(at.key_at(offset), Some("terminal.baud"));
        let offset = TEXT.find("\"ok\"").unwrap();
        assert_eq!(at.key_at(offset), Some("messages.states.-SUCCEEDED"));
        assert_eq!(at.line(0), 1);
        assert_eq!(at.line(TEXT.len()), 10);
        // Past a syntax error, a table's span may run over lines it never read.
        let broken = "[ledger\npath = 1\n[[terminal]]\n";
        let at = Positions::of(broken);
        assert_eq!(at.key_at(broken.find('\n').unwrap()), None);
    }
}
