//! Multi-round-trip calls (MCP 2026-07-28) through the checkpoint, driven by a real rmcp client
//! in `server/discover` mode: the state a tool hands out is sealed, and a retry that brings back
//! state altered, expired, sealed by another key, or issued for another principal, tool or
//! arguments is refused before the tool runs, and audited.

use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mcp_lp::{Config, Grant, Principal};
use mcp_lp_tests::{ARMED, Connection, Fixture, Recorder, connect_with, stateless, text};
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, InputRequiredResult, InputResponses,
    PaginatedRequestParams,
};
use rmcp::service::ServiceError;
use serde_json::json;

const KEY_A: &str = "a-sealing-key-for-these-tests-32-bytes-or-more";
const KEY_B: &str = "another-sealing-key-for-these-tests-32-bytes+";

/// A configuration sealing with `keys` (id, secret), each secret in a file of `dir`, with
/// sealed state good for `ttl`.
fn sealing_config(dir: &tempfile::TempDir, keys: &[(&str, &str)], ttl: &str) -> Config {
    let mut entries = Vec::new();
    for (id, secret) in keys {
        let path = dir.path().join(format!("{id}.key"));
        let mut file = std::fs::File::create(&path).expect("key file");
        file.write_all(secret.as_bytes()).expect("write key");
        entries.push(format!(
            "{{ id = \"{id}\", secret = {{ file = \"{}\" }} }}",
            path.display()
        ));
    }
    let toml = format!(
        "[request_state]\nttl = \"{ttl}\"\nkeys = [{}]\n",
        entries.join(", ")
    );
    Config::from_toml(&toml, dir.path().join("mcp-lp.toml")).expect("sealing configuration")
}

async fn client(fixture: &Fixture, config: &Config, principal: &str) -> Connection {
    connect_with(
        fixture.clone(),
        config,
        Principal::new(principal),
        stateless(),
    )
    .await
}

fn params(text: &str) -> CallToolRequestParams {
    CallToolRequestParams::new("confirm").with_arguments(
        json!({ "text": text })
            .as_object()
            .cloned()
            .expect("an object"),
    )
}

fn answers() -> InputResponses {
    [(
        "confirmation".to_owned(),
        json!({ "action": "accept", "content": { "ok": true } }),
    )]
    .into_iter()
    .collect()
}

/// The first round of `confirm`: an `InputRequiredResult` with the sealed state.
async fn first_round(conn: &Connection, text: &str) -> InputRequiredResult {
    match conn.client.call_tool_once(params(text)).await {
        Ok(CallToolResponse::InputRequired(result)) => result,
        other => panic!("expected an InputRequiredResult, got {other:?}"),
    }
}

/// Retry `confirm` with `state` and an answer.
async fn retry(
    conn: &Connection,
    text: &str,
    state: &str,
) -> Result<CallToolResponse, ServiceError> {
    let request = params(text)
        .with_input_responses(answers())
        .with_request_state(state);
    conn.client.call_tool_once(request).await
}

/// The JSON-RPC error of a refused retry, and the check it failed.
fn refusal(result: Result<CallToolResponse, ServiceError>) -> (String, String) {
    match result {
        Err(ServiceError::McpError(error)) => {
            assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS);
            let check = error
                .data
                .as_ref()
                .and_then(|d| d["request_state"].as_str())
                .unwrap_or_default()
                .to_owned();
            (error.message.into_owned(), check)
        }
        other => panic!("expected the retry to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn accepts_retry_with_the_state_it_was_given() {
    let dir = tempfile::tempdir().expect("dir");
    let config = sealing_config(&dir, &[("k1", KEY_A)], "10m");
    let fixture = Fixture::default();
    let conn = client(&fixture, &config, "state-ok@example.com").await;

    let round = first_round(&conn, "q3.md").await;
    let sealed = round.request_state.expect("a state to bring back");
    assert_ne!(sealed, ARMED, "the tool's state leaves the server sealed");
    match retry(&conn, "q3.md", &sealed).await {
        Ok(CallToolResponse::Complete(result)) => {
            assert_eq!(text(&result), format!("confirmed q3.md with state {ARMED}"));
        }
        other => panic!("expected the retry to complete, got {other:?}"),
    }
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn rejects_tampered_request_state() {
    let recorder = Recorder::global();
    let dir = tempfile::tempdir().expect("dir");
    let config = sealing_config(&dir, &[("k1", KEY_A)], "10m");
    let fixture = Fixture::default();
    let principal = "state-tamper@example.com";
    let conn = client(&fixture, &config, principal).await;

    let sealed = first_round(&conn, "q3.md")
        .await
        .request_state
        .expect("state");
    // Change one character of the payload, keeping the format intact.
    let middle = sealed.len() / 2;
    let replacement = if &sealed[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    let tampered = format!(
        "{}{replacement}{}",
        &sealed[..middle],
        &sealed[middle + 1..]
    );
    let (message, check) = refusal(retry(&conn, "q3.md", &tampered).await);
    assert_eq!(check, "tampered", "{message}");
    assert!(message.contains("tool `confirm`"), "{message}");
    assert_eq!(
        fixture.runs.load(Ordering::SeqCst),
        0,
        "the tool never ran on tampered state"
    );

    let events = recorder.audit_events_of(principal);
    let refused = events
        .iter()
        .find(|e| e["outcome"] == "state_rejected")
        .expect("the refusal is audited");
    assert_eq!(refused["decision"], "deny");
    assert_eq!(refused["tool"], "confirm");
    assert!(
        refused["input_sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64),
        "the audit event digests the round's answers and state: {refused}"
    );
    assert!(
        events.iter().all(|e| !e.to_string().contains(&tampered)),
        "the audit trail carries a digest of the state, never the state"
    );
}

#[tokio::test]
async fn rejects_state_of_another_principal() {
    let dir = tempfile::tempdir().expect("dir");
    let config = sealing_config(&dir, &[("k1", KEY_A)], "10m");
    let fixture = Fixture::default();
    let alice = client(&fixture, &config, "state-alice@example.com").await;
    let mallory = client(&fixture, &config, "state-mallory@example.com").await;

    let sealed = first_round(&alice, "q3.md")
        .await
        .request_state
        .expect("state");
    let (message, check) = refusal(retry(&mallory, "q3.md", &sealed).await);
    assert_eq!(check, "other_principal", "{message}");
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn rejects_retry_with_changed_arguments() {
    let dir = tempfile::tempdir().expect("dir");
    let config = sealing_config(&dir, &[("k1", KEY_A)], "10m");
    let fixture = Fixture::default();
    let conn = client(&fixture, &config, "state-args@example.com").await;

    let sealed = first_round(&conn, "q3.md")
        .await
        .request_state
        .expect("state");
    let (message, check) = refusal(retry(&conn, "payroll.md", &sealed).await);
    assert_eq!(check, "other_arguments", "{message}");
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn rejects_expired_request_state() {
    let dir = tempfile::tempdir().expect("dir");
    let config = sealing_config(&dir, &[("k1", KEY_A)], "1ms");
    let fixture = Fixture::default();
    let conn = client(&fixture, &config, "state-expired@example.com").await;

    let sealed = first_round(&conn, "q3.md")
        .await
        .request_state
        .expect("state");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (message, check) = refusal(retry(&conn, "q3.md", &sealed).await);
    assert_eq!(check, "expired", "{message}");
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn accepts_state_sealed_by_another_replica_with_the_same_keys() {
    let dir = tempfile::tempdir().expect("dir");
    let config = sealing_config(&dir, &[("k1", KEY_A)], "10m");
    let fixture = Fixture::default();
    // Two checkpoints, as two replicas are: nothing shared but the configured keys.
    let first = client(&fixture, &config, "state-replica@example.com").await;
    let second = client(&fixture, &config, "state-replica@example.com").await;

    let sealed = first_round(&first, "q3.md")
        .await
        .request_state
        .expect("state");
    assert!(matches!(
        retry(&second, "q3.md", &sealed).await,
        Ok(CallToolResponse::Complete(_))
    ));
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn rejects_state_sealed_with_a_withdrawn_key() {
    let dir = tempfile::tempdir().expect("dir");
    let before = sealing_config(&dir, &[("old", KEY_A)], "10m");
    // Rotation: the new key seals, the old one still opens what is in flight.
    let rotating = sealing_config(&dir, &[("new", KEY_B), ("old", KEY_A)], "10m");
    // Withdrawn: only the new key is left.
    let after = sealing_config(&dir, &[("new", KEY_B)], "10m");
    let fixture = Fixture::default();
    let principal = "state-rotation@example.com";
    let old = client(&fixture, &before, principal).await;
    let rotated = client(&fixture, &rotating, principal).await;
    let withdrawn = client(&fixture, &after, principal).await;

    let in_flight = first_round(&old, "q3.md")
        .await
        .request_state
        .expect("state");
    assert!(matches!(
        retry(&rotated, "q3.md", &in_flight).await,
        Ok(CallToolResponse::Complete(_))
    ));
    let (message, check) = refusal(retry(&withdrawn, "q3.md", &in_flight).await);
    assert_eq!(check, "unknown_key", "{message}");
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn rejects_state_from_a_server_without_the_keys() {
    let dir = tempfile::tempdir().expect("dir");
    let configured = sealing_config(&dir, &[("k1", KEY_A)], "10m");
    // No [request_state]: a random key of this process alone.
    let unconfigured = Config::defaults();
    let fixture = Fixture::default();
    let principal = "state-stranger@example.com";
    let ephemeral = client(&fixture, &unconfigured, principal).await;
    let keyed = client(&fixture, &configured, principal).await;

    let sealed = first_round(&ephemeral, "q3.md")
        .await
        .request_state
        .expect("state");
    let (message, check) = refusal(retry(&keyed, "q3.md", &sealed).await);
    assert_eq!(check, "unknown_key", "{message}");
    // The tool's own plain state, sent without a seal, is refused too.
    let (message, check) = refusal(retry(&keyed, "q3.md", ARMED).await);
    assert_eq!(check, "tampered", "{message}");
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn lists_tools_as_private_to_the_caller() {
    let fixture = Fixture::default();
    let config = Config::defaults();
    let admin = Principal::new("list-admin@example.com")
        .with_grant(Grant::new("fixture:admin").expect("grant"));
    let conn = connect_with(fixture, &config, admin, stateless()).await;
    let list = conn
        .client
        .list_tools(Some(PaginatedRequestParams::default()))
        .await
        .expect("tools/list");
    assert_eq!(list.cache_scope, Some(CacheScope::Private));
    assert!(list.ttl_ms.is_some_and(|ttl| ttl <= 60_000), "{list:?}");
    assert!(list.tools.iter().any(|t| t.name == "admin_echo"));
}
