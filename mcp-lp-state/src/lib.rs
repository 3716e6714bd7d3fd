//! # mcp-lp-state: the shared PostgreSQL state of mcp-lp replicas
//!
//! Replicas of one server share what must not live in one process's memory. This crate keeps
//! it in PostgreSQL, logging in as its own role from the `[state]` table, which the startup
//! privilege check holds to the store's own tables. Today it holds the audit trail:
//! [`PgAuditSink`] writes every sealed event to `mcp_lp_audit.events` (see
//! [`AUDIT_SCHEMA_SQL`]), a table the role may INSERT into and SELECT from, and nothing else:
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
//!     mcp_lp::cli::run(|config| async move {
//!         let mut server = mcp_lp::Server::new(Hello);
//!         // `[audit] postgres = true`: refuse to start unless [state]'s role is insert-only.
//!         if let Some(store) = mcp_lp_state::StateStore::connect_for_audit(&config).await? {
//!             server = server.audit_to(store.audit_sink());
//!         }
//!         Ok(server)
//!     })
//!     .await
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

mod audit_sink;
mod config;
mod error;
mod privileges;
mod store;

pub use crate::audit_sink::PgAuditSink;
pub use crate::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_STATEMENT_TIMEOUT,
};
pub use crate::error::StateError;
pub use crate::privileges::{AUDIT_SCHEMA, AUDIT_TABLE};
pub use crate::store::StateStore;

/// The audit table's SQL: schema `mcp_lp_audit`, owned by a role that never logs in, table
/// `events`, and the grants of the `[state]` role. Run it with psql as a superuser, with the
/// variables `state_owner` and `state_role`:
/// `psql -v state_owner=mcp_lp_state_owner -v state_role=mcp_lp_state -f audit.sql`.
pub const AUDIT_SCHEMA_SQL: &str = include_str!("audit.sql");
