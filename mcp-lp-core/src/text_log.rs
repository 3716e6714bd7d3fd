//! The `--log-format text` line: `timestamp LEVEL target: message key=value ...`, one event per
//! line, with every string escaped and quoted as a JSON string, so no client-chosen value (a
//! request id, a principal, a tool name) can end the line, forge a field or another event, or
//! hide behind invisible characters.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::json_log::{needs_escape, write_json_str, write_timestamp};

/// The event format of `--log-format text`.
///
/// ```
/// use tracing_subscriber::fmt;
///
/// let subscriber = fmt().event_format(mcp_lp::text_log::TextLines).finish();
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(target: "mcp_lp::audit", request_id = "7\nforged", "tools/call");
/// });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TextLines;

impl<S, N> FormatEvent<S, N> for TextLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        write_line(&mut line, event)?;
        writer.write_str(&line)
    }
}

fn write_line(line: &mut String, event: &Event<'_>) -> fmt::Result {
    let meta = event.metadata();
    write_timestamp(line)?;
    write!(line, " {:>5} ", meta.level().as_str())?;
    write_text(line, meta.target())?;
    line.push(':');
    let mut fields = FieldWriter {
        line,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    line.push('\n');
    Ok(())
}

/// Plain text as it is, unless it needs escaping or could be read as a field (`=`) or a
/// quoted value: then as a JSON string.
fn write_text(line: &mut String, text: &str) -> fmt::Result {
    if text.is_empty() || needs_escape(text) || text.contains(['=', ' ']) {
        write_json_str(line, text)
    } else {
        line.push_str(text);
        Ok(())
    }
}

struct FieldWriter<'a> {
    line: &'a mut String,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    fn put(&mut self, field: &Field, value: impl FnOnce(&mut String) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.line.push(' ');
        if field.name() != "message" {
            self.line.push_str(field.name());
            self.line.push('=');
        }
        self.result = value(self.line);
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.put(field, |line| write_message(line, value));
        } else {
            self.put(field, |line| write_json_str(line, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |line| write!(line, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |line| write!(line, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |line| write!(line, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, |line| write!(line, "{value}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.record_str(field, &text);
    }
}

/// The message: as it is when it is plain, else quoted and escaped like a value.
fn write_message(line: &mut String, text: &str) -> fmt::Result {
    if needs_escape(text) || text.contains('=') {
        write_json_str(line, text)
    } else {
        line.push_str(text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(f: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(TextLines)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn rejects_newline_forging_a_log_line_in_text_format() {
        let forged = "7\n2026-11-21T14:53:07.123456Z  INFO mcp_lp::audit: tools/call principal=\"admin@example.com\" decision=\"allow\"";
        let text = capture(|| {
            tracing::warn!(
                target: "mcp_lp::audit",
                request_id = forged,
                principal = "mallory\u{202e}moc.elpmaxe@nimda",
                reason = %"display\r\nvalue",
                detail = ?"debug\nvalue",
                "tools/call {}", "with\nnewline"
            );
        });
        assert_eq!(text.matches('\n').count(), 1, "one line per event: {text}");
        assert!(text.ends_with('\n'), "{text}");
        assert!(text.contains(r#"request_id="7\n2026-11-21"#), "{text}");
        assert!(text.contains(r#"principal="mallory\u202emoc"#), "{text}");
        assert!(text.contains(r#"reason="display\r\nvalue""#), "{text}");
        assert!(text.contains(r#"detail="\"debug\\nvalue\"""#), "{text}");
        assert!(text.contains(r#""tools/call with\nnewline""#), "{text}");
        assert!(!text.contains('\u{202e}'), "{text}");
    }

    #[test]
    fn writes_plain_events_readably() {
        let text = capture(|| {
            tracing::info!(target: "mcp_lp::audit", tool = "read_note", bytes = 42u64, ok = true, "tools/call");
        });
        assert!(
            text.ends_with(" INFO mcp_lp::audit: tools/call tool=\"read_note\" bytes=42 ok=true\n"),
            "{text}"
        );
    }
}
