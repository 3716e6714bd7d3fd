//! What an approval store keeps: the call waiting for approval, the verdicts on it, and its
//! use, with the seal that shows the record was written by mcp-lp.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ApprovalError;
use crate::governance_key::{GovernanceKeys, Purpose, Seal};

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

/// Through which door a verdict was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Door {
    /// The JSON API, with the approver's bearer token.
    Api,
    /// The approval page, signed in at the identity provider.
    Page,
    /// The command line, with the approver's SSH signature.
    Cli,
}

impl Door {
    /// The door's name in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Page => "page",
            Self::Cli => "cli",
        }
    }
}

/// One person's verdict on a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// Who.
    pub by: String,
    /// When, RFC 3339.
    pub at: String,
    /// Why, for a denial.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Through which door.
    pub door: Door,
    /// The operating-system account that gave it, on the command line: one account counts
    /// once, whatever keys it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<String>,
    /// The approver's SSH signature of the verdict (`ssh-keygen -Y sign`), on the command line:
    /// checked again against the allowed signers when the approval is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A call waiting for approval, approved, denied, expired or used, as a store keeps it.
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
    /// How many times the record was written: a store replaces a record only at the revision
    /// it was read at, so that of two writers one wins and the other reads again.
    #[serde(default)]
    pub revision: u64,
    /// The id of the governance key that sealed the record.
    #[serde(default)]
    pub key_id: String,
    /// The record's seal: HMAC-SHA256 of every other field (see
    /// [`governance_key`](crate::governance_key)).
    #[serde(default)]
    pub mac: String,
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

impl PendingCall {
    /// Where the call stands at `now`, counting the approvals it holds.
    pub fn standing(&self, now: jiff::Timestamp) -> Standing {
        if self.used_at.is_some() {
            return Standing::Used;
        }
        if let Some(denial) = &self.denial {
            return Standing::Denied(denial.clone());
        }
        if self.expired(now) {
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

    /// Whether the call's window closed at `now`; an unreadable expiry counts as closed.
    pub fn expired(&self, now: jiff::Timestamp) -> bool {
        self.expires_at
            .parse::<jiff::Timestamp>()
            .map_or(true, |at| now >= at)
    }

    /// Whether the call is bound to `key`'s principal, tool, arguments and definition.
    pub fn check_key(&self, key: CallKey<'_>) -> Result<(), ApprovalError> {
        if key.principal != self.principal || key.tool != self.tool {
            return Err(ApprovalError::OtherCall);
        }
        if key.definition_sha256 != self.definition_sha256 {
            return Err(ApprovalError::DefinitionChanged);
        }
        if key.arguments_sha256 != self.arguments_sha256 {
            return Err(ApprovalError::ArgumentsDiffer);
        }
        Ok(())
    }

    /// The record without its seal, as the seal covers it.
    fn unsealed(&self) -> Self {
        Self {
            key_id: String::new(),
            mac: String::new(),
            ..self.clone()
        }
    }

    /// Seal the record with the first of `keys`.
    pub fn seal(&mut self, keys: &GovernanceKeys) {
        let Seal { key_id, mac } = keys.seal(Purpose::ApprovalRecord, &self.unsealed());
        self.key_id = key_id;
        self.mac = mac;
    }

    /// Whether the record's seal is one of `keys`' over everything it says.
    pub fn verifies(&self, keys: &GovernanceKeys) -> bool {
        let seal = Seal {
            key_id: self.key_id.clone(),
            mac: self.mac.clone(),
        };
        keys.verifies(Purpose::ApprovalRecord, &self.unsealed(), &seal)
    }
}

/// Whether `id` looks like an approval id, before it names a file or a row.
pub fn is_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}
