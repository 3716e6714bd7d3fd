//! The audit table against the local PostgreSQL (`scripts/postgres.sh start`): the privilege
//! check of the `[state]` role with real roles and password authentication, the sink's writes
//! and retries, and `audit verify` of what it reads back.

use std::time::Duration;

use mcp_lp::Config;
use mcp_lp::audit::verify::{FailureKind, Verifier};
use mcp_lp::audit::{AuditSink, AuditTrail, ChainKey, Record, SealedEvent, TrailOptions};
use mcp_lp_state::StateStore;

mod common;
use common::{AuditDb, connect};
use secrecy::SecretString;
fn key() -> ChainKey {
    ChainKey::new(
        "test-1",
        &SecretString::from("a test key of at least thirty-two bytes".to_owned()),
    )
    .expect("a valid key")
}

/// A trail writing to `store`'s audit table, with `calls` tool calls recorded durably.
async fn trail_with_calls(store: &StateStore, calls: u64) -> AuditTrail {
    let trail = AuditTrail::start(
        TrailOptions {
            key: key(),
            write_timeout: Duration::from_secs(10),
            ..TrailOptions::default()
        },
        vec![Box::new(store.audit_sink())],
    );
    trail
        .record(&Record::new("start").str("server", "test"))
        .durable()
        .await
        .expect("start recorded");
    for i in 0..calls {
        trail
            .record(
                &Record::new("tools/call")
                    .str("tool", "queryRecords")
                    .str("principal", "alice@example.com")
                    .str("outcome", "ok")
                    .int("call", i),
            )
            .durable()
            .await
            .expect("call recorded");
    }
    trail
}

fn event(instance: &str, seq: u64, hash: &str) -> SealedEvent {
    SealedEvent {
        instance: instance.to_owned(),
        seq,
        hash: hash.to_owned(),
        event: "tools/call".to_owned(),
        line: format!("{{\"instance\":\"{instance}\",\"seq\":{seq},\"hash\":\"{hash}\"}}"),
    }
}

#[tokio::test]
async fn accepts_insert_only_audit_role() {
    let db = AuditDb::new().await;
    let store = db.connect().await.expect("an insert-only role is accepted");
    assert_eq!(store.role(), db.writer);
}

#[tokio::test]
async fn refuses_audit_role_that_can_update() {
    let db = AuditDb::new().await;
    db.sql(&format!(
        "GRANT UPDATE ON mcp_lp_audit.events TO {}",
        db.writer
    ))
    .await;
    let err = db.refusal().await;
    assert!(err.contains(&format!("role `{}`", db.writer)), "{err}");
    assert!(err.contains("UPDATE on table mcp_lp_audit.events"), "{err}");
}

#[tokio::test]
async fn refuses_audit_role_that_can_update_one_column() {
    let db = AuditDb::new().await;
    db.sql(&format!(
        "GRANT UPDATE (line) ON mcp_lp_audit.events TO {}",
        db.writer
    ))
    .await;
    let err = db.refusal().await;
    assert!(err.contains("UPDATE on table mcp_lp_audit.events"), "{err}");
}

#[tokio::test]
async fn refuses_audit_role_that_can_delete() {
    let db = AuditDb::new().await;
    db.sql(&format!(
        "GRANT DELETE ON mcp_lp_audit.events TO {}",
        db.writer
    ))
    .await;
    let err = db.refusal().await;
    assert!(err.contains(&format!("role `{}`", db.writer)), "{err}");
    assert!(err.contains("DELETE on table mcp_lp_audit.events"), "{err}");
}

#[tokio::test]
async fn refuses_audit_role_that_can_truncate() {
    let db = AuditDb::new().await;
    db.sql(&format!(
        "GRANT TRUNCATE ON mcp_lp_audit.events TO {}",
        db.writer
    ))
    .await;
    let err = db.refusal().await;
    assert!(
        err.contains("TRUNCATE on table mcp_lp_audit.events"),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_audit_role_that_owns_the_audit_table() {
    let db = AuditDb::new().await;
    db.sql(&format!("GRANT {} TO {}", db.owner, db.writer))
        .await;
    let err = db.refusal().await;
    assert!(
        err.contains(&format!(
            "ownership of table mcp_lp_audit.events (owner `{}`)",
            db.owner
        )),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_audit_role_that_can_read_another_table() {
    let db = AuditDb::new().await;
    db.sql(&format!(
        "CREATE TABLE public.secrets (v text); GRANT SELECT ON public.secrets TO {}",
        db.writer
    ))
    .await;
    let err = db.refusal().await;
    assert!(err.contains("SELECT on table public.secrets"), "{err}");
}

#[tokio::test]
async fn refuses_audit_role_that_can_set_the_id_sequence() {
    let db = AuditDb::new().await;
    db.sql(&format!(
        "GRANT UPDATE ON SEQUENCE mcp_lp_audit.events_id_seq TO {}",
        db.writer
    ))
    .await;
    let err = db.refusal().await;
    assert!(
        err.contains("UPDATE on sequence mcp_lp_audit.events_id_seq"),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_audit_role_without_insert() {
    let db = AuditDb::new().await;
    db.sql(&format!(
        "REVOKE INSERT ON mcp_lp_audit.events FROM {}",
        db.writer
    ))
    .await;
    let err = db.refusal().await;
    assert!(
        err.contains("lacks INSERT on table mcp_lp_audit.events"),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_audit_postgres_without_state_table() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("mcp-lp.toml");
    std::fs::write(&path, "[audit]\npostgres = true\n").expect("write the configuration");
    let config = Config::load(&path).expect("the configuration loads");
    let err = StateStore::shared(&config)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("[state]"), "{err}");
    assert!(err.contains("[audit] postgres = true"), "{err}");
}

#[tokio::test]
async fn rejects_update_and_delete_by_the_audit_role() {
    let db = AuditDb::new().await;
    let store = db.connect().await.expect("accepted");
    trail_with_calls(&store, 2).await;
    let url = std::fs::read_to_string(db.dir.path().join("state.url")).expect("URL");
    let writer = connect(url.trim()).await;
    for sql in [
        "UPDATE mcp_lp_audit.events SET line = '{}'",
        "DELETE FROM mcp_lp_audit.events",
        "TRUNCATE mcp_lp_audit.events",
    ] {
        let err = writer.batch_execute(sql).await.expect_err(sql);
        let code = err.as_db_error().map(|e| e.code().code().to_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err:?}");
    }
    assert_eq!(db.rows().await, 3);
}

#[tokio::test]
async fn accepts_retried_batch_without_duplicating_it() {
    let db = AuditDb::new().await;
    let store = db.connect().await.expect("accepted");
    let mut sink = store.audit_sink();
    let batch: Vec<SealedEvent> = (0..5).map(|seq| event("i-retry", seq, "h")).collect();
    sink.write(&batch).await.expect("first write");
    // The retry of a batch whose commit the writer did not see.
    sink.write(&batch).await.expect("the retry succeeds");
    sink.write(&batch[3..]).await.expect("a partial retry too");
    assert_eq!(db.rows().await, 5);
}

#[tokio::test]
async fn rejects_batch_whose_rows_hold_other_events() {
    let db = AuditDb::new().await;
    let store = db.connect().await.expect("accepted");
    let mut sink = store.audit_sink();
    sink.write(&[event("i-taken", 0, "first")])
        .await
        .expect("first write");
    let err = sink
        .write(&[event("i-taken", 0, "second")])
        .await
        .expect_err("another event under the same seq");
    assert!(err.to_string().contains("instance i-taken seq 0"), "{err}");
}

#[tokio::test]
async fn verify_accepts_events_read_back_from_the_table() {
    let db = AuditDb::new().await;
    let store = db.connect().await.expect("accepted");
    let trail = trail_with_calls(&store, 20).await;
    // A second replica writing its own chain into the same table.
    let other = trail_with_calls(&store, 5).await;
    let mut reader = store.audit_sink();
    let lines = reader
        .read_back()
        .expect("the table is read back")
        .await
        .expect("read");
    assert_eq!(lines.len(), 27);
    assert!(lines[0].location.starts_with("mcp_lp_audit.events id "));
    let report = Verifier::new([key()]).verify(&lines, &[]);
    assert!(report.passed(), "{report}");
    assert_eq!(report.instances.len(), 2);
    assert_eq!(report.by_event.get("tools/call"), Some(&25));
    assert_ne!(trail.instance(), other.instance());
}

#[tokio::test]
async fn verify_rejects_row_updated_by_the_owner() {
    let db = AuditDb::new().await;
    let store = db.connect().await.expect("accepted");
    trail_with_calls(&store, 5).await;
    // The owner can UPDATE; the chain's key still gives it away.
    db.sql(&format!(
        "SET ROLE {owner};
         UPDATE mcp_lp_audit.events SET line = replace(line, 'alice@example.com', 'mallory@example.com')
         WHERE seq = 3;
         RESET ROLE",
        owner = db.owner
    ))
    .await;
    let lines = store
        .audit_sink()
        .read_back()
        .expect("the table is read back")
        .await
        .expect("read");
    let report = Verifier::new([key()]).verify(&lines, &[]);
    let failure = report.failure.expect("the edit is caught");
    assert_eq!(failure.kind, FailureKind::Modified, "{failure}");
    assert_eq!(failure.seq, Some(3), "{failure}");
    assert!(
        failure.location.starts_with("mcp_lp_audit.events id "),
        "{failure}"
    );
    let _ = db.name;
}
