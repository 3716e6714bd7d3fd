//! Audit events: one per `tools/call`, allowed, denied or failed, on the tracing target
//! [`AUDIT_TARGET`]. An event carries a SHA-256 digest of the arguments, never the arguments.

use std::io;
use std::time::Instant;

use rmcp::model::JsonObject;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The tracing target of audit events. Route it with your subscriber, for example
/// `RUST_LOG=mcp_lp::audit=info`.
pub const AUDIT_TARGET: &str = "mcp_lp::audit";

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

    /// The digest as 64 lowercase hex digits.
    pub fn sha256_hex(&self) -> String {
        self.hex().as_str().to_owned()
    }

    /// The digest as 64 lowercase hex digits, in a buffer on the stack.
    fn hex(&self) -> HexDigest {
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

struct HexDigest([u8; 64]);

impl HexDigest {
    fn as_str(&self) -> &str {
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

/// What the checkpoint decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The handler ran.
    Allow,
    /// The handler did not run.
    Deny,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The handler returned a result.
    Ok,
    /// The handler returned an error result (`isError: true`).
    ToolError,
    /// The handler or the router returned a JSON-RPC error.
    Error,
    /// The caller lacks a required grant.
    Denied,
    /// No tool has that name.
    UnknownTool,
    /// The arguments are over the size limit.
    ArgumentsTooLarge,
    /// The handler did not finish in time and was cancelled.
    Timeout,
    /// The handler's output was over the cap and was withheld.
    OutputTooLarge,
    /// The handler panicked.
    Panicked,
    /// The handler asked the client for input (a multi-round-trip `InputRequiredResult`); the
    /// client retries with its answers.
    InputRequired,
    /// The `requestState` the client brought back failed its seal or its binding to this
    /// principal, tool and arguments.
    StateRejected,
    /// The principal called the tool more often than its rate limit allows.
    RateLimited,
    /// The `tools/call` request's parameters could not be read (a `name` that is not a string,
    /// a repeated key, arguments that are not an object).
    InvalidParams,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ToolError => "tool_error",
            Self::Error => "error",
            Self::Denied => "denied",
            Self::UnknownTool => "unknown_tool",
            Self::ArgumentsTooLarge => "arguments_too_large",
            Self::Timeout => "timeout",
            Self::OutputTooLarge => "output_too_large",
            Self::Panicked => "panicked",
            Self::InputRequired => "input_required",
            Self::StateRejected => "state_rejected",
            Self::RateLimited => "rate_limited",
            Self::InvalidParams => "invalid_params",
        }
    }
}

/// Audit a `tools/call` refused because its parameters could not be read: no tool is known,
/// so the event names none, and no arguments could be digested.
pub(crate) fn invalid_call(request_id: &str, principal: &str, reason: &str) {
    let arguments = ArgumentDigest::of(None);
    let mut event = AuditEvent::start(request_id, principal, &arguments, Instant::now());
    event.reason = Some(reason);
    event.outcome = Outcome::InvalidParams;
    event.finish();
}

/// One audit event, emitted by [`AuditEvent::finish`].
#[derive(Debug)]
pub(crate) struct AuditEvent<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) principal: &'a str,
    pub(crate) tool: &'a str,
    pub(crate) role: Option<&'a str>,
    pub(crate) db: Option<&'a str>,
    /// The required grants, joined by spaces.
    pub(crate) requires: &'a str,
    pub(crate) decision: Decision,
    pub(crate) reason: Option<&'a str>,
    pub(crate) arguments: &'a ArgumentDigest,
    /// What a multi-round-trip retry adds: `inputResponses` and `requestState`.
    pub(crate) round: Option<&'a ArgumentDigest>,
    pub(crate) output_bytes: Option<usize>,
    pub(crate) started: Instant,
    pub(crate) outcome: Outcome,
}

impl<'a> AuditEvent<'a> {
    /// An event for a call not yet decided: denied, unknown tool, until the checkpoint says
    /// otherwise.
    pub(crate) fn start(
        request_id: &'a str,
        principal: &'a str,
        arguments: &'a ArgumentDigest,
        started: Instant,
    ) -> Self {
        Self {
            request_id,
            principal,
            tool: "",
            role: None,
            db: None,
            requires: "",
            decision: Decision::Deny,
            reason: None,
            arguments,
            round: None,
            output_bytes: None,
            started,
            outcome: Outcome::UnknownTool,
        }
    }

    /// Emit the event, timed from its start.
    pub(crate) fn finish(&self) {
        let duration = self.started.elapsed();
        let args_sha256 = self.arguments.hex();
        let round_sha256 = self.round.map(ArgumentDigest::hex);
        let duration_us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        macro_rules! event {
            ($level:expr) => {
                tracing::event!(
                    target: AUDIT_TARGET,
                    $level,
                    request_id = self.request_id,
                    principal = self.principal,
                    tool = self.tool,
                    role = self.role,
                    db = self.db,
                    requires = self.requires,
                    decision = self.decision.as_str(),
                    reason = self.reason,
                    args_sha256 = args_sha256.as_str(),
                    args_bytes = self.arguments.bytes(),
                    input_sha256 = round_sha256.as_ref().map(HexDigest::as_str),
                    input_bytes = self.round.map(ArgumentDigest::bytes),
                    output_bytes = self.output_bytes,
                    duration_us,
                    outcome = self.outcome.as_str(),
                    "tools/call"
                )
            };
        }
        match self.decision {
            Decision::Allow => event!(tracing::Level::INFO),
            Decision::Deny => event!(tracing::Level::WARN),
        }
    }
}

/// Audit a secret's lifecycle under a running server: `kind` is `secret_resolved`,
/// `secret_rotated`, `secret_refresh_failed` or `secret_expired`. Names the secret and its
/// reference, never the value.
pub(crate) fn secret_event(kind: &str, name: &str, reference: &str, reason: Option<&str>) {
    let level_warn = matches!(kind, "secret_refresh_failed" | "secret_expired");
    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                target: AUDIT_TARGET,
                $level,
                event = kind,
                secret = name,
                reference = reference,
                reason = reason,
                "{kind}"
            )
        };
    }
    if level_warn {
        event!(tracing::Level::WARN);
    } else {
        event!(tracing::Level::INFO);
    }
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
