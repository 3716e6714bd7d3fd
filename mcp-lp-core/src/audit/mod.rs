//! The audit trail: one event for every `tools/call`, allowed, denied or failed, and for every
//! other security-relevant moment (start, configuration, authentication refusals, secrets,
//! shutdown), sealed into a keyed hash chain.
//!
//! - [`chain`]: each event carries `seq`, the previous event's hash (`prev`) and its own
//!   `hash`, an HMAC-SHA256 over its RFC 8785 canonical JSON. A process instance starts its
//!   chain with a `start` event.
//! - [`trail`](mod@trail): the process's [`AuditTrail`]. It writes every event to stderr (through
//!   `tracing`, on [`AUDIT_TARGET`]) and to its durable sinks, under a [`FailurePolicy`], and
//!   anchors the chain's head in a second place.
//! - [`file_sink`]: the append-only file sink; the PostgreSQL sink lives in the state crate
//!   and implements [`AuditSink`].
//! - [`verify`]: `audit verify`, which reports the first bad `seq` and why.
//!
//! An event carries a SHA-256 digest of a call's arguments ([`ArgumentDigest`]), never the
//! arguments.

pub mod anchor;
mod call;
pub mod chain;
mod digest;
pub mod file_sink;
mod record;
pub mod sink;
pub mod trail;
pub mod verify;

pub(crate) use self::call::{AuditEvent, invalid_call};
pub use self::call::{Decision, Outcome};
pub use self::chain::{ChainKey, ChainKeyError, SealedEvent};
pub use self::digest::ArgumentDigest;
pub use self::file_sink::{FileSink, FileSinkOptions, FsyncPolicy};
pub use self::record::{FieldValue, Record};
pub use self::sink::{AuditSink, AuditSinkError};
pub use self::trail::{
    AnchorOptions, AuditTrail, AuditUnavailable, FailurePolicy, Recorded, TrailOptions, install,
    trail,
};

/// The tracing target of audit events. Route it with your subscriber, for example
/// `RUST_LOG=mcp_lp::audit=info`. Each event is one field, `chained`, holding its sealed JSON
/// line; [`crate::json_log::JsonLines`] writes that line as it is.
pub const AUDIT_TARGET: &str = "mcp_lp::audit";

/// The `_meta` key under which a tool result carries its audit receipt, `{instance, seq,
/// hash}`, when `[audit] receipts = true`.
pub const RECEIPT_META_KEY: &str = "io.mcp-lp/audit";

/// Record `record` in the process's trail.
pub fn record(record: &Record<'_>) -> Recorded {
    trail().record(record)
}

/// Record a secret's lifecycle: `secret_resolved`, `secret_rotated`, `secret_refresh_failed` or
/// `secret_expired`, naming the secret and its reference, never the value.
pub(crate) fn secret_event(kind: &str, name: &str, reference: &str, reason: Option<&str>) {
    let mut event = Record::new(kind)
        .str("secret", name)
        .str("reference", reference)
        .opt_str("reason", reason);
    if matches!(kind, "secret_refresh_failed" | "secret_expired") {
        event = event.warn();
    }
    record(&event);
}
