//! Grants: named permissions a session holds, decided outside the model.

use std::fmt;
use std::time::SystemTime;

/// The longest grant name accepted.
pub const MAX_GRANT_LEN: usize = 128;

/// Why a grant name is malformed, or `None` when it is well formed.
///
/// A grant is 1 to [`MAX_GRANT_LEN`] characters from `a-z A-Z 0-9 . _ - : /`, and starts and ends
/// with a letter or digit — the shape of an OAuth scope such as `docs:delete`. This one function
/// is the grammar: the `#[tool(requires = ...)]` attribute checks its literals with it at compile
/// time and configuration checks its grants with it at startup.
pub const fn grant_syntax_error(name: &str) -> Option<&'static str> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Some("a grant must not be empty");
    }
    if bytes.len() > MAX_GRANT_LEN {
        return Some("a grant is at most 128 characters");
    }
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Some("a grant starts and ends with a letter or digit");
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/')) {
            return Some("a grant uses only `a-z A-Z 0-9 . _ - : /` (for example `docs:delete`)");
        }
        i += 1;
    }
    None
}

/// A grant held by a principal: a name such as `docs:delete` and an optional expiry.
///
/// A grant past its expiry is no grant: [`Grant::is_active`] is the only way a holder's grant is
/// consulted.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use mcp_lp::Grant;
///
/// let now = SystemTime::now();
/// let grant = Grant::new("docs:delete")?.expiring_at(now + Duration::from_secs(60));
/// assert!(grant.is_active(now));
/// assert!(!grant.is_active(now + Duration::from_secs(61)));
/// # Ok::<(), mcp_lp::GrantError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    name: String,
    expires_at: Option<SystemTime>,
}

impl Grant {
    /// A grant with no expiry, after checking the name against the grant grammar.
    pub fn new(name: impl Into<String>) -> Result<Self, GrantError> {
        let name = name.into();
        if let Some(reason) = grant_syntax_error(&name) {
            return Err(GrantError { name, reason });
        }
        Ok(Self {
            name,
            expires_at: None,
        })
    }

    /// The same grant, valid only before `at`.
    #[must_use]
    pub fn expiring_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// The grant's name, such as `docs:delete`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the grant stops counting, if ever.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// Whether the grant counts at `now`: it has no expiry or expires later.
    pub fn is_active(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expires_at {
            None => write!(f, "{}", self.name),
            Some(at) => write!(
                f,
                "{} (expires {})",
                self.name,
                jiff::Timestamp::try_from(at).map_or_else(|_| "?".to_owned(), |t| t.to_string())
            ),
        }
    }
}

/// A grant name that does not follow the grant grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed grant `{name}`: {reason}")]
#[non_exhaustive]
pub struct GrantError {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn accepts_scope_shaped_grants() {
        for name in [
            "docs:delete",
            "records:write",
            "a",
            "api.example.com/read",
            "x_y-z",
        ] {
            assert_eq!(grant_syntax_error(name), None, "{name}");
        }
    }

    #[test]
    fn rejects_malformed_grants() {
        for name in [
            "",
            " docs",
            "docs delete",
            "docs:",
            ":docs",
            "dócs",
            "a\"b",
            "a\nb",
        ] {
            assert!(grant_syntax_error(name).is_some(), "{name:?}");
        }
        assert!(grant_syntax_error(&"a".repeat(MAX_GRANT_LEN + 1)).is_some());
        assert_eq!(grant_syntax_error(&"a".repeat(MAX_GRANT_LEN)), None);
    }

    #[test]
    fn rejects_expired_grant_at_and_after_expiry() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let grant = Grant::new("docs:delete").unwrap().expiring_at(t0);
        assert!(grant.is_active(t0 - Duration::from_secs(1)));
        assert!(!grant.is_active(t0));
        assert!(!grant.is_active(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn error_names_the_grant_and_the_rule() {
        let err = Grant::new("docs delete").unwrap_err();
        assert_eq!(err.name, "docs delete");
        assert!(err.to_string().contains("`docs delete`"), "{err}");
    }
}
