//! Approvals in one process's memory.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::BoxFuture;

use super::{ApprovalError, ApprovalStore, CallKey, PendingCall, Verdict};

/// Pending approvals and the single-use ledger of one process, in memory. Approvers reach it
/// only through that process (its HTTP approval doors).
#[derive(Debug, Default)]
pub struct MemoryApprovals {
    calls: Mutex<HashMap<String, PendingCall>>,
}

impl MemoryApprovals {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, PendingCall>) -> Result<T, ApprovalError>,
    ) -> Result<T, ApprovalError> {
        let mut calls = self.calls.lock().map_err(|_| ApprovalError::Store {
            store: self.describe(),
            reason: "poisoned".into(),
        })?;
        f(&mut calls)
    }
}

impl ApprovalStore for MemoryApprovals {
    fn describe(&self) -> String {
        "memory".to_owned()
    }

    fn request(&self, call: PendingCall) -> BoxFuture<'_, Result<(), ApprovalError>> {
        let done = self.with(|calls| {
            calls.insert(call.id.clone(), call);
            Ok(())
        });
        Box::pin(async move { done })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<PendingCall, ApprovalError>> {
        let done = self.with(|calls| {
            calls
                .get(id)
                .cloned()
                .ok_or_else(|| ApprovalError::Unknown(id.to_owned()))
        });
        Box::pin(async move { done })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<PendingCall>, ApprovalError>> {
        let done = self.with(|calls| {
            let mut open: Vec<_> = calls
                .values()
                .filter(|c| c.used_at.is_none())
                .cloned()
                .collect();
            open.sort_by(|a, b| b.requested_at.cmp(&a.requested_at));
            Ok(open)
        });
        Box::pin(async move { done })
    }

    fn decide(
        &self,
        id: &str,
        verdict: Verdict,
        approve: bool,
    ) -> BoxFuture<'_, Result<PendingCall, ApprovalError>> {
        let done = self.with(|calls| {
            let call = calls
                .get_mut(id)
                .ok_or_else(|| ApprovalError::Unknown(id.to_owned()))?;
            call.check_verdict(&verdict.by, jiff::Timestamp::now())?;
            call.record_verdict(verdict, approve);
            Ok(call.clone())
        });
        Box::pin(async move { done })
    }

    fn consume(
        &self,
        id: &str,
        key: CallKey<'_>,
    ) -> BoxFuture<'_, Result<PendingCall, ApprovalError>> {
        let done = self.with(|calls| {
            let call = calls
                .get_mut(id)
                .ok_or_else(|| ApprovalError::Unknown(id.to_owned()))?;
            call.check_use(key, jiff::Timestamp::now())?;
            call.used_at = Some(super::now_string());
            Ok(call.clone())
        });
        Box::pin(async move { done })
    }

    fn find(&self, key: CallKey<'_>) -> BoxFuture<'_, Result<Option<String>, ApprovalError>> {
        let done = self.with(|calls| {
            Ok(calls
                .values()
                .filter(|c| {
                    c.used_at.is_none()
                        && c.standing(jiff::Timestamp::now()) != super::Standing::Expired
                        && c.principal == key.principal
                        && c.tool == key.tool
                        && c.arguments_sha256 == key.arguments_sha256
                })
                .max_by(|a, b| a.requested_at.cmp(&b.requested_at))
                .map(|c| c.id.clone()))
        });
        Box::pin(async move { done })
    }
}
