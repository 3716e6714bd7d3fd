//! The checkpoint, driven by a real rmcp client over an in-memory pipe: authorization, listing,
//! limits, failure containment and audit.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use mcp_lp::{Grant, Principal};
use mcp_lp_tests::{Fixture, Recorder, connect, refusal_code, text};
use rmcp::service::ServiceError;
use serde_json::json;

fn admin() -> Principal {
    Principal::new("alice@example.com").with_grant(Grant::new("fixture:admin").expect("grant"))
}

fn nobody() -> Principal {
    Principal::new("mallory@example.com")
}

fn rpc_error(result: Result<rmcp::model::CallToolResult, ServiceError>) -> rmcp::ErrorData {
    match result {
        Err(ServiceError::McpError(e)) => e,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

#[tokio::test]
async fn rejects_call_without_grant_before_handler_runs() {
    let fixture = Fixture::default();
    let conn = connect(fixture.clone(), "", nobody()).await;
    let err = rpc_error(conn.call("admin_echo", json!({"text": "hi"})).await);
    assert_eq!(err.code, mcp_lp::FORBIDDEN);
    assert_eq!(refusal_code(&err), "missing_grant");
    assert_eq!(
        err.data.unwrap()["missing_grants"],
        json!(["fixture:admin"])
    );
    assert_eq!(
        fixture.runs.load(Ordering::SeqCst),
        0,
        "the handler must not run"
    );
}

#[tokio::test]
async fn accepts_call_with_grant() {
    let fixture = Fixture::default();
    let conn = connect(fixture.clone(), "", admin()).await;
    let result = conn
        .call("admin_echo", json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(text(&result), "hi");
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn rejects_principal_holding_one_of_two_required_grants() {
    let fixture = Fixture::default();
    let conn = connect(fixture.clone(), "", admin()).await;
    let err = rpc_error(conn.call("two_grants", json!({})).await);
    assert_eq!(refusal_code(&err), "missing_grant");
    assert_eq!(
        err.data.unwrap()["missing_grants"],
        json!(["fixture:audit"])
    );
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn rejects_expired_grant() {
    let expired = Principal::new("alice@example.com").with_grant(
        Grant::new("fixture:admin")
            .unwrap()
            .expiring_at(SystemTime::now() - Duration::from_secs(1)),
    );
    let fixture = Fixture::default();
    let conn = connect(fixture.clone(), "", expired).await;
    let err = rpc_error(conn.call("admin_echo", json!({"text": "hi"})).await);
    assert_eq!(refusal_code(&err), "missing_grant");
    assert_eq!(
        err.data.unwrap()["missing_grants"],
        json!(["fixture:admin"])
    );
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 0);
    assert!(!conn.tool_names().await.contains(&"admin_echo".to_owned()));
}

#[tokio::test]
async fn hides_tools_the_caller_may_not_call() {
    let conn = connect(Fixture::default(), "", nobody()).await;
    let names = conn.tool_names().await;
    assert!(!names.contains(&"admin_echo".to_owned()), "{names:?}");
    assert!(!names.contains(&"two_grants".to_owned()), "{names:?}");
    assert!(names.contains(&"echo".to_owned()), "{names:?}");
}

#[tokio::test]
async fn lists_tools_the_caller_may_call() {
    let conn = connect(Fixture::default(), "", admin()).await;
    let names = conn.tool_names().await;
    assert!(names.contains(&"admin_echo".to_owned()), "{names:?}");
    assert!(!names.contains(&"two_grants".to_owned()), "{names:?}");
}

#[tokio::test]
async fn rejects_unknown_tool_and_keeps_serving() {
    let conn = connect(Fixture::default(), "", admin()).await;
    let err = rpc_error(conn.call("no_such_tool", json!({})).await);
    assert_eq!(refusal_code(&err), "unknown_tool");
    assert_eq!(err.data.unwrap()["tool"], "no_such_tool");
    assert_eq!(
        text(
            &conn
                .call("echo", json!({"text": "still here"}))
                .await
                .unwrap()
        ),
        "still here"
    );
}

#[tokio::test]
async fn rejects_wrong_argument_type_with_a_tool_error() {
    let fixture = Fixture::default();
    let conn = connect(fixture.clone(), "", admin()).await;
    let result = conn.call("echo", json!({"text": 5})).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result)
            .contains("tool `echo`, argument `text`: invalid type: integer `5`, expected a string"),
        "{}",
        text(&result)
    );
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn rejects_missing_argument_naming_it() {
    let conn = connect(Fixture::default(), "", admin()).await;
    let result = conn.call("echo", json!({})).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("tool `echo`, arguments: missing field `text`"),
        "{}",
        text(&result)
    );
}

#[tokio::test]
async fn rejects_oversized_arguments_before_handler_runs() {
    let fixture = Fixture::default();
    let conn = connect(
        fixture.clone(),
        "[limits]\nmax_argument_bytes = 1000\n",
        admin(),
    )
    .await;
    let err = rpc_error(conn.call("echo", json!({"text": "a".repeat(2000)})).await);
    assert_eq!(refusal_code(&err), "arguments_too_large");
    assert_eq!(err.data.unwrap()["limit"], 1000);
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 0);
    assert_eq!(
        text(&conn.call("echo", json!({"text": "small"})).await.unwrap()),
        "small"
    );
}

#[tokio::test]
async fn cancels_handler_past_its_timeout() {
    let fixture = Fixture::default();
    let conn = connect(fixture.clone(), "", admin()).await;
    let result = conn.call("slow", json!({})).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("did not finish within 200ms"),
        "{}",
        text(&result)
    );
    assert_eq!(
        fixture.cancelled.load(Ordering::SeqCst),
        1,
        "the handler future must be dropped"
    );
}

#[tokio::test]
async fn operator_config_overrides_the_attribute_timeout() {
    let fixture = Fixture::default();
    let conn = connect(
        fixture.clone(),
        "[tools.slow]\ntimeout = \"50ms\"\n",
        admin(),
    )
    .await;
    let result = conn.call("slow", json!({})).await.unwrap();
    assert!(text(&result).contains("within 50ms"), "{}", text(&result));
}

#[tokio::test]
async fn withholds_output_over_the_cap() {
    let conn = connect(Fixture::default(), "", admin()).await;
    let result = conn.call("big", json!({})).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    let message = text(&result);
    assert!(message.contains("over its cap of 256 bytes"), "{message}");
    assert!(!message.contains("xxxx"), "the output must be withheld");
}

#[tokio::test]
async fn contains_a_panicking_handler_and_keeps_serving() {
    let conn = connect(Fixture::default(), "", admin()).await;
    let err = rpc_error(conn.call("boom", json!({})).await);
    assert!(
        err.message.contains("tool `boom` failed unexpectedly"),
        "{}",
        err.message
    );
    assert!(
        !err.message.contains("handler bug"),
        "panic payloads stay server-side"
    );
    assert_eq!(
        text(&conn.call("echo", json!({"text": "alive"})).await.unwrap()),
        "alive"
    );
}

#[tokio::test]
async fn passes_tool_errors_to_the_caller() {
    let conn = connect(Fixture::default(), "", admin()).await;
    let result = conn.call("fail", json!({})).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert_eq!(text(&result), "argument `text`: is not welcome");
}

#[tokio::test]
async fn call_scope_names_the_tool_and_principal() {
    let conn = connect(Fixture::default(), "", admin()).await;
    let result = conn.call("whoami", json!({})).await.unwrap();
    assert_eq!(text(&result), "whoami as alice@example.com");
}

#[tokio::test]
async fn audits_every_call_with_a_hash_and_never_the_arguments() {
    let recorder = Recorder::global();
    let auditor = Principal::new("audited@example.com");
    let conn = connect(Fixture::default(), "", auditor).await;
    conn.call("echo", json!({"text": "zebra-canary-7731"}))
        .await
        .unwrap();
    let _ = conn
        .call("admin_echo", json!({"text": "zebra-canary-7731"}))
        .await;
    let _ = conn
        .call("nope", json!({"text": "zebra-canary-7731"}))
        .await;
    conn.call("fail", json!({})).await.unwrap();

    let events = recorder.audit_events_of("audited@example.com");
    assert_eq!(events.len(), 4, "{events:#?}");
    let summary: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e["tool"].as_str().unwrap(),
                e["decision"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("echo", "allow", "ok"),
            ("admin_echo", "deny", "denied"),
            ("nope", "deny", "unknown_tool"),
            ("fail", "allow", "tool_error"),
        ]
    );
    // sha256 of the canonical arguments {"text":"zebra-canary-7731"}
    let expected = mcp_lp::audit::ArgumentDigest::of(Some(&mcp_lp_tests::object(
        json!({"text": "zebra-canary-7731"}),
    )));
    for event in &events[..3] {
        assert_eq!(event["args_sha256"], expected.sha256_hex());
        assert!(event["request_id"].is_string());
        assert!(event["duration_us"].is_u64());
    }
    assert_eq!(
        events[0]["output_bytes"].as_u64().map(|b| b > 0),
        Some(true)
    );
    assert_eq!(events[1]["requires"], "fixture:admin");
    assert!(
        events[1]["reason"]
            .as_str()
            .unwrap()
            .contains("fixture:admin")
    );
    let audit_text: String = events.iter().map(|e| e.to_string()).collect();
    assert!(
        !audit_text.contains("zebra-canary-7731"),
        "raw arguments leaked into the audit trail"
    );
}

#[tokio::test]
async fn serves_resources_from_the_servers_own_handler_and_still_checks_its_tools() {
    let conn = connect(mcp_lp_tests::WithResources, "", nobody()).await;
    let info = conn.client.peer_info().expect("initialized");
    assert!(info.capabilities.resources.is_some());
    assert!(info.capabilities.tools.is_some());
    let resources = conn.client.list_all_resources().await.unwrap();
    assert_eq!(resources[0].uri, "fixture://readme");
    let err = rpc_error(conn.call("purge", json!({})).await);
    assert_eq!(err.code, mcp_lp::FORBIDDEN);
}
