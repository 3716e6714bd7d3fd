//! The approved manifest (`mcp-lp.lock`): each tool's full definition and its digest, with who
//! approved it, when, its owner and its review date, so that a running server can be held to
//! what an owner approved. A tool added, removed or changed since (a poisoned description, a
//! widened role) stops the start with a precise diff.
//!
//! A tool's definition is what a model reads and what the server grants: name, title,
//! description, input and output schema, annotations, icons and `_meta`, the declared role,
//! database capability and grants, and what the configuration makes of them: the approval
//! rule, the limits (timeout, output and argument caps, rate) and the role's ARN in force. Its
//! digest is the SHA-256 of its RFC 8785 canonical JSON. The server's own definition (its
//! instructions, title, description, icons and website) is pinned too, since a model reads it.
//! The manifest's digest covers the whole file but its own `digest` field.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rmcp::model::Tool;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::audit::Record;
use crate::audit::chain::hex;
use crate::config::{Config, ConfigError, ConfigErrorKind, ReviewOverdue};
use crate::policy::{ToolPolicy, ToolSet};

/// The manifest's file name, next to the configuration file.
pub const MANIFEST_FILE: &str = "mcp-lp.lock";

/// The `_meta` key of the server's info (`initialize`, `server/discover`) that carries the
/// pinned manifest's `digest`, `owner` and `review_by`.
pub const MANIFEST_META_KEY: &str = "io.mcp-lp/manifest";

/// The manifest format's version: 2 pins the server's definition and what the configuration
/// makes of each tool; 3 pins each tool's capabilities as a list of any kinds, with their
/// configuration tables.
const FORMAT: u32 = 3;

/// An approved manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The format version.
    pub format: u32,
    /// The server's name.
    pub server: String,
    /// Who approved it.
    pub approved_by: String,
    /// When, RFC 3339 UTC.
    pub approved_at: String,
    /// The team that owns the server.
    pub owner: String,
    /// The date by which it must be reviewed again, `YYYY-MM-DD`.
    pub review_by: String,
    /// What the server says of itself to clients: instructions, title, description, icons,
    /// website.
    #[serde(default)]
    pub definition: Value,
    /// Each tool by name.
    pub tools: BTreeMap<String, ApprovedTool>,
    /// SHA-256 of the manifest's RFC 8785 form without this field.
    #[serde(default)]
    pub digest: String,
}

/// One tool as approved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovedTool {
    /// SHA-256 of `definition`'s RFC 8785 form.
    pub digest: String,
    /// The full definition.
    pub definition: Value,
}

/// A difference between what a server serves and its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The server's own definition differs: what changed (`instructions changed`).
    Server(String),
    /// A tool the manifest does not have.
    Added(String),
    /// A tool of the manifest the server no longer has.
    Removed(String),
    /// A tool whose definition differs: what changed.
    Changed {
        /// The tool.
        tool: String,
        /// What changed: `description changed`, `role docs-delete -> docs-admin`.
        what: String,
    },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server(what) => write!(f, "server: {what}"),
            Self::Added(tool) => write!(f, "tool {tool}: added, not in the manifest"),
            Self::Removed(tool) => write!(f, "tool {tool}: removed, still in the manifest"),
            Self::Changed { tool, what } => write!(f, "tool {tool}: {what}"),
        }
    }
}

/// Why a manifest could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read or written.
    #[error("manifest {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The file is not a manifest.
    #[error("manifest {path}: not a manifest: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file's content does not match its digest: it was edited by hand.
    #[error(
        "manifest {path}: its digest does not match its content; it was edited after approval: approve again"
    )]
    Tampered {
        /// The file.
        path: PathBuf,
    },
    /// A tool's definition does not match its own digest.
    #[error("manifest {path}: tool {tool}: its digest does not match its definition")]
    ToolTampered {
        /// The file.
        path: PathBuf,
        /// The tool.
        tool: String,
    },
}

/// The definition of the tool of `policy` as `tool` (its router entry) describes it and
/// `config` configures it, in the manifest's form.
pub fn definition(policy: &ToolPolicy, tool: Option<&Tool>, config: &Config) -> Value {
    let mut requires: Vec<&str> = policy.requires.to_vec();
    requires.sort_unstable();
    let field = |value: Option<Value>| value.unwrap_or(Value::Null);
    let limits = config.limits_for(policy);
    let approval = config.approval_for(policy).map(|rule| {
        json!({
            "grant": rule.grant,
            "min": rule.min,
            "expires_secs": rule.window.as_secs(),
            "self_approve": rule.self_approve,
        })
    });
    json!({
        "name": policy.name,
        "title": field(tool.and_then(|t| t.title.clone()).map(Value::String)),
        "description": field(tool.and_then(|t| t.description.as_deref().map(|d| Value::String(d.to_owned())))),
        "input_schema": field(tool.map(|t| Value::Object((*t.input_schema).clone()))),
        "output_schema": field(tool.and_then(|t| t.output_schema.as_ref().map(|s| Value::Object((**s).clone())))),
        "annotations": field(tool.and_then(|t| t.annotations.as_ref()).and_then(|a| serde_json::to_value(a).ok())),
        "icons": field(tool.and_then(|t| t.icons.as_ref()).and_then(|i| serde_json::to_value(i).ok())),
        "meta": field(tool.and_then(|t| t.meta.as_ref()).and_then(|m| serde_json::to_value(m).ok())),
        "capabilities": capabilities(policy, config),
        "requires": requires,
        "timeout_ms": u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
        "max_output_bytes": limits.max_output_bytes,
        "max_argument_bytes": limits.max_argument_bytes,
        "rate": limits.rate.map(|r| r.to_string()),
        "approval": approval,
    })
}

/// The capabilities `policy` declares, each with its configuration table as `config` has it
/// (an IAM role's ARN, a database URL's reference): a kind the core does not know is pinned
/// like any other.
fn capabilities(policy: &ToolPolicy, config: &Config) -> Value {
    Value::Array(
        policy
            .capabilities
            .iter()
            .map(|c| {
                json!({
                    "kind": c.kind,
                    "name": c.name,
                    "access": c.access.as_str(),
                    "configured": config.provider_entry(&format!("{}.{}", c.table, c.name)),
                })
            })
            .collect(),
    )
}

/// What the server `S` says of itself to clients, in the manifest's form.
pub fn server_definition<S: ToolSet>() -> Value {
    let info = S::server_info();
    json!({
        "instructions": S::instructions(),
        "title": info.title,
        "description": info.description,
        "icons": info.icons.as_ref().and_then(|i| serde_json::to_value(i).ok()),
        "website_url": info.website_url,
    })
}

/// SHA-256 of `value`'s RFC 8785 form, as 64 hex digits.
pub fn digest_of(value: &impl Serialize) -> String {
    let canonical = serde_json_canonicalizer::to_vec(value).unwrap_or_default();
    hex(&Sha256::digest(&canonical))
}

/// Every tool of `S` in the manifest's form under `config`, by name.
pub fn definitions<S: ToolSet>(config: &Config) -> BTreeMap<String, Value> {
    let router = S::tool_router();
    S::policies()
        .iter()
        .map(|policy| {
            (
                policy.name.to_owned(),
                definition(policy, router.get(policy.name), config),
            )
        })
        .collect()
}

impl Manifest {
    /// A manifest of what `S` serves now under `config`, approved by `approved_by` at
    /// `approved_at`.
    pub fn of<S: ToolSet>(
        config: &Config,
        approved_by: &str,
        approved_at: &str,
        owner: &str,
        review_by: &str,
    ) -> Self {
        let tools = definitions::<S>(config)
            .into_iter()
            .map(|(name, definition)| {
                let digest = digest_of(&definition);
                (name, ApprovedTool { digest, definition })
            })
            .collect();
        let mut manifest = Self {
            format: FORMAT,
            server: S::server_info().name,
            approved_by: approved_by.to_owned(),
            approved_at: approved_at.to_owned(),
            owner: owner.to_owned(),
            review_by: review_by.to_owned(),
            definition: server_definition::<S>(),
            tools,
            digest: String::new(),
        };
        manifest.digest = manifest.computed_digest();
        manifest
    }

    fn computed_digest(&self) -> String {
        let unsealed = Self {
            digest: String::new(),
            ..self.clone()
        };
        let mut value = serde_json::to_value(&unsealed).unwrap_or(Value::Null);
        if let Some(object) = value.as_object_mut() {
            object.remove("digest");
        }
        digest_of(&value)
    }

    /// Read the manifest at `path`; `Ok(None)` when there is none. A manifest whose digests do
    /// not match its content is refused.
    pub fn load(path: &Path) -> Result<Option<Self>, ManifestError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ManifestError::Io {
                    path: path.to_owned(),
                    reason: e.to_string(),
                });
            }
        };
        let manifest: Self = serde_json::from_str(&text).map_err(|e| ManifestError::Malformed {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        if manifest.format != FORMAT {
            return Err(ManifestError::Malformed {
                path: path.to_owned(),
                reason: format!(
                    "format {} is not {FORMAT}; run `approve` again to pin this version's",
                    manifest.format
                ),
            });
        }
        if manifest.digest != manifest.computed_digest() {
            return Err(ManifestError::Tampered {
                path: path.to_owned(),
            });
        }
        for (name, tool) in &manifest.tools {
            if tool.digest != digest_of(&tool.definition) {
                return Err(ManifestError::ToolTampered {
                    path: path.to_owned(),
                    tool: name.clone(),
                });
            }
        }
        Ok(Some(manifest))
    }

    /// Write the manifest to `path`, pretty-printed for review, ending with a newline.
    pub fn write(&self, path: &Path) -> Result<(), ManifestError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| ManifestError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        std::fs::write(path, text).map_err(|e| ManifestError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// How many whole days past its review date the manifest is at `now`, if it is.
    pub fn review_overdue(&self, now: jiff::Timestamp) -> Option<i64> {
        let due: jiff::civil::Date = self.review_by.parse().ok()?;
        let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
        let days = (today - due).get_days();
        (today > due).then_some(i64::from(days.max(1)))
    }

    /// How what `S` serves under `config` differs from this manifest: the server's own
    /// definition, then tool by tool in name order.
    pub fn drift<S: ToolSet>(&self, config: &Config) -> Vec<Drift> {
        let served = server_definition::<S>();
        let mut drift: Vec<Drift> = if self.definition == served {
            Vec::new()
        } else {
            changes(&self.definition, &served, SERVER_FIELDS)
                .into_iter()
                .map(Drift::Server)
                .collect()
        };
        drift.extend(diff(&self.tools, &definitions::<S>(config)));
        drift
    }
}

/// The differences between `approved` and `served`.
fn diff(approved: &BTreeMap<String, ApprovedTool>, served: &BTreeMap<String, Value>) -> Vec<Drift> {
    let mut drift = Vec::new();
    for (name, definition) in served {
        match approved.get(name) {
            None => drift.push(Drift::Added(name.clone())),
            Some(tool) if tool.digest == digest_of(definition) => {}
            Some(tool) => {
                for what in changes(&tool.definition, definition, TOOL_FIELDS) {
                    drift.push(Drift::Changed {
                        tool: name.clone(),
                        what,
                    });
                }
            }
        }
    }
    for name in approved.keys() {
        if !served.contains_key(name) {
            drift.push(Drift::Removed(name.clone()));
        }
    }
    drift
}

/// A tool's fields, each with how drift names it; the first five are text a model reads or a
/// schema, named changed rather than quoted.
const TOOL_FIELDS: &[(&str, &str)] = &[
    ("title", "title"),
    ("description", "description"),
    ("input_schema", "input schema"),
    ("output_schema", "output schema"),
    ("annotations", "annotations"),
    ("icons", "icons"),
    ("meta", "_meta"),
    ("capabilities", "capabilities"),
    ("requires", "grants"),
    ("timeout_ms", "timeout_ms"),
    ("max_output_bytes", "max_output_bytes"),
    ("max_argument_bytes", "max_argument_bytes"),
    ("rate", "rate"),
    ("approval", "approval"),
];

/// The server's own fields.
const SERVER_FIELDS: &[(&str, &str)] = &[
    ("instructions", "instructions"),
    ("title", "title"),
    ("description", "description"),
    ("icons", "icons"),
    ("website_url", "website"),
];

/// What differs between two definitions with `fields`, one line per field.
fn changes(approved: &Value, served: &Value, fields: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for (key, label) in fields {
        let (before, after) = (&approved[*key], &served[*key]);
        if before == after {
            continue;
        }
        match key {
            // Text a model reads, a schema or structured data: named, not quoted, as it may be
            // long.
            &"title" | &"description" | &"input_schema" | &"output_schema" | &"annotations"
            | &"icons" | &"meta" | &"instructions" | &"approval" => {
                out.push(format!("{label} changed"));
            }
            &"capabilities" => out.extend(capability_changes(before, after)),
            _ => out.push(format!("{label} {} -> {}", shown(before), shown(after))),
        }
    }
    let known: Vec<&str> = fields.iter().map(|(k, _)| *k).chain(["name"]).collect();
    if out.is_empty()
        || served
            .as_object()
            .is_some_and(|o| o.keys().any(|k| !known.contains(&k.as_str())))
    {
        // A field this version does not name apart: say the definition changed.
        if out.is_empty() {
            out.push("definition changed".into());
        }
    }
    out
}

/// What differs between two capability lists, one line per change: a capability added or
/// removed, renamed (`capability aws.role docs-delete -> docs-admin`), or configured otherwise,
/// one line per key of its table (`capability aws.role docs-admin: arn X -> Y`).
fn capability_changes(approved: &Value, served: &Value) -> Vec<String> {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let (approved, served) = (list(approved), list(served));
    let text = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    let label = |c: &Value| {
        format!(
            "{} {} ({})",
            text(&c["kind"]),
            text(&c["name"]),
            text(&c["access"])
        )
    };
    let same_kind = |a: &Value, b: &Value| a["kind"] == b["kind"] && a["access"] == b["access"];
    let gone: Vec<&Value> = approved.iter().filter(|c| !served.contains(c)).collect();
    let new: Vec<&Value> = served.iter().filter(|c| !approved.contains(c)).collect();
    let mut paired = vec![false; new.len()];
    let mut out = Vec::new();
    for old in gone {
        let Some(i) = (0..new.len()).find(|&i| !paired[i] && same_kind(old, new[i])) else {
            out.push(format!("capability {}: removed", label(old)));
            continue;
        };
        paired[i] = true;
        let now = new[i];
        let kind = text(&old["kind"]);
        if old["name"] != now["name"] {
            out.push(format!(
                "capability {kind} {} -> {}",
                text(&old["name"]),
                text(&now["name"])
            ));
        }
        let name = text(&now["name"]);
        match (old["configured"].as_object(), now["configured"].as_object()) {
            (Some(before), Some(after)) => {
                let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
                keys.sort_unstable();
                keys.dedup();
                for key in keys {
                    let (was, is) = (before.get(key), after.get(key));
                    if was != is {
                        out.push(format!(
                            "capability {kind} {name}: {key} {} -> {}",
                            was.map_or_else(|| "none".into(), shown),
                            is.map_or_else(|| "none".into(), shown)
                        ));
                    }
                }
            }
            _ if old["configured"] != now["configured"] => out.push(format!(
                "capability {kind} {name}: configuration {} -> {}",
                shown(&old["configured"]),
                shown(&now["configured"])
            )),
            _ => {}
        }
    }
    for (i, added) in new.iter().enumerate() {
        if !paired[i] {
            out.push(format!("capability {}: added", label(added)));
        }
    }
    if out.is_empty() {
        out.push("capabilities changed".into());
    }
    out
}

fn shown(value: &Value) -> String {
    match value {
        Value::Null => "none".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(shown).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// Hold the server `S` to `config`'s manifest, at startup: drift refuses the start with the
/// diff (or, with `[dev] allow_unapproved_tools`, warns and names the switch in every audit
/// event), and so does a review date in the past (or warns, with `review_overdue = "warn"`).
/// Without a manifest, nothing is checked.
pub(crate) fn hold_to_manifest<S: ToolSet>(config: &Config) -> Result<(), ConfigError> {
    let Some(manifest) = config.manifest() else {
        return Ok(());
    };
    let path = config.manifest_path().display().to_string();
    let drift = manifest.drift::<S>(config);
    if !drift.is_empty() {
        let lines: Vec<String> = drift.iter().map(ToString::to_string).collect();
        let diff = lines.join("; ");
        let allowed = config.allows_unapproved_tools();
        crate::audit::record(
            &Record::new("drift")
                .warn()
                .str("manifest", &path)
                .str("manifest_sha256", &manifest.digest)
                .str("diff", &diff)
                .bool("started", allowed),
        );
        if !allowed {
            return Err(ConfigError::new(
                config.path(),
                Some("governance.manifest".into()),
                ConfigErrorKind::Mismatch,
                format!(
                    "the server's tools differ from the approved manifest {path}:\n  {}\nreview the change, then approve it again with `approve --owner ... --review-by ...`",
                    lines.join("\n  ")
                ),
            ));
        }
        crate::audit::trail().name_dev_switch("allow_unapproved_tools");
        tracing::warn!(
            manifest = %path,
            diff = %diff,
            "serving tools that differ from the approved manifest: [dev] allow_unapproved_tools = true"
        );
    }
    if let Some(overdue) = manifest.review_overdue(jiff::Timestamp::now()) {
        match config.review_overdue() {
            ReviewOverdue::Refuse => {
                return Err(ConfigError::new(
                    config.path(),
                    Some("governance.review_overdue".into()),
                    ConfigErrorKind::Mismatch,
                    format!(
                        "the manifest {path} (owner {}) was due for review by {}, {overdue} days ago; review it and approve it again, or set [governance] review_overdue = \"warn\"",
                        manifest.owner, manifest.review_by
                    ),
                ));
            }
            ReviewOverdue::Warn => tracing::warn!(
                manifest = %path,
                owner = %manifest.owner,
                review_by = %manifest.review_by,
                "the approved manifest is overdue for review"
            ),
        }
    }
    Ok(())
}
