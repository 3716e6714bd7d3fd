//! PostgreSQL restarted under a running server: calls fail with a clear error while it is down
//! and succeed again once it is back, without restarting the server.
//!
//! This stops and starts the shared test cluster (`scripts/postgres.sh stop|start`), so it is
//! its own test binary: cargo runs test binaries one at a time.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Fixture, Sandbox, error_text, serve, values, writer_principal};
use mcp_lp::Server;
use serde_json::json;

fn postgres_script(command: &str) {
    let script = std::env::var_os("MCP_LP_PG_SCRIPT").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres.sh"),
        PathBuf::from,
    );
    let status = Command::new(&script)
        .arg(command)
        .status()
        .unwrap_or_else(|e| panic!("run {} {command}: {e}", script.display()));
    assert!(
        status.success(),
        "{} {command} failed: {status}",
        script.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_calls_again_after_postgres_restart() {
    let sandbox = Sandbox::new("restart").await;
    let (reader, writer) = (sandbox.reader().await, sandbox.writer().await);
    let config = sandbox.fixture_config(&reader, &writer, "connect_timeout = \"2s\"");
    let databases = sandbox.connect(&config).await.expect("starts");
    let conn = serve(
        Server::new(Fixture::default()).provide(databases),
        &config,
        writer_principal("alice@example.com"),
    )
    .await;
    conn.call("insert_title", json!({"title": "before"}))
        .await
        .unwrap();
    assert_eq!(
        values(&conn.call("titles", json!({})).await.unwrap()),
        json!(["before"])
    );

    postgres_script("stop");
    // Both the pooled connections (now closed) and new ones (refused) fail clearly.
    for tool in ["titles", "titles", "insert_title"] {
        let result = conn
            .call(tool, json!({"title": "while down"}))
            .await
            .unwrap();
        let message = error_text(&result);
        let capability = if tool == "titles" { "reader" } else { "writer" };
        assert!(
            message.starts_with(&format!(
                "db capability `{capability}`: the database is unavailable: "
            )),
            "{tool}: {message}"
        );
    }
    postgres_script("start");

    conn.call("insert_title", json!({"title": "after"}))
        .await
        .unwrap();
    assert_eq!(
        values(&conn.call("titles", json!({})).await.unwrap()),
        json!(["before", "after"])
    );
    drop(conn);
    sandbox.cleanup().await;
}
