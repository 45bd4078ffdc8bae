//! Log lines as a journal and a log shipper can use them.
//!
//! - **Text** (the default): `LEVEL target: message key=value ...`, the fields in
//!   logfmt: a value with a space, a quote, an `=` or a control character is quoted
//!   and escaped, so `terminal="front counter"` stays one field. The fields of the
//!   spans the line is in (a refund's terminal, ids and payment) follow the line's own.
//! - **Under systemd** (`JOURNAL_STREAM` is set: standard error goes to journald),
//!   every line starts with its syslog priority, `<3>` for errors to `<7>` for debug,
//!   which journald files as the line's priority (`journalctl -p warning` then shows
//!   exactly the warnings), and carries no timestamp of its own (the journal keeps
//!   one).
//! - **JSON** (`[log] format = "json"`): one object per line, the event's and its
//!   spans' fields flattened, for Loki or Elastic.

use std::fmt;
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

pub use crate::config::LogFormat;

/// The syslog priority journald files a line at (sd-daemon(3)).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Whether standard error is connected to journald.
pub fn under_journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some_and(|v| !v.is_empty())
}

/// Starts logging to standard error with `filter` (a `RUST_LOG`-style directive;
/// `RUST_LOG` wins) in `format`.
pub fn init(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let journald = under_journald();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder
            .fmt_fields(Logfmt)
            .event_format(Line {
                journald,
                ansi: !journald && std::io::stderr().is_terminal(),
            })
            .try_init(),
    };
}

/// A text line: priority (under journald) or time, level, target, message, fields.
#[derive(Clone, Copy, Debug)]
pub struct Line {
    /// Write the syslog priority prefix and no time.
    pub journald: bool,
    /// Colour the level.
    pub ansi: bool,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        if self.journald {
            write!(writer, "<{}>", priority(level))?;
        } else {
            let now = jiff::Timestamp::now();
            write!(writer, "{} ", now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))?;
        }
        let name = match level {
            Level::ERROR => "ERROR",
            Level::WARN => " WARN",
            Level::INFO => " INFO",
            Level::DEBUG => "DEBUG",
            Level::TRACE => "TRACE",
        };
        if self.ansi {
            let colour = match level {
                Level::ERROR => "31",
                Level::WARN => "33",
                Level::INFO => "32",
                _ => "34",
            };
            write!(writer, "\x1b[{colour}m{name}\x1b[0m ")?;
        } else {
            write!(writer, "{name} ")?;
        }
        write!(writer, "{}: ", event.metadata().target())?;
        let mut fields = LogfmtVisitor::new(&mut writer);
        event.record(&mut fields);
        fields.result?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(formatted) = span.extensions().get::<FormattedFields<N>>()
                    && !formatted.is_empty()
                {
                    write!(writer, " {formatted}")?;
                }
            }
        }
        writeln!(writer)
    }
}

/// Fields as logfmt `key=value`, quoted where a value needs it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Logfmt;

impl<'writer> FormatFields<'writer> for Logfmt {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = LogfmtVisitor::new(&mut writer);
        visitor.separate = false;
        fields.record(&mut visitor);
        visitor.result
    }
}

struct LogfmtVisitor<'a, 'w> {
    writer: &'a mut Writer<'w>,
    /// Whether a field needs a space before it (after a message or an earlier field).
    separate: bool,
    wrote_message: bool,
    result: fmt::Result,
}

impl<'a, 'w> LogfmtVisitor<'a, 'w> {
    fn new(writer: &'a mut Writer<'w>) -> LogfmtVisitor<'a, 'w> {
        LogfmtVisitor {
            writer,
            separate: false,
            wrote_message: false,
            result: Ok(()),
        }
    }

    fn field(&mut self, name: &str, value: &str) {
        if self.result.is_err() {
            return;
        }
        if name == "message" && !self.wrote_message {
            self.wrote_message = true;
            self.separate = true;
            self.result = write!(self.writer, "{}", escape_message(value));
            return;
        }
        let space = if self.separate { " " } else { "" };
        self.separate = true;
        self.result = write!(self.writer, "{space}{name}={}", quote(value));
    }
}

impl Visit for LogfmtVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        // A string recorded as `?s` arrives as its Debug form, quoted already.
        let text = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) if field.name() != "message" => inner.replace("\\\"", "\""),
            _ => text,
        };
        self.field(field.name(), &text);
    }
}

/// A value as logfmt writes it: bare when it is non-empty and holds no space, quote,
/// `=` or control character; otherwise in double quotes, with `"`, `\` and control
/// characters escaped.
pub fn quote(value: &str) -> String {
    let bare = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c == '\\' || c.is_control());
    if bare {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A message keeps one line: newlines and other control characters are escaped.
fn escape_message(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| match c {
            '\n' => "\\n".to_owned(),
            c if c.is_control() => format!("\\u{{{:x}}}", u32::from(c)),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(journald: bool, json: bool, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let builder = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_writer(move || out.clone());
        if json {
            let subscriber = builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish();
            tracing::subscriber::with_default(subscriber, emit);
        } else {
            let subscriber = builder
                .fmt_fields(Logfmt)
                .event_format(Line {
                    journald,
                    ansi: false,
                })
                .finish();
            tracing::subscriber::with_default(subscriber, emit);
        }
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn values_with_spaces_stay_one_field() {
        let text = lines(false, false, || {
            tracing::info!(terminal = "front counter", ledger = 7, code = %"X=1", "link down");
        });
        assert!(
            text.contains(r#"link down terminal="front counter" ledger=7 code="X=1""#),
            "{text}"
        );
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote(""), r#""""#);
        assert_eq!(quote("say \"hi\"\n"), r#""say \"hi\"\n""#);
    }

    #[test]
    fn under_journald_each_line_carries_its_priority() {
        let text = lines(true, false, || {
            tracing::error!("e");
            tracing::warn!("w");
            tracing::info!("i");
            tracing::debug!("d");
        });
        let prefixes: Vec<&str> = text.lines().map(|l| &l[..3]).collect();
        assert_eq!(prefixes, ["<3>", "<4>", "<6>", "<7>"], "{text}");
        assert!(!text.contains("20"), "no timestamp of its own: {text}");
    }

    #[test]
    fn a_refunds_span_fields_follow_every_line_about_it() {
        let text = lines(false, false, || {
            let span = tracing::info_span!("refund", terminal = "T1", refund = "REF 1", ledger = 3);
            let _in = span.enter();
            tracing::warn!(to = "NEEDS_ATTENTION", "refund state changed");
        });
        assert!(
            text.contains(
                r#"refund state changed to=NEEDS_ATTENTION terminal=T1 refund="REF 1" ledger=3"#
            ),
            "{text}"
        );
    }

    #[test]
    fn json_lines_flatten_the_fields() {
        let text = lines(false, true, || {
            let span = tracing::info_span!("refund", terminal = "front counter");
            let _in = span.enter();
            tracing::warn!(ledger = 5, "refund state changed");
        });
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "refund state changed");
        assert_eq!(line["ledger"], 5);
        assert_eq!(line["span"]["terminal"], "front counter");
    }
}
