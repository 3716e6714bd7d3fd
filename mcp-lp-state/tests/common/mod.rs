//! The test database of mcp-lp-state's tests: a database of its own per test, with the store's
//! tables applied as the shipped SQL says and the `[state]` login role.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use mcp_lp::Config;
use mcp_lp_state::{STATE_SCHEMA_SQL, StateError, StateStore};

/// The admin URL file: `$MCP_LP_PG_ADMIN_URL_FILE`, else the script's default location.
pub(crate) fn admin_url() -> String {
    let file = std::env::var_os("MCP_LP_PG_ADMIN_URL_FILE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/pg/secrets/admin.url"),
        PathBuf::from,
    );
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| {
            panic!(
                "the test PostgreSQL is not set up ({}: {e}); start it with `scripts/postgres.sh start`",
                file.display()
            )
        })
        .trim()
        .to_owned()
}

pub(crate) async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect as the test admin (is `scripts/postgres.sh start` running?)");
    tokio::spawn(connection);
    client
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// A database of its own with the audit table, its owner role `<db>_owner` (never logs in)
/// and the `[state]` login role `<db>_writer`, set up as `audit.sql` says, and a configuration
/// with `[state]` pointing at it.
pub(crate) struct AuditDb {
    pub(crate) name: String,
    /// A superuser connection to the database.
    pub(crate) admin: tokio_postgres::Client,
    pub(crate) writer: String,
    /// The operator role of `[state] operator_url`.
    pub(crate) operator: String,
    pub(crate) owner: String,
    pub(crate) dir: tempfile::TempDir,
}

impl AuditDb {
    pub(crate) async fn new() -> Self {
        let name = format!(
            "t_audit_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::SeqCst)
        );
        let admin_url = admin_url();
        let server = connect(&admin_url).await;
        server
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let mut db_url: tokio_postgres::Config = admin_url.parse().expect("admin URL");
        db_url.dbname(&name);
        let (admin, connection) = db_url
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(connection);
        let (owner, writer, operator) = (
            format!("{name}_owner"),
            format!("{name}_writer"),
            format!("{name}_operator"),
        );
        let password = format!("pw-{name}");
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        admin
            .batch_execute(&format!(
                "SET client_min_messages = warning;
                 CREATE ROLE {owner} NOLOGIN;
                 CREATE ROLE {writer} LOGIN PASSWORD '{verifier}';
                 CREATE ROLE {operator} LOGIN PASSWORD '{verifier}';
                 REVOKE ALL ON DATABASE {name} FROM PUBLIC;
                 GRANT CONNECT ON DATABASE {name} TO {writer}, {operator};"
            ))
            .await
            .expect("create the roles");
        let sql = STATE_SCHEMA_SQL
            .replace(":\"state_owner\"", &format!("\"{owner}\""))
            .replace(":\"state_role\"", &format!("\"{writer}\""))
            .replace(":\"state_operator\"", &format!("\"{operator}\""));
        admin
            .batch_execute(&sql)
            .await
            .expect("apply the state schema");

        let dir = tempfile::tempdir().expect("temporary directory");
        let (host, port) = match (db_url.get_hosts().first(), db_url.get_ports().first()) {
            (Some(tokio_postgres::config::Host::Tcp(host)), Some(port)) => (host.clone(), *port),
            other => panic!("the admin URL names no TCP host and port: {other:?}"),
        };
        std::fs::write(
            dir.path().join("state.url"),
            format!("postgres://{writer}:{password}@{host}:{port}/{name}\n"),
        )
        .expect("write the URL file");
        std::fs::write(
            dir.path().join("operator.url"),
            format!("postgres://{operator}:{password}@{host}:{port}/{name}\n"),
        )
        .expect("write the URL file");
        std::fs::write(
            dir.path().join("governance.key"),
            "a-governance-key-for-these-tests-32-bytes\n",
        )
        .expect("write the key file");
        std::fs::write(
            dir.path().join("mcp-lp.toml"),
            "[state]\nurl = { file = \"state.url\" }\noperator_url = { file = \"operator.url\" }\n\n\
             [governance]\nkeys = [{ id = \"g1\", secret = { file = \"governance.key\" } }]\n\n\
             [audit]\npostgres = true\n",
        )
        .expect("write the configuration");
        Self {
            name,
            admin,
            writer,
            operator,
            owner,
            dir,
        }
    }

    pub(crate) fn config(&self) -> Config {
        Config::load(self.dir.path().join("mcp-lp.toml")).expect("the configuration loads")
    }

    /// The configuration with `extra` TOML after it (in a file of its own beside it).
    pub(crate) fn config_with(&self, extra: &str) -> Config {
        let base = std::fs::read_to_string(self.dir.path().join("mcp-lp.toml")).expect("read");
        let path = self.dir.path().join("mcp-lp-extra.toml");
        std::fs::write(&path, format!("{base}\n{extra}\n")).expect("write");
        Config::load(path).expect("the configuration loads")
    }

    /// The store as the governance command `revoke` opens it: as the operator role.
    pub(crate) async fn operator(&self) -> Result<StateStore, StateError> {
        StateStore::connect(&self.config().for_command("revoke")).await
    }

    /// Revoke `target` through the operator role, as `revoke` does.
    pub(crate) async fn revoke(&self, target: mcp_lp::revocation::Target, reason: &str) {
        let config = self.config().for_command("revoke");
        let operator = StateStore::connect(&config)
            .await
            .expect("the operator role connects");
        let list = operator.revocations(&config).await.expect("read");
        list.store()
            .revoke(mcp_lp::revocation::Revocation::now(
                target, reason, "oncall",
            ))
            .await
            .expect("revoke");
    }

    /// Lift the revocation of `target` through the operator role, as `unrevoke` does.
    pub(crate) async fn unrevoke(&self, target: mcp_lp::revocation::Target) -> bool {
        let config = self.config().for_command("unrevoke");
        let operator = StateStore::connect(&config)
            .await
            .expect("the operator role connects");
        let list = operator.revocations(&config).await.expect("read");
        list.store().unrevoke(target).await.expect("unrevoke")
    }

    pub(crate) async fn sql(&self, sql: &str) {
        self.admin
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    pub(crate) async fn connect(&self) -> Result<StateStore, StateError> {
        StateStore::connect(&self.config()).await
    }

    pub(crate) async fn refusal(&self) -> String {
        match self.connect().await {
            Ok(_) => panic!("the store started with role {}", self.writer),
            Err(e) => e.to_string(),
        }
    }

    pub(crate) async fn rows(&self) -> i64 {
        self.admin
            .query_one("SELECT count(*) FROM mcp_lp_audit.events", &[])
            .await
            .expect("count the rows")
            .get(0)
    }
}
