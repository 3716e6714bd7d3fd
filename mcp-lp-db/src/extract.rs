//! The connection handles a handler receives: [`PgRead`] and [`PgWrite`].
//!
//! rmcp's extractor trait is synchronous, so a handle is only a promise: it checks out a
//! connection from its tool's pool on its first statement.
//!
//! What goes around a handler's statement is fitted to the capability at startup
//! ([`Envelope`](crate::Envelope)), and each statement goes in one pipeline with it, one round
//! trip. Every statement sent here has a reason, given where it is sent:
//!
//! - `BEGIN READ ONLY` ... `ROLLBACK`, only where the connection is not read-only by default
//!   or the role could write (a reader in a write tool; a `warn-only` read capability);
//! - the settings statement, only where a policy reads the principal (or `principal =
//!   "always"`);
//! - `BEGIN READ WRITE` for a writer: its statements must commit together or not at all;
//! - the session reset, only after a statement that may have left something in the session
//!   (`statement::may_leave_session_state`): in the same pipeline for a reader, with the
//!   `COMMIT` for a writer; in a `READ ONLY` transaction the rollback undoes all of it but
//!   advisory locks, so only `pg_advisory_unlock_all()` is added there, and only where the role
//!   may take such locks;
//! - `COMMIT` or `ROLLBACK` for a writer.
//!
//! So a connection is clean when a call's last answer arrives, and goes straight back to the
//! pool. When a writer's handle is dropped uncommitted, a task rolls it back and only then
//! returns the connection; one that cannot be made clean is closed, and one still running a
//! statement is cancelled first.

use std::fmt;
use std::sync::Arc;

use deadpool_postgres::Object;
use futures::{TryStreamExt as _, join, try_join};
use mcp_lp::CallScope;
use mcp_lp::capability::Capability;

use mcp_lp::capability::Kind as _;

use crate::kind::{DbAccess, DbRead, DbWrite};
use rmcp::ErrorData;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::envelope::{self, ReadOnly};
use crate::error::DbError;
use crate::pool::{CapabilityPool, Databases};
use crate::statement::{Guard, Refusal, may_leave_session_state, refused};

/// Opens a reader's transaction where the connection's default does not make it read-only.
const BEGIN_READ: &str = "BEGIN READ ONLY";

/// Ends it: the rollback undoes everything a `READ ONLY` transaction can change (settings,
/// `SET ROLE`, cursors and `LISTEN` are transactional; it can create no temporary table and
/// advance no sequence) except session advisory locks.
const END_READ: &str = "ROLLBACK";

/// The same, also releasing session advisory locks: after a statement that may have taken one
/// (`statement::may_leave_session_state`), where the role may take them.
const END_READ_UNLOCK: &str = "ROLLBACK; SELECT pg_advisory_unlock_all()";

/// Opens a writer's transaction; its statements run in it until `commit()` or the drop.
const BEGIN_WRITE: &str = "BEGIN READ WRITE";

/// What a session may hold after a statement that committed (a writer's transaction, a
/// reader's statement on a read-only connection) and may have left something behind. `RESET
/// ALL` returns settings to the session's defaults, which include the `statement_timeout` and,
/// for a reader, `default_transaction_read_only = on` sent at login; `SET SESSION
/// AUTHORIZATION DEFAULT` also undoes `SET ROLE`. Handlers cannot touch prepared statements
/// (see `statement`), so the driver's cache stays valid. Temporary tables and sequences are
/// discarded even for a reader: the reset must not depend on the read-only default having
/// held. Session advisory locks are released where the role can take them.
macro_rules! reset_session {
    ($unlock:literal) => {
        concat!(
            "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; ",
            $unlock,
            "DISCARD TEMP; DISCARD SEQUENCES"
        )
    };
}

const RESET_SESSION: &str = reset_session!("");
const RESET_SESSION_UNLOCK: &str = reset_session!("SELECT pg_advisory_unlock_all(); ");

/// The session reset for a pool: with the advisory unlock where its role can take locks.
fn reset_session(unlock: bool) -> &'static str {
    if unlock {
        RESET_SESSION_UNLOCK
    } else {
        RESET_SESSION
    }
}

/// How a handle runs a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A reader on a connection that is read-only by default: the statement alone, after the
    /// settings statement when there is one.
    ReadOnConnection,
    /// A reader in a `BEGIN READ ONLY` ... `ROLLBACK` of its own around each statement.
    ReadInTransaction,
    /// A writer: one transaction for the whole handle.
    Write,
}

/// A connection that reads through the calling tool's database capability: every statement
/// read-only and a transaction of its own, with the principal set where a policy reads it.
///
/// Take it as a handler argument in a tool declaring `db = "<name>"` (or `db_write`, where it
/// reads through the writer's role). It checks out a connection on its first statement and
/// keeps it until it is dropped. Each statement runs read-only: on a connection whose default is
/// `READ ONLY` where the role's grants already keep it from writing, otherwise in a `BEGIN READ
/// ONLY` ... `ROLLBACK` sent in one pipeline with it. The principal's `set_config` goes before
/// every statement where a policy reads it, and nothing a statement did outlives the call.
/// Under `READ COMMITTED`, PostgreSQL's
/// default, a statement sees what was committed before it began, as it would inside one longer
/// transaction.
///
/// ```no_run
/// # use mcp_lp::prelude::*;
/// # use mcp_lp_db::PgRead;
/// # #[derive(Clone)] struct Records;
/// #[mcp_lp::server]
/// impl Records {
///     /// Count the caller's records.
///     #[tool(db = "records-read")]
///     async fn count(&self, mut db: PgRead) -> Result<String, ToolError> {
///         let row = db.query_one("SELECT count(*) FROM records", &[]).await?;
///         Ok(row.get::<_, i64>(0).to_string())
///     }
/// }
/// ```
pub struct PgRead {
    handle: Handle,
}

/// A connection that writes through the calling tool's database capability, in one
/// transaction with the principal set, committed only by [`PgWrite::commit`].
///
/// Take it as a handler argument in a tool declaring `db_write = "<name>"`; a tool declaring
/// only `db = "..."` cannot, at compile time. If the handler returns, fails or times out without
/// committing, the transaction is rolled back.
///
/// ```no_run
/// # use mcp_lp::prelude::*;
/// # use mcp_lp_db::PgWrite;
/// # #[derive(Clone)] struct Records;
/// #[mcp_lp::server]
/// impl Records {
///     /// Add a record for the caller.
///     #[tool(db_write = "records-write", requires = "records:write")]
///     async fn add(&self, mut db: PgWrite) -> Result<String, ToolError> {
///         db.execute("INSERT INTO records (title, body) VALUES ($1, $2)", &[&"title", &"body"])
///             .await?;
///         db.commit().await?;
///         Ok("added".into())
///     }
/// }
/// ```
pub struct PgWrite {
    handle: Handle,
}

impl Capability for PgRead {
    type Requirement = DbRead;
}

impl Capability for PgWrite {
    type Requirement = DbWrite;
}

impl<C: AsRequestContext> FromContextPart<C> for PgRead {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        Handle::extract(context, DbAccess::Read).map(|handle| Self { handle })
    }
}

impl<C: AsRequestContext> FromContextPart<C> for PgWrite {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        Handle::extract(context, DbAccess::Write).map(|handle| Self { handle })
    }
}

impl PgRead {
    /// Run one statement and return its rows. Parameters are bound, never interpolated: write
    /// `$1`, `$2`, ... in `sql`.
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        self.handle.run(sql, params).await.map(|(rows, _)| rows)
    }

    /// Run one statement that returns exactly one row.
    pub async fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        let rows = self.query(sql, params).await?;
        self.handle.exactly_one(rows)
    }

    /// Run one statement that returns at most one row.
    pub async fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        let rows = self.query(sql, params).await?;
        self.handle.at_most_one(rows)
    }

    /// The capability this handle reads through.
    pub fn capability(&self) -> &str {
        &self.handle.pool.name
    }
}

impl PgWrite {
    /// Run one statement and return its rows. Parameters are bound, never interpolated: write
    /// `$1`, `$2`, ... in `sql`.
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        self.handle.run(sql, params).await.map(|(rows, _)| rows)
    }

    /// Run one statement that returns exactly one row, such as `INSERT ... RETURNING`.
    pub async fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        let rows = self.query(sql, params).await?;
        self.handle.exactly_one(rows)
    }

    /// Run one statement that returns at most one row.
    pub async fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        let rows = self.query(sql, params).await?;
        self.handle.at_most_one(rows)
    }

    /// Run one statement and return how many rows it affected.
    pub async fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, DbError> {
        self.handle.run(sql, params).await.map(|(_, count)| count)
    }

    /// Commit the transaction. Without it, everything the handle wrote is rolled back.
    ///
    /// Fails with [`DbError::Aborted`] when a statement of the transaction failed earlier:
    /// PostgreSQL aborted the transaction then, and nothing is committed.
    pub async fn commit(mut self) -> Result<(), DbError> {
        self.handle.commit().await
    }

    /// The capability this handle writes through.
    pub fn capability(&self) -> &str {
        &self.handle.pool.name
    }
}

impl fmt::Debug for PgRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle.fmt_as("PgRead", f)
    }
}

impl fmt::Debug for PgWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle.fmt_as("PgWrite", f)
    }
}

/// The shared machinery of both handles.
struct Handle {
    pool: Arc<CapabilityPool>,
    scope: CallScope,
    access: DbAccess,
    mode: Mode,
    /// The checked-out connection; `None` before the first statement and after `commit`.
    open: Option<Open>,
    /// A statement failed inside the transaction, so PostgreSQL aborted it: `COMMIT` would
    /// quietly roll back.
    aborted: bool,
    /// A writer's statement may have left something in the session
    /// (`statement::may_leave_session_state`): the session is reset when the handle is done.
    dirty: bool,
}

/// A checked-out connection.
struct Open {
    connection: Object,
    /// The number of the pool it came from, which a URL rotation increments.
    pool_number: u64,
    /// Whether a writer's transaction is open on it: after its `BEGIN` was sent.
    in_transaction: bool,
    /// Whether a statement was sent and its answer not yet read: the handler's future was
    /// dropped mid-statement (the tool timed out, or the client cancelled), and the backend may
    /// still be running it.
    busy: bool,
    /// Whether the server reported a prepared statement missing (SQLSTATE 26000): the driver's
    /// statement cache no longer matches the session, so the connection is closed, not reused.
    poisoned: bool,
}

impl Handle {
    fn extract<C: AsRequestContext>(context: &mut C, access: DbAccess) -> Result<Self, ErrorData> {
        let scope = CallScope::from_context_part(context)?;
        let tool = scope.tool();
        let internal = |message: String| ErrorData::internal_error(message, None);
        let Some(declared) = tool.capability(DbRead::NAME) else {
            return Err(internal(format!(
                "tool `{}` declares no database capability",
                tool.name
            )));
        };
        let capability = declared.name;
        // The macro makes this a compile error; checked again so no path hands a reader's
        // call a read-write transaction.
        if access == DbAccess::Write && DbAccess::of(declared.access) != DbAccess::Write {
            return Err(internal(format!(
                "tool `{}` reads db capability `{capability}` and cannot take a PgWrite",
                tool.name
            )));
        }
        let databases = scope.provider::<Databases>().ok_or_else(|| {
            internal(
                "the server was started without its databases: pass mcp_lp_db::Databases to mcp_lp::Server::provide"
                    .to_owned(),
            )
        })?;
        let pool = databases.pool(capability).cloned().ok_or_else(|| {
            internal(format!(
                "tool `{}` declares db capability `{capability}`, which the server's databases do not include",
                tool.name
            ))
        })?;
        let mode = match access {
            DbAccess::Write => Mode::Write,
            _ if pool.access == DbAccess::Read
                && pool.envelope.read_only == ReadOnly::Connection =>
            {
                Mode::ReadOnConnection
            }
            _ => Mode::ReadInTransaction,
        };
        Ok(Self {
            pool,
            scope,
            access,
            mode,
            open: None,
            aborted: false,
            dirty: false,
        })
    }

    /// Run `sql` and return its rows and the number of rows it affected.
    async fn run(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(Vec<Row>, u64), DbError> {
        let guard = Guard {
            read_only_on_connection: self.mode == Mode::ReadOnConnection,
        };
        if let Some((keyword, refusal)) = refused(sql, guard) {
            return Err(DbError::Refused {
                capability: self.pool.name.clone(),
                keyword,
                reason: match (refusal, self.access) {
                    (Refusal::TransactionControl, DbAccess::Read) => {
                        "the handle runs every statement in its own READ ONLY transaction"
                    }
                    (Refusal::TransactionControl, DbAccess::Write) => {
                        "the handle runs every statement in its own transaction; commit it with `PgWrite::commit`"
                    }
                    (Refusal::PreparedStatements, _) => {
                        "the handle prepares and caches statements itself; pass parameters instead"
                    }
                    (Refusal::ReadOnlySwitch, _) => {
                        "the connection is READ ONLY and the statement could switch that off"
                    }
                },
            });
        }
        let pool = &*self.pool;
        let capability = pool.name.as_str();
        let open = match &mut self.open {
            Some(open) => open,
            slot @ None => {
                let (connection, pool_number) = pool.checkout().await?;
                slot.insert(Open {
                    connection,
                    pool_number,
                    in_transaction: false,
                    busy: false,
                    poisoned: false,
                })
            }
        };
        let connection = &open.connection;
        let dirty = may_leave_session_state(sql);
        let unlock = pool.envelope.advisory_unlock;

        let principal = self.scope.principal().id();
        let connection_id = (open.pool_number, Object::id(connection));
        // Where policies need the principal, it goes with a writer's `BEGIN`, with each reader
        // statement in a transaction of its own, and with each reader statement on a read-only
        // connection unless that session holds this principal already: set by this pool's own
        // settings statement, with only plain statements since (a statement that may change a
        // setting is followed by the reset, which forgets it).
        let send_settings = pool.envelope.principal
            && match self.mode {
                Mode::Write => !open.in_transaction,
                Mode::ReadInTransaction => true,
                Mode::ReadOnConnection => !pool.session_holds(connection_id, principal),
            };
        let settings_sql = match self.mode {
            // Each statement is its own transaction: the settings must outlive theirs.
            Mode::ReadOnConnection => &pool.set_session,
            Mode::ReadInTransaction | Mode::Write => &pool.set_local,
        };
        let mac = match &pool.key {
            Some(key) if send_settings => envelope::principal_mac(key, principal),
            _ => String::new(),
        };
        let settings_params: &[&(dyn ToSql + Sync)] = if pool.envelope.signed_principal {
            &[&principal, &mac]
        } else {
            &[&principal]
        };
        // Prepared statements are cached per connection, so after the first call this costs no
        // round trip.
        let (settings, statement) = if send_settings {
            let (settings, statement) = try_join!(
                connection.prepare_cached(settings_sql),
                connection.prepare_cached(sql)
            )
            .map_err(|e| DbError::from_statement(capability, e))?;
            (Some(settings), statement)
        } else {
            let statement = connection
                .prepare_cached(sql)
                .await
                .map_err(|e| DbError::from_statement(capability, e))?;
            (None, statement)
        };
        let set = async {
            match &settings {
                Some(settings) => connection
                    .execute(settings, settings_params)
                    .await
                    .map(drop),
                None => Ok(()),
            }
        };

        // From here until the answer is read, a dropped future leaves the backend busy.
        open.busy = true;
        // Each arm sends its requests in one pipeline, one round trip: they go out in this
        // order before any reply is awaited, and the server runs them in order.
        let result = match (self.mode, open.in_transaction) {
            // Nothing around the statement: the connection is read-only by default, and each
            // statement is a transaction of its own. A statement that may have left something in the session (a plain query cannot)
            // is followed by the reset in the same pipeline, so the connection is clean when
            // the answer arrives and goes straight back to the pool when the handle is done.
            (Mode::ReadOnConnection, _) => {
                let reset = async {
                    if dirty {
                        connection.batch_execute(reset_session(unlock)).await
                    } else {
                        Ok(())
                    }
                };
                let (set, rows, reset) = join!(set, collect(connection, &statement, params), reset);
                if reset.is_err() {
                    open.poisoned = true;
                }
                match (&set, dirty || reset.is_err()) {
                    (_, true) | (Err(_), _) => pool.session_forget(connection_id),
                    (Ok(()), false) if send_settings => {
                        pool.session_remember(connection_id, principal);
                    }
                    (Ok(()), false) => {}
                }
                set.and(rows)
            }
            (Mode::ReadInTransaction, _) => {
                // `join!`, not `try_join!`: every request is sent and answered even when one
                // fails, so the rollback always runs.
                let (begun, set, rows, ended) = join!(
                    connection.batch_execute(BEGIN_READ),
                    set,
                    collect(connection, &statement, params),
                    connection.batch_execute(if dirty && unlock {
                        END_READ_UNLOCK
                    } else {
                        END_READ
                    }),
                );
                if ended.is_err() {
                    open.poisoned = true;
                }
                begun
                    .and(set)
                    .and(rows)
                    .and_then(|rows| ended.map(|()| rows))
            }
            (Mode::Write, true) => {
                self.dirty |= dirty;
                collect(connection, &statement, params).await
            }
            (Mode::Write, false) => {
                // From here a cancellation may leave the transaction open: the drop rolls it back.
                open.in_transaction = true;
                self.dirty |= dirty;
                try_join!(
                    connection.batch_execute(BEGIN_WRITE),
                    set,
                    collect(connection, &statement, params),
                )
                .map(|(_, _, result)| result)
            }
        };
        open.busy = false;
        result.map_err(|e| {
            // An error the server raised, or a lost connection, aborts a writer's transaction;
            // one the driver raised before sending (a parameter of the wrong type) does not.
            if e.as_db_error().is_some() || e.is_closed() {
                self.aborted = true;
            }
            if e.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME) {
                open.poisoned = true;
            }
            DbError::from_statement(capability, e)
        })
    }

    async fn commit(&mut self) -> Result<(), DbError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        if open.poisoned {
            drop(Object::take(open.connection));
            return Err(DbError::Aborted {
                capability: self.pool.name.clone(),
            });
        }
        if !open.in_transaction {
            release(open.connection, None);
            return Ok(());
        }
        if self.aborted {
            release(open.connection, Some(self.rollback_sql()));
            return Err(DbError::Aborted {
                capability: self.pool.name.clone(),
            });
        }
        // The reset, where one is needed, goes in the same pipeline as the `COMMIT`: the
        // connection is clean when the answer arrives.
        let reset = async {
            if self.dirty {
                open.connection
                    .batch_execute(reset_session(self.pool.envelope.advisory_unlock))
                    .await
            } else {
                Ok(())
            }
        };
        match join!(open.connection.batch_execute("COMMIT"), reset) {
            (Ok(()), Ok(())) => {
                release(open.connection, None);
                Ok(())
            }
            (Ok(()), Err(e)) => {
                tracing::warn!(
                    capability = %self.pool.name,
                    error = %crate::error::PgReason(&e),
                    "a database connection could not be reset after a call and was closed"
                );
                drop(Object::take(open.connection));
                Ok(())
            }
            (Err(e), _) => {
                // Whether it committed is unknown, and so is the session's state.
                drop(Object::take(open.connection));
                Err(DbError::from_statement(&self.pool.name, e))
            }
        }
    }

    /// What ends a writer's transaction that is not committed.
    fn rollback_sql(&self) -> &'static str {
        match (self.dirty, self.pool.envelope.advisory_unlock) {
            (false, _) => "ROLLBACK",
            (true, false) => concat!("ROLLBACK; ", reset_session!("")),
            (true, true) => concat!(
                "ROLLBACK; ",
                reset_session!("SELECT pg_advisory_unlock_all(); ")
            ),
        }
    }

    fn exactly_one(&self, mut rows: Vec<Row>) -> Result<Row, DbError> {
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(DbError::RowCount {
                capability: self.pool.name.clone(),
                rows: n.min(2),
            }),
        }
    }

    fn at_most_one(&self, mut rows: Vec<Row>) -> Result<Option<Row>, DbError> {
        match rows.len() {
            0 => Ok(None),
            1 => Ok(Some(rows.remove(0))),
            n => Err(DbError::RowCount {
                capability: self.pool.name.clone(),
                rows: n.min(2),
            }),
        }
    }

    fn fmt_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.open {
            None => "no connection",
            Some(Open { busy: true, .. }) => "running a statement",
            Some(Open {
                in_transaction: true,
                ..
            }) => "in transaction",
            Some(_) => "checked out",
        };
        f.debug_struct(name)
            .field("capability", &self.pool.name)
            .field("role", &self.pool.role())
            .field("principal", &self.scope.principal().id())
            .field("state", &state)
            .field("aborted", &self.aborted)
            .finish()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        if open.busy {
            cancel_and_close(self.pool.clone(), open.connection);
            return;
        }
        if open.poisoned {
            drop(Object::take(open.connection));
            return;
        }
        // A reader's statements were each made clean in their own pipeline; a writer's
        // transaction is rolled back, with the reset if a statement may have left something.
        let reset = (self.mode == Mode::Write && open.in_transaction).then(|| self.rollback_sql());
        release(open.connection, reset);
    }
}

/// A statement of `connection` was cut short: ask the server to cancel it, wait until the
/// backend answers again (it is idle then), and close the connection. The task holds the
/// connection all along, so the pool counts it as in use and opens no other in its place
/// while the backend still works: timed-out calls cannot pile up backends beyond
/// `max_connections`. It is closed rather than reused because what the cancelled statement
/// left behind is unknown.
fn cancel_and_close(pool: Arc<CapabilityPool>, connection: Object) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        drop(Object::take(connection));
        return;
    };
    let pending = Unclean(Some(connection));
    runtime.spawn(async move {
        let Some(connection) = pending.0.as_ref() else {
            return;
        };
        if let Err(e) = pool.connector.cancel(connection).await {
            tracing::warn!(
                capability = %pool.name,
                error = %crate::error::PgReason(&e),
                "could not send a cancel request for a statement whose call ended"
            );
        }
        // The answer comes after the cancelled statement's: the backend is idle once it does.
        // Past the statement timeout the server has ended the statement itself.
        let idle = tokio::time::timeout(
            pool.statement_timeout + pool.connect_timeout(),
            connection.batch_execute(END_READ),
        )
        .await;
        if idle.is_err() {
            tracing::warn!(
                capability = %pool.name,
                "a database connection stayed busy after its call ended and was closed"
            );
        }
        // Dropping `pending` closes the connection.
        drop(pending);
    });
}

/// Run a prepared statement and collect its rows and affected-row count.
async fn collect(
    connection: &Object,
    statement: &tokio_postgres::Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(Vec<Row>, u64), tokio_postgres::Error> {
    let stream = connection
        .query_raw(statement, params.iter().map(|p| *p as &dyn ToSql))
        .await?;
    futures::pin_mut!(stream);
    let mut rows = Vec::new();
    while let Some(row) = stream.try_next().await? {
        rows.push(row);
    }
    let count = stream.rows_affected().unwrap_or(0);
    Ok((rows, count))
}

/// Return `connection` to its pool once `reset` (SQL) has made it clean, in a task so the call
/// does not wait for it. A connection that cannot be reset is closed.
fn release(connection: Object, reset: Option<&'static str>) {
    let Some(sql) = reset else {
        // Dropping the object returns it to the pool.
        drop(connection);
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        drop(Object::take(connection));
        return;
    };
    let mut pending = Unclean(Some(connection));
    runtime.spawn(async move {
        let Some(connection) = pending.0.as_ref() else {
            return;
        };
        match connection.batch_execute(sql).await {
            Ok(()) => pending.clean(),
            Err(e) => tracing::warn!(
                error = %crate::error::PgReason(&e),
                "a database connection could not be reset after a call and was closed"
            ),
        }
    });
}

/// A connection whose session may hold a previous call's state. Dropped before it is marked
/// clean (a failed reset, a runtime shutting down), it is closed, never returned to the pool.
struct Unclean(Option<Object>);

impl Unclean {
    fn clean(&mut self) {
        // Dropping the object returns it to the pool.
        drop(self.0.take());
    }
}

impl Drop for Unclean {
    fn drop(&mut self) {
        if let Some(connection) = self.0.take() {
            drop(Object::take(connection));
        }
    }
}
