//! Principals: who is calling, as decided by the transport or the operator, never by the model.

use std::time::SystemTime;

use crate::grant::Grant;

/// The caller of a tool and the grants it holds.
///
/// Over stdio the operator's configuration names the principal; over HTTP an authentication
/// layer builds it from a validated token. Nothing a client sends inside a request adds a grant.
///
/// ```
/// use std::time::SystemTime;
/// use mcp_lp::{Grant, Principal};
///
/// let alice = Principal::new("alice@example.com").with_grant(Grant::new("docs:delete")?);
/// assert!(alice.holds("docs:delete", SystemTime::now()));
/// assert!(!alice.holds("docs:admin", SystemTime::now()));
/// # Ok::<(), mcp_lp::GrantError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    id: String,
    grants: Vec<Grant>,
}

impl Principal {
    /// A principal with no grants.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            grants: Vec::new(),
        }
    }

    /// The same principal, also holding `grant`.
    #[must_use]
    pub fn with_grant(mut self, grant: Grant) -> Self {
        self.grants.push(grant);
        self
    }

    /// The principal's identifier, as it appears in audit events.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Every grant the principal was given, active or not.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Whether the principal holds an active grant named `name` at `now`.
    pub fn holds(&self, name: &str, now: SystemTime) -> bool {
        self.grants
            .iter()
            .any(|grant| grant.name() == name && grant.is_active(now))
    }
}
