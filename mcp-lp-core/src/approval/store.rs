//! Where calls waiting for approval are kept. A store only stores: it does not decide who may
//! approve or whether a call may run ([`Approvals`](super::Approvals) does, the same way for
//! every store), and it cannot make a record verify (the seal's key is not the store's).

use futures::future::BoxFuture;

use super::{ApprovalError, CallKey, PendingCall};

/// Where pending approvals, their single-use ledger and the spent nonces of approved runs are
/// kept. The core has [`MemoryApprovals`](super::MemoryApprovals) and
/// [`FileApprovals`](super::FileApprovals); mcp-lp-state keeps them in PostgreSQL for several
/// replicas.
///
/// Every write is a compare-and-swap on the record's `revision`, atomic in the store: of two
/// writers that read the same revision, one replaces the record and the other is told it lost.
pub trait ApprovalStore: Send + Sync + 'static {
    /// The store, for messages.
    fn describe(&self) -> String;

    /// Record a new call. Refuses an id the store already holds.
    fn insert(&self, call: PendingCall) -> BoxFuture<'_, Result<(), ApprovalError>>;

    /// The call with `id`, as stored: its seal is for the caller to check.
    fn get(&self, id: &str) -> BoxFuture<'_, Result<PendingCall, ApprovalError>>;

    /// Every call not yet used, newest first, at most `limit`.
    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<PendingCall>, ApprovalError>>;

    /// Replace the call `call.id`, stored at revision `revision`, with `call` (whose revision is
    /// one more): `Ok(false)` when the stored revision is another, as another writer changed it
    /// first.
    fn replace(
        &self,
        revision: u64,
        call: PendingCall,
    ) -> BoxFuture<'_, Result<bool, ApprovalError>>;

    /// The id of the newest call not yet used of this principal, tool and arguments, for a
    /// retry that brings no state (MCP 2025-11-25, stdio). Looked up by an index, not by
    /// reading every call.
    fn find(&self, key: CallKey<'_>) -> BoxFuture<'_, Result<Option<String>, ApprovalError>>;

    /// How many calls of `principal` and `tool` are open at `now`: not used, not denied, not
    /// expired.
    fn open_count(
        &self,
        principal: &str,
        tool: &str,
        now: jiff::Timestamp,
    ) -> BoxFuture<'_, Result<u32, ApprovalError>>;

    /// Delete the calls whose window closed before `before`, and the nonces spent before it;
    /// how many calls went.
    fn forget_expired(&self, before: jiff::Timestamp) -> BoxFuture<'_, Result<u64, ApprovalError>>;

    /// Record `nonce` as spent, to be kept until `expires`: `Ok(false)` when it was spent
    /// already. Of two spenders of one nonce, exactly one gets `Ok(true)`.
    fn spend_nonce(
        &self,
        nonce: &str,
        expires: jiff::Timestamp,
    ) -> BoxFuture<'_, Result<bool, ApprovalError>>;
}
