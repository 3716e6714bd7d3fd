//! The digest of a call's arguments: SHA-256 of their canonical JSON, never the arguments.

use std::io;

use rmcp::model::JsonObject;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The SHA-256 of a call's arguments in canonical form, and the canonical form's length.
///
/// The canonical form is compact JSON with object keys sorted bytewise at every depth, so the
/// same arguments hash the same whatever order a client sent them in. Absent arguments hash as
/// `{}`.
///
/// ```
/// use mcp_lp::audit::ArgumentDigest;
///
/// let a = serde_json::json!({"b": 1, "a": [true, null]});
/// let b = serde_json::json!({"a": [true, null], "b": 1});
/// let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
/// assert_eq!(ArgumentDigest::of(Some(a)), ArgumentDigest::of(Some(b)));
/// assert_eq!(ArgumentDigest::of(Some(a)).bytes(), r#"{"a":[true,null],"b":1}"#.len());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentDigest {
    sha256: [u8; 32],
    bytes: usize,
}

impl ArgumentDigest {
    /// Digest `arguments` in canonical form.
    pub fn of(arguments: Option<&JsonObject>) -> Self {
        let mut sink = HashingWriter {
            hasher: Sha256::new(),
            bytes: 0,
        };
        match arguments {
            Some(object) => write_canonical_object(&mut sink, object),
            None => sink.put(b"{}"),
        }
        Self {
            sha256: sink.hasher.finalize().into(),
            bytes: sink.bytes,
        }
    }

    /// Digest what a multi-round-trip retry adds to a call: the client's `inputResponses` and
    /// the `requestState` it echoes, as the canonical form of
    /// `{"inputResponses": ..., "requestState": ...}` with absent members left out. `None` for
    /// a call that carries neither.
    ///
    /// ```
    /// use mcp_lp::audit::ArgumentDigest;
    ///
    /// assert_eq!(ArgumentDigest::of_round(None, None), None);
    /// let round = ArgumentDigest::of_round(None, Some("sealed")).unwrap();
    /// assert_eq!(round.bytes(), r#"{"requestState":"sealed"}"#.len());
    /// ```
    pub fn of_round(
        input_responses: Option<&rmcp::model::InputResponses>,
        request_state: Option<&str>,
    ) -> Option<Self> {
        if input_responses.is_none() && request_state.is_none() {
            return None;
        }
        let mut round = JsonObject::new();
        if let Some(responses) = input_responses {
            let responses = responses.iter().map(|(k, v)| (k.clone(), v.clone()));
            round.insert("inputResponses".into(), Value::Object(responses.collect()));
        }
        if let Some(state) = request_state {
            round.insert("requestState".into(), Value::String(state.to_owned()));
        }
        Some(Self::of(Some(&round)))
    }

    /// The SHA-256 of `text` as 64 lowercase hex digits: what the trail keeps of a value it
    /// must not hold, such as another principal's session id.
    pub fn of_text(text: &str) -> String {
        super::chain::hex(&Sha256::digest(text.as_bytes()))
    }

    /// The digest as 64 lowercase hex digits.
    pub fn sha256_hex(&self) -> String {
        self.hex().as_str().to_owned()
    }

    /// The digest as 64 lowercase hex digits, in a buffer on the stack.
    pub(crate) fn hex(&self) -> HexDigest {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 64];
        for (i, byte) in self.sha256.iter().enumerate() {
            hex[2 * i] = DIGITS[usize::from(byte >> 4)];
            hex[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
        }
        HexDigest(hex)
    }

    /// The length in bytes of the canonical form: the size limit applies to this.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

pub(crate) struct HexDigest([u8; 64]);

impl HexDigest {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

struct HashingWriter {
    hasher: Sha256,
    bytes: usize,
}

impl HashingWriter {
    fn put(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len();
    }
}

impl io::Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.put(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn write_canonical_object(sink: &mut HashingWriter, object: &JsonObject) {
    // serde_json's map is ordered unless its `preserve_order` feature is on somewhere in the
    // build; sort only when the keys are not already in byte order.
    let in_order = object
        .keys()
        .zip(object.keys().skip(1))
        .all(|(a, b)| a.as_bytes() < b.as_bytes());
    if in_order {
        write_entries(sink, object.iter());
    } else {
        let mut entries: Vec<_> = object.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        write_entries(sink, entries.into_iter());
    }
}

fn write_entries<'a>(
    sink: &mut HashingWriter,
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
) {
    sink.put(b"{");
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            sink.put(b",");
        }
        write_scalar(sink, key.as_str());
        sink.put(b":");
        write_canonical(sink, value);
    }
    sink.put(b"}");
}

fn write_canonical(sink: &mut HashingWriter, value: &Value) {
    match value {
        Value::Object(object) => write_canonical_object(sink, object),
        Value::Array(items) => {
            sink.put(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sink.put(b",");
                }
                write_canonical(sink, item);
            }
            sink.put(b"]");
        }
        scalar => write_scalar(sink, scalar),
    }
}

fn write_scalar(sink: &mut HashingWriter, value: &(impl serde::Serialize + ?Sized)) {
    // Serializing a JSON scalar into an in-memory writer cannot fail.
    let _ = serde_json::to_writer(sink, value);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn digest(value: Value) -> ArgumentDigest {
        ArgumentDigest::of(value.as_object())
    }

    /// Found by the `argument_digest` fuzz target: with serde_json's default number parse, a
    /// canonical form written and read back could digest differently.
    #[test]
    fn accepts_canonical_form_read_back_as_the_same_arguments() {
        for text in [
            r#"{"n":123456789012345678590}"#,
            r#"{"n":-1.5E56}"#,
            r#"{"n":[0,-0,1.0,1e2,123456789012345678590,-1.5E56]}"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let written = serde_json::to_string(&value).unwrap();
            let read_back: Value = serde_json::from_str(&written).unwrap();
            assert_eq!(digest(read_back), digest(value), "{text}");
        }
    }

    #[test]
    fn canonical_form_sorts_keys_at_every_depth() {
        let a = digest(json!({"z": {"b": 1, "a": 2}, "a": "x"}));
        let b = digest(json!({"a": "x", "z": {"a": 2, "b": 1}}));
        assert_eq!(a, b);
        assert_eq!(a.bytes(), r#"{"a":"x","z":{"a":2,"b":1}}"#.len());
    }

    #[test]
    fn digest_matches_sha256_of_canonical_text() {
        let d = digest(json!({"name": "q3"}));
        let expected = Sha256::digest(br#"{"name":"q3"}"#);
        let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(d.sha256_hex(), hex);
    }

    #[test]
    fn absent_arguments_hash_as_empty_object() {
        assert_eq!(ArgumentDigest::of(None), digest(json!({})));
    }

    #[test]
    fn different_values_hash_differently() {
        assert_ne!(digest(json!({"n": 1})), digest(json!({"n": "1"})));
        assert_ne!(digest(json!({"a": [1, 2]})), digest(json!({"a": [2, 1]})));
    }

    #[test]
    fn strings_are_escaped_in_canonical_form() {
        let d = digest(json!({"k": "line\nbreak \"quoted\""}));
        assert_eq!(d.bytes(), r#"{"k":"line\nbreak \"quoted\""}"#.len());
    }
}
