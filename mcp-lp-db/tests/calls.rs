//! Calls through the checkpoint to a real PostgreSQL: reads, writes, what each capability's
//! connection refuses, row-level security by principal, pool exhaustion, statement timeouts,
//! and sessions reset between calls.

mod common;

use std::time::Duration;

use common::{Fixture, Sandbox, error_text, serve, values, writer_principal};
use mcp_lp::{Principal, Server};
use rmcp::service::ServiceError;
use serde_json::json;

fn alice() -> Principal {
    Principal::new("alice@example.com")
}

#[tokio::test]
async fn accepts_read_through_read_capability() {
    let sandbox = Sandbox::new("read").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    sandbox
        .sql("INSERT INTO records (owner, title) VALUES ('alice@example.com', 'q3 plan')")
        .await;
    let config = sandbox.fixture_config(&reader, &writer, "");
    let databases = sandbox
        .connect(&config)
        .await
        .expect("least-privileged roles start");
    let stats = databases.clone();
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        alice(),
    )
    .await;

    let result = conn.call("titles", json!({})).await.unwrap();
    assert_eq!(values(&result), json!(["q3 plan"]));
    let who = conn
        .call(
            "read_script",
            json!({"statements": [
                "SELECT current_user::text",
                "SELECT current_setting('transaction_read_only')",
                "SELECT current_setting('mcp_lp.principal')",
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(
        values(&who),
        json!([reader.name, "on", "alice@example.com"])
    );
    assert_eq!(stats.stats("reader").unwrap().checkouts, 2);
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_write_by_read_role_through_grants_alone() {
    // The write capability logs in as the reader's role: its transaction is READ WRITE, so only
    // the role's grants stand between it and the table.
    let sandbox = Sandbox::new("grants").await;
    let reader = sandbox.reader().await;
    let config = sandbox.fixture_config(&reader, &reader, "");
    let databases = sandbox.connect(&config).await.expect("starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;

    let mode = conn
        .call(
            "write_script",
            json!({"statements": ["SELECT current_setting('transaction_read_only')"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        values(&mode),
        json!(["off"]),
        "the layer under test must be the grants alone"
    );
    for statement in [
        "INSERT INTO records (title) VALUES ('x')",
        "UPDATE records SET title = 'x'",
        "DELETE FROM records",
        "TRUNCATE records",
    ] {
        let result = conn
            .call(
                "write_script",
                json!({"statements": [statement], "commit": true}),
            )
            .await
            .unwrap();
        let message = error_text(&result);
        assert!(
            message.contains("permission denied for table records"),
            "{statement}: {message}"
        );
        assert!(message.contains("SQLSTATE 42501"), "{message}");
    }
    assert!(sandbox.all_titles().await.is_empty());
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_write_through_read_capability_by_read_only_transaction_alone() {
    // The read capability logs in as a role that CAN write (started in warn-only mode): only
    // the READ ONLY transaction stands between it and the table.
    let sandbox = Sandbox::new("readonly").await;
    let (writable, writer) = (sandbox.role("writable", "").await, sandbox.writer().await);
    sandbox
        .sql(&format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON records TO {0};
             GRANT USAGE, UPDATE ON SEQUENCE records_id_seq TO {0}",
            writable.name
        ))
        .await;
    sandbox
        .sql("INSERT INTO records (owner, title) VALUES ('alice@example.com', 'keep')")
        .await;
    let config = sandbox.fixture_config(&writable, &writer, "privilege_check = \"warn-only\"");
    let databases = sandbox.connect(&config).await.expect("warn-only starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        alice(),
    )
    .await;

    for statement in [
        "INSERT INTO records (title) VALUES ('x')",
        "UPDATE records SET title = 'x'",
        "DELETE FROM records",
        "TRUNCATE records",
        "CREATE TABLE sneaky (id int)",
        "SELECT nextval('records_id_seq')::text",
    ] {
        let result = conn
            .call("read_script", json!({"statements": [statement]}))
            .await
            .unwrap();
        let message = error_text(&result);
        assert!(
            message.contains("read-only transaction"),
            "{statement}: {message}"
        );
        assert!(message.contains("SQLSTATE 25006"), "{message}");
    }
    assert_eq!(sandbox.all_titles().await, ["keep"]);
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_ending_the_read_only_transaction_from_a_handler() {
    let sandbox = Sandbox::new("escape").await;
    let (writable, writer) = (sandbox.role("writable", "").await, sandbox.writer().await);
    sandbox
        .sql(&format!(
            "GRANT SELECT, INSERT ON records TO {}",
            writable.name
        ))
        .await;
    let config = sandbox.fixture_config(&writable, &writer, "privilege_check = \"warn-only\"");
    let databases = sandbox.connect(&config).await.expect("warn-only starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        alice(),
    )
    .await;

    for escape in [
        "COMMIT",
        "rollback",
        "/* x */ END",
        "BEGIN READ WRITE",
        "SAVEPOINT s",
    ] {
        let result = conn
            .call(
                "read_script",
                json!({"statements": ["SELECT 1::text", escape, "INSERT INTO records (title) VALUES ('escaped')"]}),
            )
            .await
            .unwrap();
        let message = error_text(&result);
        assert!(message.contains("is refused"), "{escape}: {message}");
        assert!(message.contains("db capability `reader`"), "{message}");
    }
    // Starting with the escape changes nothing either.
    let result = conn
        .call("read_script", json!({"statements": ["COMMIT"]}))
        .await
        .unwrap();
    assert!(error_text(&result).contains(
        "`COMMIT` is refused: the handle runs every statement in its own READ ONLY transaction"
    ));
    // Prepared statements outlive the call, and the handle caches its own.
    for statement in ["DEALLOCATE ALL", "DISCARD ALL", "PREPARE mine AS SELECT 1"] {
        let result = conn
            .call("read_script", json!({"statements": [statement]}))
            .await
            .unwrap();
        let message = error_text(&result);
        assert!(
            message.contains("the handle prepares and caches statements itself"),
            "{statement}: {message}"
        );
    }
    assert!(sandbox.all_titles().await.is_empty());
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_write_through_reader_handle_in_write_tool() {
    let sandbox = Sandbox::new("rinw").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "");
    let databases = sandbox.connect(&config).await.expect("starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;
    let result = conn
        .call(
            "read_script_in_write_tool",
            json!({"statements": ["SELECT current_user::text", "INSERT INTO records (title) VALUES ('x')"]}),
        )
        .await
        .unwrap();
    assert!(error_text(&result).contains("SQLSTATE 25006"));
    assert!(sandbox.all_titles().await.is_empty());
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_insert_without_grant_before_any_checkout() {
    let sandbox = Sandbox::new("nogrant").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "");
    let databases = sandbox.connect(&config).await.expect("starts");
    let stats = databases.clone();
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        alice(),
    )
    .await;

    let before = stats.stats("writer").unwrap();
    let err = match conn.call("insert_title", json!({"title": "x"})).await {
        Err(ServiceError::McpError(e)) => e,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    };
    assert_eq!(err.code, mcp_lp::FORBIDDEN);
    assert!(err.message.contains("`fixture:write`"), "{}", err.message);
    let after = stats.stats("writer").unwrap();
    assert_eq!(after.checkouts, 0, "a refused call checks out nothing");
    assert_eq!(after, before);
    assert!(sandbox.all_titles().await.is_empty());
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn accepts_insert_with_grant() {
    let sandbox = Sandbox::new("grant").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "");
    let databases = sandbox.connect(&config).await.expect("starts");
    let stats = databases.clone();
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;
    let result = conn
        .call("insert_title", json!({"title": "hello"}))
        .await
        .unwrap();
    assert_eq!(mcp_lp_tests::text(&result), "inserted hello");
    assert_eq!(stats.stats("writer").unwrap().checkouts, 1);
    assert_eq!(sandbox.all_titles().await, ["hello"]);
    let owner = sandbox
        .admin
        .query_one(&format!("SELECT owner FROM {}.records", sandbox.name), &[])
        .await
        .unwrap();
    assert_eq!(owner.get::<_, String>(0), "alice@example.com");
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_uncommitted_write() {
    let sandbox = Sandbox::new("nocommit").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "");
    let databases = sandbox.connect(&config).await.expect("starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;
    let result = conn
        .call("write_script", json!({"statements": ["INSERT INTO records (title) VALUES ('x') RETURNING title"], "commit": false}))
        .await
        .unwrap();
    assert_eq!(values(&result), json!(["x"]));
    // The rollback runs as the handle is dropped; a committed row would be visible at once.
    let seen = conn.call("titles", json!({})).await.unwrap();
    assert_eq!(values(&seen), json!([]));
    assert!(sandbox.all_titles().await.is_empty());
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_commit_after_a_failed_statement() {
    let sandbox = Sandbox::new("aborted").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "");
    let databases = sandbox.connect(&config).await.expect("starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;
    // The handler ignores the failure and commits anyway: PostgreSQL would answer COMMIT of an
    // aborted transaction with a quiet ROLLBACK.
    let result = conn
        .call(
            "write_script",
            json!({"statements": [
                "INSERT INTO records (title) VALUES ('first') RETURNING title",
                "SELECT (1 / 0)::text",
                "INSERT INTO records (title) VALUES ('second') RETURNING title",
            ], "commit": true, "ignore_errors": true}),
        )
        .await
        .unwrap();
    assert_eq!(
        error_text(&result),
        "db capability `writer`: nothing was committed: an earlier statement failed, which aborted the transaction"
    );
    assert!(sandbox.all_titles().await.is_empty());
    // The connection serves the next call.
    let result = conn
        .call("insert_title", json!({"title": "third"}))
        .await
        .unwrap();
    assert_eq!(mcp_lp_tests::text(&result), "inserted third");
    assert_eq!(sandbox.all_titles().await, ["third"]);
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn accepts_only_own_rows_for_each_principal() {
    let sandbox = Sandbox::new("rls").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "max_connections = 1");
    let databases = sandbox.connect(&config).await.expect("starts");
    // Two clients, one pool: the same connection serves both principals in turn.
    let alice = serve(
        Server::new(Fixture::default()).provide(databases.clone()),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;
    let bob = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("bob@example.com"),
    )
    .await;
    alice
        .call("insert_title", json!({"title": "alice's plan"}))
        .await
        .unwrap();
    bob.call("insert_title", json!({"title": "bob's salary"}))
        .await
        .unwrap();
    alice
        .call("insert_title", json!({"title": "alice's notes"}))
        .await
        .unwrap();

    let seen_by_alice = alice.call("titles", json!({})).await.unwrap();
    let seen_by_bob = bob.call("titles", json!({})).await.unwrap();
    assert_eq!(
        values(&seen_by_alice),
        json!(["alice's plan", "alice's notes"])
    );
    assert_eq!(values(&seen_by_bob), json!(["bob's salary"]));
    // A writer cannot insert a row for someone else.
    let forged = bob
        .call("write_script", json!({"statements": ["INSERT INTO records (owner, title) VALUES ('alice@example.com', 'forged')"], "commit": true}))
        .await
        .unwrap();
    assert!(error_text(&forged).contains("permission denied"));
    assert_eq!(sandbox.all_titles().await.len(), 3);
    drop((alice, bob));
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_leaking_session_state_between_calls() {
    let sandbox = Sandbox::new("leak").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let group = format!("{}_group", sandbox.name);
    sandbox
        .sql(&format!(
            "CREATE ROLE {group} NOLOGIN; GRANT {group} TO {}, {}",
            reader.name, writer.name
        ))
        .await;
    // One connection per capability, so the second call must reuse the first call's session.
    let config = sandbox.fixture_config(
        &reader,
        &writer,
        "max_connections = 1\nstatement_timeout = \"7s\"",
    );
    let databases = sandbox.connect(&config).await.expect("starts");
    let mallory = serve(
        Server::new(Fixture::default()).provide(databases.clone()),
        &config,
        writer_principal("mallory@example.com"),
    )
    .await;
    let alice = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;

    let dirty = [
        "SELECT pg_backend_pid()::text",
        "SELECT set_config('mcp_lp.principal', 'forged', false)",
        "SELECT set_config('app.note', 'left behind', false)",
        "SELECT set_config('search_path', 'pg_catalog', false)",
        "SELECT set_config('statement_timeout', '1h', false)",
        "SET ROLE {group}",
        "SELECT 'locked' FROM (SELECT pg_advisory_lock(4242)) AS l",
        "LISTEN gossip",
        "DECLARE kept CURSOR WITH HOLD FOR SELECT 1",
    ]
    .map(|s| s.replace("{group}", &group));
    let probe = [
        "SELECT pg_backend_pid()::text",
        "SELECT current_setting('mcp_lp.principal')",
        "SELECT coalesce(current_setting('app.note', true), '')",
        "SELECT current_setting('search_path')",
        "SELECT current_setting('statement_timeout')",
        "SELECT current_user::text",
        "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        "SELECT count(*)::text FROM pg_listening_channels()",
        "SELECT count(*)::text FROM pg_cursors WHERE name = 'kept'",
    ];
    let clean = |pid: &serde_json::Value, user: &str| {
        json!([
            pid,
            "alice@example.com",
            "",
            sandbox.name,
            "7s",
            user,
            "0",
            "0",
            "0"
        ])
    };

    // The reader.
    let before = values(
        &mallory
            .call("read_script", json!({"statements": dirty}))
            .await
            .unwrap(),
    );
    let after = values(
        &alice
            .call("read_script", json!({"statements": probe}))
            .await
            .unwrap(),
    );
    assert_eq!(after[0], before[0], "the test needs the same backend twice");
    assert_eq!(after, clean(&before[0], &reader.name));

    // The writer commits, so its session changes stand until the reset; it can also leave a
    // temporary table behind.
    let mut dirty_writes = dirty.to_vec();
    dirty_writes.push("CREATE TEMP TABLE scratch (x int)".to_owned());
    let mut write_probe = probe.to_vec();
    write_probe.push("SELECT coalesce(to_regclass('pg_temp.scratch')::text, 'none')");
    let before = values(
        &mallory
            .call(
                "write_script",
                json!({"statements": dirty_writes, "commit": true}),
            )
            .await
            .unwrap(),
    );
    let after = values(
        &alice
            .call("write_script", json!({"statements": write_probe}))
            .await
            .unwrap(),
    );
    assert_eq!(after[0], before[0], "the test needs the same backend twice");
    let mut expected = clean(&before[0], &writer.name);
    expected.as_array_mut().unwrap().push(json!("none"));
    assert_eq!(after, expected);
    drop((mallory, alice));
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_checkout_from_exhausted_pool_with_timeout_error() {
    let sandbox = Sandbox::new("exhaust").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(
        &reader,
        &writer,
        "max_connections = 1\ncheckout_timeout = \"300ms\"",
    );
    let databases = sandbox.connect(&config).await.expect("starts");
    let stats = databases.clone();
    let fixture = Fixture::default();
    let release = fixture.release.clone();
    let conn =
        std::sync::Arc::new(serve(Server::new(fixture).provide(databases), &config, alice()).await);

    let holder = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call("hold", json!({})).await }
    });
    // Wait until the holder has its connection (however long that takes).
    while stats.stats("reader").unwrap().available != 0
        || stats.stats("reader").unwrap().checkouts == 0
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let result = conn.call("titles", json!({})).await.unwrap();
    let message = error_text(&result);
    assert_eq!(
        message,
        "db capability `reader`: no connection became free within 300ms; all 1 connections of its pool are in use"
    );

    release.notify_one();
    let held = holder.await.unwrap().unwrap();
    assert_eq!(mcp_lp_tests::text(&held), "released");
    // The pool serves again once the connection is back.
    assert_eq!(
        values(&conn.call("titles", json!({})).await.unwrap()),
        json!([])
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_statement_past_statement_timeout() {
    let sandbox = Sandbox::new("stmt").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "statement_timeout = \"100ms\"");
    let databases = sandbox.connect(&config).await.expect("starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        alice(),
    )
    .await;
    let result = conn
        .call(
            "read_script",
            json!({"statements": ["SELECT pg_sleep(30)::text"]}),
        )
        .await
        .unwrap();
    let message = error_text(&result);
    assert!(
        message.contains("canceling statement due to statement timeout"),
        "{message}"
    );
    assert!(message.contains("SQLSTATE 57014"), "{message}");
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_returning_connection_of_cancelled_read_to_pool() {
    let sandbox = Sandbox::new("cancel").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "max_connections = 1");
    let databases = sandbox.connect(&config).await.expect("starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        alice(),
    )
    .await;
    let pid = |result: &rmcp::model::CallToolResult| values(result)[0].clone();

    let before = conn
        .call(
            "read_script",
            json!({"statements": ["SELECT pg_backend_pid()::text"]}),
        )
        .await
        .unwrap();
    let cancelled = conn
        .call(
            "read_script_briefly",
            json!({"statements": ["SELECT pg_sleep(20)::text"]}),
        )
        .await
        .unwrap();
    assert!(error_text(&cancelled).contains("did not finish within 300ms"));
    // The connection still busy with the cancelled statement was closed: the next call gets a
    // new one at once instead of waiting behind the sleep.
    let after = conn
        .call(
            "read_script",
            json!({"statements": ["SELECT pg_backend_pid()::text"]}),
        )
        .await
        .unwrap();
    assert_ne!(pid(&after), pid(&before));
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_call_when_server_was_given_no_databases() {
    let sandbox = Sandbox::new("nodb").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "");
    let conn = serve(Server::new(Fixture::default()), &config, alice()).await;
    let err = match conn.call("titles", json!({})).await {
        Err(ServiceError::McpError(e)) => e,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    };
    assert!(
        err.message
            .contains("pass mcp_lp_db::Databases to mcp_lp::Server::provide"),
        "{}",
        err.message
    );
    sandbox.cleanup().await;
}

#[tokio::test]
async fn refuses_checkout_for_a_call_until_it_is_approved() {
    use mcp_lp::approval::{Approvals, Approver, Door, FileApprovals};

    let sandbox = Sandbox::new("approval").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.config(&format!(
        "[db.reader]\nurl = {{ file = {reader:?} }}\nschemas = [\"{schema}\"]\n\
         [db.writer]\nurl = {{ file = {writer:?} }}\nschemas = [\"{schema}\"]\n\
         [tools.insert_title]\napproval = {{ grant = \"fixture:approve\" }}\n",
        reader = reader.url_file.display().to_string(),
        writer = writer.url_file.display().to_string(),
        schema = sandbox.name,
    ));
    let databases = sandbox.connect(&config).await.expect("starts");
    let stats = databases.clone();
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;

    let parked = match conn
        .call("insert_title", json!({"title": "approved"}))
        .await
    {
        Err(ServiceError::McpError(e)) => e,
        other => panic!("expected the call to be parked, got {other:?}"),
    };
    assert!(
        parked.message.contains("needs approval"),
        "{}",
        parked.message
    );
    assert_eq!(
        stats.stats("writer").unwrap().checkouts,
        0,
        "a parked call checks out nothing"
    );
    let id = parked.data.unwrap()["approval"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Bob approves through the same store and policy the approval doors use.
    let approvals = Approvals::from_config(
        std::sync::Arc::new(FileApprovals::new(config.approvals_path())),
        &config,
        None,
    )
    .expect("approvals");
    let bob = mcp_lp::Principal::new("bob@example.com")
        .with_grant(mcp_lp::Grant::new("fixture:approve").expect("grant"));
    approvals
        .decide(&id, &Approver::new(bob, Door::Api, String::new()), true)
        .await
        .expect("approved");
    let result = conn
        .call("insert_title", json!({"title": "approved"}))
        .await
        .unwrap();
    assert_eq!(mcp_lp_tests::text(&result), "inserted approved");
    assert_eq!(stats.stats("writer").unwrap().checkouts, 1);
    assert_eq!(sandbox.all_titles().await, vec!["approved".to_owned()]);
    drop(conn);
    sandbox.cleanup().await;
}
