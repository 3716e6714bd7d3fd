//! Approval of the exact call, in process: a tool declared with `approval = "..."` is parked
//! until a person other than the requester approves this principal, tool, arguments and
//! definition; the approval is used once, within its window. Approvers act here through the
//! same store the command line uses (`approvals approve ID`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use std::sync::Arc;

use mcp_lp::approval::{
    ApprovalError, ApprovalStore as _, Approvals, Approver, Door, FileApprovals,
};
use mcp_lp::{Checkpoint, Config, Grant, Principal};
use mcp_lp_tests::{Approved, Connection, Recorder, connect_with, stateless};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ElicitRequestParams, InputRequest,
    InputRequiredResult, InputResponses,
};
use rmcp::service::{ClientLifecycleMode, ServiceError};
use serde_json::json;

const ALICE: &str = "alice@example.com";

fn requester(id: &str) -> Principal {
    Principal::new(id).with_grant(Grant::new("items:delete").expect("grant"))
}

struct Setup {
    dir: tempfile::TempDir,
    server: Approved,
}

impl Setup {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
            server: Approved::default(),
        }
    }

    /// A configuration keeping approvals in this setup's directory; with `page`, an `[http]`
    /// table so that the server has an approval page to send 2026-07-28 clients to.
    fn config(&self, page: bool, extra: &str) -> Config {
        let mut toml = format!(
            "[governance]\napprovals = \"{}\"\n",
            self.dir.path().join("approvals").display()
        );
        if page {
            toml += "[http]\nlisten = \"127.0.0.1:9\"\n[dev]\nallow_unauthenticated_http = true\n";
        }
        toml += extra;
        Config::from_toml(&toml, self.dir.path().join("mcp-lp.toml")).expect("configuration")
    }

    fn store(&self) -> FileApprovals {
        FileApprovals::new(self.dir.path().join("approvals"))
    }

    async fn connect(
        &self,
        config: &Config,
        who: &str,
        lifecycle: ClientLifecycleMode,
    ) -> Connection {
        connect_with(self.server.clone(), config, requester(who), lifecycle).await
    }

    async fn approve(&self, id: &str, by: &str) -> Result<(), ApprovalError> {
        self.verdict(id, by, true).await
    }

    /// Approvals as the doors and the command line reach them: this setup's store, with the
    /// policy of `config`.
    fn approvals(&self) -> Approvals {
        let config = self.config(false, "");
        Approvals::from_config(Arc::new(self.store()), &config, None).expect("approvals")
    }

    async fn verdict(&self, id: &str, by: &str, approve: bool) -> Result<(), ApprovalError> {
        let approver = Principal::new(by).with_grant(Grant::new("items:approve").expect("grant"));
        self.approvals()
            .decide(
                id,
                &Approver::new(approver, Door::Api, String::new()),
                approve,
            )
            .await
            .map(|_| ())
    }

    fn deletes(&self) -> usize {
        self.server.deletes.load(Ordering::SeqCst)
    }
}

fn params(text: &str) -> CallToolRequestParams {
    CallToolRequestParams::new("delete_item").with_arguments(
        json!({ "text": text })
            .as_object()
            .cloned()
            .expect("object"),
    )
}

fn rpc_error(result: Result<CallToolResponse, ServiceError>) -> rmcp::ErrorData {
    match result {
        Err(ServiceError::McpError(e)) => e,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

/// The approval id a refused first call carries (stdio and 2025-11-25 path).
fn parked_id(error: &rmcp::ErrorData) -> String {
    error.data.as_ref().expect("error data")["approval"]["id"]
        .as_str()
        .expect("approval id")
        .to_owned()
}

/// The first round of a 2026-07-28 call: the URL elicitation and the sealed state.
async fn parked(conn: &Connection, text: &str) -> (String, String) {
    match conn.client.call_tool_once(params(text)).await {
        Ok(CallToolResponse::InputRequired(InputRequiredResult {
            input_requests: Some(requests),
            request_state: Some(state),
            ..
        })) => {
            let Some(InputRequest::Elicitation(request)) = requests.get("approval") else {
                panic!("no approval elicitation in {requests:?}");
            };
            let ElicitRequestParams::UrlElicitationParams { url, .. } = &request.params else {
                panic!("not a URL elicitation: {request:?}");
            };
            let id = url.rsplit('/').next().expect("an id").to_owned();
            assert_eq!(url, &format!("http://127.0.0.1:9/approvals/{id}"));
            (id, state)
        }
        other => panic!("expected an InputRequiredResult, got {other:?}"),
    }
}

async fn retry(
    conn: &Connection,
    text: &str,
    state: &str,
) -> Result<CallToolResponse, ServiceError> {
    let answers: InputResponses = [("approval".to_owned(), json!({ "action": "accept" }))]
        .into_iter()
        .collect();
    let params = params(text)
        .with_request_state(state.to_owned())
        .with_input_responses(answers);
    conn.client.call_tool_once(params).await
}

fn ran(response: Result<CallToolResponse, ServiceError>) -> String {
    match response {
        Ok(CallToolResponse::Complete(result)) => mcp_lp_tests::text(&result).to_owned(),
        other => panic!("expected the tool's result, got {other:?}"),
    }
}

#[tokio::test]
async fn rejects_call_without_approval() {
    let setup = Setup::new();
    let audit = Recorder::global();
    let conn = setup
        .connect(
            &setup.config(false, ""),
            "rwa@example.com",
            ClientLifecycleMode::Initialize,
        )
        .await;
    let error = rpc_error(conn.client.call_tool_once(params("report-7")).await);
    assert_eq!(error.code, mcp_lp::FORBIDDEN);
    assert!(
        error
            .message
            .contains("needs approval of this call by a person holding `items:approve`"),
        "{}",
        error.message
    );
    let id = parked_id(&error);
    // The model reads the refusal: it learns that a person approves, not how.
    assert!(
        !error.message.contains("approvals approve"),
        "{}",
        error.message
    );
    assert!(
        error.data.as_ref().expect("data")["approval"]
            .get("command")
            .is_none(),
        "{error:?}"
    );
    assert_eq!(setup.deletes(), 0);
    // The same call again, not approved yet: still parked, still not run.
    let again = rpc_error(conn.client.call_tool_once(params("report-7")).await);
    assert!(
        again
            .message
            .contains("approval pending (0 of 1 approvals)"),
        "{}",
        again.message
    );
    assert_eq!(setup.deletes(), 0);

    let pending = setup.store().get(&id).await.expect("recorded");
    assert_eq!(
        (pending.principal.as_str(), pending.tool.as_str()),
        ("rwa@example.com", "delete_item")
    );
    assert_eq!(pending.arguments, json!({ "text": "report-7" }));
    assert_eq!(pending.why, "Delete one item for good.");
    let events = audit.audit_events();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "approval_requested" && e["approval"] == id.as_str()),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["outcome"] == "approval_required" && e["approval"] == id.as_str()),
        "{events:#?}"
    );
}

#[tokio::test]
async fn accepts_call_after_approval() {
    let setup = Setup::new();
    let audit = Recorder::global();
    let conn = setup
        .connect(
            &setup.config(false, ""),
            "aca@example.com",
            ClientLifecycleMode::Initialize,
        )
        .await;
    let id = parked_id(&rpc_error(
        conn.client.call_tool_once(params("report-8")).await,
    ));
    setup
        .approve(&id, "bob@example.com")
        .await
        .expect("approved");
    assert_eq!(
        ran(conn.client.call_tool_once(params("report-8")).await),
        "deleted report-8"
    );
    assert_eq!(setup.deletes(), 1);
    let events = audit.audit_events_of("aca@example.com");
    let call = events
        .iter()
        .find(|e| e["outcome"] == "ok" && e["tool"] == "delete_item")
        .expect("the call's event");
    assert_eq!(call["approval"], id.as_str());
    assert_eq!(call["approvers"], json!(["bob@example.com"]));
}

#[tokio::test]
async fn accepts_call_after_approval_over_2026_07_28_and_rejects_its_replay() {
    let setup = Setup::new();
    let conn = setup
        .connect(&setup.config(true, ""), ALICE, stateless())
        .await;
    let (id, state) = parked(&conn, "report-9").await;
    let pending = rpc_error(retry(&conn, "report-9", &state).await);
    assert!(
        pending.message.contains("approval pending"),
        "{}",
        pending.message
    );
    setup
        .approve(&id, "bob@example.com")
        .await
        .expect("approved");
    assert_eq!(
        ran(retry(&conn, "report-9", &state).await),
        "deleted report-9"
    );
    let replayed = rpc_error(retry(&conn, "report-9", &state).await);
    assert!(
        replayed.message.contains("already used"),
        "{}",
        replayed.message
    );
    assert_eq!(setup.deletes(), 1);
}

#[tokio::test]
async fn rejects_replayed_approval() {
    let setup = Setup::new();
    let conn = setup
        .connect(
            &setup.config(false, ""),
            "rra@example.com",
            ClientLifecycleMode::Initialize,
        )
        .await;
    let id = parked_id(&rpc_error(conn.client.call_tool_once(params("x")).await));
    setup
        .approve(&id, "bob@example.com")
        .await
        .expect("approved");
    ran(conn.client.call_tool_once(params("x")).await);
    // The used approval does not run the call again: it is parked for a new one.
    let again = rpc_error(conn.client.call_tool_once(params("x")).await);
    assert_ne!(parked_id(&again), id);
    assert_eq!(setup.deletes(), 1);
    let used = setup.store().get(&id).await.expect("kept");
    assert!(used.used_at.is_some());
    assert_eq!(
        setup.approve(&id, "carol@example.com").await,
        Err(ApprovalError::AlreadyUsed)
    );
}

#[tokio::test]
async fn rejects_retry_with_changed_arguments() {
    let setup = Setup::new();
    let conn = setup
        .connect(&setup.config(true, ""), ALICE, stateless())
        .await;
    let (id, state) = parked(&conn, "report-10").await;
    setup
        .approve(&id, "bob@example.com")
        .await
        .expect("approved");
    let changed = rpc_error(retry(&conn, "everything", &state).await);
    assert!(
        changed
            .message
            .contains("arguments differ from those approved"),
        "{}",
        changed.message
    );
    assert_eq!(setup.deletes(), 0);
}

#[tokio::test]
async fn rejects_approval_by_the_requester() {
    let setup = Setup::new();
    let conn = setup
        .connect(
            &setup.config(false, ""),
            "self@example.com",
            ClientLifecycleMode::Initialize,
        )
        .await;
    let id = parked_id(&rpc_error(conn.client.call_tool_once(params("y")).await));
    assert_eq!(
        setup.approve(&id, "self@example.com").await,
        Err(ApprovalError::Requester)
    );
    let still = rpc_error(conn.client.call_tool_once(params("y")).await);
    assert!(
        still.message.contains("approval pending"),
        "{}",
        still.message
    );
    assert_eq!(setup.deletes(), 0);
}

#[tokio::test]
async fn accepts_approval_by_the_requester_when_configured() {
    let setup = Setup::new();
    // A tool without an approval attribute: the configuration's rule is the whole rule.
    let config = setup.config(
        false,
        "[tools.read_item]\napproval = { grant = \"items:approve\", self_approve = true }\n",
    );
    let conn = setup
        .connect(&config, "solo@example.com", ClientLifecycleMode::Initialize)
        .await;
    let read = |text: &str| {
        CallToolRequestParams::new("read_item").with_arguments(
            json!({ "text": text })
                .as_object()
                .cloned()
                .expect("object"),
        )
    };
    let id = parked_id(&rpc_error(conn.client.call_tool_once(read("z")).await));
    setup
        .approve(&id, "solo@example.com")
        .await
        .expect("self-approval allowed");
    ran(conn.client.call_tool_once(read("z")).await);
}

#[tokio::test]
async fn refuses_self_approve_that_loosens_the_attribute() {
    let setup = Setup::new();
    let config = setup.config(
        false,
        "[tools.delete_item]\napproval = { self_approve = true }\n",
    );
    let err = Checkpoint::new(setup.server.clone(), &config, requester(ALICE))
        .err()
        .expect("refused");
    assert_eq!(err.key.as_deref(), Some("tools.delete_item.approval"));
    assert!(
        err.to_string()
            .contains("may tighten the rule, not loosen it"),
        "{err}"
    );
}

#[tokio::test]
async fn rejects_call_until_enough_approvers_and_after_a_denial() {
    let setup = Setup::new();
    let config = setup.config(false, "[tools.delete_item]\napproval = { min = 2 }\n");
    let conn = setup
        .connect(&config, "two@example.com", ClientLifecycleMode::Initialize)
        .await;
    let id = parked_id(&rpc_error(conn.client.call_tool_once(params("a")).await));
    setup.approve(&id, "bob@example.com").await.expect("first");
    assert!(matches!(
        setup.approve(&id, "bob@example.com").await,
        Err(ApprovalError::Decided(_))
    ));
    let one = rpc_error(conn.client.call_tool_once(params("a")).await);
    assert!(
        one.message.contains("approval pending (1 of 2 approvals)"),
        "{}",
        one.message
    );
    setup
        .verdict(&id, "carol@example.com", false)
        .await
        .expect("denied");
    let denied = rpc_error(conn.client.call_tool_once(params("a")).await);
    assert!(
        denied.message.contains("denied by carol@example.com"),
        "{}",
        denied.message
    );
    assert_eq!(setup.deletes(), 0);
}

#[tokio::test]
async fn rejects_expired_approval() {
    let setup = Setup::new();
    let config = setup.config(
        true,
        "[tools.delete_item]\napproval = { expires = \"1s\" }\n",
    );
    let conn = setup.connect(&config, ALICE, stateless()).await;
    let (id, state) = parked(&conn, "old").await;
    setup
        .approve(&id, "bob@example.com")
        .await
        .expect("approved");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let expired = rpc_error(retry(&conn, "old", &state).await);
    assert!(expired.message.contains("expired"), "{}", expired.message);
    assert_eq!(setup.deletes(), 0);
}

#[tokio::test]
async fn rejects_tampered_request_state() {
    let setup = Setup::new();
    let conn = setup
        .connect(&setup.config(true, ""), ALICE, stateless())
        .await;
    let (id, state) = parked(&conn, "t").await;
    setup
        .approve(&id, "bob@example.com")
        .await
        .expect("approved");
    let mut tampered = state.into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let error = rpc_error(retry(&conn, "t", &String::from_utf8(tampered).expect("ascii")).await);
    assert_eq!(error.data.expect("data")["request_state"], "tampered");
    assert_eq!(setup.deletes(), 0);
}

#[tokio::test]
async fn rejects_state_of_another_principal() {
    let setup = Setup::new();
    // One sealing key for both connections, as replicas share it.
    let key = setup.dir.path().join("sealing.key");
    std::fs::write(&key, "a-sealing-key-for-these-tests-32-bytes-or-more").expect("key");
    let config = setup.config(
        true,
        &format!(
            "[request_state]\nkeys = [{{ id = \"k1\", secret = {{ file = \"{}\" }} }}]\n",
            key.display()
        ),
    );
    let alice = setup.connect(&config, ALICE, stateless()).await;
    let mallory = setup
        .connect(&config, "mallory@example.com", stateless())
        .await;
    let (id, state) = parked(&alice, "s").await;
    setup
        .approve(&id, "bob@example.com")
        .await
        .expect("approved");
    let error = rpc_error(retry(&mallory, "s", &state).await);
    assert_eq!(
        error.data.expect("data")["request_state"],
        "other_principal"
    );
    assert_eq!(setup.deletes(), 0);
    ran(retry(&alice, "s", &state).await);
}

#[tokio::test]
async fn refuses_configuration_that_loosens_or_lacks_the_approval_rule() {
    let setup = Setup::new();
    let other = setup.config(
        false,
        "[tools.delete_item]\napproval = { grant = \"items:read\" }\n",
    );
    let err = Checkpoint::new(setup.server.clone(), &other, requester(ALICE))
        .err()
        .expect("refused");
    assert_eq!(err.key.as_deref(), Some("tools.delete_item.approval"));
    assert!(
        err.to_string()
            .contains("may tighten the rule, not hand it to `items:read`"),
        "{err}"
    );
    let no_grant = setup.config(false, "[tools.read_item]\napproval = { min = 2 }\n");
    let err = Checkpoint::new(setup.server.clone(), &no_grant, requester(ALICE))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("names who approves"), "{err}");
    let long = setup.config(
        false,
        "[tools.delete_item]\napproval = { expires = \"2h\" }\n",
    );
    assert!(Checkpoint::new(setup.server.clone(), &long, requester(ALICE)).is_err());
    let read = setup.config(
        false,
        "[tools.read_item]\napproval = { grant = \"items:approve\" }\n",
    );
    let conn = connect_with(
        setup.server.clone(),
        &read,
        requester(ALICE),
        ClientLifecycleMode::Initialize,
    )
    .await;
    let error = rpc_error(
        conn.client
            .call_tool_once(
                CallToolRequestParams::new("read_item")
                    .with_arguments(json!({"text": "q"}).as_object().cloned().expect("object")),
            )
            .await,
    );
    assert!(
        error.message.contains("needs approval"),
        "{}",
        error.message
    );
}
