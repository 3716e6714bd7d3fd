//! JSON-lines log format: one object per event with `timestamp`, `level`, `target` and the
//! event's fields at the top level.
//!
//! tracing-subscriber's own JSON format collects each event into a map of owned values before
//! writing it; this one streams fields straight into the line with JSON escaping, which matters
//! because every `tools/call` writes an audit event.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

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
        // The line is built in a reused buffer of this thread's and handed to the writer whole:
        // pushing to a `String` directly costs less than a dynamic call per piece. A field
        // whose `Debug` logs finds the buffer in use and gets a fresh one.
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                let written = write_line(&mut line, event).and_then(|()| writer.write_str(&line));
                // One oversized event must not pin its buffer for the thread's lifetime.
                if line.capacity() > MAX_KEPT_LINE_BYTES {
                    *line = String::new();
                }
                written
            }
            Err(_) => {
                let mut line = String::new();
                write_line(&mut line, event)?;
                writer.write_str(&line)
            }
        })
    }
}

/// The largest line buffer kept for the next event.
const MAX_KEPT_LINE_BYTES: usize = 64 * 1024;

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

fn write_line(line: &mut String, event: &Event<'_>) -> fmt::Result {
    let meta = event.metadata();
    // An audit event is already a sealed JSON line: written as it is, so that the line on
    // stderr verifies like the one in a durable sink.
    if meta.target() == crate::audit::AUDIT_TARGET {
        let mut chained = Chained { line, found: false };
        event.record(&mut chained);
        if chained.found {
            line.push('\n');
            return Ok(());
        }
    }
    line.push_str("{\"timestamp\":\"");
    write_timestamp(line)?;
    line.push_str("\",\"level\":\"");
    line.push_str(meta.level().as_str());
    line.push_str("\",\"target\":");
    write_json_str(line, meta.target())?;
    let mut fields = FieldWriter {
        line,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    line.push_str("}\n");
    Ok(())
}

/// Copies an audit event's `chained` field into the line.
struct Chained<'a> {
    line: &'a mut String,
    found: bool,
}

impl Visit for Chained<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "chained" && !self.found {
            self.line.push_str(value);
            self.found = true;
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

struct FieldWriter<'a> {
    line: &'a mut String,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    fn put(&mut self, field: &Field, value: impl FnOnce(&mut String) -> fmt::Result) {
        if self.result.is_ok() {
            self.line.push_str(",\"");
            self.result = Escaping(&mut *self.line)
                .write_str(field.name())
                .and_then(|()| {
                    self.line.push_str("\":");
                    value(self.line)
                });
        }
    }

    fn put_literal(&mut self, field: &Field, json: &str) {
        self.put(field, |line| {
            line.push_str(json);
            Ok(())
        });
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |line| write_json_str(line, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put_literal(field, itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put_literal(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put_literal(field, if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.put(field, |line| write!(line, "{value}"));
        } else {
            self.put(field, |line| write!(line, "\"{value}\""));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |line| {
            line.push('"');
            write!(Escaping(&mut *line), "{value:?}")?;
            line.push('"');
            Ok(())
        });
    }
}

thread_local! {
    /// The last whole second formatted on this thread, as `YYYY-MM-DDTHH:MM:SS`: events come
    /// many to a second, and turning seconds into a calendar date is most of a timestamp's cost.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// The current time in RFC 3339, UTC, to the microsecond: `2026-11-21T14:53:07.123456Z`.
pub(crate) fn write_timestamp(writer: &mut impl fmt::Write) -> fmt::Result {
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        return write!(writer, "{}", jiff::Timestamp::now());
    };
    let seconds = now.as_secs();
    let (cached, mut whole) = SECOND.get();
    if cached != seconds {
        let formatted = i64::try_from(seconds)
            .ok()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map(|t| t.to_string());
        // `Timestamp`'s display of a whole second is exactly `YYYY-MM-DDTHH:MM:SSZ`.
        match formatted.as_deref().map(str::as_bytes) {
            Some([date_time @ .., b'Z']) if date_time.len() == whole.len() => {
                whole.copy_from_slice(date_time);
                SECOND.set((seconds, whole));
            }
            _ => return write!(writer, "{}", jiff::Timestamp::now()),
        }
    }
    let mut fraction = *b".000000Z";
    let mut micros = now.subsec_micros();
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    for part in [&whole[..], &fraction[..]] {
        writer.write_str(std::str::from_utf8(part).map_err(|_| fmt::Error)?)?;
    }
    Ok(())
}

/// `text` as a JSON string literal, with everything [`Escaping`] escapes escaped.
pub(crate) fn write_json_str(writer: &mut impl fmt::Write, text: &str) -> fmt::Result {
    writer.write_char('"')?;
    Escaping(&mut *writer).write_str(text)?;
    writer.write_char('"')
}

/// The bytes that may start something [`Escaping`] rewrites: ASCII controls, `"` and `\\`, and
/// the lead bytes of the invisible characters of [`is_invisible`]. One table lookup per byte on
/// the common path.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[0x7f] = true;
    // C1 controls and the soft hyphen; U+061C; U+180E; U+200B..U+206F; U+FEFF.
    table[0xc2] = true;
    table[0xd8] = true;
    table[0xe1] = true;
    table[0xe2] = true;
    table[0xef] = true;
    table
};

/// Characters that change how a line reads without showing themselves: C1 controls, bidi
/// embeddings, overrides and isolates, zero-width characters, line and paragraph separators.
/// A principal id or request id holding one could make an audit line read as something else.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{80}'..='\u{9f}'
            | '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// Whether [`Escaping`] would rewrite any of `text`.
pub(crate) fn needs_escape(text: &str) -> bool {
    text.bytes().any(|b| NEEDS_ESCAPE[usize::from(b)])
}

/// Escapes what passes through it as the inside of a JSON string: `"`, `\\`, every ASCII
/// control character (so a hostile value cannot break a line or forge a field), and invisible
/// characters (so it cannot reorder or hide what a reader of the line sees). JSON readers get
/// every value back exactly.
struct Escaping<W>(W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if !needs_escape(text) {
            return self.0.write_str(text);
        }
        let mut start = 0;
        for (i, c) in text.char_indices() {
            let escape = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\0'..='\u{1f}' | '\u{7f}' => "",
                c if is_invisible(c) => "",
                _ => continue,
            };
            self.0.write_str(&text[start..i])?;
            if escape.is_empty() {
                // Every character escaped is in the Basic Multilingual Plane.
                write!(self.0, "\\u{:04x}", u32::from(c))?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + c.len_utf8();
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
    fn stamps_rfc3339_utc_to_the_microsecond() {
        for _ in 0..2 {
            // The second event reuses the cached second.
            let before = jiff::Timestamp::now();
            let event = capture(|| tracing::info!("m"));
            let after = jiff::Timestamp::now();
            let text = event["timestamp"].as_str().unwrap();
            assert_eq!(text.len(), "2026-11-21T14:53:07.123456Z".len(), "{text}");
            assert_eq!(&text[19..20], ".", "{text}");
            let stamped: jiff::Timestamp = text.parse().unwrap();
            let slack = jiff::SignedDuration::from_micros(1);
            assert!(before - slack <= stamped && stamped <= after, "{text}");
        }
    }

    #[test]
    fn keeps_no_oversized_line_buffer_after_a_large_event() {
        let big = "x".repeat(4 * MAX_KEPT_LINE_BYTES);
        let event = capture(|| tracing::info!(value = big.as_str(), "m"));
        assert_eq!(event["value"].as_str().map(str::len), Some(big.len()));
        let kept = LINE.with(|line| line.borrow().capacity());
        assert!(kept <= MAX_KEPT_LINE_BYTES, "kept {kept} bytes");
    }

    #[test]
    fn escapes_bidi_and_zero_width_characters_in_json_lines() {
        let hostile = "mallory\u{202e}moc.elpmaxe@ecila\u{200b}\u{2066}x\u{9b}y\u{2028}z";
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "mcp_lp::audit", principal = hostile, "tools/call");
        });
        let raw = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        for escaped in ["\\u202e", "\\u200b", "\\u2066", "\\u009b", "\\u2028"] {
            assert!(raw.contains(escaped), "{escaped} in {raw}");
        }
        assert!(raw.is_ascii(), "{raw}");
        let event: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(event["principal"], hostile);
        // Other non-ASCII text is written as it is.
        let event = capture(|| tracing::info!(value = "café ü €", "m"));
        assert_eq!(event["value"], "café ü €");
    }

    #[test]
    fn escapes_debug_values() {
        let event = capture(|| tracing::info!(value = ?"quo\"te", "m"));
        assert_eq!(event["value"], "\"quo\\\"te\"");
    }
}
