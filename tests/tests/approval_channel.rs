//! A new approval channel with no core edit: a notifier told of each call that waits
//! (`Server::notify_approvals`) and routes served beside the MCP endpoint
//! (`Server::http_routes`) that give verdicts through the server's own `Approvals`, which alone
//! decides who may give one. Served over real HTTP, called with a bearer token.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post as post_route;
use mcp_lp::approval::{ApprovalNotifier, Approver, Door, Notice, PendingCall};
use mcp_lp::{Grant, Principal, Server};
use mcp_lp_tests::Approved;
use mcp_lp_tests::http::{AuthServer, open_session, post, serve};
use serde_json::json;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// The chat side of the channel: where notices land.
struct Chat(UnboundedSender<(Notice, PendingCall)>);

impl ApprovalNotifier for Chat {
    fn describe(&self) -> String {
        "chat #approvals".into()
    }

    fn notify(
        &self,
        notice: Notice,
        call: PendingCall,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { self.0.send((notice, call)).map_err(|e| e.to_string()) })
    }
}

/// The channel's callback: `POST /chat/{as}/approve/{id}`, as a chat button would call it once
/// the chat has told who pressed it. Here the chat's word is the path; a real channel checks
/// its platform's signature first.
fn chat_routes(context: mcp_lp::transport::http::RoutesContext) -> Router {
    let approvals = context
        .approvals
        .expect("a tool of this server needs approval");
    Router::new().route(
        "/{approver}/approve/{id}",
        post_route(move |Path((approver, id)): Path<(String, String)>| {
            let approvals = Arc::clone(&approvals);
            async move {
                let grant = Grant::new("items:approve").expect("grant");
                let principal = Principal::new(approver).with_grant(grant);
                let approver = Approver::new(principal, Door::Api, String::new());
                match approvals.decide(&id, &approver, true).await {
                    Ok(call) => (
                        StatusCode::OK,
                        format!("{} of {}", call.approvals.len(), call.min),
                    ),
                    Err(e) => (StatusCode::FORBIDDEN, e.to_string()),
                }
            }
        }),
    )
}

async fn notice(received: &mut UnboundedReceiver<(Notice, PendingCall)>) -> (Notice, PendingCall) {
    tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("a notice within the deadline")
        .expect("the channel is open")
}

fn delete(id: u64) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "delete_item", "arguments": {"text": "report-1"}}})
}

#[tokio::test]
async fn accepts_verdict_given_through_a_channel_of_its_own() {
    let auth = AuthServer::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let approved = Approved::default();
    let (sent, mut received) = unbounded_channel();
    let server = Server::new(approved.clone())
        .notify_approvals(Chat(sent))
        .http_routes("/chat", chat_routes);
    let extra = format!(
        "[governance]\napprovals = \"{}\"\n",
        dir.path().join("approvals").display()
    );
    let url = serve(server, &auth, &extra).await;
    let token = auth.token(&url, "alice@example.com", "items:delete");
    let session = open_session(&url, &token, &[]).await;

    let refused = post(&url, &delete(2), &token, Some(&session), &[]).await;
    let data = &refused.message.as_ref().expect("an answer")["error"]["data"];
    assert_eq!(data["code"], "approval_required", "{refused:?}");
    let id = data["approval"]["id"]
        .as_str()
        .expect("an approval id")
        .to_owned();
    let (told, call) = notice(&mut received).await;
    assert_eq!(told, Notice::Waiting);
    assert_eq!(
        (call.id.as_str(), call.principal.as_str()),
        (id.as_str(), "alice@example.com")
    );

    let chat = url.trim_end_matches("/mcp").to_owned() + "/chat";
    let http = reqwest::Client::new();
    // The requester pressing the button is refused by the approvals, not by the channel.
    let own = http
        .post(format!("{chat}/alice@example.com/approve/{id}"))
        .send()
        .await
        .expect("the channel answers");
    assert_eq!(own.status(), 403);
    assert_eq!(approved.deletes.load(Ordering::SeqCst), 0);

    let bob = http
        .post(format!("{chat}/bob@example.com/approve/{id}"))
        .send()
        .await
        .expect("the channel answers");
    assert_eq!(bob.status(), 200);
    assert_eq!(bob.text().await.expect("body"), "1 of 1");
    let (told, call) = notice(&mut received).await;
    assert_eq!(told, Notice::Approved);
    assert_eq!(call.approvals[0].by, "bob@example.com");

    // The same call again now runs, once.
    let ran = post(&url, &delete(3), &token, Some(&session), &[]).await;
    let result = &ran.message.as_ref().expect("an answer")["result"];
    assert_eq!(result["isError"], false, "{ran:?}");
    assert_eq!(approved.deletes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refuses_extra_routes_over_what_the_server_serves() {
    let auth = AuthServer::start().await;
    for (prefix, problem) in [
        ("/mcp", "overlaps `/mcp`"),
        ("/approvals", "overlaps `/approvals`"),
        ("/.well-known/extra", "overlaps `/.well-known`"),
        ("/", "write a path such as"),
        ("/chat/../mcp", "write a path such as"),
        ("chat", "write a path such as"),
    ] {
        let config = mcp_lp::Config::from_toml(
            &format!(
                "[http]\nlisten = \"127.0.0.1:0\"\nresource = \"http://127.0.0.1:9/mcp\"\n[http.auth]\nissuer = \"{issuer}\"\njwks_uri = \"{issuer}/jwks.json\"\n",
                issuer = auth.issuer
            ),
            "test.toml",
        )
        .expect("configuration");
        let server = Server::new(Approved::default()).http_routes(prefix, |_| Router::new());
        let error = mcp_lp::transport::http::serve_http(server, &config)
            .await
            .expect_err("refused");
        let message = error.to_string();
        assert!(message.contains(&format!("`{prefix}`")), "{message}");
        assert!(message.contains(problem), "{prefix}: {message}");
    }
}
