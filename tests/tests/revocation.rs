//! Revocation with the list a single process follows: a JSON file the server watches. Each
//! test revokes through the same store the CLI uses, then waits for the server to refuse.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use mcp_lp::revocation::{FileRevocations, Revocation, RevocationStore as _, Target};
use mcp_lp::{Checkpoint, Config, Grant, Principal};
use mcp_lp_tests::{Connection, Fixture, Recorder, connect_with};
use rmcp::service::ServiceError;
use serde_json::json;

/// How long a test waits for a change it made to reach the server; the file is watched, so
/// this is a deadline for a failure message, not a measurement.
const DEADLINE: Duration = Duration::from_secs(20);

fn admin(id: &str) -> Principal {
    Principal::new(id).with_grant(Grant::new("fixture:admin").expect("grant"))
}

struct Setup {
    dir: tempfile::TempDir,
    fixture: Fixture,
}

impl Setup {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
            fixture: Fixture::default(),
        }
    }

    fn list_path(&self) -> PathBuf {
        self.dir.path().join("mcp-lp.revocations.json")
    }

    fn config(&self, extra: &str) -> Config {
        let path = self.dir.path().join("mcp-lp.toml");
        std::fs::write(&path, format!("[governance]\n{extra}\n")).expect("write config");
        Config::load(&path).expect("config loads")
    }

    async fn connect(&self, principal: Principal, extra: &str) -> Connection {
        connect_with(
            self.fixture.clone(),
            &self.config(extra),
            principal,
            rmcp::service::ClientLifecycleMode::Initialize,
        )
        .await
    }

    fn store(&self) -> FileRevocations {
        FileRevocations::new(self.list_path())
    }

    async fn revoke(&self, target: Target) {
        self.store()
            .revoke(Revocation::now(
                target,
                "incident 7: key leaked",
                "oncall@example.com",
            ))
            .await
            .expect("revoke");
    }
}

/// The call's JSON-RPC error, once the server refuses it; panics after [`DEADLINE`].
async fn refused(conn: &Connection, tool: &str) -> rmcp::ErrorData {
    let started = std::time::Instant::now();
    loop {
        match conn.call(tool, json!({"text": "hi"})).await {
            Err(ServiceError::McpError(e)) => return e,
            other => {
                assert!(
                    started.elapsed() < DEADLINE,
                    "tool `{tool}` still answered {other:?} after {DEADLINE:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn write_list(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).expect("write");
    std::fs::rename(&temporary, path).expect("rename");
}

#[tokio::test]
async fn rejects_revoked_tool_and_hides_it_from_the_list() {
    let setup = Setup::new();
    let audit = Recorder::global();
    let conn = setup.connect(admin("rev-tool@example.com"), "").await;
    assert!(!conn.text("admin_echo", json!({"text": "hi"})).await.0);
    setup.revoke(Target::Tool("admin_echo".into())).await;

    let err = refused(&conn, "admin_echo").await;
    assert_eq!(err.code, mcp_lp::FORBIDDEN);
    assert!(
        err.message
            .contains("tool admin_echo is revoked: incident 7: key leaked (by oncall@example.com"),
        "{}",
        err.message
    );
    assert_eq!(err.data.expect("data")["revoked"]["kind"], "tool");
    let names = conn.tool_names().await;
    assert!(!names.contains(&"admin_echo".to_owned()), "{names:?}");
    assert!(names.contains(&"echo".to_owned()), "{names:?}");
    let runs = setup.fixture.runs.load(Ordering::SeqCst);
    let _ = conn.call("admin_echo", json!({"text": "again"})).await;
    assert_eq!(
        setup.fixture.runs.load(Ordering::SeqCst),
        runs,
        "a revoked call must not run"
    );

    let events = audit.audit_events_of("rev-tool@example.com");
    assert!(
        events
            .iter()
            .any(|e| e["outcome"] == "revoked" && e["tool"] == "admin_echo"),
        "{events:#?}"
    );
}

#[tokio::test]
async fn rejects_every_call_of_a_revoked_principal_and_no_other() {
    let setup = Setup::new();
    let mallory = setup.connect(admin("rev-mallory@example.com"), "").await;
    let alice = setup.connect(admin("rev-alice@example.com"), "").await;
    setup
        .revoke(Target::Principal("rev-mallory@example.com".into()))
        .await;
    let err = refused(&mallory, "echo").await;
    assert!(
        err.message
            .contains("principal rev-mallory@example.com is revoked"),
        "{}",
        err.message
    );
    assert!(mallory.tool_names().await.is_empty());
    assert_eq!(
        alice.text("echo", json!({"text": "hi"})).await,
        (false, "hi".to_owned())
    );
    assert_eq!(
        alice.text("admin_echo", json!({"text": "hi"})).await,
        (false, "hi".to_owned())
    );
}

#[tokio::test]
async fn rejects_tools_requiring_a_revoked_grant_and_keeps_the_others() {
    let setup = Setup::new();
    let conn = setup.connect(admin("rev-grant@example.com"), "").await;
    setup.revoke(Target::Grant("fixture:admin".into())).await;
    let err = refused(&conn, "admin_echo").await;
    assert!(
        err.message.contains("grant fixture:admin is revoked"),
        "{}",
        err.message
    );
    assert_eq!(
        conn.text("echo", json!({"text": "hi"})).await,
        (false, "hi".to_owned())
    );
    let names = conn.tool_names().await;
    assert!(
        !names.contains(&"admin_echo".to_owned()) && !names.contains(&"two_grants".to_owned()),
        "{names:?}"
    );
}

#[tokio::test]
async fn accepts_calls_again_after_unrevoke_of_everything() {
    let setup = Setup::new();
    let conn = setup.connect(admin("rev-all@example.com"), "").await;
    setup.revoke(Target::All).await;
    let err = refused(&conn, "echo").await;
    assert!(
        err.message.contains("everything is revoked"),
        "{}",
        err.message
    );
    assert!(conn.tool_names().await.is_empty());
    assert!(setup.store().unrevoke(Target::All).await.expect("unrevoke"));
    let started = std::time::Instant::now();
    while conn.call("echo", json!({"text": "hi"})).await.is_err() {
        assert!(started.elapsed() < DEADLINE, "still refused after unrevoke");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn keeps_revocations_while_the_list_is_unreadable_then_refuses_privileged_tools() {
    let setup = Setup::new();
    let conn = setup
        .connect(
            admin("rev-broken@example.com"),
            "fail_closed_after = \"1s\"",
        )
        .await;
    setup.revoke(Target::Tool("whoami".into())).await;
    refused(&conn, "whoami").await;
    write_list(&setup.list_path(), "{ \"revocations\": [ broken");
    // Known revocations stay in force; once the list has been unreadable longer than
    // fail_closed_after, tools that require a grant are refused too.
    let err = refused(&conn, "admin_echo").await;
    assert!(
        err.message.contains("privileged tools are refused"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("not a revocation list"),
        "{}",
        err.message
    );
    assert!(conn.call("whoami", json!({})).await.is_err());
    assert_eq!(
        conn.text("echo", json!({"text": "hi"})).await,
        (false, "hi".to_owned())
    );
}

#[tokio::test]
async fn refuses_start_when_the_revocation_list_is_unreadable() {
    let setup = Setup::new();
    write_list(&setup.list_path(), "not json");
    let err = Checkpoint::new(
        setup.fixture.clone(),
        &setup.config(""),
        admin("x@example.com"),
    )
    .err()
    .expect("refused");
    assert_eq!(err.key.as_deref(), Some("governance.revocations"), "{err}");
    assert!(
        err.to_string()
            .contains("does not start without knowing what is revoked"),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_state_store_without_a_shared_revocation_list() {
    let setup = Setup::new();
    let err = Checkpoint::new(
        setup.fixture.clone(),
        &setup.config("[state]\nurl = { file = \"state.url\" }"),
        admin("x@example.com"),
    )
    .err()
    .expect("refused");
    assert_eq!(err.key.as_deref(), Some("state"), "{err}");
}
