//! What the replicas of a deployment share: pending approvals, the revocation list, last uses
//! and a durable copy of the audit trail.
//!
//! Without `[state]` these are files next to the configuration and the process's own memory.
//! With it, a state crate (mcp-lp-state) opens them in PostgreSQL from the configuration alone,
//! so that the governance commands reach them without building the application: the breakglass
//! `revoke --all` works while the application's own database or cloud identity is down. The
//! same [`SharedStores`] is given to the server when it serves ([`Server::share`]).
//!
//! [`Server::share`]: crate::Server::share

use std::sync::Arc;

use crate::approval::ApprovalStore;
use crate::audit::AuditSink;
use crate::last_used::LastUsedStore;
use crate::revocation::RevocationStore;

/// The stores `[state]` names, opened: what a server shares with its replicas and what the
/// governance commands act on.
#[non_exhaustive]
pub struct SharedStores {
    /// Pending approvals and their single-use ledger.
    pub approvals: Arc<dyn ApprovalStore>,
    /// The revocation list every replica follows.
    pub revocations: Arc<dyn RevocationStore>,
    /// When each tool was last used, and by whom, for `review`.
    pub last_used: Arc<dyn LastUsedStore>,
    /// Durable audit sinks besides the configured files, such as the audit table.
    pub audit_sinks: Vec<Box<dyn AuditSink>>,
}

impl SharedStores {
    /// The stores, with no audit sink.
    pub fn new(
        approvals: Arc<dyn ApprovalStore>,
        revocations: Arc<dyn RevocationStore>,
        last_used: Arc<dyn LastUsedStore>,
    ) -> Self {
        Self {
            approvals,
            revocations,
            last_used,
            audit_sinks: Vec::new(),
        }
    }

    /// Also write the trail to `sink`.
    #[must_use]
    pub fn audit_to(mut self, sink: impl AuditSink) -> Self {
        self.audit_sinks.push(Box::new(sink));
        self
    }
}

impl std::fmt::Debug for SharedStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStores")
            .field("approvals", &self.approvals.describe())
            .field("revocations", &self.revocations.describe())
            .field("last_used", &self.last_used.describe())
            .field(
                "audit_sinks",
                &self
                    .audit_sinks
                    .iter()
                    .map(|s| s.describe())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
