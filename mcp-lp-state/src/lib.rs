//! # mcp-lp-state: the shared PostgreSQL state of mcp-lp replicas
//!
//! Replicas of one server share what must not live in one process's memory. This crate keeps
//! it in PostgreSQL, logging in as its own role from the `[state]` table, which the startup
//! privilege check holds to the store's own tables. It holds the revocation list every
//! replica follows ([`PgRevocations`], `mcp_lp_governance.revocations`, each change pushed by
//! `LISTEN/NOTIFY`), when each tool was last used, and the audit trail:
//! [`PgAuditSink`] writes every sealed event to `mcp_lp_audit.events` (see
//! [`STATE_SCHEMA_SQL`]), a table the role may INSERT into and SELECT from, and nothing else:
//! no UPDATE, DELETE or TRUNCATE, and it is not the owner. Each replica writes its own chain
//! there; `audit verify --db` reads them back in order.
//!
//! ```no_run
//! use mcp_lp::prelude::*;
//!
//! #[derive(Clone)]
//! struct Hello;
//!
//! #[mcp_lp::server]
//! impl Hello {
//!     /// Say hello.
//!     #[tool]
//!     async fn hello(&self) -> Result<String, ToolError> {
//!         Ok("hello".into())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     mcp_lp::cli::Program::new(|_config| async { Ok(mcp_lp::Server::new(Hello)) })
//!         // With [state]: refuse to start unless its role holds only what the store needs;
//!         // share its approvals and revocation list, and with `[audit] postgres = true` its
//!         // audit table. `revoke`, `approvals` and `audit verify --db` open only these.
//!         .shared_stores(mcp_lp_state::stores)
//!         .run()
//!         .await
//! }
//! ```
//!
//! ```toml
//! [state]
//! url = { file = "/vault/secrets/state.url" }   # postgres://mcp_lp_state:...@host/db
//! max_connections = 4
//!
//! [audit]
//! postgres = true
//! ```
//!
//! The check reuses mcp-lp-db's rules for every login role ([`mcp_lp_db::role_privileges`]):
//! no superuser, BYPASSRLS, CREATEROLE, CREATEDB or REPLICATION, no ownership of a table, of
//! the schema or of the database, no CREATE, no foreign servers or `dblink`. On top, the role
//! may hold on tables and sequences only INSERT and SELECT on `mcp_lp_audit.events` and USAGE
//! on its id sequence; anything else refuses the start, naming the role and each privilege.

mod approvals;
mod audit_sink;
mod config;
mod error;
mod last_used;
mod privileges;
mod revocations;
mod store;

pub use crate::approvals::PgApprovals;
pub use crate::audit_sink::PgAuditSink;
pub use crate::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_STATEMENT_TIMEOUT, StateRole,
};
pub use crate::error::StateError;
pub use crate::last_used::PgLastUsed;
pub use crate::privileges::{
    APPROVALS_TABLE, AUDIT_SCHEMA, AUDIT_TABLE, GOVERNANCE_SCHEMA, LAST_USED_TABLE, NONCES_TABLE,
    REVOCATIONS_TABLE,
};
pub use crate::revocations::PgRevocations;
pub use crate::store::StateStore;

/// The stores `[state]` names, opened, for `mcp_lp::cli::Program::shared_stores`; `None`
/// without `[state]`. See [`StateStore::shared`].
pub async fn stores(
    config: std::sync::Arc<mcp_lp::Config>,
) -> Result<Option<mcp_lp::stores::SharedStores>, StateError> {
    StateStore::shared(&config).await
}

/// The store's SQL: schema `mcp_lp_audit` with the audit table `events`, schema
/// `mcp_lp_governance` with `revocations` (and the trigger that notifies replicas of every
/// change) and `last_used`, all owned by a role that never logs in, and the grants of the
/// `[state]` role. Run it with psql as a superuser, with the variables `state_owner` and
/// `state_role`: `psql -v state_owner=mcp_lp_state_owner -v state_role=mcp_lp_state -f ...`
/// (the text is `audit.sql` then `governance.sql`).
pub const STATE_SCHEMA_SQL: &str =
    concat!(include_str!("audit.sql"), include_str!("governance.sql"));
