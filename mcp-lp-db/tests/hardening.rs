//! Calls that end badly: a statement cut short by the tool's timeout is cancelled on the
//! server, a connection whose prepared statements vanished is closed, and a statement timeout
//! longer than every tool's is refused at startup.

mod common;

use std::time::Duration;

use common::{Fixture, Sandbox, error_text, serve, values, writer_principal};
use mcp_lp::Server;
use mcp_lp_db::StartupError;
use serde_json::json;

/// Wait (at most 10 s, far less than the 20 s sleeps below) until `role` runs no statement.
async fn settled(sandbox: &Sandbox, role: &str) -> i64 {
    for _ in 0..200 {
        let active = sandbox.active_statements(role).await;
        if active == 0 {
            return 0;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sandbox.active_statements(role).await
}

#[tokio::test]
async fn rejects_query_left_running_after_tool_timeout() {
    let sandbox = Sandbox::new("leftrun").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "max_connections = 2");
    let databases = sandbox.connect(&config).await.expect("starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;

    let read = conn
        .call(
            "read_script_briefly",
            json!({"statements": ["SELECT pg_sleep(20)::text"]}),
        )
        .await
        .unwrap();
    assert!(error_text(&read).contains("did not finish within 300ms"));
    assert_eq!(
        settled(&sandbox, &reader.name).await,
        0,
        "the reader's statement kept running after its call timed out"
    );
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_write_left_running_after_tool_timeout() {
    let sandbox = Sandbox::new("leftwrite").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "max_connections = 1");
    let databases = sandbox.connect(&config).await.expect("starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;

    let write = conn
        .call(
            "write_script_briefly",
            json!({"statements": [
                "INSERT INTO records (title) VALUES ('never') RETURNING title",
                "SELECT pg_sleep(20)::text",
            ]}),
        )
        .await
        .unwrap();
    assert!(error_text(&write).contains("did not finish within 300ms"));
    assert_eq!(
        settled(&sandbox, &writer.name).await,
        0,
        "the writer's statement kept running after its call timed out"
    );
    // Its transaction did not commit, and the pool's one slot serves the next call.
    assert!(sandbox.all_titles().await.is_empty());
    let next = conn
        .call("insert_title", json!({"title": "after"}))
        .await
        .unwrap();
    assert_eq!(mcp_lp_tests::text(&next), "inserted after");
    drop(conn);
    sandbox.cleanup().await;
}

#[tokio::test]
async fn refuses_start_with_statement_timeout_longer_than_tool_timeout() {
    let sandbox = Sandbox::new("stlong").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    // The fixture's tools wait 30 s at most.
    let config = sandbox.fixture_config(&reader, &writer, "statement_timeout = \"45s\"");
    let error = sandbox.connect(&config).await.unwrap_err();
    assert!(
        matches!(&error, StartupError::Setting { key, .. } if key == "db.reader.statement_timeout"),
        "{error}"
    );
    assert!(error.to_string().contains("the longest is 30s"), "{error}");
    sandbox.cleanup().await;
}

#[tokio::test]
async fn rejects_reusing_connection_whose_prepared_statements_vanished() {
    let sandbox = Sandbox::new("vanish").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "max_connections = 1");
    let databases = sandbox.connect(&config).await.expect("starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;
    let pid = "SELECT pg_backend_pid()::text";
    // The filter sees only the statement's text; SQL run from inside it can still drop the
    // driver's prepared statements.
    let broken = conn
        .call(
            "write_script",
            json!({"statements": [
                pid,
                "DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$",
                pid,
            ]}),
        )
        .await
        .unwrap();
    assert!(
        error_text(&broken).contains("SQLSTATE 26000"),
        "{}",
        error_text(&broken)
    );
    let before = conn
        .call("write_script", json!({"statements": [pid]}))
        .await
        .unwrap();
    let again = conn
        .call("write_script", json!({"statements": [pid]}))
        .await
        .unwrap();
    assert_eq!(values(&before), values(&again), "the new connection serves");
    drop(conn);
    sandbox.cleanup().await;
}
