//! Why the store refused to start. None carries a password: connection URLs are never
//! formatted, and PostgreSQL's own messages do not hold one.

use std::path::PathBuf;

use mcp_lp::ConfigError;
use mcp_lp_db::Privilege;

/// Why [`StateStore::connect`](crate::StateStore::connect) refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// `[state]` does not deserialize, or its URL reference cannot be resolved.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration has no `[state]` table.
    #[error("{}: the server needs a [state] table ({why}); add one with `url = {{ file = \"...\" }}`", path.display())]
    NotConfigured {
        /// The configuration file.
        path: PathBuf,
        /// What needs it, such as `[audit] postgres = true`.
        why: String,
    },
    /// A `[state]` value is well-typed but unusable.
    #[error("{}: key `{key}`: {problem}", path.display())]
    Setting {
        /// The configuration file.
        path: PathBuf,
        /// The dotted key, such as `state.url`.
        key: String,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// The first connection failed: the database is unreachable or refused the role.
    #[error("state store: cannot connect as role `{role}` to {target}: {reason}")]
    Connect {
        /// The role `[state]` logs in as.
        role: String,
        /// `host:port/database`.
        target: String,
        /// PostgreSQL's or the network's reason.
        reason: String,
    },
    /// The role holds more than the store's tables need.
    #[error(
        "state store: role `{role}` holds what the state role must not: {}. It may only INSERT and SELECT mcp_lp_audit.events and use its id sequence, and read and write mcp_lp_governance's revocations and last_used; revoke the rest, or give [state] a role without them",
        list(.offending)
    )]
    Privileges {
        /// The role `[state]` logs in as.
        role: String,
        /// Every offending privilege.
        offending: Vec<Privilege>,
    },
    /// The role lacks what the store's tables need, or a table is missing.
    #[error("state store: role `{role}` cannot use the store: {problem}")]
    Missing {
        /// The role `[state]` logs in as.
        role: String,
        /// What is missing and what to do.
        problem: String,
    },
    /// The privilege check could not run.
    #[error("state store: the privilege check of role `{role}` failed: {reason}")]
    CheckFailed {
        /// The role `[state]` logs in as.
        role: String,
        /// Why.
        reason: String,
    },
}

fn list(offending: &[Privilege]) -> String {
    let items: Vec<String> = offending.iter().map(ToString::to_string).collect();
    items.join(", ")
}
