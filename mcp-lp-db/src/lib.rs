//! # mcp-lp-db: PostgreSQL for mcp-lp tools, one login role per capability
//!
//! A tool declares the database capability it reads (`#[tool(db = "records-read")]`) or writes
//! (`#[tool(db_write = "records-write")]`), and its handler takes a connection handle as an
//! argument: [`PgRead`] or [`PgWrite`]. Each capability has its own pool, logging in as its own
//! PostgreSQL role, so a read tool holds a connection whose role cannot write, and a handler
//! cannot reach another capability's pool: the pools live in [`Databases`], which the checkpoint
//! holds, not in the service.
//!
//! ```no_run
//! use mcp_lp::prelude::*;
//! use mcp_lp_db::{Databases, PgRead};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Query {
//!     /// Text the title contains.
//!     contains: String,
//! }
//!
//! #[derive(Clone)]
//! struct Records;
//!
//! #[mcp_lp::server]
//! impl Records {
//!     /// Count the caller's records whose title contains the text.
//!     #[tool(db = "records-read")]
//!     async fn count_records(
//!         &self,
//!         mut db: PgRead,
//!         Parameters(q): Parameters<Query>,
//!     ) -> Result<String, ToolError> {
//!         let row = db
//!             .query_one("SELECT count(*) FROM records WHERE strpos(title, $1) > 0", &[&q.contains])
//!             .await?;
//!         Ok(row.get::<_, i64>(0).to_string())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     mcp_lp::cli::run(|config| async move {
//!         // Connect every [db.<name>] pool and check its role's privileges; refuse to start
//!         // on an over-privileged role.
//!         let databases = Databases::connect::<Records>(&config).await?;
//!         Ok(mcp_lp::Server::new(Records).provide(databases))
//!     })
//!     .await
//! }
//! ```
//!
//! ```toml
//! [db.records-read]
//! url = { file = "/vault/secrets/records-read.url" }   # postgres://records_reader:...@host/db
//! max_connections = 10
//! ```
//!
//! What every call gets:
//!
//! - a connection checked out lazily, on the handle's first query, so a refused call or a
//!   handler that never queries checks out nothing;
//! - `READ ONLY` for [`PgRead`]: from the connection's default where the role's grants already
//!   keep it from writing, else a `BEGIN READ ONLY` ... `ROLLBACK` around each statement, in one
//!   pipeline (see [`Envelope`]);
//! - one transaction per [`PgWrite`], committed only by [`PgWrite::commit`];
//! - the principal in `mcp_lp.principal` where a row-level policy reads it
//!   ([`PrincipalMode`]), signed where the database can verify it ([`PRINCIPAL_SCHEMA_SQL`]);
//! - a statement cut short by the tool's timeout cancelled on the server;
//! - a clean session afterwards: the settings, role, cursors, listeners, advisory locks and
//!   temporary tables a handler left behind are gone before the connection serves another call.
//!
//! At startup, [`Databases::connect`] refuses a role that is a superuser, bypasses row-level
//! security, can create roles or databases, can replicate, or is a member of a role that can;
//! a read capability that can write any table; and a capability that owns its tables. See
//! [`Privilege`] for the full list.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `tls` | off | TLS to PostgreSQL with rustls (ring), verifying the server against a configured CA: `tls = { ca_file = "..." }` in `[db.<name>]` |

mod config;
mod envelope;
mod error;
mod extract;
mod kind;
mod pool;
mod privileges;
mod statement;
#[cfg(feature = "tls")]
mod tls;

/// Entry points for the fuzz targets in `fuzz/`: the crate's own statement filter, not a copy.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    /// The keyword that makes `sql` refused and the reason (as its debug name) when the
    /// handles refuse to run it, for a reader whose `READ ONLY` is (or is not) the connection's
    /// default.
    pub fn refused(sql: &str, read_only_on_connection: bool) -> Option<(String, String)> {
        let guard = crate::statement::Guard {
            read_only_on_connection,
        };
        crate::statement::refused(sql, guard).map(|(word, why)| (word, format!("{why:?}")))
    }
}

pub use tokio_postgres;
pub use tokio_postgres::Row;
pub use tokio_postgres::types::ToSql;

pub use crate::config::{
    DEFAULT_CHECKOUT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_STATEMENT_TIMEOUT, PRINCIPAL_MAC_SETTING, PRINCIPAL_SETTING, PrincipalMode,
    PrivilegeCheck, parse_url,
};
pub use crate::envelope::{Envelope, PRINCIPAL_SCHEMA_SQL, ReadOnly};
pub use crate::error::{DbError, PgReason, StartupError};
pub use crate::extract::{PgRead, PgWrite};
pub use crate::kind::{DbAccess, DbRead, DbWrite};
pub use crate::pool::{Databases, PoolStats, target};
pub use crate::privileges::{
    Privilege, PrivilegeError, RoleAttribute, RoleCheckError, role_privileges,
};
#[cfg(feature = "tls")]
pub use crate::tls::connector as tls_connector;
