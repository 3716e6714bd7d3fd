//! The HTTP gate, driven over loopback with raw requests: what reaches handlers of the caller's
//! credentials, rate limits answered `429`, session limits per principal.

use mcp_lp_tests::HeaderProbe;
use mcp_lp_tests::http::{AuthServer, open_session, post, post_stateless, serve};
use serde_json::{Value, json};

const CREDENTIALS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// Headers every request below carries besides the bearer token: two credentials, and a
/// harmless header that proves the handler does see the request's headers.
const EXTRA: [(&str, &str); 3] = [
    ("Cookie", "session=s3cr3t-cookie"),
    ("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"),
    ("X-Trace", "probe"),
];

fn seen(names: &str) {
    assert!(names.split(',').any(|n| n == "x-trace"), "{names}");
    for credential in CREDENTIALS {
        assert!(
            !names.split(',').any(|n| n == credential),
            "{credential} reached a handler: {names}"
        );
    }
}

fn result(reply: &mcp_lp_tests::http::Reply) -> &Value {
    let message = reply.message.as_ref().expect("a JSON-RPC message");
    message
        .get("result")
        .unwrap_or_else(|| panic!("no result: {message}"))
}

#[tokio::test]
async fn refuses_credentials_to_tool_resource_and_prompt_handlers() {
    let auth = AuthServer::start().await;
    let url = serve(HeaderProbe, &auth, "").await;
    let token = auth.token(&url, "alice@example.com", "");
    let session = open_session(&url, &token, &EXTRA).await;

    let call =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "headers"}});
    let reply = post(&url, &call, &token, Some(&session), &EXTRA).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    seen(result(&reply)["content"][0]["text"].as_str().expect("text"));

    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "resources/list"});
    let reply = post(&url, &list, &token, Some(&session), &EXTRA).await;
    seen(
        result(&reply)["resources"][0]["name"]
            .as_str()
            .expect("name"),
    );

    let list = json!({"jsonrpc": "2.0", "id": 4, "method": "prompts/list"});
    let reply = post(&url, &list, &token, Some(&session), &EXTRA).await;
    seen(
        result(&reply)["prompts"][0]["description"]
            .as_str()
            .expect("description"),
    );
}

#[tokio::test]
async fn rejects_call_over_rate_limit_with_429_and_retry_after() {
    let auth = AuthServer::start().await;
    let url = serve(
        mcp_lp_tests::Limited,
        &auth,
        "[tools.echo]\nrate = \"1/min\"\n",
    )
    .await;
    let token = auth.token(&url, "alice@example.com", "");
    let session = open_session(&url, &token, &[]).await;
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hi"}}});
    let first = post(&url, &call, &token, Some(&session), &[]).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(result(&first)["content"][0]["text"], "hi");

    let second = post(&url, &call, &token, Some(&session), &[]).await;
    assert_eq!(second.status, 429, "{second:?}");
    let retry_after: u64 = second.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let error = &second.message.as_ref().expect("a JSON-RPC error")["error"];
    assert_eq!(error["code"], mcp_lp::RATE_LIMITED.0);
    assert_eq!(error["data"]["retry_after_secs"], retry_after);
    assert_eq!(second.message.as_ref().unwrap()["id"], 9);
}

#[tokio::test]
async fn refuses_cross_origin_browser_request_by_default() {
    let auth = AuthServer::start().await;
    let url = serve(mcp_lp_tests::Fixture::default(), &auth, "").await;
    let token = auth.token(&url, "alice@example.com", "");
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "browser", "version": "0"}}});
    let evil = post(
        &url,
        &ping,
        &token,
        None,
        &[("Origin", "https://evil.example")],
    )
    .await;
    assert_eq!(evil.status, 403, "{evil:?}");

    let own_origin = url.trim_end_matches("/mcp").to_owned();
    let same = post(
        &url,
        &ping,
        &token,
        None,
        &[("Origin", own_origin.as_str())],
    )
    .await;
    assert_eq!(same.status, 200, "{same:?}");
    let no_origin = post(&url, &ping, &token, None, &[]).await;
    assert_eq!(no_origin.status, 200, "{no_origin:?}");
}

#[tokio::test]
async fn rejects_out_of_scope_call_by_non_ascii_principal_with_its_challenge() {
    let auth = AuthServer::start().await;
    let url = serve(mcp_lp_tests::Fixture::default(), &auth, "").await;
    let token = auth.token(&url, "jörg\u{202e}@example.com", "");
    let session = open_session(&url, &token, &[]).await;
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "admin_echo", "arguments": {"text": "hi"}}});
    let reply = post(&url, &call, &token, Some(&session), &[]).await;
    assert_eq!(reply.status, 403, "{reply:?}");
    let challenge = reply
        .headers
        .get("www-authenticate")
        .expect("the 403 keeps its WWW-Authenticate challenge")
        .to_str()
        .unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"fixture:admin\""), "{challenge}");
    // The JSON-RPC error names the principal exactly.
    let message = reply.message.unwrap()["error"]["message"].clone();
    assert!(
        message
            .as_str()
            .unwrap()
            .contains("jörg\u{202e}@example.com"),
        "{message}"
    );
}

#[tokio::test]
async fn keeps_other_principals_sessions_when_one_principal_opens_many() {
    let auth = AuthServer::start().await;
    let url = serve(mcp_lp_tests::Fixture::default(), &auth, "").await;
    let alice = auth.token(&url, "alice@example.com", "");
    let mallory = auth.token(&url, "mallory@example.com", "");
    let alice_session = open_session(&url, &alice, &[]).await;
    let mut mallory_sessions = Vec::new();
    for _ in 0..40 {
        mallory_sessions.push(open_session(&url, &mallory, &[]).await);
    }
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let reply = post(&url, &ping, &alice, Some(&alice_session), &[]).await;
    assert_eq!(reply.status, 200, "alice's session survives: {reply:?}");
    // Mallory's own oldest sessions made room for its newest.
    let oldest = post(&url, &ping, &mallory, Some(&mallory_sessions[0]), &[]).await;
    assert_eq!(oldest.status, 404, "{oldest:?}");
    let newest = post(
        &url,
        &ping,
        &mallory,
        mallory_sessions.last().map(String::as_str),
        &[],
    )
    .await;
    assert_eq!(newest.status, 200, "{newest:?}");
}

#[tokio::test]
async fn keeps_a_principals_sessions_when_it_also_calls_statelessly() {
    let auth = AuthServer::start().await;
    let url = serve(mcp_lp_tests::Fixture::default(), &auth, "").await;
    let alice = auth.token(&url, "stateless-alice@example.com", "");
    // Alice holds as many sessions as a principal may.
    let mut sessions = Vec::new();
    for _ in 0..32 {
        sessions.push(open_session(&url, &alice, &[]).await);
    }
    // 2026-07-28 requests open no session, so they make no room by closing one.
    for _ in 0..5 {
        let call = post_stateless(
            &url,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi"}}),
            &alice,
        )
        .await;
        assert_eq!(call.status, 200, "{call:?}");
    }
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let oldest = post(&url, &ping, &alice, Some(&sessions[0]), &[]).await;
    assert_eq!(
        oldest.status, 200,
        "the oldest session survives: {oldest:?}"
    );
}

#[tokio::test]
async fn rejects_tools_call_with_unreadable_params_with_400_and_invalid_params() {
    let recorder = mcp_lp_tests::Recorder::global();
    let auth = AuthServer::start().await;
    let url = serve(mcp_lp_tests::Fixture::default(), &auth, "").await;
    let token = auth.token(&url, "params@example.com", "");
    let session = open_session(&url, &token, &[]).await;
    let bodies = [
        r#"{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":["echo"]}}"#,
        r#"{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":"echo","name":"admin_echo"}}"#,
        r#"{"jsonrpc":"2.0","id":23,"method":"tools/call","params":{"name":"echo","arguments":5}}"#,
        r#"{"jsonrpc":"2.0","id":24,"method":"tools/call","params":[1]}"#,
    ];
    for (i, body) in bodies.iter().enumerate() {
        // Sent as raw text: a JSON value would drop the duplicate key.
        let reply = post_raw(&url, body, &token, &session).await;
        assert_eq!(reply.0, 400, "{body}: {reply:?}");
        let error = &reply.1["error"];
        assert_eq!(error["code"], -32602, "{body}: {reply:?}");
        assert_eq!(reply.1["id"], 21 + i, "{body}: {reply:?}");
    }
    let events = recorder.audit_events_of("params@example.com");
    let outcomes: Vec<_> = events.iter().map(|e| e["outcome"].clone()).collect();
    assert_eq!(outcomes, vec![json!("invalid_params"); 4], "{events:#?}");

    let (status, reply) = post_raw(&url, "{not json", &token, &session).await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (400, json!(-32700)),
        "{reply}"
    );
    let (status, reply) = post_raw(&url, "[1, 2]", &token, &session).await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (400, json!(-32600)),
        "{reply}"
    );
}

/// POST `body` as it is (duplicate keys included) and return the status and the JSON body.
async fn post_raw(url: &str, body: &str, token: &str, session: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("MCP-Protocol-Version", "2025-11-25")
        .header("Authorization", format!("Bearer {token}"))
        .header("Mcp-Session-Id", session)
        .body(body.to_owned())
        .send()
        .await
        .expect("HTTP request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
