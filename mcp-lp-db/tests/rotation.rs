//! A capability follows its URL secret under load: the role's password is changed with
//! `ALTER ROLE`, the URL file rewritten by rename (as a Vault agent does), and no call fails;
//! afterwards every connection of the role logged in after the change. A rotated URL whose role
//! fails the privilege check is not adopted, and a URL secret past its max age makes the
//! capability refuse.
//!
//! Installs the process-wide log recorder (to look for passwords in every log line at TRACE),
//! so it is its own test binary.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Fixture, Sandbox, TestRole, pg, serve, writer_principal};
use mcp_lp::{Principal, Server};
use mcp_lp_db::Databases;
use mcp_lp_tests::{Connection, Recorder};
use serde_json::json;

/// How long a test waits for something that should happen within a few poll intervals
/// before it gives up; a bound on a hang, not a timing claim.
const PATIENCE: Duration = Duration::from_secs(60);

const CLIENTS: usize = 8;

/// The load stops by itself after this many calls, so a test that fails while it runs does not
/// fill the log recorder without end.
const MAX_CALLS: u64 = 100_000;

/// The tests of this binary run one at a time: they share the log recorder, and the load of one
/// would slow every search of the others.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn url_of(role: &TestRole, password: &str) -> String {
    let pg = pg();
    format!(
        "postgres://{}:{password}@{}:{}/mcp_lp_test\n",
        role.name, pg.host, pg.port
    )
}

/// Replace `path` by rename, as a Vault agent does: the new content is never seen half written.
fn write_by_rename(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write the new URL");
    std::fs::rename(&tmp, path).expect("rename it into place");
}

async fn set_password(sandbox: &Sandbox, role: &str, password: &str) {
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    sandbox
        .admin
        .batch_execute(&format!("ALTER ROLE {role} PASSWORD '{verifier}'"))
        .await
        .expect("change the role's password");
}

/// The backends of `role` and whether each started before `before` (a server timestamp).
async fn backends(sandbox: &Sandbox, role: &str, before: &str) -> (i64, i64) {
    let row = sandbox
        .admin
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE backend_start < $2::text::timestamptz)
             FROM pg_stat_activity WHERE usename = $1",
            &[&role, &before],
        )
        .await
        .expect("read pg_stat_activity");
    (row.get(0), row.get(1))
}

async fn now(sandbox: &Sandbox) -> String {
    sandbox
        .admin
        .query_one("SELECT clock_timestamp()::text", &[])
        .await
        .expect("read the clock")
        .get(0)
}

/// Wait until `condition` holds, checking every 100ms; panics with `what` after [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `CLIENTS` clients, each its own MCP session, calling `titles` in a loop until stopped.
struct Load {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    async fn start(databases: &Databases, config: &mcp_lp::Config) -> Self {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for i in 0..CLIENTS {
            let conn: Connection = serve(
                Server::new(Fixture::default()).provide(databases.clone()),
                config,
                Principal::new(format!("client-{i}@example.com")),
            )
            .await;
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut errors = Vec::new();
                while !stop.load(Ordering::Relaxed)
                    && ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < MAX_CALLS
                {
                    match conn.call("titles", json!({})).await {
                        Ok(result) if result.is_error != Some(true) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.push(format!("{other:?}"));
                        }
                    }
                }
                errors
            }));
        }
        Self {
            ok,
            failed,
            stop,
            tasks,
        }
    }

    /// Wait for `calls` more successful calls.
    async fn more(&self, calls: u64) {
        let target = self.ok.load(Ordering::Relaxed) + calls;
        eventually("more calls succeed", || async {
            self.ok.load(Ordering::Relaxed) >= target
        })
        .await;
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        for task in self.tasks {
            errors.extend(task.await.expect("client task"));
        }
        assert_eq!(self.failed.load(Ordering::Relaxed), errors.len() as u64);
        (self.ok.load(Ordering::Relaxed), errors)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accepts_password_rotation_under_load_without_failed_calls() {
    let _serial = SERIAL.lock().await;
    let recorder = Recorder::global();
    let sandbox = Sandbox::new("rotate").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    // Fewer connections than clients, so the pool is full (and needs no new connection with
    // the old password) before the password changes.
    let config = sandbox.config(&format!(
        "[secrets_refresh]\npoll = \"1s\"\n\n\
         [db.reader]\nurl = {{ file = {reader:?} }}\nschemas = [\"{schema}\"]\nmax_connections = 4\ncheckout_timeout = \"30s\"\n\n\
         [db.writer]\nurl = {{ file = {writer:?} }}\nschemas = [\"{schema}\"]\n",
        reader = reader.url_file.display().to_string(),
        writer = writer.url_file.display().to_string(),
        schema = sandbox.name,
    ));
    let databases = sandbox.connect(&config).await.expect("starts");
    let load = Load::start(&databases, &config).await;
    eventually("the reader's pool is full", || async {
        databases.stats("reader").is_some_and(|s| s.size == 4)
    })
    .await;
    load.more(50).await;

    // The rotation as a secrets manager does it: the password first, then the file.
    let new_password = "pw-rotated-5f3a9c";
    let changed_at = now(&sandbox).await;
    set_password(&sandbox, &reader.name, new_password).await;
    load.more(50).await;
    write_by_rename(&reader.url_file, &url_of(&reader, new_password));

    // Every backend of the role logged in after the change: with the new password.
    eventually("every connection of the role is new", || async {
        let (all, old) = backends(&sandbox, &reader.name, &changed_at).await;
        all > 0 && old == 0
    })
    .await;
    load.more(200).await;
    let (all, old) = backends(&sandbox, &reader.name, &changed_at).await;
    assert!(
        all > 0 && old == 0,
        "{old} of {all} backends predate the rotation"
    );

    // Whatever still held the old password is cut off; the server does not notice.
    let terminated: i64 = sandbox
        .admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE usename = $1 AND backend_start < $2::text::timestamptz",
            &[&reader.name, &changed_at],
        )
        .await
        .expect("terminate old sessions")
        .get(0);
    assert_eq!(terminated, 0);
    load.more(200).await;

    let (ok, errors) = load.finish().await;
    assert!(
        errors.is_empty(),
        "{} calls failed: {errors:?}",
        errors.len()
    );
    assert!(ok >= 500, "{ok} calls");

    let logs = recorder.text();
    assert!(logs.contains("database URL rotated"), "no rotation logged");
    assert!(logs.contains("secret_rotated"), "no rotation audited");
    for password in [&reader.password, new_password, &writer.password] {
        assert!(!logs.contains(password), "a password is in the logs");
    }
    sandbox.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_rotated_url_whose_role_fails_the_privilege_check() {
    let _serial = SERIAL.lock().await;
    let recorder = Recorder::global();
    let sandbox = Sandbox::new("rotbad").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.config(&format!(
        "[secrets_refresh]\npoll = \"1s\"\n\n\
         [db.reader]\nurl = {{ file = {reader:?} }}\nschemas = [\"{schema}\"]\n\n\
         [db.writer]\nurl = {{ file = {writer:?} }}\nschemas = [\"{schema}\"]\n",
        reader = reader.url_file.display().to_string(),
        writer = writer.url_file.display().to_string(),
        schema = sandbox.name,
    ));
    let databases = sandbox.connect(&config).await.expect("starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases.clone()),
        &config,
        writer_principal("rotbad@example.com"),
    )
    .await;
    let whoami = json!({"statements": ["SELECT current_user::text"]});
    let before = conn.call("read_script", whoami.clone()).await.unwrap();
    assert_eq!(common::values(&before), json!([reader.name]));

    // The reader's URL now names the writer, a role that can INSERT: a reader must not.
    write_by_rename(&reader.url_file, &url_of(&writer, &writer.password));
    eventually("the refused rotation is logged", || async {
        recorder
            .text()
            .contains("connections with the new URL failed the startup check")
    })
    .await;
    for _ in 0..20 {
        let after = conn.call("read_script", whoami.clone()).await.unwrap();
        assert_eq!(common::values(&after), json!([reader.name]));
    }
    let logs = recorder.text();
    assert!(
        logs.contains(&format!("role `{}`", writer.name)),
        "the refusal names the role"
    );
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_closed_when_url_secret_is_past_max_age() {
    let _serial = SERIAL.lock().await;
    let sandbox = Sandbox::new("rotexp").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.config(&format!(
        "[secrets_refresh]\npoll = \"200ms\"\nmax_age = \"1s\"\n\n\
         [db.reader]\nurl = {{ file = {reader:?} }}\nschemas = [\"{schema}\"]\n\n\
         [db.writer]\nurl = {{ file = {writer:?} }}\nschemas = [\"{schema}\"]\n",
        reader = reader.url_file.display().to_string(),
        writer = writer.url_file.display().to_string(),
        schema = sandbox.name,
    ));
    let databases = sandbox.connect(&config).await.expect("starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases.clone()),
        &config,
        Principal::new("rotexp@example.com"),
    )
    .await;
    assert!(!conn.text("titles", json!({})).await.0);

    // The file is emptied: the last good URL serves for at most max age, then calls refuse.
    write_by_rename(&reader.url_file, "\n");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let refusal = loop {
        let (is_error, text) = conn.text("titles", json!({})).await;
        if is_error {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "never refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(refusal.contains("db.reader.url"), "{refusal}");
    assert!(refusal.contains("max age"), "{refusal}");
    assert!(!refusal.contains(&reader.password), "{refusal}");

    // A good value opens it again.
    write_by_rename(&reader.url_file, &url_of(&reader, &reader.password));
    eventually("the capability serves again", || async {
        !conn.text("titles", json!({})).await.0
    })
    .await;
    drop(conn);
    sandbox.cleanup().await;
}
