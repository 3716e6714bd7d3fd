//! The governance tables against the local PostgreSQL (`scripts/postgres.sh start`): the
//! revocation list pushed to every follower by LISTEN/NOTIFY and read again after a lost
//! connection, the privilege check of the tables, last-used records written in batches, and
//! approvals shared by replicas and used exactly once.

use std::time::{Duration, Instant};

use mcp_lp::approval::{ApprovalError, ApprovalStore as _, CallKey, PendingCall, Verdict};
use mcp_lp::last_used::{LastUsed, LastUsedStore as _, Use};
use mcp_lp::revocation::{Revocation, Revocations, Target};

mod common;
use common::AuditDb;

/// A deadline for a change to reach a follower, for the failure message; not a measurement.
const DEADLINE: Duration = Duration::from_secs(20);

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: not after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn holds(revocations: &Revocations, target: &Target) -> bool {
    revocations
        .current()
        .entries()
        .iter()
        .any(|r| &r.target == target)
}

async fn follower(db: &AuditDb) -> Revocations {
    let store = db.connect().await.expect("the store starts");
    store.revocations(&db.config()).await.expect("follows")
}

#[tokio::test]
async fn accepts_revocation_pushed_to_every_replica() {
    let db = AuditDb::new().await;
    let (a, b) = (follower(&db).await, follower(&db).await);
    let all = Target::All;
    a.store()
        .revoke(Revocation::now(all.clone(), "breakglass", "oncall"))
        .await
        .expect("revoke");
    until("replica a sees the revocation", || holds(&a, &all)).await;
    until("replica b sees the revocation", || holds(&b, &all)).await;
    let entry = b.current().entries()[0].clone();
    assert_eq!(
        (entry.reason.as_str(), entry.by.as_str()),
        ("breakglass", "oncall")
    );

    assert!(b.store().unrevoke(all.clone()).await.expect("unrevoke"));
    until("replica a sees the lift", || !holds(&a, &all)).await;
    until("replica b sees the lift", || !holds(&b, &all)).await;
}

#[tokio::test]
async fn accepts_change_made_with_psql_by_the_owner() {
    let db = AuditDb::new().await;
    let replica = follower(&db).await;
    db.sql(
        "INSERT INTO mcp_lp_governance.revocations (kind, name, reason, revoked_by, revoked_at)
            VALUES ('principal', 'mallory@example.com', 'phished', 'secops', now())",
    )
    .await;
    let target = Target::Principal("mallory@example.com".into());
    until("the trigger notifies the replica", || {
        holds(&replica, &target)
    })
    .await;
}

#[tokio::test]
async fn keeps_revocations_while_disconnected_and_reads_again_after_reconnect() {
    let db = AuditDb::new().await;
    let replica = follower(&db).await;
    let tool = Target::Tool("purge".into());
    replica
        .store()
        .revoke(Revocation::now(tool.clone(), "incident", "oncall"))
        .await
        .expect("revoke");
    until("the replica sees the revocation", || holds(&replica, &tool)).await;

    // Cut every connection of the role, the listening one included, and change the list
    // while it is down.
    let cut: i64 = db
        .admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1",
            &[&db.writer],
        )
        .await
        .expect("terminate")
        .get(0);
    assert!(cut >= 1, "no connection of {} to cut", db.writer);
    assert!(holds(&replica, &tool), "a lost connection lifts nothing");
    let principal = Target::Principal("eve@example.com".into());
    db.sql(
        "INSERT INTO mcp_lp_governance.revocations (kind, name, reason, revoked_by, revoked_at)
            VALUES ('principal', 'eve@example.com', 'left the company', 'hr', now())",
    )
    .await;
    until("the replica reads the list again", || {
        holds(&replica, &principal)
    })
    .await;
    assert!(holds(&replica, &tool));
}

#[tokio::test]
async fn refuses_state_role_that_can_truncate_revocations() {
    let db = AuditDb::new().await;
    db.sql(&format!(
        "GRANT TRUNCATE ON mcp_lp_governance.revocations TO {}",
        db.writer
    ))
    .await;
    let err = db.refusal().await;
    assert!(
        err.contains("TRUNCATE on table mcp_lp_governance.revocations"),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_state_role_without_the_governance_tables() {
    let db = AuditDb::new().await;
    db.sql(&format!(
        "REVOKE DELETE ON mcp_lp_governance.revocations FROM {}",
        db.writer
    ))
    .await;
    let err = db.refusal().await;
    assert!(
        err.contains("lacks DELETE on table mcp_lp_governance.revocations"),
        "{err}"
    );
    assert!(err.contains("governance.sql"), "{err}");
}

#[tokio::test]
async fn accepts_last_used_batches_keeping_the_latest() {
    let db = AuditDb::new().await;
    let store = db.connect().await.expect("the store starts");
    let last_used = LastUsed::writing_to(store.last_used());
    last_used.note("purge", "alice@example.com");
    last_used.note("hello", "bob@example.com");
    let table = store.last_used();
    let started = Instant::now();
    let written = loop {
        let rows = table.read().await.expect("read");
        if rows.len() == 2 {
            break rows;
        }
        assert!(started.elapsed() < DEADLINE, "not written: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let alice = written
        .iter()
        .find(|u| u.principal == "alice@example.com")
        .expect("alice's use")
        .clone();
    assert_eq!(alice.tool, "purge");

    // A batch carrying an older use does not move the record back in time.
    table
        .write(vec![Use {
            at: jiff::Timestamp::UNIX_EPOCH,
            ..alice.clone()
        }])
        .await
        .expect("write");
    let again = table.read().await.expect("read");
    let kept = again
        .iter()
        .find(|u| u.principal == "alice@example.com")
        .expect("alice's use");
    assert_eq!(kept.at, alice.at);
}

fn pending(id: &str, min: u32, window_secs: i64) -> PendingCall {
    let now = jiff::Timestamp::now();
    PendingCall {
        id: id.to_owned(),
        principal: "alice@example.com".into(),
        tool: "insertRecord".into(),
        arguments_sha256: "a".repeat(64),
        definition_sha256: "d".repeat(64),
        arguments: serde_json::json!({ "title": "t" }),
        why: "Insert one record.".into(),
        grant: "records:approve".into(),
        min,
        self_approve: false,
        requested_at: now.to_string(),
        expires_at: (now + jiff::SignedDuration::from_secs(window_secs)).to_string(),
        approvals: Vec::new(),
        denial: None,
        used_at: None,
    }
}

fn key(call: &PendingCall) -> CallKey<'_> {
    CallKey {
        principal: &call.principal,
        tool: &call.tool,
        arguments_sha256: &call.arguments_sha256,
        definition_sha256: &call.definition_sha256,
    }
}

fn verdict(by: &str) -> Verdict {
    Verdict {
        by: by.into(),
        at: jiff::Timestamp::now().to_string(),
        reason: String::new(),
    }
}

fn id(n: u32) -> String {
    format!("{n:032x}")
}

#[tokio::test]
async fn accepts_approval_made_on_one_replica_and_used_once_on_another() {
    let db = AuditDb::new().await;
    let (a, b) = (
        db.connect().await.expect("a").approvals(),
        db.connect().await.expect("b").approvals(),
    );
    let call = pending(&id(1), 2, 60);
    a.request(call.clone()).await.expect("requested");
    assert_eq!(
        b.consume(&call.id, key(&call)).await,
        Err(ApprovalError::Pending { have: 0, need: 2 })
    );
    b.decide(&call.id, verdict("bob@example.com"), true)
        .await
        .expect("bob");
    assert_eq!(
        a.decide(&call.id, verdict("alice@example.com"), true).await,
        Err(ApprovalError::Requester)
    );
    a.decide(&call.id, verdict("carol@example.com"), true)
        .await
        .expect("carol");
    assert_eq!(
        b.find(key(&call)).await.expect("find"),
        Some(call.id.clone())
    );
    let other = "b".repeat(64);
    let changed = CallKey {
        arguments_sha256: &other,
        ..key(&call)
    };
    assert_eq!(
        b.consume(&call.id, changed).await,
        Err(ApprovalError::ArgumentsDiffer)
    );
    let used = b.consume(&call.id, key(&call)).await.expect("used on b");
    assert_eq!(used.approvals.len(), 2);
    assert_eq!(
        a.consume(&call.id, key(&call)).await,
        Err(ApprovalError::AlreadyUsed)
    );
    assert_eq!(a.find(key(&call)).await.expect("find"), None);
}

#[tokio::test]
async fn accepts_exactly_one_of_concurrent_consumers() {
    let db = AuditDb::new().await;
    let (a, b) = (
        std::sync::Arc::new(db.connect().await.expect("a").approvals()),
        std::sync::Arc::new(db.connect().await.expect("b").approvals()),
    );
    for n in 0..20 {
        let call = pending(&id(100 + n), 1, 60);
        a.request(call.clone()).await.expect("requested");
        a.decide(&call.id, verdict("bob@example.com"), true)
            .await
            .expect("approved");
        let (ca, cb) = (call.clone(), call.clone());
        let (sa, sb) = (std::sync::Arc::clone(&a), std::sync::Arc::clone(&b));
        let first = tokio::spawn(async move { sa.consume(&ca.id, key(&ca)).await });
        let second = tokio::spawn(async move { sb.consume(&cb.id, key(&cb)).await });
        let results = [first.await.expect("a task"), second.await.expect("b task")];
        let ran = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ran, 1, "round {n}: {results:?}");
        assert!(
            results.contains(&Err(ApprovalError::AlreadyUsed)),
            "round {n}: {results:?}"
        );
    }
}

#[tokio::test]
async fn rejects_expired_and_denied_approvals() {
    let db = AuditDb::new().await;
    let store = db.connect().await.expect("store").approvals();
    let expired = pending(&id(7), 1, 1);
    store.request(expired.clone()).await.expect("requested");
    store
        .decide(&expired.id, verdict("bob@example.com"), true)
        .await
        .expect("approved");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        store.consume(&expired.id, key(&expired)).await,
        Err(ApprovalError::Expired)
    );
    let denied = pending(&id(8), 1, 60);
    store.request(denied.clone()).await.expect("requested");
    store
        .decide(&denied.id, verdict("bob@example.com"), false)
        .await
        .expect("denied");
    assert_eq!(
        store.consume(&denied.id, key(&denied)).await,
        Err(ApprovalError::Denied {
            by: "bob@example.com".into()
        })
    );
    assert!(matches!(
        store.get("../../etc").await,
        Err(ApprovalError::Unknown(_))
    ));
}
