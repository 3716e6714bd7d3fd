//! Fixtures of the database tests: the local PostgreSQL that `scripts/postgres.sh start`
//! provides, a sandbox per test (its own schema, table and login roles with passwords), a
//! server whose tools exercise the handles, and an in-process MCP client.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mcp_lp::prelude::*;
use mcp_lp::transport::LineTransport;
use mcp_lp::{Checkpoint, Config, Principal, Server};
use mcp_lp_db::{Databases, PgRead, PgWrite, StartupError};
use mcp_lp_tests::Connection;
use rmcp::ServiceExt as _;
use serde::Deserialize;
use tokio::sync::Notify;

/// The test database every sandbox lives in; `scripts/postgres.sh start` creates it.
const DATABASE: &str = "mcp_lp_test";

/// Where the local PostgreSQL is, read from what `scripts/postgres.sh start` wrote.
pub(crate) struct Pg {
    pub(crate) admin_url: String,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// The admin URL file: `$MCP_LP_PG_ADMIN_URL_FILE`, else the script's default location.
fn admin_url_file() -> PathBuf {
    std::env::var_os("MCP_LP_PG_ADMIN_URL_FILE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/pg/secrets/admin.url"),
        PathBuf::from,
    )
}

pub(crate) fn pg() -> Pg {
    let file = admin_url_file();
    let admin_url = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| {
            panic!(
                "the test PostgreSQL is not set up ({}: {e}); start it with `scripts/postgres.sh start` (scripts/test.sh does)",
                file.display()
            )
        })
        .trim()
        .to_owned();
    let config: tokio_postgres::Config = admin_url.parse().expect("admin URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("the admin URL names no TCP host: {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    Pg {
        admin_url,
        host,
        port,
    }
}

/// A superuser connection to the test database, for setting up sandboxes.
pub(crate) async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&pg().admin_url, tokio_postgres::NoTls)
        .await
        .expect("connect as the test admin (is `scripts/postgres.sh start` running?)");
    tokio::spawn(connection);
    client
}

/// A login role made for one test.
#[derive(Debug, Clone)]
pub(crate) struct TestRole {
    pub(crate) name: String,
    pub(crate) password: String,
    /// A file holding the role's connection URL, for `url = { file = ... }`.
    pub(crate) url_file: PathBuf,
}

/// One test's corner of the test database: schema `<name>` holding table `records` (owned by
/// the never-logging-in role `<name>_owner`, with row-level security by principal), and the
/// login roles the test makes, whose search path is the schema.
pub(crate) struct Sandbox {
    pub(crate) name: String,
    pub(crate) admin: tokio_postgres::Client,
    pub(crate) dir: tempfile::TempDir,
}

static SANDBOXES: AtomicUsize = AtomicUsize::new(0);

impl Sandbox {
    /// A fresh sandbox; `label` (a few lowercase letters) names it in the database.
    pub(crate) async fn new(label: &str) -> Self {
        let name = format!(
            "t_{label}_{}_{}",
            std::process::id(),
            SANDBOXES.fetch_add(1, Ordering::SeqCst)
        );
        let admin = admin().await;
        admin
            .batch_execute(&format!(
                "SET client_min_messages = warning;
                 CREATE ROLE {name}_owner NOLOGIN;
                 CREATE SCHEMA {name} AUTHORIZATION {name}_owner;
                 CREATE TABLE {name}.records (
                     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                     owner text NOT NULL DEFAULT current_setting('mcp_lp.principal'),
                     title text NOT NULL
                 );
                 ALTER TABLE {name}.records OWNER TO {name}_owner;
                 ALTER TABLE {name}.records ENABLE ROW LEVEL SECURITY;
                 ALTER TABLE {name}.records FORCE ROW LEVEL SECURITY;
                 CREATE POLICY by_principal ON {name}.records
                     USING (owner = current_setting('mcp_lp.principal', true))
                     WITH CHECK (owner = current_setting('mcp_lp.principal', true));"
            ))
            .await
            .expect("create the sandbox");
        Self {
            name,
            admin,
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// Create login role `<sandbox>_<suffix>` with `attributes` (such as `BYPASSRLS`) and a
    /// fresh password, set only as a SCRAM verifier so no plaintext reaches the server.
    pub(crate) async fn role(&self, suffix: &str, attributes: &str) -> TestRole {
        let name = format!("{}_{suffix}", self.name);
        let password = format!("pw-{}-{}", suffix, std::process::id() ^ 0x5eed_f00d);
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        self.admin
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN PASSWORD '{verifier}' {attributes};
                 ALTER ROLE {name} SET search_path = {schema};
                 GRANT USAGE ON SCHEMA {schema} TO {name};",
                schema = self.name
            ))
            .await
            .expect("create a login role");
        let pg = pg();
        let url_file = self.dir.path().join(format!("{suffix}.url"));
        std::fs::write(
            &url_file,
            format!(
                "postgres://{name}:{password}@{}:{}/{DATABASE}\n",
                pg.host, pg.port
            ),
        )
        .expect("write the URL file");
        TestRole {
            name,
            password,
            url_file,
        }
    }

    /// A reader: SELECT on `records`, nothing else.
    pub(crate) async fn reader(&self) -> TestRole {
        let role = self.role("reader", "").await;
        self.sql(&format!("GRANT SELECT ON records TO {}", role.name))
            .await;
        role
    }

    /// A writer: SELECT, and INSERT of `title` only, on `records`.
    pub(crate) async fn writer(&self) -> TestRole {
        let role = self.role("writer", "").await;
        self.sql(&format!(
            "GRANT SELECT, INSERT (title) ON records TO {}",
            role.name
        ))
        .await;
        role
    }

    /// Run `sql` as the admin with the sandbox's schema first on the search path.
    pub(crate) async fn sql(&self, sql: &str) {
        self.admin
            .batch_execute(&format!(
                "SET search_path = {}; {sql}; RESET search_path",
                self.name
            ))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// Titles in `records`, read as the admin (a superuser, so row-level security aside).
    pub(crate) async fn all_titles(&self) -> Vec<String> {
        self.admin
            .query(
                &format!("SELECT title FROM {}.records ORDER BY id", self.name),
                &[],
            )
            .await
            .expect("read titles")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Write `toml` as the sandbox's configuration file and load it. URL files are named
    /// relative to it, as `{ file = "reader.url" }`.
    pub(crate) fn config(&self, toml: &str) -> Arc<Config> {
        let path = self.dir.path().join("mcp-lp.toml");
        std::fs::write(&path, toml).expect("write the configuration");
        Arc::new(Config::load(&path).expect("the test configuration loads"))
    }

    /// The configuration of [`Fixture`] with `reader` and `writer` capabilities on the given
    /// roles, plus `extra` keys in both tables.
    pub(crate) fn fixture_config(
        &self,
        reader: &TestRole,
        writer: &TestRole,
        extra: &str,
    ) -> Arc<Config> {
        self.config(&format!(
            "[db.reader]\nurl = {{ file = {reader:?} }}\nschemas = [\"{schema}\"]\n{extra}\n\
             [db.writer]\nurl = {{ file = {writer:?} }}\nschemas = [\"{schema}\"]\n{extra}\n",
            reader = reader.url_file.display().to_string(),
            writer = writer.url_file.display().to_string(),
            schema = self.name,
        ))
    }

    /// Connect [`Fixture`]'s databases with `config`.
    pub(crate) async fn connect(&self, config: &Config) -> Result<Databases, StartupError> {
        Databases::connect::<Fixture>(config).await
    }

    /// Install the objects signed principals need (`mcp_lp_db::PRINCIPAL_SCHEMA_SQL`), once
    /// per database; concurrent tests wait for each other.
    pub(crate) async fn install_signed_principals(&self) {
        self.admin
            .batch_execute(&format!(
                "SET client_min_messages = warning;
                 BEGIN; SELECT pg_advisory_xact_lock(4711); {} COMMIT;",
                mcp_lp_db::PRINCIPAL_SCHEMA_SQL
            ))
            .await
            .expect("install the signed-principal schema");
    }

    /// Backends of `role` still running a statement.
    pub(crate) async fn active_statements(&self, role: &str) -> i64 {
        self.admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE usename = $1 AND state = 'active' AND pid <> pg_backend_pid()",
                &[&role],
            )
            .await
            .expect("read pg_stat_activity")
            .get(0)
    }

    /// Drop the sandbox's schema and every role named after it. Best effort, over a fresh
    /// connection (the test may have restarted the server); a role a pool still uses may stay.
    pub(crate) async fn cleanup(self) {
        let name = &self.name;
        let sql = format!(
            "SET client_min_messages = warning;
             DROP SCHEMA IF EXISTS {name} CASCADE;
             DO $$
             DECLARE r record;
             BEGIN
                 FOR r IN SELECT rolname FROM pg_roles WHERE starts_with(rolname, '{name}_') LOOP
                     EXECUTE format('DROP OWNED BY %I', r.rolname);
                     EXECUTE format('DROP ROLE %I', r.rolname);
                 END LOOP;
             END
             $$;"
        );
        let _ = admin().await.batch_execute(&sql).await;
    }
}

/// Serve `server` behind the checkpoint for `principal` and connect an rmcp client to it.
pub(crate) async fn serve<S: mcp_lp::ToolSet>(
    server: Server<S>,
    config: &Config,
    principal: Principal,
) -> Connection {
    let checkpoint = Checkpoint::new(server, config, principal).expect("checkpoint");
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (server_read, server_write) = tokio::io::split(server_io);
    tokio::spawn(async move {
        let running = checkpoint
            .serve(LineTransport::new(server_read, server_write))
            .await
            .expect("server starts");
        let _ = running.waiting().await;
    });
    let client = ().serve(tokio::io::split(client_io)).await.expect("client connects");
    Connection { client }
}

/// Statements for the script tools.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct Script {
    /// Statements to run in order, each returning at most one text column.
    pub(crate) statements: Vec<String>,
    /// Whether a writer commits at the end.
    #[serde(default)]
    pub(crate) commit: bool,
    /// Whether a writer goes on past a failed statement (and reports `null` for it).
    #[serde(default)]
    pub(crate) ignore_errors: bool,
}

/// A title to insert.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct Title {
    /// The title.
    pub(crate) title: String,
}

/// Tools over a sandbox's `records` table, through capabilities `reader` and `writer`.
#[derive(Clone, Default)]
pub(crate) struct Fixture {
    /// `hold` waits for this after its query, keeping its connection checked out.
    pub(crate) release: Arc<Notify>,
}

/// The first column of the first row, as text; `None` for no row, no column or NULL.
fn first_value(rows: &[mcp_lp_db::Row]) -> Option<String> {
    rows.first()
        .filter(|row| !row.is_empty())
        .and_then(|row| row.get::<_, Option<String>>(0))
}

#[mcp_lp::server]
impl Fixture {
    /// Every title the caller may see.
    #[tool(db = "reader")]
    async fn titles(&self, mut db: PgRead) -> Result<Json<Vec<String>>, ToolError> {
        let rows = db
            .query("SELECT title FROM records ORDER BY id", &[])
            .await?;
        Ok(Json(rows.iter().map(|r| r.get(0)).collect()))
    }

    /// Run statements through the reader, in one handle.
    #[tool(db = "reader")]
    async fn read_script(
        &self,
        mut db: PgRead,
        Parameters(script): Parameters<Script>,
    ) -> Result<Json<Vec<Option<String>>>, ToolError> {
        let mut values = Vec::new();
        for sql in &script.statements {
            values.push(first_value(&db.query(sql, &[]).await?));
        }
        Ok(Json(values))
    }

    /// Run statements through the reader, cancelled by the checkpoint after 300ms.
    #[tool(db = "reader", timeout = "300ms")]
    async fn read_script_briefly(
        &self,
        mut db: PgRead,
        Parameters(script): Parameters<Script>,
    ) -> Result<Json<Vec<Option<String>>>, ToolError> {
        let mut values = Vec::new();
        for sql in &script.statements {
            values.push(first_value(&db.query(sql, &[]).await?));
        }
        Ok(Json(values))
    }

    /// Query once, then keep the connection until the test releases it.
    #[tool(db = "reader")]
    async fn hold(&self, mut db: PgRead) -> Result<String, ToolError> {
        db.query("SELECT 1", &[]).await?;
        self.release.notified().await;
        Ok("released".into())
    }

    /// Insert a title owned by the caller.
    #[tool(db_write = "writer", requires = "fixture:write")]
    async fn insert_title(
        &self,
        mut db: PgWrite,
        Parameters(t): Parameters<Title>,
    ) -> Result<String, ToolError> {
        db.execute("INSERT INTO records (title) VALUES ($1)", &[&t.title])
            .await?;
        db.commit().await?;
        Ok(format!("inserted {}", t.title))
    }

    /// Run statements through the writer, in one handle, committing if asked.
    #[tool(db_write = "writer", requires = "fixture:write")]
    async fn write_script(
        &self,
        mut db: PgWrite,
        Parameters(script): Parameters<Script>,
    ) -> Result<Json<Vec<Option<String>>>, ToolError> {
        let mut values = Vec::new();
        for sql in &script.statements {
            match db.query(sql, &[]).await {
                Ok(rows) => values.push(first_value(&rows)),
                Err(_) if script.ignore_errors => values.push(None),
                Err(e) => return Err(e.into()),
            }
        }
        if script.commit {
            db.commit().await?;
        }
        Ok(Json(values))
    }

    /// Run statements through the writer, cancelled by the checkpoint after 300ms.
    #[tool(db_write = "writer", requires = "fixture:write", timeout = "300ms")]
    async fn write_script_briefly(
        &self,
        mut db: PgWrite,
        Parameters(script): Parameters<Script>,
    ) -> Result<Json<Vec<Option<String>>>, ToolError> {
        let mut values = Vec::new();
        for sql in &script.statements {
            values.push(first_value(&db.query(sql, &[]).await?));
        }
        Ok(Json(values))
    }

    /// Run statements through a reader handle in a write tool.
    #[tool(db_write = "writer", requires = "fixture:write")]
    async fn read_script_in_write_tool(
        &self,
        mut db: PgRead,
        Parameters(script): Parameters<Script>,
    ) -> Result<Json<Vec<Option<String>>>, ToolError> {
        let mut values = Vec::new();
        for sql in &script.statements {
            values.push(first_value(&db.query(sql, &[]).await?));
        }
        Ok(Json(values))
    }
}

/// A principal holding `fixture:write`.
pub(crate) fn writer_principal(id: &str) -> Principal {
    Principal::new(id).with_grant(mcp_lp::Grant::new("fixture:write").expect("grant"))
}

/// The JSON of a call's structured result.
pub(crate) fn values(result: &rmcp::model::CallToolResult) -> serde_json::Value {
    serde_json::from_str(mcp_lp_tests::text(result)).expect("a JSON result")
}

/// The text of a call that must end in an error result.
pub(crate) fn error_text(result: &rmcp::model::CallToolResult) -> String {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected an error result, got {}",
        mcp_lp_tests::text(result)
    );
    mcp_lp_tests::text(result).to_owned()
}
