//! The startup privilege check against real roles: each over-privileged role is refused with a
//! message naming the capability, the role and the privilege; least-privileged roles start.

mod common;

use common::{Sandbox, TestRole, pg};
use mcp_lp_db::{Privilege, PrivilegeError, RoleAttribute, StartupError};

/// Connect with `reader` as the read capability and a well-behaved writer, and return the
/// privilege refusal.
async fn refusal_of_reader(sandbox: &Sandbox, reader: &TestRole) -> PrivilegeError {
    let writer = sandbox.writer().await;
    let config = sandbox.fixture_config(reader, &writer, "");
    match sandbox.connect(&config).await {
        Err(StartupError::Privileges(error)) => error,
        other => panic!("expected a privilege refusal, got {other:?}"),
    }
}

/// The same with `writer` as the write capability and a well-behaved reader.
async fn refusal_of_writer(sandbox: &Sandbox, writer: &TestRole) -> PrivilegeError {
    let reader = sandbox.reader().await;
    let config = sandbox.fixture_config(&reader, writer, "");
    match sandbox.connect(&config).await {
        Err(StartupError::Privileges(error)) => error,
        other => panic!("expected a privilege refusal, got {other:?}"),
    }
}

fn attribute(attribute: RoleAttribute) -> Privilege {
    Privilege::Attribute {
        attribute,
        via: None,
    }
}

#[tokio::test]
async fn accepts_start_with_least_privileged_roles() {
    let sandbox = Sandbox::new("least").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "");
    let databases = sandbox
        .connect(&config)
        .await
        .expect("least-privileged roles start");
    let mut names: Vec<_> = databases.capabilities().collect();
    names.sort();
    assert_eq!(names, ["reader", "writer"]);
    drop(databases);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_superuser_dsn() {
    let sandbox = Sandbox::new("super").await;
    let writer = sandbox.writer().await;
    // The admin URL the tests themselves use: a superuser.
    let admin = sandbox.dir.path().join("admin.url");
    std::fs::write(&admin, &pg().admin_url).unwrap();
    let superuser = TestRole {
        name: "mcp_lp_admin".into(),
        password: String::new(),
        url_file: admin,
    };
    let config = sandbox.fixture_config(&superuser, &writer, "");
    let error = match sandbox.connect(&config).await {
        Err(StartupError::Privileges(error)) => error,
        other => panic!("expected a privilege refusal, got {other:?}"),
    };
    assert_eq!(error.capability, "reader");
    assert_eq!(error.role, "mcp_lp_admin");
    assert!(
        error
            .offending
            .contains(&attribute(RoleAttribute::Superuser))
    );
    let message = error.to_string();
    assert!(
        message.starts_with("db capability `reader` (read) logs in as role `mcp_lp_admin`, which holds what a read capability must not: SUPERUSER"),
        "{message}"
    );
    assert!(!message.contains(&pg().admin_url), "{message}");
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_bypassrls_role() {
    let sandbox = Sandbox::new("bypass").await;
    let reader = sandbox.role("reader", "BYPASSRLS").await;
    sandbox
        .sql(&format!("GRANT SELECT ON records TO {}", reader.name))
        .await;
    let error = refusal_of_reader(&sandbox, &reader).await;
    assert_eq!(error.offending, [attribute(RoleAttribute::BypassRls)]);
    assert!(
        error
            .to_string()
            .contains(&format!("role `{}`", reader.name))
    );
    assert!(
        error.to_string().contains("must not: BYPASSRLS."),
        "{error}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_createrole_role() {
    let sandbox = Sandbox::new("crrole").await;
    let writer = sandbox.role("writer", "CREATEROLE").await;
    sandbox
        .sql(&format!(
            "GRANT SELECT, INSERT (title) ON records TO {}",
            writer.name
        ))
        .await;
    let error = refusal_of_writer(&sandbox, &writer).await;
    assert_eq!(error.capability, "writer");
    assert_eq!(error.offending, [attribute(RoleAttribute::CreateRole)]);
    assert!(error.to_string().contains("(write)"), "{error}");
    assert!(
        error.to_string().contains("must not: CREATEROLE."),
        "{error}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_createdb_role() {
    let sandbox = Sandbox::new("crdb").await;
    let reader = sandbox.role("reader", "CREATEDB").await;
    let error = refusal_of_reader(&sandbox, &reader).await;
    assert_eq!(error.offending, [attribute(RoleAttribute::CreateDb)]);
    assert!(error.to_string().contains("CREATEDB"), "{error}");
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_replication_role() {
    let sandbox = Sandbox::new("repl").await;
    let reader = sandbox.role("reader", "REPLICATION").await;
    let error = refusal_of_reader(&sandbox, &reader).await;
    assert_eq!(error.offending, [attribute(RoleAttribute::Replication)]);
    assert!(error.to_string().contains("REPLICATION"), "{error}");
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_member_of_privileged_role() {
    let sandbox = Sandbox::new("member").await;
    let reader = sandbox.reader().await;
    let admins = format!("{}_admins", sandbox.name);
    sandbox
        .sql(&format!(
            "CREATE ROLE {admins} NOLOGIN CREATEROLE BYPASSRLS; GRANT {admins} TO {}",
            reader.name
        ))
        .await;
    let error = refusal_of_reader(&sandbox, &reader).await;
    assert_eq!(
        error.offending,
        [
            Privilege::Attribute {
                attribute: RoleAttribute::BypassRls,
                via: Some(admins.clone())
            },
            Privilege::Attribute {
                attribute: RoleAttribute::CreateRole,
                via: Some(admins.clone())
            },
        ]
    );
    assert!(
        error
            .to_string()
            .contains(&format!("BYPASSRLS through membership in role `{admins}`")),
        "{error}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_member_of_server_file_role() {
    let sandbox = Sandbox::new("files").await;
    let reader = sandbox.reader().await;
    sandbox
        .sql(&format!("GRANT pg_read_server_files TO {}", reader.name))
        .await;
    let error = refusal_of_reader(&sandbox, &reader).await;
    assert_eq!(
        error.offending,
        [Privilege::PredefinedRole {
            role: "pg_read_server_files".into()
        }]
    );
    assert!(
        error
            .to_string()
            .contains("membership in `pg_read_server_files`"),
        "{error}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_read_role_holding_insert() {
    let sandbox = Sandbox::new("rins").await;
    let reader = sandbox.reader().await;
    sandbox
        .sql(&format!("GRANT INSERT ON records TO {}", reader.name))
        .await;
    let error = refusal_of_reader(&sandbox, &reader).await;
    let table = format!("{}.records", sandbox.name);
    assert_eq!(
        error.offending,
        [Privilege::Table {
            privilege: "INSERT".into(),
            table: table.clone()
        }]
    );
    assert!(
        error
            .to_string()
            .contains(&format!("must not: INSERT on table {table}.")),
        "{error}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_read_role_holding_column_update_and_delete() {
    let sandbox = Sandbox::new("rupd").await;
    let reader = sandbox.reader().await;
    sandbox
        .sql(&format!(
            "GRANT UPDATE (title), DELETE, TRUNCATE ON records TO {}",
            reader.name
        ))
        .await;
    let error = refusal_of_reader(&sandbox, &reader).await;
    let table = format!("{}.records", sandbox.name);
    assert!(
        error.to_string().contains(&format!(
            "UPDATE on table {table}, DELETE on table {table}, TRUNCATE on table {table}"
        )),
        "{error}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_read_role_holding_create_on_schema() {
    let sandbox = Sandbox::new("rcreate").await;
    let reader = sandbox.reader().await;
    sandbox
        .sql(&format!(
            "GRANT CREATE ON SCHEMA {} TO {}",
            sandbox.name, reader.name
        ))
        .await;
    let error = refusal_of_reader(&sandbox, &reader).await;
    assert_eq!(
        error.offending,
        [Privilege::CreateOnSchema {
            schema: sandbox.name.clone()
        }]
    );
    assert!(
        error
            .to_string()
            .contains(&format!("CREATE on schema {}", sandbox.name)),
        "{error}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_read_role_holding_sequence_usage() {
    let sandbox = Sandbox::new("rseq").await;
    let reader = sandbox.reader().await;
    sandbox
        .sql(&format!(
            "GRANT USAGE ON SEQUENCE records_id_seq TO {}",
            reader.name
        ))
        .await;
    let error = refusal_of_reader(&sandbox, &reader).await;
    assert!(
        error.to_string().contains(&format!(
            "USAGE on sequence {}.records_id_seq",
            sandbox.name
        )),
        "{error}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_write_role_owning_its_table() {
    let sandbox = Sandbox::new("owner").await;
    let writer = sandbox.writer().await;
    sandbox
        .sql(&format!("ALTER TABLE records OWNER TO {}", writer.name))
        .await;
    let error = refusal_of_writer(&sandbox, &writer).await;
    let table = format!("{}.records", sandbox.name);
    assert_eq!(
        error.offending,
        [Privilege::OwnsTable {
            table: table.clone(),
            owner: writer.name.clone()
        }]
    );
    assert!(
        error.to_string().contains(&format!(
            "ownership of table {table} (owner `{}`)",
            writer.name
        )),
        "{error}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_write_role_owning_table_through_membership() {
    let sandbox = Sandbox::new("ownvia").await;
    let writer = sandbox.writer().await;
    // Membership in the owner role is ownership: the member can SET ROLE to it and DROP.
    sandbox
        .sql(&format!("GRANT {}_owner TO {}", sandbox.name, writer.name))
        .await;
    let error = refusal_of_writer(&sandbox, &writer).await;
    assert!(error.offending.contains(&Privilege::OwnsTable {
        table: format!("{}.records", sandbox.name),
        owner: format!("{}_owner", sandbox.name),
    }));
    assert!(error.offending.contains(&Privilege::OwnsSchema {
        schema: sandbox.name.clone(),
        owner: format!("{}_owner", sandbox.name),
    }));
    sandbox.cleanup().await;
}

#[tokio::test]
async fn accepts_start_with_over_privileged_role_in_warn_only_mode() {
    let sandbox = Sandbox::new("warn").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    sandbox
        .sql(&format!("GRANT INSERT ON records TO {}", reader.name))
        .await;
    let config = sandbox.fixture_config(&reader, &writer, "privilege_check = \"warn-only\"");
    sandbox
        .connect(&config)
        .await
        .expect("warn-only mode starts");
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_wrong_password_without_echoing_it() {
    let sandbox = Sandbox::new("badpw").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let wrong = "not-the-password-7f3a";
    let url = std::fs::read_to_string(&reader.url_file)
        .unwrap()
        .replace(&reader.password, wrong);
    std::fs::write(&reader.url_file, url).unwrap();
    let config = sandbox.fixture_config(&reader, &writer, "");
    let error = sandbox.connect(&config).await.unwrap_err();
    assert!(matches!(error, StartupError::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "db capability `reader`: cannot connect as role `{}` to ",
            reader.name
        )),
        "{message}"
    );
    assert!(
        message.contains("password authentication failed"),
        "{message}"
    );
    assert!(
        !message.contains(wrong) && !format!("{error:?}").contains(wrong),
        "{message}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_unknown_schema() {
    let sandbox = Sandbox::new("noschema").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.config(&format!(
        "[db.reader]\nurl = {{ file = {:?} }}\nschemas = [\"nowhere\"]\n[db.writer]\nurl = {{ file = {:?} }}\n",
        reader.url_file.display().to_string(),
        writer.url_file.display().to_string(),
    ));
    let error = sandbox.connect(&config).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "db capability `reader`: schema `nowhere` (in `db.reader.schemas`) does not exist in database `mcp_lp_test`"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_capability_no_tool_declares() {
    let sandbox = Sandbox::new("extra").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.config(&format!(
        "[db.reader]\nurl = {{ file = {r:?} }}\n[db.writer]\nurl = {{ file = {w:?} }}\n[db.spare]\nurl = {{ file = {r:?} }}\n",
        r = reader.url_file.display().to_string(),
        w = writer.url_file.display().to_string(),
    ));
    let error = sandbox.connect(&config).await.unwrap_err();
    assert!(matches!(error, StartupError::Config(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("no tool declares db `spare`; remove [db.spare]"),
        "{error}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_role_in_pg_signal_backend() {
    let sandbox = Sandbox::new("signal").await;
    let reader = sandbox.reader().await;
    sandbox
        .sql(&format!("GRANT pg_signal_backend TO {}", reader.name))
        .await;
    let error = refusal_of_reader(&sandbox, &reader).await;
    assert_eq!(
        error.offending,
        [Privilege::PredefinedRole {
            role: "pg_signal_backend".into()
        }]
    );
    assert!(
        error
            .to_string()
            .contains("membership in `pg_signal_backend`"),
        "{error}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_create_on_a_schema_not_configured() {
    let sandbox = Sandbox::new("othersch").await;
    let writer = sandbox.writer().await;
    let other = format!("{}_other", sandbox.name);
    sandbox
        .sql(&format!(
            "CREATE SCHEMA {other} AUTHORIZATION {name}_owner;
             GRANT CREATE ON SCHEMA {other} TO {writer}",
            name = sandbox.name,
            writer = writer.name,
        ))
        .await;
    // A writer too: a function planted there is reachable through another role's search path.
    let error = refusal_of_writer(&sandbox, &writer).await;
    assert_eq!(
        error.offending,
        [Privilege::CreateOnSchema {
            schema: other.clone()
        }]
    );
    assert!(
        error
            .to_string()
            .contains(&format!("CREATE on schema {other}")),
        "{error}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_foreign_server_and_user_mapping() {
    let sandbox = Sandbox::new("fdw").await;
    let reader = sandbox.reader().await;
    let server = format!("{}_srv", sandbox.name);
    sandbox
        .sql(&format!(
            "CREATE EXTENSION postgres_fdw SCHEMA {schema};
             CREATE SERVER {server} FOREIGN DATA WRAPPER postgres_fdw
                 OPTIONS (host '127.0.0.1', dbname 'mcp_lp_test');
             GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {reader};
             GRANT USAGE ON FOREIGN SERVER {server} TO {reader};
             CREATE USER MAPPING FOR {reader} SERVER {server}
                 OPTIONS (user 'mcp_lp_admin', password 'not-used')",
            schema = sandbox.name,
            reader = reader.name,
        ))
        .await;
    let error = refusal_of_reader(&sandbox, &reader).await;
    assert_eq!(
        error.offending,
        [
            Privilege::UserMapping {
                server: server.clone()
            },
            Privilege::ForeignServer {
                server: server.clone()
            },
            Privilege::ForeignDataWrapper {
                wrapper: "postgres_fdw".into()
            },
        ]
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("USAGE on foreign server {server}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("a user mapping on foreign server {server}")),
        "{message}"
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_start_with_dblink_functions() {
    let sandbox = Sandbox::new("dblink").await;
    let reader = sandbox.reader().await;
    // In the sandbox's schema, so that only this test's roles can reach its functions.
    sandbox
        .sql(&format!("CREATE EXTENSION dblink SCHEMA {}", sandbox.name))
        .await;
    let error = refusal_of_reader(&sandbox, &reader).await;
    assert_eq!(
        error.offending,
        [Privilege::ConnectingExtension {
            extension: "dblink".into()
        }]
    );
    assert!(
        error
            .to_string()
            .contains("EXECUTE on the functions of extension dblink"),
        "{error}"
    );
    sandbox.cleanup().await;
}

/// A tool that reads and another that writes, through one capability.
#[derive(Debug, Clone)]
struct Shared;

#[mcp_lp::server]
impl Shared {
    /// Read.
    #[tool(db = "records")]
    async fn query(&self) -> String {
        String::new()
    }

    /// Write.
    #[tool(db_write = "records")]
    async fn insert(&self) -> String {
        String::new()
    }
}

#[tokio::test]
async fn rejects_db_capability_shared_by_reader_and_writer() {
    // Refused before any connection: the URL is never read.
    let config = mcp_lp::Config::from_toml(
        "[db.records]\nurl = { file = \"/nonexistent/records.url\" }\n",
        "test.toml",
    )
    .unwrap();
    match mcp_lp_db::Databases::connect::<Shared>(&config).await {
        Err(StartupError::Setting { key, problem, .. }) => {
            assert_eq!(key, "db.records");
            assert!(
                problem.contains("give the writer its own capability"),
                "{problem}"
            );
        }
        other => panic!("expected the shared capability refused, got {other:?}"),
    }
}
