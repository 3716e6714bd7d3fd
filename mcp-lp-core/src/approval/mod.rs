//! Human approval of the exact call: a tool that needs approval runs only after a person
//! other than the requester, holding the tool's approver grant, approves this principal, this
//! tool, these arguments (by digest) and this tool definition, once, within a short window.
//!
//! The checkpoint records a [`PendingCall`] in an [`ApprovalStore`] and answers the call with
//! where to approve it; the retry runs only when [`ApprovalStore::consume`] finds the same call
//! approved, unexpired and unused, and marks it used in the same step. The core has
//! [`MemoryApprovals`] (one process) and [`FileApprovals`] (one process and its command line);
//! mcp-lp-state keeps them in PostgreSQL for several replicas.

mod file;
mod memory;

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use self::file::FileApprovals;
pub use self::memory::MemoryApprovals;

/// How long an approval request stays open, and an approval usable, unless `[tools.<name>]
/// approval.expires` shortens it.
pub const DEFAULT_APPROVAL_WINDOW: Duration = Duration::from_secs(600);

/// The directory of a single process's approvals next to the configuration, unless
/// `[governance] approvals` names another.
pub const APPROVALS_DIR: &str = "mcp-lp.approvals";

/// The prefix of the `requestState` that names an approval.
pub(crate) const STATE_PREFIX: &str = "mcp-lp-approval:";

/// What a tool's calls need before they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRule {
    /// The grant an approver holds, such as `docs:approve`.
    pub grant: String,
    /// How many distinct people approve.
    pub min: u32,
    /// How long a request stays open, and an approval usable.
    pub window: Duration,
    /// Whether the requester may approve their own call.
    pub self_approve: bool,
}

/// One person's verdict on a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Who.
    pub by: String,
    /// When, RFC 3339.
    pub at: String,
    /// Why, for a denial.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The call an approval is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallKey<'a> {
    /// Who calls.
    pub principal: &'a str,
    /// The tool.
    pub tool: &'a str,
    /// SHA-256 of the arguments' canonical JSON, hex.
    pub arguments_sha256: &'a str,
    /// SHA-256 of the tool's definition (as in the manifest), hex.
    pub definition_sha256: &'a str,
}

/// A call waiting for approval, approved, denied, expired or used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingCall {
    /// The approval's id: 128 random bits, hex. Not a secret: it grants nothing by itself.
    pub id: String,
    /// Who asked.
    pub principal: String,
    /// The tool.
    pub tool: String,
    /// SHA-256 of the arguments' canonical JSON, hex.
    pub arguments_sha256: String,
    /// SHA-256 of the tool's definition, hex.
    pub definition_sha256: String,
    /// The arguments themselves, for the approver to read.
    pub arguments: serde_json::Value,
    /// Why the tool is sensitive: its description.
    pub why: String,
    /// The grant an approver must hold.
    pub grant: String,
    /// How many distinct approvers.
    pub min: u32,
    /// Whether the requester may approve.
    pub self_approve: bool,
    /// When it was asked, RFC 3339.
    pub requested_at: String,
    /// When the request, and any approval of it, lapses, RFC 3339.
    pub expires_at: String,
    /// Who approved, in order.
    #[serde(default)]
    pub approvals: Vec<Verdict>,
    /// Who denied it, if anyone.
    #[serde(default)]
    pub denial: Option<Verdict>,
    /// When the approved call ran, RFC 3339.
    #[serde(default)]
    pub used_at: Option<String>,
}

/// Where a call stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Waiting for more approvals.
    Pending {
        /// Approvals so far.
        have: u32,
        /// Approvals needed.
        need: u32,
    },
    /// Approved, not yet used.
    Approved,
    /// Denied.
    Denied(Verdict),
    /// Past its window.
    Expired,
    /// Approved and run.
    Used,
}

impl PendingCall {
    /// Where the call stands at `now`.
    pub fn standing(&self, now: jiff::Timestamp) -> Standing {
        if self.used_at.is_some() {
            return Standing::Used;
        }
        if let Some(denial) = &self.denial {
            return Standing::Denied(denial.clone());
        }
        if self
            .expires_at
            .parse::<jiff::Timestamp>()
            .map_or(true, |at| now >= at)
        {
            return Standing::Expired;
        }
        let have = u32::try_from(self.approvals.len()).unwrap_or(u32::MAX);
        if have >= self.min {
            Standing::Approved
        } else {
            Standing::Pending {
                have,
                need: self.min,
            }
        }
    }

    /// Whether `by` may give a verdict now: refuses the requester (unless the rule allows it),
    /// a second verdict by the same person, and a call no longer open.
    pub fn check_verdict(&self, by: &str, now: jiff::Timestamp) -> Result<(), ApprovalError> {
        match self.standing(now) {
            Standing::Pending { .. } => {}
            Standing::Approved => return Err(ApprovalError::Decided("already approved".into())),
            Standing::Denied(v) => return Err(ApprovalError::Denied { by: v.by }),
            Standing::Expired => return Err(ApprovalError::Expired),
            Standing::Used => return Err(ApprovalError::AlreadyUsed),
        }
        if by == self.principal && !self.self_approve {
            return Err(ApprovalError::Requester);
        }
        if self.approvals.iter().any(|v| v.by == by) {
            return Err(ApprovalError::Decided(format!("{by} already approved it")));
        }
        Ok(())
    }

    /// Whether the call `key` may run on this approval now; the reason when not.
    pub fn check_use(&self, key: CallKey<'_>, now: jiff::Timestamp) -> Result<(), ApprovalError> {
        if key.principal != self.principal || key.tool != self.tool {
            return Err(ApprovalError::OtherCall);
        }
        if key.definition_sha256 != self.definition_sha256 {
            return Err(ApprovalError::DefinitionChanged);
        }
        if key.arguments_sha256 != self.arguments_sha256 {
            return Err(ApprovalError::ArgumentsDiffer);
        }
        match self.standing(now) {
            Standing::Approved => Ok(()),
            Standing::Pending { have, need } => Err(ApprovalError::Pending { have, need }),
            Standing::Denied(v) => Err(ApprovalError::Denied { by: v.by }),
            Standing::Expired => Err(ApprovalError::Expired),
            Standing::Used => Err(ApprovalError::AlreadyUsed),
        }
    }

    /// Apply `by`'s verdict, after [`PendingCall::check_verdict`].
    pub fn record_verdict(&mut self, verdict: Verdict, approve: bool) {
        if approve {
            self.approvals.push(verdict);
        } else {
            self.denial = Some(verdict);
        }
    }
}

/// Why an approval was refused, or could not be reached. The messages are what a caller or
/// an approver reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// No approval has that id.
    #[error("no approval `{0}`")]
    Unknown(String),
    /// Not enough approvals yet.
    #[error("approval pending ({have} of {need} approvals)")]
    Pending {
        /// Approvals so far.
        have: u32,
        /// Needed.
        need: u32,
    },
    /// Someone denied it.
    #[error("denied by {by}")]
    Denied {
        /// Who.
        by: String,
    },
    /// Past its window.
    #[error("expired")]
    Expired,
    /// The retry's arguments are not the approved ones.
    #[error("arguments differ from those approved")]
    ArgumentsDiffer,
    /// The tool's definition changed since the approval was asked for.
    #[error("the tool's definition changed since the approval was asked for")]
    DefinitionChanged,
    /// The approval is another principal's or another tool's.
    #[error("the approval is for another call")]
    OtherCall,
    /// Already run once.
    #[error("already used")]
    AlreadyUsed,
    /// The requester tried to approve their own call.
    #[error("the requester may not approve their own call")]
    Requester,
    /// The approver lacks the approver grant.
    #[error("approving needs grant `{0}`")]
    LacksGrant(String),
    /// The call is no longer open to this verdict.
    #[error("{0}")]
    Decided(String),
    /// The store cannot be reached; nothing runs.
    #[error("the approval store {store} cannot be used: {reason}")]
    Store {
        /// The store.
        store: String,
        /// Why.
        reason: String,
    },
}

impl ApprovalError {
    /// A short code for error data and audit events.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unknown(_) => "unknown",
            Self::Pending { .. } => "pending",
            Self::Denied { .. } => "denied",
            Self::Expired => "expired",
            Self::ArgumentsDiffer => "arguments_differ",
            Self::DefinitionChanged => "definition_changed",
            Self::OtherCall => "other_call",
            Self::AlreadyUsed => "already_used",
            Self::Requester => "requester",
            Self::LacksGrant(_) => "lacks_grant",
            Self::Decided(_) => "decided",
            Self::Store { .. } => "store_unavailable",
        }
    }
}

/// Where pending approvals and the single-use ledger are kept.
pub trait ApprovalStore: Send + Sync + 'static {
    /// The store, for messages.
    fn describe(&self) -> String;

    /// Record a new pending call.
    fn request(&self, call: PendingCall) -> BoxFuture<'_, Result<(), ApprovalError>>;

    /// The call with `id`.
    fn get(&self, id: &str) -> BoxFuture<'_, Result<PendingCall, ApprovalError>>;

    /// Every call not yet used, newest first.
    fn list(&self) -> BoxFuture<'_, Result<Vec<PendingCall>, ApprovalError>>;

    /// Apply a verdict atomically, after [`PendingCall::check_verdict`] under the same lock or
    /// transaction; the call as it stands after.
    fn decide(
        &self,
        id: &str,
        verdict: Verdict,
        approve: bool,
    ) -> BoxFuture<'_, Result<PendingCall, ApprovalError>>;

    /// Mark the approved call `key` used, atomically, after [`PendingCall::check_use`]: of two
    /// concurrent consumers, one gets the call and the other `AlreadyUsed`.
    fn consume(
        &self,
        id: &str,
        key: CallKey<'_>,
    ) -> BoxFuture<'_, Result<PendingCall, ApprovalError>>;

    /// The id of the newest call bound to `key` that is not used yet, for a retry that brings
    /// no state (MCP 2025-11-25).
    fn find(&self, key: CallKey<'_>) -> BoxFuture<'_, Result<Option<String>, ApprovalError>>;
}

/// Give `by`'s verdict on the call `id` in `store`, and record it in the audit trail
/// (`approved` or `denied`, naming the approver). What every door to approvals uses: the
/// command line, the JSON API, the approval page.
pub async fn decide(
    store: &dyn ApprovalStore,
    id: &str,
    by: &str,
    approve: bool,
    reason: String,
) -> Result<PendingCall, ApprovalError> {
    let verdict = Verdict {
        by: by.to_owned(),
        at: now_string(),
        reason,
    };
    let reason = verdict.reason.clone();
    let call = store.decide(id, verdict, approve).await?;
    let event = if approve { "approved" } else { "denied" };
    let recorded = crate::audit::record(
        &crate::audit::Record::new(event)
            .str("approval", id)
            .str("by", by)
            .str("tool", &call.tool)
            .str("principal", &call.principal)
            .str("args_sha256", &call.arguments_sha256)
            .opt_str("reason", (!reason.is_empty()).then_some(reason.as_str())),
    );
    let _ = recorded.durable().await;
    Ok(call)
}

/// A fresh approval id: 128 random bits, hex.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 16];
    // getrandom fails only without an entropy source; an id of zeros is still unique enough
    // per process not to be confused, but such a system cannot seal state either.
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `id` looks like an approval id, before it names a file or a row.
pub fn is_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl fmt::Display for Standing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pending { have, need } => write!(f, "pending ({have} of {need})"),
            Self::Approved => f.write_str("approved"),
            Self::Denied(v) => write!(f, "denied by {}", v.by),
            Self::Expired => f.write_str("expired"),
            Self::Used => f.write_str("used"),
        }
    }
}

/// The time now, to the microsecond, RFC 3339.
pub(crate) fn now_string() -> String {
    jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> PendingCall {
        let now = jiff::Timestamp::now();
        PendingCall {
            id: new_id(),
            principal: "alice".into(),
            tool: "delete_item".into(),
            arguments_sha256: "a".repeat(64),
            definition_sha256: "d".repeat(64),
            arguments: serde_json::json!({}),
            why: "Delete.".into(),
            grant: "items:approve".into(),
            min: 1,
            self_approve: false,
            requested_at: now.to_string(),
            expires_at: (now + jiff::SignedDuration::from_secs(60)).to_string(),
            approvals: vec![Verdict {
                by: "bob".into(),
                at: now.to_string(),
                reason: String::new(),
            }],
            denial: None,
            used_at: None,
        }
    }

    fn key<'a>(call: &'a PendingCall) -> CallKey<'a> {
        CallKey {
            principal: &call.principal,
            tool: &call.tool,
            arguments_sha256: &call.arguments_sha256,
            definition_sha256: &call.definition_sha256,
        }
    }

    #[test]
    fn rejects_use_by_another_call_or_definition() {
        let call = call();
        let now = jiff::Timestamp::now();
        assert_eq!(call.check_use(key(&call), now), Ok(()));
        let other_definition = "e".repeat(64);
        let changed = CallKey {
            definition_sha256: &other_definition,
            ..key(&call)
        };
        assert_eq!(
            call.check_use(changed, now),
            Err(ApprovalError::DefinitionChanged)
        );
        let other_arguments = "b".repeat(64);
        let changed = CallKey {
            arguments_sha256: &other_arguments,
            ..key(&call)
        };
        assert_eq!(
            call.check_use(changed, now),
            Err(ApprovalError::ArgumentsDiffer)
        );
        let mallory = CallKey {
            principal: "mallory",
            ..key(&call)
        };
        assert_eq!(call.check_use(mallory, now), Err(ApprovalError::OtherCall));
    }

    #[test]
    fn rejects_use_after_expiry_and_after_use() {
        let mut call = call();
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(61);
        assert_eq!(
            call.check_use(key(&call), later),
            Err(ApprovalError::Expired)
        );
        call.used_at = Some(now_string());
        assert_eq!(
            call.check_use(key(&call), jiff::Timestamp::now()),
            Err(ApprovalError::AlreadyUsed)
        );
    }

    #[test]
    fn accepts_only_well_formed_ids() {
        assert!(is_id(&new_id()));
        for bad in ["", "../etc/passwd", &"A".repeat(32), &"0".repeat(33)] {
            assert!(!is_id(bad), "{bad}");
        }
    }
}
