//! The per-call envelope fitted to the capability: read-only on the connection, the principal
//! sent only where a policy reads it (and signed where the database verifies it), advisory
//! locks released between calls.

mod common;

use common::{Fixture, Sandbox, error_text, serve, values, writer_principal};
use mcp_lp::{Principal, Server};
use mcp_lp_db::ReadOnly;
use serde_json::json;

fn alice() -> Principal {
    Principal::new("alice@example.com")
}

#[tokio::test]
async fn rejects_write_through_read_capability_when_read_only_is_on_the_connection() {
    let sandbox = Sandbox::new("roconn").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "");
    let databases = sandbox.connect(&config).await.expect("starts");
    let envelope = databases.envelope("reader").unwrap();
    assert_eq!(envelope.read_only, ReadOnly::Connection);
    assert_eq!(
        databases.envelope("writer").unwrap().read_only,
        ReadOnly::Transaction
    );
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        alice(),
    )
    .await;

    // No transaction of the handle's own around the statement: the connection's default
    // makes it read-only.
    let mode = conn
        .call(
            "read_script",
            json!({"statements": [
                "SELECT current_setting('default_transaction_read_only')",
                "SELECT current_setting('transaction_read_only')",
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(values(&mode), json!(["on", "on"]));

    // What the role's grants allow everyone, only the read-only connection refuses.
    for statement in [
        "CREATE TEMP TABLE scratch (x int)",
        "CREATE TEMP SEQUENCE counter",
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
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_switching_read_only_off_from_a_handler() {
    let sandbox = Sandbox::new("roswitch").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "max_connections = 1");
    let databases = sandbox.connect(&config).await.expect("starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        alice(),
    )
    .await;

    for switch in [
        "SET default_transaction_read_only = off",
        "SET SESSION default_transaction_read_only TO false",
        "set \"default_transaction_read_only\" = 'off'",
        "RESET default_transaction_read_only",
        "SET transaction_read_only = off",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT set_config('default_transaction_' || 'read_only', 'off', false)",
        "SELECT set_config(E'default\\x5ftransaction\\x5fread\\x5fonly', 'off', false)",
        "SELECT query_to_xml('SELECT 1', false, false, '')::text",
        "DO $$ BEGIN PERFORM set_config('default_transaction_read_only', 'off', false); COMMIT; END $$",
        "--x\rSET default_transaction_read_only = off",
    ] {
        let result = conn
            .call(
                "read_script",
                json!({"statements": [switch, "CREATE TEMP TABLE escaped (x int)"]}),
            )
            .await
            .unwrap();
        let message = error_text(&result);
        assert!(
            message.contains(
                "is refused: the connection is READ ONLY and the statement could switch that off"
            ),
            "{switch}: {message}"
        );
    }
    let still = conn
        .call(
            "read_script",
            json!({"statements": ["SELECT current_setting('default_transaction_read_only')"]}),
        )
        .await
        .unwrap();
    assert_eq!(values(&still), json!(["on"]));
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn principal_reaches_row_policy_when_a_policy_reads_it() {
    let sandbox = Sandbox::new("prin").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    sandbox
        .sql(
            "INSERT INTO records (owner, title) VALUES
                 ('alice@example.com', 'alice one'), ('bob@example.com', 'bob one')",
        )
        .await;
    let config = sandbox.fixture_config(&reader, &writer, "");
    let databases = sandbox.connect(&config).await.expect("starts");
    // The sandbox's policy and column default read `mcp_lp.principal`.
    assert!(databases.envelope("reader").unwrap().principal);
    assert!(databases.envelope("writer").unwrap().principal);
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
    assert_eq!(
        values(&alice.call("titles", json!({})).await.unwrap()),
        json!(["alice one"])
    );
    assert_eq!(
        values(&bob.call("titles", json!({})).await.unwrap()),
        json!(["bob one"])
    );
    // Each statement gets the principal, whatever the one before it did.
    let again = alice
        .call(
            "read_script",
            json!({"statements": [
                "SELECT set_config('mcp_lp.principal', 'bob@example.com', false)",
                "SELECT string_agg(title, ',') FROM records",
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(values(&again), json!(["bob@example.com", "alice one"]));
    // The writer's transaction has it too: its insert is the caller's.
    alice
        .call("insert_title", json!({"title": "alice two"}))
        .await
        .unwrap();
    assert_eq!(
        values(&alice.call("titles", json!({})).await.unwrap()),
        json!(["alice one", "alice two"])
    );
    drop((alice, bob));
    sandbox.cleanup().await;
}

#[tokio::test]
async fn skips_principal_when_no_policy_reads_it() {
    let sandbox = Sandbox::new("noprin").await;
    let (plain, writer) = (sandbox.role("plain", "").await, sandbox.writer().await);
    sandbox
        .sql(&format!(
            "CREATE TABLE notes (title text);
             ALTER TABLE notes OWNER TO {schema}_owner;
             INSERT INTO notes VALUES ('shared');
             GRANT SELECT ON notes TO {plain}",
            schema = sandbox.name,
            plain = plain.name,
        ))
        .await;
    let probe = json!({"statements": [
        "SELECT title FROM notes",
        "SELECT coalesce(current_setting('mcp_lp.principal', true), 'unset')",
    ]});

    // The reader's role reaches only `notes`, which no policy guards.
    let config = sandbox.fixture_config(&plain, &writer, "");
    let databases = sandbox.connect(&config).await.expect("starts");
    assert!(!databases.envelope("reader").unwrap().principal);
    assert!(databases.envelope("writer").unwrap().principal);
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        alice(),
    )
    .await;
    let result = conn.call("read_script", probe.clone()).await.unwrap();
    assert_eq!(values(&result), json!(["shared", "unset"]));
    drop(conn);

    // `principal = "always"` sends it anyway.
    let config = sandbox.fixture_config(&plain, &writer, "principal = \"always\"");
    let databases = sandbox.connect(&config).await.expect("starts");
    assert!(databases.envelope("reader").unwrap().principal);
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        alice(),
    )
    .await;
    let result = conn.call("read_script", probe).await.unwrap();
    assert_eq!(values(&result), json!(["shared", "alice@example.com"]));
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_rows_of_a_policy_when_principal_is_never_sent() {
    let sandbox = Sandbox::new("never").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    sandbox
        .sql("INSERT INTO records (owner, title) VALUES ('alice@example.com', 'alice one')")
        .await;
    let config = sandbox.fixture_config(&reader, &writer, "principal = \"never\"");
    let databases = sandbox.connect(&config).await.expect("starts");
    assert!(!databases.envelope("reader").unwrap().principal);
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        alice(),
    )
    .await;
    // Without a principal the policy matches nothing: closed, not open.
    assert_eq!(
        values(&conn.call("titles", json!({})).await.unwrap()),
        json!([])
    );
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_session_level_advisory_lock_kept_across_calls() {
    let sandbox = Sandbox::new("advisory").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    // One connection per capability: the second call reuses the first call's session.
    let config = sandbox.fixture_config(&reader, &writer, "max_connections = 1");
    let databases = sandbox.connect(&config).await.expect("starts");
    // Every role may run pg_advisory_lock unless EXECUTE was revoked from PUBLIC.
    assert!(databases.envelope("reader").unwrap().advisory_unlock);
    assert!(databases.envelope("writer").unwrap().advisory_unlock);
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;
    let held = "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND objid IN (901, 902, 903)";

    for (tool, lock, commit) in [
        ("read_script", 901, false),
        ("read_script_in_write_tool", 902, false),
        ("write_script", 903, true),
    ] {
        // The lock is taken, and seen held by the statement that took it.
        let taken = conn
            .call(
                tool,
                json!({"statements": [format!(
                    "SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = {lock} AND pid = pg_backend_pid())::text
                     FROM (SELECT pg_advisory_lock({lock})) AS taken"
                )], "commit": commit}),
            )
            .await
            .unwrap();
        assert_eq!(values(&taken), json!(["1"]), "{tool}");
        // The next call on the same capability gets the same connection (the pool has one);
        // no lock is left on any backend.
        let after = conn
            .call(tool, json!({"statements": [held], "commit": commit}))
            .await
            .unwrap();
        assert_eq!(
            values(&after),
            json!(["0"]),
            "{tool}: a lock outlived its call"
        );
    }
    let free = sandbox
        .admin
        .query_one(
            "SELECT pg_try_advisory_lock(901) AND pg_try_advisory_lock(903), pg_advisory_unlock_all()",
            &[],
        )
        .await
        .unwrap();
    assert!(free.get::<_, bool>(0));
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_principal_override_in_sql() {
    let sandbox = Sandbox::new("forge").await;
    sandbox.install_signed_principals().await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    sandbox
        .sql(&format!(
            "GRANT EXECUTE ON FUNCTION mcp_lp.register_connection_key(bytea) TO {reader}, {writer};
             DROP POLICY by_principal ON records;
             CREATE POLICY by_signed_principal ON records
                 USING (owner = (SELECT mcp_lp.principal()))
                 WITH CHECK (owner = (SELECT mcp_lp.principal()));
             INSERT INTO records (owner, title) VALUES
                 ('alice@example.com', 'alice one'), ('bob@example.com', 'bob secret')",
            reader = reader.name,
            writer = writer.name,
        ))
        .await;
    let config = sandbox.fixture_config(&reader, &writer, "max_connections = 2");
    let databases = sandbox.connect(&config).await.expect("starts");
    let stats = databases.clone();
    for capability in ["reader", "writer"] {
        let envelope = databases.envelope(capability).unwrap();
        assert!(
            envelope.principal && envelope.signed_principal,
            "{capability}"
        );
    }
    let fixture = Fixture::default();
    let release = fixture.release.clone();
    let alice = std::sync::Arc::new(
        serve(
            Server::new(fixture).provide(databases),
            &config,
            writer_principal("alice@example.com"),
        )
        .await,
    );
    // The signed principal reaches the policy, on the connection the startup check used and
    // on one opened later, while the first is held.
    assert_eq!(
        values(&alice.call("titles", json!({})).await.unwrap()),
        json!(["alice one"])
    );
    // Once the first connection is idle again, `hold` takes it and the next call needs a new one.
    while stats.stats("reader").unwrap().available != 1 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let holder = tokio::spawn({
        let alice = alice.clone();
        async move { alice.call("hold", json!({})).await }
    });
    while stats.stats("reader").unwrap().available != 0
        || stats.stats("reader").unwrap().checkouts < 2
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        values(&alice.call("titles", json!({})).await.unwrap()),
        json!(["alice one"])
    );
    assert_eq!(stats.stats("reader").unwrap().size, 2);
    release.notify_one();
    holder.await.unwrap().unwrap();

    let all = "SELECT coalesce(string_agg(title, ','), 'none') FROM records";
    // A writer's transaction: the setting is changed, then read by the policy.
    for forge in [
        "SET mcp_lp.principal = 'bob@example.com'",
        "SELECT set_config('mcp_lp.principal', 'bob@example.com', true)",
        "SELECT set_config('mcp_' || 'lp.principal', 'bob@example.com', false)",
    ] {
        let result = alice
            .call("write_script", json!({"statements": [forge, all]}))
            .await
            .unwrap();
        assert_eq!(values(&result)[1], json!("none"), "{forge}");
    }
    // Nor can alice's own MAC be moved to bob's name.
    let result = alice
        .call(
            "write_script",
            json!({"statements": [
                "SELECT set_config('mcp_lp.principal_mac', current_setting('mcp_lp.principal_mac'), true) || set_config('mcp_lp.principal', 'bob@example.com', true)",
                all,
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(values(&result)[1], json!("none"));
    // Nor can the connection register a key of the handler's choosing.
    let result = alice
        .call(
            "write_script",
            json!({"statements": ["SELECT mcp_lp.register_connection_key(decode(repeat('00', 64), 'hex'))::text"]}),
        )
        .await
        .unwrap();
    assert!(
        error_text(&result).contains("has registered its key already"),
        "{}",
        error_text(&result)
    );
    // A reader: in one statement, the setting changed before the policy reads it.
    let result = alice
        .call(
            "read_script",
            json!({"statements": [
                "SELECT coalesce(string_agg(r.title, ','), 'none') FROM (SELECT set_config('mcp_lp.principal', 'bob@example.com', false)) AS f, LATERAL (SELECT title FROM records) AS r",
            ]}),
        )
        .await
        .unwrap();
    assert_ne!(values(&result)[0], json!("bob secret"));
    // Nothing was written for bob either.
    let forged_insert = alice
        .call(
            "write_script",
            json!({"statements": [
                "SELECT set_config('mcp_lp.principal', 'bob@example.com', true)",
                "INSERT INTO records (title) VALUES ('planted') RETURNING title",
            ], "commit": true}),
        )
        .await
        .unwrap();
    assert!(
        error_text(&forged_insert).contains("row-level security"),
        "{}",
        error_text(&forged_insert)
    );
    drop(alice);
    sandbox.cleanup().await;
}
