//! The keyed hash chain: every event carries its `seq`, the previous event's hash and its own
//! hash, an HMAC-SHA256 over its RFC 8785 canonical JSON (every field but `hash`). Without the
//! key, an edited, inserted or reordered line cannot be given a hash that verifies.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::AUDIT_TARGET;
use super::record::{FieldValue, MAX_EXACT_INT, Record};
use crate::json_log;

/// The `prev` of an instance's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The key id of a chain sealed without a configured key: it detects damage, not forgery.
pub const UNKEYED: &str = "unkeyed";

/// The shortest chain key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// A key that seals the chain, with the id written into every event it seals.
#[derive(Clone)]
pub struct ChainKey {
    id: String,
    mac: Hmac<Sha256>,
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a chain key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainKeyError {
    /// The key is shorter than [`MIN_KEY_BYTES`].
    #[error("audit key `{id}` is {bytes} bytes; at least {MIN_KEY_BYTES} are needed")]
    TooShort {
        /// The key's id.
        id: String,
        /// Its length.
        bytes: usize,
    },
    /// The id is empty, too long, or not made of letters, digits, `-`, `_` and `.`.
    #[error(
        "audit key id `{0}` must be 1 to 64 letters, digits, `-`, `_` or `.`, and not `unkeyed`"
    )]
    BadId(String),
}

impl ChainKey {
    /// A key from its id and secret.
    pub fn new(id: &str, secret: &SecretString) -> Result<Self, ChainKeyError> {
        let valid_id = !id.is_empty()
            && id.len() <= 64
            && id != UNKEYED
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid_id {
            return Err(ChainKeyError::BadId(id.to_owned()));
        }
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(ChainKeyError::TooShort {
                id: id.to_owned(),
                bytes: bytes.len(),
            });
        }
        Ok(Self {
            id: id.to_owned(),
            mac: Hmac::new_from_slice(bytes).map_err(|_| ChainKeyError::BadId(id.to_owned()))?,
        })
    }

    /// The key of a chain without a configured key: HMAC with the empty key, id `unkeyed`.
    pub fn unkeyed() -> Self {
        Self {
            id: UNKEYED.to_owned(),
            // HMAC accepts a key of any length, the empty one included.
            mac: Hmac::new_from_slice(&[]).unwrap_or_else(|_| unreachable!()),
        }
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The HMAC-SHA256 of `data` under this key, as 64 lowercase hex digits.
    pub(crate) fn mac_hex(&self, data: &[u8]) -> String {
        self.mac(data).as_str().to_owned()
    }

    pub(crate) fn mac(&self, data: &[u8]) -> Hex64 {
        let mut mac = self.mac.clone();
        mac.update(data);
        Hex64::of(&mac.finalize().into_bytes().into())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// One sealed event: its place in the chain and its line (without the newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEvent {
    /// The chain's instance.
    pub instance: String,
    /// The event's sequence number in its instance's chain, from 0.
    pub seq: u64,
    /// The event's hash.
    pub hash: String,
    /// The event's kind.
    pub event: String,
    /// The line as written: one JSON object.
    pub line: String,
}

/// One process instance's chain.
#[derive(Debug)]
pub(crate) struct Chain {
    instance: Arc<str>,
    key: ChainKey,
    next_seq: u64,
    prev: Hex64,
    /// The canonical body of the event being sealed, reused from event to event.
    body: Vec<u8>,
    /// A development switch in force, named in every event (`dev`).
    dev: Option<&'static str>,
}

/// 32 bytes as 64 lowercase hex digits, on the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hex64([u8; 64]);

impl Hex64 {
    fn of(bytes: &[u8; 32]) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (i, byte) in bytes.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(byte >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
        }
        Self(out)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// An event just sealed: its place in the chain and its line.
#[derive(Debug)]
pub(crate) struct Sealed {
    pub(crate) seq: u64,
    pub(crate) hash: Hex64,
    pub(crate) line: String,
}

/// The timestamp of an event, RFC 3339 to the microsecond, on the stack.
struct Timestamp {
    text: [u8; 40],
    len: usize,
}

impl fmt::Write for Timestamp {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.text.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Timestamp {
    fn now() -> Self {
        let mut timestamp = Self {
            text: [0; 40],
            len: 0,
        };
        if json_log::write_timestamp(&mut timestamp).is_err() {
            timestamp.len = 0;
        }
        timestamp
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text[..self.len]).unwrap_or_default()
    }
}

impl Chain {
    pub(crate) fn new(instance: String, key: ChainKey) -> Self {
        Self {
            instance: Arc::from(instance),
            key,
            next_seq: 0,
            prev: Hex64([b'0'; 64]),
            body: Vec::with_capacity(1024),
            dev: None,
        }
    }

    /// Name `switch` in every event from now on, as the `dev` field.
    pub(crate) fn name_dev_switch(&mut self, switch: &'static str) {
        self.dev = Some(switch);
    }

    pub(crate) fn instance_arc(&self) -> &Arc<str> {
        &self.instance
    }

    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    pub(crate) fn key_id(&self) -> &str {
        self.key.id()
    }

    pub(crate) fn key(&self) -> &ChainKey {
        &self.key
    }

    /// Seal with `key` from the next event on.
    pub(crate) fn rekey(&mut self, key: ChainKey) {
        self.key = key;
    }

    /// Give `record` the next place in the chain and seal it.
    pub(crate) fn seal(&mut self, record: &Record<'_>) -> Sealed {
        if let Some(switch) = self.dev
            && !record.fields().iter().any(|(name, _)| *name == "dev")
        {
            return self.seal(&record.clone().str("dev", switch));
        }
        if record.dropped() > 0
            && !record
                .fields()
                .iter()
                .any(|(name, _)| *name == "dropped_fields")
        {
            return self.seal(&record.clone().int("dropped_fields", record.dropped()));
        }
        let seq = self.next_seq;
        let timestamp = Timestamp::now();
        let level = if record.is_warn() { "WARN" } else { "INFO" };
        // The chain's own fields, in key order; `message` and `target` keep the line readable
        // by log pipelines as a tracing event.
        let own = [
            ("event", FieldValue::Str(record.event())),
            ("instance", FieldValue::Str(&self.instance)),
            ("key_id", FieldValue::Str(self.key.id())),
            ("level", FieldValue::Str(level)),
            ("message", FieldValue::Str(record.event())),
            ("prev", FieldValue::Str(self.prev.as_str())),
            ("seq", FieldValue::Int(seq)),
            ("target", FieldValue::Str(AUDIT_TARGET)),
            ("timestamp", FieldValue::Str(timestamp.as_str())),
        ];
        let fields = Merged::new(record.fields(), &own);

        let mut body = std::mem::take(&mut self.body);
        body.clear();
        let hash_at = canonical(&mut body, fields.clone());
        let hash = self.key.mac(&body);
        let line = line_of(&body, hash_at, fields, hash.as_str());
        self.body = body;
        self.next_seq += 1;
        self.prev = hash;
        Sealed { seq, hash, line }
    }
}

/// The line the chain writes for an event whose canonical form (every field but `hash`) is
/// `body`, with `hash` at `hash_at`: the canonical form itself when it is plain ASCII, else
/// the same fields with every invisible character escaped, so that no value can change how the
/// line reads; a reader parses back the same values and the same canonical form.
fn line_of<'a>(
    body: &[u8],
    hash_at: usize,
    fields: impl Iterator<Item = (&'a str, FieldValue<'a>)>,
    hash: &str,
) -> String {
    if body.iter().all(|&b| b < 0x7f) {
        let mut line = String::with_capacity(body.len() + 76);
        // Only UTF-8 strings and ASCII were written into the body.
        line.push_str(std::str::from_utf8(&body[..hash_at]).unwrap_or_default());
        line.push_str("\"hash\":\"");
        line.push_str(hash);
        line.push_str("\",");
        line.push_str(std::str::from_utf8(&body[hash_at..]).unwrap_or_default());
        line
    } else {
        readable(fields, hash)
    }
}

/// The line the chain would have written for `fields` (in key order, `hash` left out) sealed
/// with `hash`: what `audit verify` compares a line with, so that a
/// line holding a repeated name or written in any other form is refused.
pub(crate) fn expected_line<'a>(fields: &[(&'a str, FieldValue<'a>)], hash: &str) -> String {
    let mut body = Vec::with_capacity(1024);
    let hash_at = canonical(&mut body, fields.iter().copied());
    line_of(&body, hash_at, fields.iter().copied(), hash)
}

/// Two field lists, each in key order, read as one in key order.
#[derive(Clone)]
struct Merged<'f, 'a> {
    a: &'f [(&'a str, FieldValue<'a>)],
    b: &'f [(&'a str, FieldValue<'a>)],
}

impl<'f, 'a> Merged<'f, 'a> {
    fn new(a: &'f [(&'a str, FieldValue<'a>)], b: &'f [(&'a str, FieldValue<'a>)]) -> Self {
        Self { a, b }
    }
}

impl<'a> Iterator for Merged<'_, 'a> {
    type Item = (&'a str, FieldValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let take_a = match (self.a.first(), self.b.first()) {
            (Some(x), Some(y)) => x.0.as_bytes() < y.0.as_bytes(),
            (Some(_), None) => true,
            (None, _) => false,
        };
        let list = if take_a { &mut self.a } else { &mut self.b };
        let (first, rest) = list.split_first()?;
        *list = rest;
        Some(*first)
    }
}

/// Write the RFC 8785 form of `fields` (in key order, unique names) into `body`; returns
/// where `hash` would go in it.
fn canonical<'a>(
    body: &mut Vec<u8>,
    fields: impl Iterator<Item = (&'a str, FieldValue<'a>)>,
) -> usize {
    let mut hash_at = None;
    body.push(b'{');
    for (i, (name, value)) in fields.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        if hash_at.is_none() && name.as_bytes() > b"hash".as_slice() {
            hash_at = Some(body.len());
        }
        push_json_str(body, name);
        body.push(b':');
        match value {
            FieldValue::Str(text) => push_json_str(body, text),
            FieldValue::Int(n) => {
                body.extend_from_slice(itoa::Buffer::new().format(n.min(MAX_EXACT_INT)).as_bytes())
            }
            FieldValue::Bool(b) => body.extend_from_slice(if b { b"true" } else { b"false" }),
            FieldValue::List(items) => {
                body.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    push_json_str(body, item);
                }
                body.push(b']');
            }
        }
    }
    body.push(b'}');
    // The chain's own fields always include names after `hash` (`instance`, `seq`).
    hash_at.unwrap_or(body.len() - 1)
}

/// A JSON string as RFC 8785 writes it: `"` and `\` escaped, controls as `\b \t \n \f \r` or
/// `\u00xx`, everything else as itself. serde_json writes strings exactly so; most values need
/// no escaping at all and are copied as they are.
fn push_json_str(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into a `Vec` cannot fail.
        let _ = serde_json::to_writer(out, text);
    }
}

/// The line for `fields` with the log format's escaping, and `hash` in its place.
fn readable<'a>(fields: impl Iterator<Item = (&'a str, FieldValue<'a>)>, hash: &str) -> String {
    let mut line = String::with_capacity(640);
    line.push('{');
    let mut hash_done = false;
    for (i, (name, value)) in fields.enumerate() {
        if i > 0 {
            line.push(',');
        }
        if !hash_done && name.as_bytes() > b"hash".as_slice() {
            let _ = write!(line, "\"hash\":\"{hash}\",");
            hash_done = true;
        }
        let _ = json_log::write_json_str(&mut line, name);
        line.push(':');
        match value {
            FieldValue::Str(text) => {
                let _ = json_log::write_json_str(&mut line, text);
            }
            FieldValue::Int(n) => line.push_str(itoa::Buffer::new().format(n.min(MAX_EXACT_INT))),
            FieldValue::Bool(b) => line.push_str(if b { "true" } else { "false" }),
            FieldValue::List(items) => {
                line.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    let _ = json_log::write_json_str(&mut line, item);
                }
                line.push(']');
            }
        }
    }
    line.push('}');
    line
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn key() -> ChainKey {
        ChainKey::new(
            "k1",
            &SecretString::from("0123456789abcdef0123456789abcdef"),
        )
        .unwrap()
    }

    /// What a verifier recomputes: the RFC 8785 form of the line without `hash`.
    fn recomputed(line: &str, key: &ChainKey) -> (String, String) {
        let mut value: Value = serde_json::from_str(line).unwrap();
        let hash = value
            .as_object_mut()
            .unwrap()
            .remove("hash")
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        let canonical = serde_json_canonicalizer::to_vec(&value).unwrap();
        (hash, key.mac_hex(&canonical))
    }

    #[test]
    fn accepts_hash_recomputed_from_the_canonical_form_of_the_line() {
        let mut chain = Chain::new("i1".into(), key());
        for principal in [
            "alice",
            "quote\" back\\slash \n\t\u{1}",
            "bidi \u{202e}evil\u{2028} é 😀 \u{7f}",
        ] {
            let record = Record::new("tools/call")
                .str("principal", principal)
                .int("args_bytes", 12)
                .int("huge", u64::MAX)
                .bool("flag", true);
            let sealed = chain.seal(&record);
            let (hash, expected) = recomputed(&sealed.line, &key());
            assert_eq!(hash, sealed.hash.as_str());
            assert_eq!(hash, expected, "{}", sealed.line);
            assert!(!sealed.line.contains('\n') && !sealed.line.contains('\u{202e}'));
        }
    }

    #[test]
    fn links_each_event_to_the_previous_one() {
        let mut chain = Chain::new("i1".into(), key());
        let first = chain.seal(&Record::new("start"));
        let second = chain.seal(&Record::new("shutdown"));
        let first_line: Value = serde_json::from_str(&first.line).unwrap();
        let second_line: Value = serde_json::from_str(&second.line).unwrap();
        assert_eq!(first_line["prev"], GENESIS);
        assert_eq!(first_line["seq"], 0);
        assert_eq!(second_line["prev"], first.hash.as_str());
        assert_eq!(second_line["seq"], 1);
        assert_eq!(second_line["target"], AUDIT_TARGET);
    }

    #[test]
    fn rejects_short_key_and_bad_id() {
        let short = SecretString::from("too short");
        assert!(matches!(
            ChainKey::new("k", &short),
            Err(ChainKeyError::TooShort { bytes: 9, .. })
        ));
        let long = SecretString::from("0123456789abcdef0123456789abcdef");
        assert!(matches!(
            ChainKey::new("a b", &long),
            Err(ChainKeyError::BadId(_))
        ));
        assert!(matches!(
            ChainKey::new(UNKEYED, &long),
            Err(ChainKeyError::BadId(_))
        ));
    }
}
