//! Errors: what stops the server from starting, and what a call reports. None carries a
//! password: connection URLs are never formatted, and PostgreSQL's own messages do not hold one.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mcp_lp::{ConfigError, ToolError};

use crate::privileges::PrivilegeError;

/// Why [`Databases::connect`](crate::Databases::connect) refused to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The `[db]` tables do not deserialize, disagree with the tools' declarations, or name a
    /// secret that cannot be resolved.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A `[db.<name>]` value is well-typed but unusable.
    #[error("{}: key `{key}`: {problem}", path.display())]
    Setting {
        /// The configuration file.
        path: PathBuf,
        /// The dotted key, such as `db.records-read.url`.
        key: String,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// The first connection of a capability failed: the database is unreachable or refused the
    /// role's credentials.
    #[error("db capability `{capability}`: cannot connect as role `{role}` to {target}: {reason}")]
    Connect {
        /// The capability.
        capability: String,
        /// The role the capability logs in as.
        role: String,
        /// `host:port/database`.
        target: String,
        /// PostgreSQL's or the network's reason.
        reason: String,
    },
    /// The capability's role holds privileges the capability must not have.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    /// The privilege check could not run.
    #[error("db capability `{capability}`: the privilege check of role `{role}` failed: {reason}")]
    CheckFailed {
        /// The capability.
        capability: String,
        /// The role the capability logs in as.
        role: String,
        /// Why.
        reason: String,
    },
    /// A configured schema does not exist.
    #[error(
        "db capability `{capability}`: schema `{schema}` (in `db.{capability}.schemas`) does not exist in database `{database}`"
    )]
    UnknownSchema {
        /// The capability.
        capability: String,
        /// The schema as configured.
        schema: String,
        /// The database connected to.
        database: String,
    },
    /// The TLS configuration could not be loaded.
    #[error("{}: key `db.{capability}.tls.ca_file`: {problem}", path.display())]
    Tls {
        /// The configuration file.
        path: PathBuf,
        /// The capability.
        capability: String,
        /// What is wrong with the CA file.
        problem: String,
    },
}

/// Why a database call failed. Its message names the capability and goes to the model as the
/// tool's error (through `?` into [`ToolError`]), so it says what happened without internals.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// Every connection of the pool stayed in use for the whole checkout timeout.
    #[error(
        "db capability `{capability}`: no connection became free within {timeout:?}; all {max_connections} connections of its pool are in use"
    )]
    PoolExhausted {
        /// The capability.
        capability: String,
        /// Its checkout timeout.
        timeout: Duration,
        /// Its pool size.
        max_connections: usize,
    },
    /// A new connection could not be opened within the connect timeout.
    #[error(
        "db capability `{capability}`: connecting to the database did not finish within {timeout:?}"
    )]
    ConnectTimeout {
        /// The capability.
        capability: String,
        /// Its connect timeout.
        timeout: Duration,
    },
    /// The database cannot be reached, or dropped the connection.
    #[error("db capability `{capability}`: the database is unavailable: {reason}")]
    Unavailable {
        /// The capability.
        capability: String,
        /// The network's or PostgreSQL's reason.
        reason: String,
    },
    /// The database refused or failed a statement.
    #[error("db capability `{capability}`: {message}{}", code.as_ref().map(|c| format!(" (SQLSTATE {c})")).unwrap_or_default())]
    Statement {
        /// The capability.
        capability: String,
        /// PostgreSQL's SQLSTATE, such as `42501` for a missing privilege or `25006` for a
        /// write in a read-only transaction.
        code: Option<String>,
        /// PostgreSQL's message.
        message: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A statement the handle does not run for a handler: transaction control (`BEGIN`,
    /// `COMMIT`, `ROLLBACK`, `SAVEPOINT`, ...), because the handle owns its transaction (a
    /// reader's stays `READ ONLY` to the end, a writer's ends with
    /// [`PgWrite::commit`](crate::PgWrite::commit)); or `PREPARE`, `DEALLOCATE` and `DISCARD`,
    /// because prepared statements outlive the call.
    #[error("db capability `{capability}`: `{keyword}` is refused: {reason}")]
    Refused {
        /// The capability.
        capability: String,
        /// The statement's first keyword, upper-cased.
        keyword: String,
        /// Why, and what to do instead.
        reason: &'static str,
    },
    /// `query_one` found no row, or more than one.
    #[error("db capability `{capability}`: expected exactly one row, got {rows}")]
    RowCount {
        /// The capability.
        capability: String,
        /// How many rows the query returned (2 means "more than one").
        rows: usize,
    },
    /// The capability's URL secret could not be refreshed for longer than its max age
    /// (`[secrets_refresh] max_age`): the capability refuses rather than use it.
    #[error("db capability `{capability}`: {reason}")]
    SecretExpired {
        /// The capability.
        capability: String,
        /// Which secret, its reference and why its refresh failed; never the value.
        reason: String,
    },
    /// [`PgWrite::commit`](crate::PgWrite::commit) found the transaction aborted by an earlier
    /// failed statement, so nothing was committed.
    #[error(
        "db capability `{capability}`: nothing was committed: an earlier statement failed, which aborted the transaction"
    )]
    Aborted {
        /// The capability.
        capability: String,
    },
}

impl DbError {
    /// PostgreSQL's SQLSTATE of a failed statement, such as `"42501"` (insufficient privilege).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Statement { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn from_statement(capability: &str, error: tokio_postgres::Error) -> Self {
        let capability = capability.to_owned();
        match error.as_db_error() {
            // The server shutting down or refusing connections is not the statement's fault.
            Some(db) if is_unavailability(db.code().code()) => Self::Unavailable {
                capability,
                reason: PgReason(&error).to_string(),
            },
            Some(db) => Self::Statement {
                capability,
                code: Some(db.code().code().to_owned()),
                message: db.message().to_owned(),
                source: error,
            },
            None if error.is_closed() || is_io(&error) => Self::Unavailable {
                capability,
                reason: PgReason(&error).to_string(),
            },
            None => Self::Statement {
                capability,
                code: None,
                message: PgReason(&error).to_string(),
                source: error,
            },
        }
    }
}

/// SQLSTATE classes 08 (connection exception) and 57P (operator intervention: shutdown,
/// crash, not yet accepting connections).
fn is_unavailability(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P")
}

fn is_io(error: &tokio_postgres::Error) -> bool {
    std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>())
}

impl From<DbError> for ToolError {
    fn from(error: DbError) -> Self {
        ToolError::new(error.to_string())
    }
}

/// A PostgreSQL error as one line: the server's message when it sent one, else the driver's.
/// Neither holds a password.
///
/// ```
/// # fn show(e: &tokio_postgres::Error) -> String {
/// mcp_lp_db::PgReason(e).to_string()
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PgReason<'a>(pub &'a tokio_postgres::Error);

impl fmt::Display for PgReason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_db_error() {
            Some(db) => write!(f, "{} (SQLSTATE {})", db.message(), db.code().code()),
            None => match std::error::Error::source(self.0) {
                Some(source) => write!(f, "{}: {source}", self.0),
                None => write!(f, "{}", self.0),
            },
        }
    }
}
