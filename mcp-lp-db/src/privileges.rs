//! The startup privilege check: what a capability's login role may not hold.
//!
//! Every capability: no superuser, BYPASSRLS, CREATEROLE, CREATEDB or REPLICATION, held directly
//! or by any role it is a member of (a member can `SET ROLE` to it); no membership in the
//! predefined roles that reach the server's files and programs, signal other backends
//! (`pg_signal_backend`) or maintain every relation (`pg_maintain`, PostgreSQL 17); no CREATE on
//! the database or on any schema (a function planted in any schema can be reached through
//! another role's `search_path`); no ownership of a table, of a configured schema or of the
//! database (an owner can ALTER or DROP what it owns); no role switch at login; no way to run SQL
//! in another session: no USAGE on a foreign-data wrapper or foreign server, no user mapping,
//! no EXECUTE on `dblink`'s functions (each can write as another role, outside this
//! connection's read-only transaction).
//!
//! A read capability, in addition: no INSERT, UPDATE, DELETE or TRUNCATE on any table, view or
//! foreign table outside the system schemas (table- or column-level), no UPDATE or USAGE on any
//! sequence (`nextval`, `setval`), no membership in `pg_write_all_data`.

use std::fmt;

use crate::kind::DbAccess;
use tokio_postgres::Client;

use crate::config::CapabilitySettings;
use crate::error::{PgReason, StartupError};

/// Predefined roles no capability may hold: they read or write the server's files, run
/// programs on it, signal other backends, or vacuum, analyze and lock every relation.
/// `pg_maintain` exists from PostgreSQL 17; on older servers no role is a member of it.
const SERVER_ROLES: &[&str] = &[
    "pg_execute_server_program",
    "pg_maintain",
    "pg_read_server_files",
    "pg_signal_backend",
    "pg_write_server_files",
];

/// A role attribute that lets a role escape what it was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoleAttribute {
    /// `SUPERUSER`: every privilege, and row-level security does not apply.
    Superuser,
    /// `BYPASSRLS`: row-level security does not apply.
    BypassRls,
    /// `CREATEROLE`: can create roles and grant them privileges.
    CreateRole,
    /// `CREATEDB`: can create databases.
    CreateDb,
    /// `REPLICATION`: can stream every row of the cluster.
    Replication,
}

impl fmt::Display for RoleAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Superuser => "SUPERUSER",
            Self::BypassRls => "BYPASSRLS",
            Self::CreateRole => "CREATEROLE",
            Self::CreateDb => "CREATEDB",
            Self::Replication => "REPLICATION",
        })
    }
}

/// One thing a capability's role holds that the capability must not.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Privilege {
    /// A role attribute, held by the login role itself (`via` is `None`) or by a role it is a
    /// member of.
    Attribute {
        /// The attribute.
        attribute: RoleAttribute,
        /// The role holding it, when it is not the login role.
        via: Option<String>,
    },
    /// Membership in a predefined role such as `pg_execute_server_program`, or, for a reader,
    /// `pg_write_all_data`.
    PredefinedRole {
        /// The predefined role.
        role: String,
    },
    /// A privilege on a table, view or foreign table that the role may not hold: a write held
    /// by a read capability, or, for a store's own role (mcp-lp-state), anything beyond the
    /// grants its tables need.
    Table {
        /// `SELECT`, `INSERT`, `UPDATE`, `DELETE`, `TRUNCATE`, `REFERENCES` or `TRIGGER`.
        privilege: String,
        /// `schema.table`.
        table: String,
    },
    /// A privilege on a sequence that the role may not hold: one that changes it, held by a
    /// read capability, or, for a store's own role, any beyond its own tables' needs.
    Sequence {
        /// `UPDATE` (`setval`), `USAGE` (`nextval`) or `SELECT`.
        privilege: String,
        /// `schema.sequence`.
        sequence: String,
    },
    /// CREATE on a configured schema.
    CreateOnSchema {
        /// The schema.
        schema: String,
    },
    /// CREATE on the database: can create schemas.
    CreateOnDatabase {
        /// The database.
        database: String,
    },
    /// Ownership of a table, view or foreign table, directly or through a role.
    OwnsTable {
        /// `schema.table`.
        table: String,
        /// The owning role.
        owner: String,
    },
    /// Ownership of a configured schema: can drop everything in it.
    OwnsSchema {
        /// The schema.
        schema: String,
        /// The owning role.
        owner: String,
    },
    /// Ownership of the database.
    OwnsDatabase {
        /// The database.
        database: String,
        /// The owning role.
        owner: String,
    },
    /// USAGE on a foreign-data wrapper: can create foreign servers with it.
    ForeignDataWrapper {
        /// The wrapper, such as `postgres_fdw`.
        wrapper: String,
    },
    /// USAGE on a foreign server: can reach another database through it.
    ForeignServer {
        /// The server.
        server: String,
    },
    /// A user mapping for the role (or for PUBLIC) on a foreign server: credentials to log in
    /// there as someone else.
    UserMapping {
        /// The server.
        server: String,
    },
    /// EXECUTE on the functions of an extension that opens connections to databases, such as
    /// `dblink`, in a schema the role can use.
    ConnectingExtension {
        /// The extension.
        extension: String,
    },
    /// The connection logs in as one role and switches to another (an `options` setting of
    /// `role`), so the login role's own privileges stay one `RESET ROLE` away.
    RoleSwitch {
        /// The role authenticated.
        login: String,
        /// The role switched to.
        current: String,
    },
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Attribute {
                attribute,
                via: None,
            } => write!(f, "{attribute}"),
            Self::Attribute {
                attribute,
                via: Some(role),
            } => write!(f, "{attribute} through membership in role `{role}`"),
            Self::PredefinedRole { role } => write!(f, "membership in `{role}`"),
            Self::Table { privilege, table } => write!(f, "{privilege} on table {table}"),
            Self::Sequence {
                privilege,
                sequence,
            } => write!(f, "{privilege} on sequence {sequence}"),
            Self::CreateOnSchema { schema } => write!(f, "CREATE on schema {schema}"),
            Self::CreateOnDatabase { database } => write!(f, "CREATE on database {database}"),
            Self::OwnsTable { table, owner } => {
                write!(f, "ownership of table {table} (owner `{owner}`)")
            }
            Self::OwnsSchema { schema, owner } => {
                write!(f, "ownership of schema {schema} (owner `{owner}`)")
            }
            Self::OwnsDatabase { database, owner } => {
                write!(f, "ownership of database {database} (owner `{owner}`)")
            }
            Self::ForeignDataWrapper { wrapper } => {
                write!(f, "USAGE on foreign-data wrapper {wrapper}")
            }
            Self::ForeignServer { server } => write!(f, "USAGE on foreign server {server}"),
            Self::UserMapping { server } => write!(f, "a user mapping on foreign server {server}"),
            Self::ConnectingExtension { extension } => write!(
                f,
                "EXECUTE on the functions of extension {extension}, which connect to databases"
            ),
            Self::RoleSwitch { login, current } => write!(
                f,
                "a login as role `{login}` that switches to role `{current}`"
            ),
        }
    }
}

/// A capability's role holds privileges the capability must not have.
///
/// ```text
/// db capability `records-read` (read) logs in as role `records_reader`, which holds what a
/// read capability must not: INSERT on table public.records, CREATE on schema public. Revoke
/// these, or give the capability a role without them
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error(
    "db capability `{capability}` ({}) logs in as role `{role}`, which holds what a {} capability must not: {}. Revoke these, or give the capability a role without them",
    access.as_str(),
    access.as_str(),
    self.list()
)]
pub struct PrivilegeError {
    /// The capability.
    pub capability: String,
    /// The role it logs in as.
    pub role: String,
    /// Whether the tools read or write through it.
    pub access: DbAccess,
    /// Every offending privilege, attributes first.
    pub offending: Vec<Privilege>,
}

impl PrivilegeError {
    /// The offending privileges, comma-separated.
    pub fn list(&self) -> String {
        let items: Vec<String> = self.offending.iter().map(ToString::to_string).collect();
        items.join(", ")
    }
}

const IDENTITY: &str = "SELECT session_user::text, current_user::text, current_database()::text";

/// The login and current roles and every role they are members of, transitively, with the
/// attributes each holds.
const MEMBERSHIPS: &str = "
WITH RECURSIVE granted(oid) AS (
    SELECT oid FROM pg_roles WHERE rolname IN (session_user, current_user)
  UNION
    SELECT m.roleid FROM pg_auth_members m JOIN granted g ON m.member = g.oid
)
SELECT r.rolname::text, r.rolname IN (session_user, current_user) AS own,
       r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb, r.rolreplication
FROM pg_roles r JOIN granted g ON r.oid = g.oid
ORDER BY own DESC, r.rolname";

// Relations are looked at outside the system schemas (`pg_catalog`, `pg_toast`, temporary
// schemas, `information_schema`), where no role but a superuser can write.

/// Write privileges on tables, views and foreign tables; INSERT and UPDATE count at column level.
const TABLE_WRITES: &str = "
SELECT format('%I.%I', n.nspname, c.relname), p.privilege
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN (VALUES (1, 'INSERT'), (2, 'UPDATE'), (3, 'DELETE'), (4, 'TRUNCATE')) AS p(ord, privilege)
WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  AND c.relkind IN ('r', 'p', 'v', 'f')
  AND CASE WHEN p.privilege IN ('INSERT', 'UPDATE')
           THEN has_any_column_privilege(c.oid, p.privilege)
           ELSE has_table_privilege(c.oid, p.privilege) END
ORDER BY 1, p.ord";

/// Privileges that advance or set a sequence.
const SEQUENCE_WRITES: &str = "
SELECT format('%I.%I', n.nspname, c.relname), p.privilege
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN (VALUES ('UPDATE'), ('USAGE')) AS p(privilege)
WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  AND c.relkind = 'S'
  AND has_sequence_privilege(c.oid, p.privilege)
ORDER BY 1, 2";

/// Relations owned by the role or by a role it is a member of.
const OWNED_TABLES: &str = "
SELECT format('%I.%I', n.nspname, c.relname), pg_get_userbyid(c.relowner)::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  AND c.relkind IN ('r', 'p', 'v', 'f', 'm')
  AND pg_has_role(c.relowner, 'MEMBER')
ORDER BY 1";

const SCHEMAS: &str = "
SELECT s.name, n.oid IS NOT NULL,
       COALESCE(has_schema_privilege(n.oid, 'CREATE'), false),
       COALESCE(pg_has_role(n.nspowner, 'MEMBER'), false),
       COALESCE(pg_get_userbyid(n.nspowner)::text, '')
FROM unnest($1::text[]) WITH ORDINALITY AS s(name, ord)
LEFT JOIN pg_namespace n ON n.nspname = s.name
ORDER BY s.ord";

/// Schemas outside the configured ones (and outside the system's) where the role may create.
const OTHER_SCHEMAS_WITH_CREATE: &str = "
SELECT n.nspname::text
FROM pg_namespace n
WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  AND n.nspname <> ALL ($1::text[])
  AND has_schema_privilege(n.oid, 'CREATE')
ORDER BY 1";

/// Ways to run SQL in another session: foreign-data wrappers and servers the role may use,
/// user mappings for it or PUBLIC, and extensions whose functions connect to databases.
const REMOTE_SQL: &str = "
SELECT 'wrapper', w.fdwname::text FROM pg_foreign_data_wrapper w
WHERE has_foreign_data_wrapper_privilege(w.oid, 'USAGE')
UNION ALL
SELECT 'server', s.srvname::text FROM pg_foreign_server s
WHERE has_server_privilege(s.oid, 'USAGE')
UNION ALL
SELECT 'mapping', m.srvname::text FROM pg_user_mappings m
WHERE m.umuser = 0 OR pg_has_role(m.umuser, 'MEMBER')
UNION ALL
SELECT DISTINCT 'extension', e.extname::text
FROM pg_extension e
JOIN pg_depend d ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
                AND d.classid = 'pg_proc'::regclass
JOIN pg_proc p ON p.oid = d.objid
WHERE e.extname = 'dblink'
  AND has_function_privilege(p.oid, 'EXECUTE')
  AND has_schema_privilege(p.pronamespace, 'USAGE')
ORDER BY 1, 2";

const DATABASE: &str = "
SELECT has_database_privilege(d.oid, 'CREATE'), pg_has_role(d.datdba, 'MEMBER'),
       pg_get_userbyid(d.datdba)::text
FROM pg_database d WHERE d.datname = current_database()";

/// Why [`role_privileges`] could not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoleCheckError {
    /// A query of the check failed.
    #[error("{}", PgReason(.0))]
    Postgres(#[source] tokio_postgres::Error),
    /// A schema the role is to use does not exist.
    #[error("schema `{schema}` does not exist in database `{database}`")]
    UnknownSchema {
        /// The schema.
        schema: String,
        /// The database connected to.
        database: String,
    },
}

/// Run the check on `client`, a connection of the capability described by `settings`.
pub(crate) async fn check(
    client: &Client,
    settings: &CapabilitySettings,
    role: &str,
    access: DbAccess,
) -> Result<Vec<Privilege>, StartupError> {
    role_privileges(client, &settings.schemas, access)
        .await
        .map_err(|e| match e {
            RoleCheckError::UnknownSchema { schema, database } => StartupError::UnknownSchema {
                capability: settings.name.clone(),
                schema,
                database,
            },
            RoleCheckError::Postgres(e) => StartupError::CheckFailed {
                capability: settings.name.clone(),
                role: role.to_owned(),
                reason: PgReason(&e).to_string(),
            },
        })
}

/// What the role `client` is logged in as holds beyond what a login role of `access` may:
/// the rules of this module, with `schemas` the schemas the role works in (it must have no
/// CREATE there, nor own them). Other stores that log in as their own role (mcp-lp-state) run
/// it too, and add their own rules about tables.
pub async fn role_privileges(
    client: &Client,
    schemas: &[String],
    access: DbAccess,
) -> Result<Vec<Privilege>, RoleCheckError> {
    let failed = RoleCheckError::Postgres;
    let mut offending = Vec::new();

    let identity = client.query_one(IDENTITY, &[]).await.map_err(failed)?;
    let (login, current, database): (String, String, String) =
        (identity.get(0), identity.get(1), identity.get(2));
    if login != current {
        offending.push(Privilege::RoleSwitch {
            login: login.clone(),
            current: current.clone(),
        });
    }

    let mut superuser = false;
    for row in client.query(MEMBERSHIPS, &[]).await.map_err(failed)? {
        let role: String = row.get(0);
        let own: bool = row.get(1);
        let attributes = [
            (RoleAttribute::Superuser, row.get::<_, bool>(2)),
            (RoleAttribute::BypassRls, row.get(3)),
            (RoleAttribute::CreateRole, row.get(4)),
            (RoleAttribute::CreateDb, row.get(5)),
            (RoleAttribute::Replication, row.get(6)),
        ];
        for (attribute, held) in attributes {
            if held {
                superuser |= attribute == RoleAttribute::Superuser;
                offending.push(Privilege::Attribute {
                    attribute,
                    via: (!own).then(|| role.clone()),
                });
            }
        }
        let reader_forbidden = access == DbAccess::Read && role == "pg_write_all_data";
        if SERVER_ROLES.contains(&role.as_str()) || reader_forbidden {
            offending.push(Privilege::PredefinedRole { role });
        }
    }
    // A superuser holds every privilege on every object; listing them would bury the point.
    if superuser {
        return Ok(offending);
    }

    if access == DbAccess::Read {
        for row in client.query(TABLE_WRITES, &[]).await.map_err(failed)? {
            offending.push(Privilege::Table {
                table: row.get(0),
                privilege: row.get(1),
            });
        }
        for row in client.query(SEQUENCE_WRITES, &[]).await.map_err(failed)? {
            offending.push(Privilege::Sequence {
                sequence: row.get(0),
                privilege: row.get(1),
            });
        }
    }

    for row in client.query(OWNED_TABLES, &[]).await.map_err(failed)? {
        offending.push(Privilege::OwnsTable {
            table: row.get(0),
            owner: row.get(1),
        });
    }

    for row in client.query(SCHEMAS, &[&schemas]).await.map_err(failed)? {
        let schema: String = row.get(0);
        if !row.get::<_, bool>(1) {
            return Err(RoleCheckError::UnknownSchema { schema, database });
        }
        if row.get(2) {
            offending.push(Privilege::CreateOnSchema {
                schema: schema.clone(),
            });
        }
        if row.get(3) {
            offending.push(Privilege::OwnsSchema {
                schema,
                owner: row.get(4),
            });
        }
    }

    for row in client
        .query(OTHER_SCHEMAS_WITH_CREATE, &[&schemas])
        .await
        .map_err(failed)?
    {
        offending.push(Privilege::CreateOnSchema { schema: row.get(0) });
    }

    for row in client.query(REMOTE_SQL, &[]).await.map_err(failed)? {
        let name: String = row.get(1);
        offending.push(match row.get::<_, &str>(0) {
            "wrapper" => Privilege::ForeignDataWrapper { wrapper: name },
            "server" => Privilege::ForeignServer { server: name },
            "mapping" => Privilege::UserMapping { server: name },
            _ => Privilege::ConnectingExtension { extension: name },
        });
    }

    let db = client.query_one(DATABASE, &[]).await.map_err(failed)?;
    if db.get(0) {
        offending.push(Privilege::CreateOnDatabase {
            database: database.clone(),
        });
    }
    if db.get(1) {
        offending.push(Privilege::OwnsDatabase {
            database,
            owner: db.get(2),
        });
    }
    Ok(offending)
}
