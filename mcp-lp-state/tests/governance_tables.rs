//! The governance tables against the local PostgreSQL (`scripts/postgres.sh start`): the
//! revocation list pushed to every follower by LISTEN/NOTIFY and read again after a lost
//! connection, the privilege check of the tables, last-used records written in batches, and
//! approvals shared by replicas and used exactly once.

use std::time::{Duration, Instant};

use std::sync::Arc;

use mcp_lp::approval::{ApprovalError, Approvals, Approver, CallKey, Door, PendingCall};
use mcp_lp::last_used::{LastUsed, LastUsedStore as _, Use};
use mcp_lp::revocation::{Revocations, Target};
use mcp_lp::{Grant, Principal};

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
    db.revoke(all.clone(), "breakglass").await;
    until("replica a sees the revocation", || holds(&a, &all)).await;
    until("replica b sees the revocation", || holds(&b, &all)).await;
    let entry = b.current().entries()[0].clone();
    assert_eq!(
        (entry.reason.as_str(), entry.by.as_str()),
        ("breakglass", "oncall")
    );

    assert!(db.unrevoke(all.clone()).await);
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
    db.revoke(tool.clone(), "incident").await;
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
        "REVOKE SELECT ON mcp_lp_governance.revocations FROM {}",
        db.writer
    ))
    .await;
    let err = db.refusal().await;
    assert!(
        err.contains("lacks SELECT on table mcp_lp_governance.revocations"),
        "{err}"
    );
    assert!(err.contains("governance.sql"), "{err}");
}

#[tokio::test]
async fn refuses_replica_role_that_can_lift_revocations() {
    let db = AuditDb::new().await;
    db.sql(&format!(
        "GRANT DELETE ON mcp_lp_governance.revocations TO {}",
        db.writer
    ))
    .await;
    let err = db.refusal().await;
    assert!(
        err.contains("DELETE on table mcp_lp_governance.revocations"),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_revocation_change_by_the_replica_role() {
    let db = AuditDb::new().await;
    // The replicas' own store: what a compromised replica holds.
    let config = db.config();
    let replica = db.connect().await.expect("the store starts");
    let list = replica.revocations(&config).await.expect("follows");
    let err = list
        .store()
        .revoke(mcp_lp::revocation::Revocation::now(
            Target::All,
            "not mine to make",
            "mallory",
        ))
        .await
        .expect_err("the replica role cannot revoke");
    assert!(err.to_string().contains("operator_url"), "{err}");
    // The operator role can, and every replica follows it.
    db.revoke(Target::Principal("eve@example.com".into()), "left")
        .await;
    let target = Target::Principal("eve@example.com".into());
    until("the replica follows the operator's change", || {
        holds(&list, &target)
    })
    .await;
    assert!(
        db.operator().await.is_ok(),
        "the operator role passes its own check"
    );
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

fn keys() -> mcp_lp::governance_key::GovernanceKeys {
    mcp_lp::governance_key::GovernanceKeys::new(vec![
        mcp_lp::governance_key::GovernanceKey::new(
            "g1",
            &secrecy::SecretString::from("a-governance-key-for-these-tests-32-bytes"),
        )
        .expect("key"),
    ])
    .expect("keys")
}

/// Approvals over the replica `store` of `db`, sealed with the test key.
async fn approvals(db: &AuditDb) -> Approvals {
    let store = db.connect().await.expect("the store starts");
    Approvals::new(Arc::new(store.approvals()), keys())
}

fn call_key() -> CallKey<'static> {
    CallKey {
        principal: "alice@example.com",
        tool: "insertRecord",
        arguments_sha256: "aaaa",
        definition_sha256: "dddd",
    }
}

fn rule(min: u32, window: Duration) -> mcp_lp::approval::ApprovalRule {
    mcp_lp::approval::ApprovalRule {
        grant: "records:approve".into(),
        min,
        window,
        self_approve: false,
    }
}

/// A call parked in `approvals` as the checkpoint parks it.
async fn park(approvals: &Approvals, min: u32, window: Duration) -> PendingCall {
    approvals
        .park(
            call_key(),
            &rule(min, window),
            &serde_json::json!({ "title": "t" }),
            "Insert one record.",
        )
        .await
        .expect("parked")
}

fn approver(id: &str) -> Approver {
    Approver::new(
        Principal::new(id).with_grant(Grant::new("records:approve").expect("grant")),
        Door::Api,
        String::new(),
    )
}

#[tokio::test]
async fn accepts_approval_made_on_one_replica_and_used_once_on_another() {
    let db = AuditDb::new().await;
    let (a, b) = (approvals(&db).await, approvals(&db).await);
    let call = park(&a, 2, Duration::from_secs(60)).await;
    assert_eq!(
        b.consume(&call.id, call_key()).await,
        Err(ApprovalError::Pending { have: 0, need: 2 })
    );
    b.decide(&call.id, &approver("bob@example.com"), true)
        .await
        .expect("bob");
    assert_eq!(
        a.decide(&call.id, &approver("alice@example.com"), true)
            .await,
        Err(ApprovalError::Requester)
    );
    a.decide(&call.id, &approver("carol@example.com"), true)
        .await
        .expect("carol");
    assert_eq!(
        b.find(call_key()).await.expect("find"),
        Some(call.id.clone())
    );
    let changed = CallKey {
        arguments_sha256: "bbbb",
        ..call_key()
    };
    assert_eq!(
        b.consume(&call.id, changed).await,
        Err(ApprovalError::ArgumentsDiffer)
    );
    let used = b.consume(&call.id, call_key()).await.expect("used on b");
    assert_eq!(used.approvals.len(), 2);
    assert_eq!(
        a.consume(&call.id, call_key()).await,
        Err(ApprovalError::AlreadyUsed)
    );
    assert_eq!(a.find(call_key()).await.expect("find"), None);
}

#[tokio::test]
async fn accepts_exactly_one_of_concurrent_consumers() {
    let db = AuditDb::new().await;
    let (a, b) = (
        Arc::new(approvals(&db).await),
        Arc::new(approvals(&db).await),
    );
    for n in 0..20 {
        let call = park(&a, 1, Duration::from_secs(60)).await;
        a.decide(&call.id, &approver("bob@example.com"), true)
            .await
            .expect("approved");
        let (ida, idb) = (call.id.clone(), call.id.clone());
        let (sa, sb) = (Arc::clone(&a), Arc::clone(&b));
        let first = tokio::spawn(async move { sa.consume(&ida, call_key()).await });
        let second = tokio::spawn(async move { sb.consume(&idb, call_key()).await });
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
    let store = approvals(&db).await;
    let expired = park(&store, 1, Duration::from_secs(1)).await;
    store
        .decide(&expired.id, &approver("bob@example.com"), true)
        .await
        .expect("approved");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        store.consume(&expired.id, call_key()).await,
        Err(ApprovalError::Expired)
    );
    let denied = park(&store, 1, Duration::from_secs(60)).await;
    store
        .decide(&denied.id, &approver("bob@example.com"), false)
        .await
        .expect("denied");
    assert_eq!(
        store.consume(&denied.id, call_key()).await,
        Err(ApprovalError::Denied {
            by: "bob@example.com".into()
        })
    );
    assert!(matches!(
        store.get("../../etc").await,
        Err(ApprovalError::Unknown(_))
    ));
}

#[tokio::test]
async fn rejects_approval_record_edited_in_the_store() {
    let db = AuditDb::new().await;
    let store = approvals(&db).await;
    let call = park(&store, 1, Duration::from_secs(60)).await;
    // Whoever can UPDATE the table writes an approver into the record, moving the revision
    // on as the trigger asks.
    db.sql(&format!(
        "UPDATE mcp_lp_governance.approvals
         SET call = jsonb_set(jsonb_set(call, '{{approvals}}',
                 '[{{\"by\": \"mallory@example.com\", \"at\": \"2026-12-07T00:00:00Z\", \"door\": \"api\"}}]'),
                 '{{revision}}', to_jsonb(revision + 1)),
             revision = revision + 1
         WHERE id = '{}'",
        call.id
    ))
    .await;
    assert_eq!(
        store.consume(&call.id, call_key()).await,
        Err(ApprovalError::Tampered(call.id.clone()))
    );
}

#[tokio::test]
async fn rejects_used_approval_whose_mark_was_cleared() {
    let db = AuditDb::new().await;
    let store = approvals(&db).await;
    let call = park(&store, 1, Duration::from_secs(60)).await;
    store
        .decide(&call.id, &approver("bob@example.com"), true)
        .await
        .expect("approved");
    store
        .consume(&call.id, call_key())
        .await
        .expect("used once");
    // The row as it was before its use, written back by whoever can UPDATE the table: the
    // trigger keeps a used approval used.
    let cleared = db
        .admin
        .batch_execute(&format!(
            "UPDATE mcp_lp_governance.approvals
             SET used_at = NULL, call = call - 'used_at' || jsonb_build_object('revision', revision + 1),
                 revision = revision + 1
             WHERE id = '{}'",
            call.id
        ))
        .await;
    let err = cleared.expect_err("the trigger refuses");
    assert!(
        format!("{err:?}").contains("its use cannot be undone"),
        "{err:?}"
    );
    assert_eq!(
        approvals(&db).await.consume(&call.id, call_key()).await,
        Err(ApprovalError::AlreadyUsed)
    );
}

#[tokio::test]
async fn forgets_expired_approvals_through_the_owners_function_only() {
    let db = AuditDb::new().await;
    let store = approvals(&db)
        .await
        .keep_expired_for(Duration::from_secs(0));
    let short = park(&store, 1, Duration::from_millis(200)).await;
    let open = park(&store, 1, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A replica naming a time far ahead forgets only what expired before now.
    let far = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
    assert_eq!(store.forget_expired(far).await, Ok(1));
    assert!(matches!(
        store.get(&short.id).await,
        Err(ApprovalError::Unknown(_))
    ));
    assert!(store.get(&open.id).await.is_ok());
}
