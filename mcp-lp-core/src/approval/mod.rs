//! Human approval of the exact call: a tool that needs approval runs only after a person
//! other than the requester, holding the tool's approver grant, approves this principal, this
//! tool, these arguments (by digest) and this tool definition, once, within a short window.
//!
//! [`Approvals`] is the one place that decides: who may give a verdict (holds the grant, is
//! not the requester or one who already decided, is not revoked, signs from the command line
//! with a key the configuration allows), whether a call may run on its approval, and whether
//! a later round of an approved run may continue. It makes every check again when an approval
//! is used, because a store only stores: [`ApprovalStore`] keeps sealed [`PendingCall`]
//! records, which [`MemoryApprovals`] holds in one process, [`FileApprovals`] in a directory
//! its command line shares, and mcp-lp-state in PostgreSQL for several replicas. Every record
//! carries a seal of the governance key (see [`crate::governance_key`]), which the store does
//! not hold: a record edited or made up in the store runs nothing.

mod approvals;
mod call;
mod error;
mod file;
mod memory;
mod notifier;
pub mod signers;
mod store;

use std::time::Duration;

pub use self::approvals::{Approvals, Approver, RoundState};
pub use self::call::{CallKey, Door, PendingCall, Standing, Verdict, is_id};
pub use self::error::ApprovalError;
pub use self::file::FileApprovals;
pub use self::memory::MemoryApprovals;
pub use self::notifier::{ApprovalNotifier, Notice};
pub use self::store::ApprovalStore;

/// How long an approval request stays open, and an approval usable, unless `[tools.<name>]
/// approval.expires` shortens it.
pub const DEFAULT_APPROVAL_WINDOW: Duration = Duration::from_secs(600);

/// The directory of a single process's approvals next to the configuration, unless
/// `[governance] approvals` names another.
pub const APPROVALS_DIR: &str = "mcp-lp.approvals";

/// How many calls of one principal and tool may wait for approval at once, unless
/// `[governance] max_pending_per_caller` says otherwise.
pub const DEFAULT_MAX_PENDING: u32 = 10;

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

/// 128 bits from the operating system's random source, hex: approval ids and the nonces of
/// approved runs. Fails rather than make a guessable one.
pub(crate) fn random_hex(
    fill: impl FnOnce(&mut [u8]) -> Result<(), getrandom::Error>,
) -> Result<String, ApprovalError> {
    let mut bytes = [0u8; 16];
    fill(&mut bytes).map_err(|e| ApprovalError::NoRandomness(e.to_string()))?;
    Ok(crate::audit::chain::hex(&bytes))
}

/// The time now, to the microsecond, RFC 3339.
pub(crate) fn now_string() -> String {
    jiff::Timestamp::now().to_string()
}
