//! Approvals in one process's memory.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::BoxFuture;

use super::{ApprovalError, ApprovalStore, CallKey, PendingCall};

/// Pending approvals, their single-use ledger and spent nonces of one process, in memory.
/// Approvers reach it only through that process (its HTTP approval doors).
#[derive(Debug, Default)]
pub struct MemoryApprovals {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    calls: HashMap<String, PendingCall>,
    nonces: HashMap<String, jiff::Timestamp>,
}

impl MemoryApprovals {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, ApprovalError>,
    ) -> BoxFuture<'_, Result<T, ApprovalError>>
    where
        T: Send + 'static,
    {
        let done = match self.state.lock() {
            Ok(mut state) => f(&mut state),
            Err(_) => Err(ApprovalError::Store {
                store: self.describe(),
                reason: "poisoned".into(),
            }),
        };
        Box::pin(async move { done })
    }
}

fn open(call: &PendingCall, now: jiff::Timestamp) -> bool {
    call.used_at.is_none() && call.denial.is_none() && !call.expired(now)
}

impl ApprovalStore for MemoryApprovals {
    fn describe(&self) -> String {
        "memory".to_owned()
    }

    fn insert(&self, call: PendingCall) -> BoxFuture<'_, Result<(), ApprovalError>> {
        self.with(|state| {
            if state.calls.contains_key(&call.id) {
                return Err(ApprovalError::Decided(format!(
                    "approval `{}` exists already",
                    call.id
                )));
            }
            state.calls.insert(call.id.clone(), call);
            Ok(())
        })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<PendingCall, ApprovalError>> {
        self.with(|state| {
            state
                .calls
                .get(id)
                .cloned()
                .ok_or_else(|| ApprovalError::Unknown(id.to_owned()))
        })
    }

    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<PendingCall>, ApprovalError>> {
        self.with(move |state| {
            let mut open: Vec<_> = state
                .calls
                .values()
                .filter(|c| c.used_at.is_none())
                .cloned()
                .collect();
            open.sort_by(|a, b| b.requested_at.cmp(&a.requested_at));
            open.truncate(limit);
            Ok(open)
        })
    }

    fn replace(
        &self,
        revision: u64,
        call: PendingCall,
    ) -> BoxFuture<'_, Result<bool, ApprovalError>> {
        self.with(move |state| {
            let stored = state
                .calls
                .get_mut(&call.id)
                .ok_or_else(|| ApprovalError::Unknown(call.id.clone()))?;
            if stored.revision != revision {
                return Ok(false);
            }
            *stored = call;
            Ok(true)
        })
    }

    fn find(&self, key: CallKey<'_>) -> BoxFuture<'_, Result<Option<String>, ApprovalError>> {
        self.with(|state| {
            Ok(state
                .calls
                .values()
                .filter(|c| {
                    c.used_at.is_none()
                        && c.principal == key.principal
                        && c.tool == key.tool
                        && c.arguments_sha256 == key.arguments_sha256
                })
                .max_by(|a, b| a.requested_at.cmp(&b.requested_at))
                .map(|c| c.id.clone()))
        })
    }

    fn open_count(
        &self,
        principal: &str,
        tool: &str,
        now: jiff::Timestamp,
    ) -> BoxFuture<'_, Result<u32, ApprovalError>> {
        self.with(|state| {
            let open = state
                .calls
                .values()
                .filter(|c| c.principal == principal && c.tool == tool && open(c, now))
                .count();
            Ok(u32::try_from(open).unwrap_or(u32::MAX))
        })
    }

    fn forget_expired(&self, before: jiff::Timestamp) -> BoxFuture<'_, Result<u64, ApprovalError>> {
        self.with(move |state| {
            let was = state.calls.len();
            state.calls.retain(|_, c| !c.expired(before));
            state.nonces.retain(|_, expires| *expires >= before);
            Ok((was - state.calls.len()) as u64)
        })
    }

    fn spend_nonce(
        &self,
        nonce: &str,
        expires: jiff::Timestamp,
    ) -> BoxFuture<'_, Result<bool, ApprovalError>> {
        self.with(|state| {
            if state.nonces.contains_key(nonce) {
                return Ok(false);
            }
            state.nonces.insert(nonce.to_owned(), expires);
            Ok(true)
        })
    }
}
