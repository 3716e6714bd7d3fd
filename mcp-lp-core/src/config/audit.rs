//! The `[audit]` table: the chain's keys, the durable sinks, the failure policy, anchors and
//! receipts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::protocol::KeySpec;
use crate::audit::{AnchorOptions, FailurePolicy, FileSinkOptions, FsyncPolicy};
use crate::limits;

/// `[audit]`.
///
/// ```toml
/// [audit]
/// keys = [{ id = "2026-11", secret = { file = "/vault/secrets/audit-key" } }]  # first seals
/// file = { path = "/var/log/mcp-lp/trail.jsonl", rotate_bytes = 104857600, fsync = "every_event" }
/// anchors = { path = "/var/log/mcp-lp-anchors/anchors.jsonl", every = "10s" }
/// postgres = true           # also the [state] store's audit table (mcp-lp-state)
/// policy = "fail_closed"    # or "buffer"
/// buffer_events = 10000
/// write_timeout = "5s"
/// receipts = true           # tool results carry their event's seq and hash in _meta
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditSection {
    #[serde(default)]
    pub(crate) keys: Vec<KeySpec>,
    pub(crate) file: Option<FileSection>,
    pub(crate) anchors: Option<AnchorSection>,
    #[serde(default)]
    pub(crate) postgres: bool,
    #[serde(default)]
    pub(crate) policy: PolicySpec,
    pub(crate) buffer_events: Option<usize>,
    #[serde(default, deserialize_with = "super::de_duration")]
    pub(crate) write_timeout: Option<Duration>,
    #[serde(default)]
    pub(crate) receipts: bool,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PolicySpec {
    #[default]
    FailClosed,
    Buffer,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSection {
    path: PathBuf,
    rotate_bytes: Option<u64>,
    #[serde(default, deserialize_with = "super::de_duration")]
    rotate_every: Option<Duration>,
    #[serde(default)]
    fsync: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnchorSection {
    path: PathBuf,
    #[serde(default, deserialize_with = "super::de_duration")]
    every: Option<Duration>,
}

/// The `[audit]` table, validated, with paths taken from the configuration's directory. Its
/// keys are resolved with the other secrets.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The durable file sink.
    pub file: Option<FileSinkOptions>,
    /// Anchors of the chain's head.
    pub anchors: Option<AnchorOptions>,
    /// Whether the `[state]` store's audit table is a durable sink too.
    pub postgres: bool,
    /// What to do when a durable sink fails.
    pub policy: FailurePolicy,
    /// The most events waiting for one durable sink.
    pub buffer_events: usize,
    /// How long a call waits for its event to be recorded.
    pub write_timeout: Duration,
    /// Whether tool results carry receipts.
    pub receipts: bool,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            file: None,
            anchors: None,
            postgres: false,
            policy: FailurePolicy::FailClosed,
            buffer_events: 10_000,
            write_timeout: Duration::from_secs(5),
            receipts: false,
        }
    }
}

/// The default anchor interval.
const DEFAULT_ANCHOR_EVERY: Duration = Duration::from_secs(10);

impl AuditSection {
    /// The settings, or the key and problem of the first bad value.
    pub(crate) fn settings(&self, base: &Path) -> Result<AuditSettings, (String, String)> {
        let file = match &self.file {
            None => None,
            Some(file) => {
                let fsync = match file.fsync.as_deref() {
                    None | Some("every_event") => FsyncPolicy::EveryEvent,
                    Some(text) => {
                        FsyncPolicy::Every(limits::parse_duration(text).map_err(|e| {
                            (
                                "audit.file.fsync".to_owned(),
                                format!("{e}, or \"every_event\""),
                            )
                        })?)
                    }
                };
                if file.rotate_bytes == Some(0) {
                    return Err((
                        "audit.file.rotate_bytes".into(),
                        "rotate_bytes must be at least 1".into(),
                    ));
                }
                Some(FileSinkOptions {
                    path: base.join(&file.path),
                    rotate_bytes: file.rotate_bytes,
                    rotate_every: file.rotate_every,
                    fsync,
                })
            }
        };
        let anchors = self.anchors.as_ref().map(|a| AnchorOptions {
            path: base.join(&a.path),
            every: a.every.unwrap_or(DEFAULT_ANCHOR_EVERY),
        });
        if let (Some(file), Some(anchors)) = (&file, &anchors)
            && file.path == anchors.path
        {
            return Err((
                "audit.anchors.path".into(),
                "anchors belong in a second place, not in the trail's own file".into(),
            ));
        }
        let defaults = AuditSettings::default();
        let buffer_events = self.buffer_events.unwrap_or(defaults.buffer_events);
        if buffer_events == 0 {
            return Err((
                "audit.buffer_events".into(),
                "buffer_events must be at least 1".into(),
            ));
        }
        Ok(AuditSettings {
            file,
            anchors,
            postgres: self.postgres,
            policy: match self.policy {
                PolicySpec::FailClosed => FailurePolicy::FailClosed,
                PolicySpec::Buffer => FailurePolicy::Buffer,
            },
            buffer_events,
            write_timeout: self.write_timeout.unwrap_or(defaults.write_timeout),
            receipts: self.receipts,
        })
    }
}
