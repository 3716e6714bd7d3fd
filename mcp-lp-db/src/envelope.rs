//! What a capability's handles send around a handler's statements, fitted to the capability at
//! startup: where a reader's `READ ONLY` comes from, whether the principal is sent (and
//! signed), and whether session advisory locks must be released.

use crate::kind::DbAccess;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use tokio_postgres::Client;

use crate::config::PrincipalMode;

/// Where a reader's `READ ONLY` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadOnly {
    /// The connection's default (`default_transaction_read_only = on`, sent at login): each
    /// statement runs alone in its own read-only transaction, with nothing around it. Chosen
    /// for a read capability whose role passed the privilege check with nothing to report, so
    /// the role's grants already keep it from writing and the read-only default is the second
    /// wall. The statement filter refuses what could switch the default off, and the reset
    /// after the call restores it.
    Connection,
    /// `BEGIN READ ONLY` ... `ROLLBACK` around each statement. Chosen for a reader through a
    /// write capability's role, and for a read capability started with
    /// `privilege_check = "warn-only"` despite offending privileges, where the transaction is
    /// the only wall.
    Transaction,
}

/// What a capability's handles send around each statement, from
/// [`Databases::envelope`](crate::Databases::envelope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope {
    /// Where its readers' `READ ONLY` comes from.
    pub read_only: ReadOnly,
    /// Whether each statement (reader) or transaction (writer) is preceded by one statement
    /// of `set_config` calls setting the principal.
    pub principal: bool,
    /// Whether the principal is sent with its MAC, for policies that read it through
    /// `mcp_lp.principal()`: the database has `mcp_lp.register_connection_key` and the role may
    /// run it.
    pub signed_principal: bool,
    /// Whether the role may take session-level advisory locks, which survive a rollback, so a
    /// connection releases them before it serves another call.
    pub advisory_unlock: bool,
}

/// Whether a row-level policy the role can meet, or a column default of a table it can
/// write, reads the principal, in its own expression or in a function it calls directly.
const PRINCIPAL_READERS: &str = r"
WITH reachable AS (
    SELECT c.oid FROM pg_class c
    WHERE c.relkind IN ('r', 'p', 'v', 'f', 'm')
      AND (has_any_column_privilege(c.oid, 'SELECT') OR has_any_column_privilege(c.oid, 'INSERT')
           OR has_any_column_privilege(c.oid, 'UPDATE') OR has_table_privilege(c.oid, 'DELETE'))
), policies AS (
    SELECT p.oid, concat_ws(' ', pg_get_expr(p.polqual, p.polrelid),
                                 pg_get_expr(p.polwithcheck, p.polrelid)) AS expr
    FROM pg_policy p
    JOIN pg_class c ON c.oid = p.polrelid
    WHERE p.polrelid IN (SELECT oid FROM reachable) AND c.relrowsecurity
      AND (0::oid = ANY (p.polroles)
           OR EXISTS (SELECT FROM unnest(p.polroles) r WHERE pg_has_role(r, 'MEMBER')))
), defaults AS (
    SELECT a.oid, pg_get_expr(a.adbin, a.adrelid) AS expr
    FROM pg_attrdef a WHERE a.adrelid IN (SELECT oid FROM reachable)
)
SELECT EXISTS (SELECT FROM policies WHERE expr ~* 'mcp_lp\.principal')
    OR EXISTS (SELECT FROM defaults WHERE expr ~* 'mcp_lp\.principal')
    OR EXISTS (
        SELECT FROM pg_depend d JOIN pg_proc f ON f.oid = d.refobjid
        WHERE d.refclassid = 'pg_proc'::regclass
          AND ((d.classid = 'pg_policy'::regclass AND d.objid IN (SELECT oid FROM policies))
            OR (d.classid = 'pg_attrdef'::regclass AND d.objid IN (SELECT oid FROM defaults)))
          AND (f.prosrc ~* 'mcp_lp\.principal' OR f.proname = 'principal'
               AND f.pronamespace::regnamespace::text = 'mcp_lp'))";

/// Whether the database verifies signed principals and the role may register its key.
const SIGNING: &str = "
SELECT COALESCE(has_function_privilege(
    to_regprocedure('mcp_lp.register_connection_key(bytea)'), 'EXECUTE'), false)";

/// Whether the role may run any function that takes a session-level advisory lock.
const SESSION_LOCKS: &str = "
SELECT COALESCE(bool_or(has_function_privilege(p.oid, 'EXECUTE')), false)
FROM pg_proc p
WHERE p.pronamespace = 'pg_catalog'::regnamespace
  AND p.proname IN ('pg_advisory_lock', 'pg_advisory_lock_shared',
                    'pg_try_advisory_lock', 'pg_try_advisory_lock_shared')";

/// Learn a capability's envelope on `client`, one of its connections, after the privilege
/// check found `clean` (nothing offending) or not.
pub(crate) async fn learn(
    client: &Client,
    access: DbAccess,
    clean: bool,
    mode: PrincipalMode,
) -> Result<Envelope, tokio_postgres::Error> {
    let principal = match mode {
        PrincipalMode::Always => true,
        PrincipalMode::Never => false,
        PrincipalMode::Auto => client.query_one(PRINCIPAL_READERS, &[]).await?.get(0),
    };
    let signed_principal = principal && client.query_one(SIGNING, &[]).await?.get::<_, bool>(0);
    let advisory_unlock = client.query_one(SESSION_LOCKS, &[]).await?.get(0);
    let read_only = if access == DbAccess::Read && clean {
        ReadOnly::Connection
    } else {
        ReadOnly::Transaction
    };
    Ok(Envelope {
        read_only,
        principal,
        signed_principal,
        advisory_unlock,
    })
}

/// The one statement that sets every per-call setting, as PostgREST does: one `set_config`
/// per setting, in one `SELECT`. `local` keeps them to the transaction.
pub(crate) fn settings_sql(signed: bool, local: bool) -> String {
    let mut sql = format!("SELECT set_config('mcp_lp.principal', $1, {local})");
    if signed {
        sql.push_str(&format!(
            ", set_config('mcp_lp.principal_mac', $2, {local})"
        ));
    }
    sql
}

/// The block size of SHA-256, and so the length of a connection key.
pub(crate) const KEY_LEN: usize = 64;

/// A fresh random key for a pool's connections to register.
pub(crate) fn new_key() -> Result<[u8; KEY_LEN], getrandom::Error> {
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key)?;
    Ok(key)
}

/// HMAC-SHA256 of `principal` under `key`, in lower-case hex, as `mcp_lp.principal()`
/// computes it.
pub(crate) fn principal_mac(key: &[u8; KEY_LEN], principal: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).expect("HMAC-SHA256 takes a key of any length");
    mac.update(principal.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in mac.finalize().into_bytes() {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
    }
    hex
}

/// Register `key` as the connection's, once: `mcp_lp.register_connection_key` refuses a second
/// key for the same backend, so SQL run later on the connection cannot replace it.
pub(crate) async fn register_key(
    client: &Client,
    key: &[u8; KEY_LEN],
) -> Result<(), tokio_postgres::Error> {
    // The connection may be read-only by default; the key table is written by the function's
    // owner, in a transaction of its own.
    client.batch_execute("BEGIN READ WRITE").await?;
    let registered = client
        .execute(
            "SELECT mcp_lp.register_connection_key($1)",
            &[&key.as_slice()],
        )
        .await;
    let end = if registered.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    client.batch_execute(end).await?;
    registered.map(drop)
}

/// The SQL that creates what signed principals need, for an administrator to run once per
/// database (as a role that is not a capability's): schema `mcp_lp`, its key table, and the
/// functions `mcp_lp.register_connection_key(bytea)` and `mcp_lp.principal()`. Then
/// `GRANT EXECUTE ON FUNCTION mcp_lp.register_connection_key(bytea) TO <capability roles>` and
/// write policies with `(SELECT mcp_lp.principal())`.
pub const PRINCIPAL_SCHEMA_SQL: &str = include_str!("principal.sql");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hmac_of_a_principal_as_python_computes_it() {
        // hmac.new(b"\x0b" * 64, b"Hi There", "sha256").hexdigest(), and likewise.
        assert_eq!(
            principal_mac(&[0x0b; KEY_LEN], "Hi There"),
            "21cd586aeca0579d99a1c938127c92525a371f807bc5ba6eb78bc825bd4f2be3"
        );
        assert_eq!(
            principal_mac(&[0x01; KEY_LEN], "alice@example.com"),
            "ed64e72b5b2c025dac6981f87fc61cbba7272cdc3d3a4add1663d260c0e67c93"
        );
    }

    #[test]
    fn accepts_one_statement_for_every_setting() {
        assert_eq!(
            settings_sql(true, false),
            "SELECT set_config('mcp_lp.principal', $1, false), set_config('mcp_lp.principal_mac', $2, false)"
        );
        assert_eq!(
            settings_sql(false, true),
            "SELECT set_config('mcp_lp.principal', $1, true)"
        );
    }
}
