//! Rate limits per principal and tool, through the checkpoint with a real rmcp client: the
//! attribute, `[tools.<name>]` and `[limits]` in their order, the refusal and its audit event.

use mcp_lp::Principal;
use mcp_lp_tests::{Fixture, Limited, Recorder, connect};
use rmcp::service::ServiceError;
use serde_json::json;

fn refusal(result: Result<rmcp::model::CallToolResult, ServiceError>) -> rmcp::ErrorData {
    match result {
        Err(ServiceError::McpError(e)) => e,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

#[tokio::test]
async fn rejects_call_over_the_attribute_rate_and_says_when_to_retry() {
    let recorder = Recorder::global();
    let conn = connect(Limited, "", Principal::new("rate-attr@example.com")).await;
    for _ in 0..2 {
        conn.call("echo", json!({"text": "hi"})).await.unwrap();
    }
    let err = refusal(conn.call("echo", json!({"text": "hi"})).await);
    assert_eq!(err.code, mcp_lp::RATE_LIMITED);
    assert!(err.message.contains("2/min"), "{}", err.message);
    assert!(err.message.contains("retry after"), "{}", err.message);
    let data = err.data.unwrap();
    assert_eq!(data["tool"], "echo");
    let secs = data["retry_after_secs"].as_u64().unwrap();
    assert!((1..=30).contains(&secs), "{data}");

    let outcomes: Vec<_> = recorder
        .audit_events_of("rate-attr@example.com")
        .iter()
        .map(|e| (e["decision"].clone(), e["outcome"].clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (json!("allow"), json!("ok")),
            (json!("allow"), json!("ok")),
            (json!("deny"), json!("rate_limited")),
        ]
    );
}

#[tokio::test]
async fn accepts_calls_up_to_the_tool_table_rate_over_the_attribute() {
    let config = "[tools.echo]\nrate = \"4/min\"\n[limits]\nrate = \"1/min\"\n";
    let conn = connect(Limited, config, Principal::new("rate-table@example.com")).await;
    for _ in 0..4 {
        conn.call("echo", json!({"text": "hi"})).await.unwrap();
    }
    let err = refusal(conn.call("echo", json!({"text": "hi"})).await);
    assert_eq!(err.code, mcp_lp::RATE_LIMITED);
    assert!(err.message.contains("4/min"), "{}", err.message);
}

#[tokio::test]
async fn rejects_call_over_the_default_rate_of_limits() {
    let config = "[limits]\nrate = \"1/h\"\n";
    let conn = connect(
        Fixture::default(),
        config,
        Principal::new("rate-limits@example.com"),
    )
    .await;
    conn.call("echo", json!({"text": "hi"})).await.unwrap();
    // Each tool has its own bucket.
    conn.call("whoami", json!({})).await.unwrap();
    let err = refusal(conn.call("echo", json!({"text": "hi"})).await);
    assert_eq!(err.code, mcp_lp::RATE_LIMITED);
    assert!(err.message.contains("1/h"), "{}", err.message);
}

#[tokio::test]
async fn accepts_calls_without_limit_when_none_is_configured() {
    let conn = connect(
        Fixture::default(),
        "",
        Principal::new("rate-none@example.com"),
    )
    .await;
    for _ in 0..50 {
        conn.call("echo", json!({"text": "hi"})).await.unwrap();
    }
}

#[tokio::test]
async fn rejects_malformed_rate_in_configuration() {
    let err =
        mcp_lp::Config::from_toml("[limits]\nrate = \"60/fortnight\"\n", "bad.toml").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("limits.rate"), "{text}");
    assert!(text.contains("60/fortnight"), "{text}");
}
