//! The authorization rule: a caller may run or see a tool when it holds every grant the tool
//! requires. `tools/call` and `tools/list` both ask [`authorize`], so they cannot disagree.

use std::time::SystemTime;

use crate::policy::ToolPolicy;
use crate::principal::Principal;

/// Proof that a principal may call a tool; built only by [`authorize`].
#[derive(Debug, Clone, Copy)]
pub struct Authorized<'a> {
    policy: &'static ToolPolicy,
    principal: &'a Principal,
}

impl<'a> Authorized<'a> {
    /// The policy of the tool that may run.
    pub fn policy(&self) -> &'static ToolPolicy {
        self.policy
    }

    /// The principal it may run for.
    pub fn principal(&self) -> &'a Principal {
        self.principal
    }
}

/// Why a call was refused: the grants the tool requires that the principal does not hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Denial {
    /// Required grants the principal never held.
    pub missing: Vec<&'static str>,
    /// Required grants the principal held but that have expired.
    pub expired: Vec<&'static str>,
}

impl Denial {
    /// Every required grant that is not active, missing or expired, in the tool's order.
    pub fn lacking(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.missing.iter().chain(&self.expired).copied()
    }

    /// A sentence for the caller and the audit trail, naming the tool, principal and grants.
    pub fn explain(&self, tool: &str, principal: &str) -> String {
        let list = |grants: &[&str]| {
            grants
                .iter()
                .map(|g| format!("`{g}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("does not hold {}", list(&self.missing)));
        }
        if !self.expired.is_empty() {
            parts.push(format!("holds only expired {}", list(&self.expired)));
        }
        let lacking: Vec<_> = self.lacking().collect();
        format!(
            "tool `{tool}` requires grant {}; principal `{principal}` {}",
            list(&lacking),
            parts.join(" and ")
        )
    }
}

/// Decide whether `principal` may call the tool with `policy` at time `now`.
///
/// ```
/// use std::time::SystemTime;
/// use mcp_lp::{authorize, Grant, Principal, ToolPolicy};
///
/// const DELETE: ToolPolicy = ToolPolicy::new("delete_note").with_requires(&["notes:delete"]);
/// let now = SystemTime::now();
/// let bob = Principal::new("bob");
/// assert_eq!(authorize(&DELETE, &bob, now).unwrap_err().missing, ["notes:delete"]);
/// let alice = Principal::new("alice").with_grant(Grant::new("notes:delete")?);
/// assert!(authorize(&DELETE, &alice, now).is_ok());
/// # Ok::<(), mcp_lp::GrantError>(())
/// ```
pub fn authorize<'a>(
    policy: &'static ToolPolicy,
    principal: &'a Principal,
    now: SystemTime,
) -> Result<Authorized<'a>, Denial> {
    let mut denial = Denial {
        missing: Vec::new(),
        expired: Vec::new(),
    };
    for &required in policy.requires {
        if principal.holds(required, now) {
            continue;
        }
        if principal.grants().iter().any(|g| g.name() == required) {
            denial.expired.push(required);
        } else {
            denial.missing.push(required);
        }
    }
    if denial.missing.is_empty() && denial.expired.is_empty() {
        Ok(Authorized { policy, principal })
    } else {
        Err(denial)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::grant::Grant;

    const OPEN: ToolPolicy = ToolPolicy::new("read");
    const TWO: ToolPolicy = ToolPolicy::new("purge").with_requires(&["docs:delete", "docs:admin"]);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000)
    }

    #[test]
    fn accepts_tool_without_requirements_for_anyone() {
        assert!(authorize(&OPEN, &Principal::new("anyone"), now()).is_ok());
    }

    #[test]
    fn rejects_principal_holding_only_some_required_grants() {
        let p = Principal::new("alice").with_grant(Grant::new("docs:delete").unwrap());
        let denial = authorize(&TWO, &p, now()).unwrap_err();
        assert_eq!(denial.missing, ["docs:admin"]);
        assert!(denial.expired.is_empty());
    }

    #[test]
    fn accepts_principal_holding_every_required_grant() {
        let p = Principal::new("alice")
            .with_grant(Grant::new("docs:admin").unwrap())
            .with_grant(Grant::new("docs:delete").unwrap());
        let ok = authorize(&TWO, &p, now()).unwrap();
        assert_eq!(ok.principal().id(), "alice");
        assert_eq!(ok.policy().name, "purge");
    }

    #[test]
    fn rejects_expired_grant_and_says_it_expired() {
        let p = Principal::new("alice")
            .with_grant(Grant::new("docs:admin").unwrap())
            .with_grant(
                Grant::new("docs:delete")
                    .unwrap()
                    .expiring_at(now() - Duration::from_secs(1)),
            );
        let denial = authorize(&TWO, &p, now()).unwrap_err();
        assert_eq!(denial.expired, ["docs:delete"]);
        let text = denial.explain("purge", "alice");
        assert!(text.contains("expired `docs:delete`"), "{text}");
        assert!(text.contains("tool `purge`"), "{text}");
    }

    #[test]
    fn accepts_unexpired_grant_alongside_an_expired_copy() {
        let p = Principal::new("alice")
            .with_grant(Grant::new("docs:admin").unwrap())
            .with_grant(
                Grant::new("docs:delete")
                    .unwrap()
                    .expiring_at(now() - Duration::from_secs(1)),
            )
            .with_grant(Grant::new("docs:delete").unwrap());
        assert!(authorize(&TWO, &p, now()).is_ok());
    }

    #[test]
    fn rejects_grant_whose_name_only_resembles_the_requirement() {
        for near in [
            "DOCS:DELETE",
            "docs:delete:all",
            "docs",
            "docs:delete2",
            "docs:delet",
        ] {
            let p = Principal::new("alice")
                .with_grant(Grant::new("docs:admin").unwrap())
                .with_grant(Grant::new(near).unwrap());
            assert!(authorize(&TWO, &p, now()).is_err(), "{near}");
        }
    }
}
