//! The startup privilege check of the store's role: mcp-lp-db's rules for every login role
//! (no superuser or other escaping attribute, no ownership, no CREATE, no remote SQL), and on
//! tables and sequences nothing but what the store's own tables need.

use mcp_lp_db::{PgReason, Privilege, RoleCheckError};
use tokio_postgres::Client;

use crate::config::StateRole;
use crate::error::StateError;

/// The schema of the audit table.
pub const AUDIT_SCHEMA: &str = "mcp_lp_audit";

/// The audit table, `schema.table`.
pub const AUDIT_TABLE: &str = "mcp_lp_audit.events";

/// The schema of the governance tables.
pub const GOVERNANCE_SCHEMA: &str = "mcp_lp_governance";

/// The revocation list every replica follows.
pub const REVOCATIONS_TABLE: &str = "mcp_lp_governance.revocations";

/// When each tool was last used, by whom.
pub const LAST_USED_TABLE: &str = "mcp_lp_governance.last_used";

/// Calls waiting for approval, and the single-use ledger.
pub const APPROVALS_TABLE: &str = "mcp_lp_governance.approvals";

/// Nonces spent by the rounds of approved runs and the approval page's sign-ins.
pub const NONCES_TABLE: &str = "mcp_lp_governance.nonces";

/// What the replicas' role may hold on tables, and must: `(table, privilege)`. The audit table
/// is insert-only; the revocation list is read, never changed (that is the operator role's);
/// last-used rows are updated in place; approval records move forward only (a trigger holds
/// them to it) and are forgotten by the owner's function, not deleted by the role.
const REPLICA_GRANTS: &[(&str, &str)] = &[
    (AUDIT_TABLE, "INSERT"),
    (AUDIT_TABLE, "SELECT"),
    (REVOCATIONS_TABLE, "SELECT"),
    (LAST_USED_TABLE, "SELECT"),
    (LAST_USED_TABLE, "INSERT"),
    (LAST_USED_TABLE, "UPDATE"),
    (APPROVALS_TABLE, "SELECT"),
    (APPROVALS_TABLE, "INSERT"),
    (APPROVALS_TABLE, "UPDATE"),
    (NONCES_TABLE, "SELECT"),
    (NONCES_TABLE, "INSERT"),
];

/// What the operator role (`[state] operator_url`, the governance commands') may hold, and
/// must: the replicas' approval and audit tables, and the revocation list to change.
const OPERATOR_GRANTS: &[(&str, &str)] = &[
    (AUDIT_TABLE, "INSERT"),
    (AUDIT_TABLE, "SELECT"),
    (REVOCATIONS_TABLE, "SELECT"),
    (REVOCATIONS_TABLE, "INSERT"),
    (REVOCATIONS_TABLE, "UPDATE"),
    (REVOCATIONS_TABLE, "DELETE"),
    (APPROVALS_TABLE, "SELECT"),
    (APPROVALS_TABLE, "INSERT"),
    (APPROVALS_TABLE, "UPDATE"),
    (NONCES_TABLE, "SELECT"),
    (NONCES_TABLE, "INSERT"),
];

/// Every privilege the role holds on a table, view or foreign table outside the system
/// schemas; SELECT, INSERT, UPDATE and REFERENCES count at column level.
const TABLE_PRIVILEGES: &str = "
SELECT format('%I.%I', n.nspname, c.relname), p.privilege
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN (VALUES (1, 'SELECT'), (2, 'INSERT'), (3, 'UPDATE'), (4, 'DELETE'), (5, 'TRUNCATE'),
                   (6, 'REFERENCES'), (7, 'TRIGGER')) AS p(ord, privilege)
WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  AND c.relkind IN ('r', 'p', 'v', 'f', 'm')
  AND CASE WHEN p.privilege IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
           THEN has_any_column_privilege(c.oid, p.privilege)
           ELSE has_table_privilege(c.oid, p.privilege) END
ORDER BY 1, p.ord";

/// Every privilege the role holds on a sequence outside the system schemas.
const SEQUENCE_PRIVILEGES: &str = "
SELECT format('%I.%I', n.nspname, c.relname), p.privilege
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN (VALUES ('SELECT'), ('UPDATE'), ('USAGE')) AS p(privilege)
WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  AND c.relkind = 'S'
  AND has_sequence_privilege(c.oid, p.privilege)
ORDER BY 1, 2";

/// The audit table's id sequence, `schema.sequence`, or NULL when the table is missing.
const AUDIT_SEQUENCE: &str = "
SELECT CASE WHEN to_regclass('mcp_lp_audit.events') IS NOT NULL
            THEN pg_get_serial_sequence('mcp_lp_audit.events', 'id') END";

/// Check the role `client` logs in as against what a role of kind `kind` holds; `role` names
/// it in errors. A replica's role that can change revocations is refused, as is an operator
/// role that can do more than its commands need.
pub(crate) async fn check(client: &Client, role: &str, kind: StateRole) -> Result<(), StateError> {
    let grants = match kind {
        StateRole::Replica => REPLICA_GRANTS,
        StateRole::Operator => OPERATOR_GRANTS,
    };
    let failed = |e: tokio_postgres::Error| StateError::CheckFailed {
        role: role.to_owned(),
        reason: PgReason(&e).to_string(),
    };
    let missing = |problem: String| StateError::Missing {
        role: role.to_owned(),
        problem,
    };
    let schemas = [AUDIT_SCHEMA.to_owned(), GOVERNANCE_SCHEMA.to_owned()];
    let mut offending = match mcp_lp_db::role_privileges(
        client,
        &schemas,
        mcp_lp_db::DbAccess::Write,
    )
    .await
    {
        Ok(offending) => offending,
        Err(RoleCheckError::UnknownSchema { schema, database }) => {
            return Err(missing(format!(
                "schema `{schema}` does not exist in database `{database}`, or the role has no USAGE on it; apply mcp-lp-state's audit.sql and governance.sql"
            )));
        }
        Err(e) => {
            return Err(StateError::CheckFailed {
                role: role.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    let sequence: Option<String> = client
        .query_one(AUDIT_SEQUENCE, &[])
        .await
        .map_err(failed)?
        .get(0);
    let Some(sequence) = sequence else {
        return Err(missing(format!(
            "table {AUDIT_TABLE} does not exist; apply mcp-lp-state's audit.sql"
        )));
    };

    let mut held = Vec::new();
    for row in client.query(TABLE_PRIVILEGES, &[]).await.map_err(failed)? {
        let (table, privilege): (String, String) = (row.get(0), row.get(1));
        if grants.contains(&(table.as_str(), privilege.as_str())) {
            held.push((table, privilege));
        } else {
            offending.push(Privilege::Table { privilege, table });
        }
    }
    let mut sequence_usage = false;
    for row in client
        .query(SEQUENCE_PRIVILEGES, &[])
        .await
        .map_err(failed)?
    {
        let (name, privilege): (String, String) = (row.get(0), row.get(1));
        if name == sequence && privilege == "USAGE" {
            sequence_usage = true;
        } else {
            offending.push(Privilege::Sequence {
                privilege,
                sequence: name,
            });
        }
    }
    if !offending.is_empty() {
        return Err(StateError::Privileges {
            role: role.to_owned(),
            offending,
        });
    }
    let lacking: Vec<String> = grants
        .iter()
        .filter(|(t, p)| !held.iter().any(|(ht, hp)| ht == t && hp == p))
        .map(|(t, p)| format!("{p} on table {t}"))
        .chain((!sequence_usage).then(|| format!("USAGE on sequence {sequence}")))
        .collect();
    if !lacking.is_empty() {
        return Err(missing(format!(
            "it lacks {}; grant them (see mcp-lp-state's audit.sql and governance.sql)",
            lacking.join(", ")
        )));
    }
    Ok(())
}
