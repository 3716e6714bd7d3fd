//! JSON-lines log format: one object per event with `timestamp`, `level`, `target` and the
//! event's fields at the top level.
//!
//! tracing-subscriber's own JSON format collects each event into a map of owned values before
//! writing it; this one streams fields straight into the line with JSON escaping, which matters
//! because every `tools/call` writes an audit event.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format of [`crate::cli::json_subscriber`].
///
/// ```
/// use tracing_subscriber::fmt;
///
/// let subscriber = fmt().event_format(mcp_lp::json_log::JsonLines).finish();
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(target: "mcp_lp::audit", principal = "alice", "tools/call");
/// });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
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
        let meta = event.metadata();
        write!(
            writer,
            "{{\"timestamp\":\"{}\",\"level\":\"{}\",\"target\":",
            jiff::Timestamp::now(),
            meta.level()
        )?;
        write_json_str(&mut writer, meta.target())?;
        let mut fields = FieldWriter {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str("}\n")
    }
}

struct FieldWriter<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl FieldWriter<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.writer.write_char(',')?;
        write_json_str(self.writer, field.name())?;
        self.writer.write_char(':')
    }

    fn put(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| value(self.writer));
        }
    }
}

impl Visit for FieldWriter<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |w| write_json_str(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.put(field, |w| write!(w, "{value}"));
        } else {
            self.put(field, |w| write!(w, "\"{value}\""));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |w| {
            w.write_char('"')?;
            write!(Escaping(&mut *w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

fn write_json_str(writer: &mut impl fmt::Write, text: &str) -> fmt::Result {
    writer.write_char('"')?;
    Escaping(&mut *writer).write_str(text)?;
    writer.write_char('"')
}

/// Escapes what passes through it as the inside of a JSON string: `"`, `\\`, and every ASCII
/// control character (so a hostile value cannot break a line or forge a field).
struct Escaping<W>(W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let bytes = text.as_bytes();
        if !bytes
            .iter()
            .any(|&b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f)
        {
            return self.0.write_str(text);
        }
        let mut start = 0;
        for (i, &byte) in bytes.iter().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f | 0x7f => "",
                _ => continue,
            };
            // Every byte matched above is ASCII, so `start..i` lies on char boundaries.
            self.0.write_str(&text[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&text[start..])
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

    fn capture(f: impl FnOnce()) -> serde_json::Value {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "one line per event: {text}");
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn writes_fields_at_top_level_as_valid_json() {
        let event = capture(|| {
            tracing::warn!(
                target: "mcp_lp::audit",
                principal = "al\"ice\n\u{1}\\",
                control = "del\u{7f} tab\t é",
                bytes = 42u64,
                delta = -3i64,
                ok = true,
                ratio = 0.5f64,
                tool = %"read_note",
                "tools/call {}", "done"
            );
        });
        assert_eq!(event["target"], "mcp_lp::audit");
        assert_eq!(event["level"], "WARN");
        assert_eq!(event["message"], "tools/call done");
        assert_eq!(event["principal"], "al\"ice\n\u{1}\\");
        assert_eq!(event["control"], "del\u{7f} tab\t é");
        assert_eq!(event["bytes"], 42);
        assert_eq!(event["delta"], -3);
        assert_eq!(event["ok"], true);
        assert_eq!(event["ratio"], 0.5);
        assert_eq!(event["tool"], "read_note");
        assert!(event["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn escapes_debug_values() {
        let event = capture(|| tracing::info!(value = ?"quo\"te", "m"));
        assert_eq!(event["value"], "\"quo\\\"te\"");
    }
}
