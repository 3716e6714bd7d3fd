//! Approval of the exact call, in process: a tool declared with `approval = "..."` is parked
//! until a person other than the requester approves this principal, tool, arguments and
//! definition; the approval is used once, within its window. Approvers act here through the
//! same store the command line uses (`approvals approve ID`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use std::sync::Arc;

use mcp_lp::approval::{
    ApprovalError, ApprovalNotifier, ApprovalStore as _, Approvals, Approver, Door, FileApprovals,
    Notice, PendingCall,
};
use mcp_lp::{Checkpoint, Config, Grant, Principal};
use mcp_lp_tests::{Approved, Connection, Recorder, connect_with, refusal_code, stateless};
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
    assert_eq!(refusal_code(&pending), "approval_refused");
    assert_eq!(pending.data.expect("data")["approval"]["status"], "pending");
    setup
        .approve(&id, "bob@example.com")
        .await
        .expect("approved");
    assert_eq!(
        ran(retry(&conn, "report-9", &state).await),
        "deleted report-9"
    );
    let replayed = rpc_error(retry(&conn, "report-9", &state).await);
    assert_eq!(
        replayed.data.expect("data")["approval"]["status"],
        "already_used"
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
    assert_eq!(still.data.expect("data")["approval"]["status"], "pending");
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
    assert_eq!(denied.data.expect("data")["approval"]["status"], "denied");
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
    assert_eq!(expired.data.expect("data")["approval"]["status"], "expired");
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
    assert_eq!(refusal_code(&error), "approval_required");
}

/// The parameters of `purge_items`.
fn purge(text: &str) -> CallToolRequestParams {
    CallToolRequestParams::new("purge_items").with_arguments(
        json!({ "text": text })
            .as_object()
            .cloned()
            .expect("object"),
    )
}

/// The sealed state of an `InputRequiredResult`.
fn state_of(response: Result<CallToolResponse, ServiceError>) -> String {
    match response {
        Ok(CallToolResponse::InputRequired(InputRequiredResult {
            request_state: Some(state),
            ..
        })) => state,
        other => panic!("expected an InputRequiredResult with state, got {other:?}"),
    }
}

fn confirmed() -> InputResponses {
    [(
        "confirmation".to_owned(),
        json!({ "action": "accept", "content": { "ok": true } }),
    )]
    .into_iter()
    .collect()
}

#[tokio::test]
async fn rejects_replayed_tool_state_of_an_approved_call() {
    let setup = Setup::new();
    let audit = Recorder::global();
    let conn = setup
        .connect(&setup.config(true, ""), "rrt@example.com", stateless())
        .await;
    // Parked, approved once, retried: the approved run asks its own question.
    let parked = state_of(conn.client.call_tool_once(purge("all")).await);
    let id = setup.approvals().list().await.expect("listed")[0]
        .id
        .clone();
    setup
        .approve(&id, "bob@example.com")
        .await
        .expect("approved");
    let armed = state_of(
        conn.client
            .call_tool_once(
                purge("all")
                    .with_request_state(parked)
                    .with_input_responses(confirmed()),
            )
            .await,
    );
    // The round the tool asked for runs once on that one approval...
    let round = purge("all")
        .with_request_state(armed.clone())
        .with_input_responses(confirmed());
    assert_eq!(
        ran(conn.client.call_tool_once(round.clone()).await),
        "purged all with state armed"
    );
    // ...and the same state sent again runs nothing.
    let replayed = rpc_error(conn.client.call_tool_once(round).await);
    assert_eq!(replayed.code, mcp_lp::FORBIDDEN);
    assert_eq!(
        replayed.data.expect("data")["approval"]["status"],
        "round_replayed"
    );
    assert_eq!(setup.server.purges.load(Ordering::SeqCst), 1);
    // Every round's event names the approval and its approvers.
    let events = audit.audit_events_of("rrt@example.com");
    let rounds: Vec<_> = events
        .iter()
        .filter(|e| e["tool"] == "purge_items" && e["decision"] == "allow")
        .collect();
    assert_eq!(rounds.len(), 2, "{events:#?}");
    for event in rounds {
        assert_eq!(event["approval"], id.as_str(), "{event}");
        assert_eq!(event["approvers"], json!(["bob@example.com"]), "{event}");
    }
}

/// A configuration of `Fixture` sharing the sealing key of `dir`, with `extra` TOML.
fn sealing_config(dir: &tempfile::TempDir, extra: &str) -> Config {
    let key = dir.path().join("sealing.key");
    std::fs::write(&key, "a-sealing-key-for-these-tests-32-bytes-or-more").expect("key");
    let toml = format!(
        "[request_state]\nkeys = [{{ id = \"k1\", secret = {{ file = \"{}\" }} }}]\n[governance]\napprovals = \"{}\"\n{extra}",
        key.display(),
        dir.path().join("approvals").display()
    );
    Config::from_toml(&toml, dir.path().join("mcp-lp.toml")).expect("configuration")
}

fn confirm(text: &str) -> CallToolRequestParams {
    CallToolRequestParams::new("confirm").with_arguments(
        json!({ "text": text })
            .as_object()
            .cloned()
            .expect("object"),
    )
}

#[tokio::test]
async fn refuses_tool_state_sealed_before_the_tool_needed_approval() {
    let dir = tempfile::tempdir().expect("dir");
    let fixture = mcp_lp_tests::Fixture::default();
    let before = sealing_config(&dir, "");
    let conn = connect_with(
        fixture.clone(),
        &before,
        Principal::new("sbt@example.com"),
        stateless(),
    )
    .await;
    let armed = state_of(conn.client.call_tool_once(confirm("q3.md")).await);
    // The operator now requires approval of `confirm`; the state sealed before names no
    // approval, and gets no call past the gate.
    let after = sealing_config(
        &dir,
        "[tools.confirm]\napproval = { grant = \"items:approve\" }\n",
    );
    let conn = connect_with(
        fixture.clone(),
        &after,
        Principal::new("sbt@example.com"),
        stateless(),
    )
    .await;
    let answered = confirm("q3.md")
        .with_request_state(armed)
        .with_input_responses(confirmed());
    let parked = rpc_error(conn.client.call_tool_once(answered).await);
    assert_eq!(refusal_code(&parked), "approval_required");
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn rejects_tool_state_sealed_by_another_server() {
    let dir = tempfile::tempdir().expect("dir");
    let fixture = mcp_lp_tests::Fixture::default();
    // Two servers sharing one sealing key, each its own resource.
    let one = sealing_config(
        &dir,
        "[http]\nlisten = \"127.0.0.1:9\"\nresource = \"https://one.example/mcp\"\n[dev]\nallow_unauthenticated_http = true\n",
    );
    let other = sealing_config(
        &dir,
        "[http]\nlisten = \"127.0.0.1:9\"\nresource = \"https://other.example/mcp\"\n[dev]\nallow_unauthenticated_http = true\n",
    );
    let principal = || Principal::new("other@example.com");
    let first = connect_with(fixture.clone(), &one, principal(), stateless()).await;
    let armed = state_of(first.client.call_tool_once(confirm("q3.md")).await);
    let second = connect_with(fixture.clone(), &other, principal(), stateless()).await;
    let answered = confirm("q3.md")
        .with_request_state(armed.clone())
        .with_input_responses(confirmed());
    let refused = rpc_error(second.client.call_tool_once(answered.clone()).await);
    assert_eq!(
        refused.data.expect("data")["request_state"],
        "other_resource"
    );
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 0);
    // The server that sealed it accepts it.
    ran(first.client.call_tool_once(answered).await);
}

/// The file of approval `id` in `setup`'s store.
fn record_file(setup: &Setup, id: &str) -> std::path::PathBuf {
    setup
        .dir
        .path()
        .join("approvals")
        .join(format!("{id}.json"))
}

fn edit_record(setup: &Setup, id: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = record_file(setup, id);
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    edit(&mut record);
    std::fs::write(&path, record.to_string()).expect("write");
}

#[tokio::test]
async fn rejects_approval_record_edited_in_the_store() {
    let setup = Setup::new();
    let conn = setup
        .connect(
            &setup.config(false, ""),
            "edit@example.com",
            ClientLifecycleMode::Initialize,
        )
        .await;
    let id = parked_id(&rpc_error(conn.client.call_tool_once(params("e")).await));
    // Whoever can write the directory adds an approver by hand.
    edit_record(&setup, &id, |record| {
        record["approvals"] = json!([{
            "by": "mallory@example.com", "at": "2026-12-07T00:00:00Z", "door": "api"
        }]);
    });
    let refused = rpc_error(conn.client.call_tool_once(params("e")).await);
    assert_eq!(
        refused.data.expect("data")["approval"]["status"],
        "tampered"
    );
    assert_eq!(setup.deletes(), 0);
}

#[tokio::test]
async fn rejects_approved_record_copied_to_another_call() {
    let setup = Setup::new();
    let conn = setup
        .connect(
            &setup.config(false, ""),
            "copy@example.com",
            ClientLifecycleMode::Initialize,
        )
        .await;
    let harmless = parked_id(&rpc_error(conn.client.call_tool_once(params("old")).await));
    let wanted = parked_id(&rpc_error(conn.client.call_tool_once(params("all")).await));
    setup
        .approve(&harmless, "bob@example.com")
        .await
        .expect("approved");
    // The approved record of one call, copied over the pending record of another.
    std::fs::copy(record_file(&setup, &harmless), record_file(&setup, &wanted)).expect("copy");
    let refused = rpc_error(conn.client.call_tool_once(params("all")).await);
    assert_eq!(
        refused.data.expect("data")["approval"]["status"],
        "tampered"
    );
    assert_eq!(setup.deletes(), 0);
    // And its id made to match: the seal covers the id, the call and the arguments.
    edit_record(&setup, &wanted, |record| {
        record["id"] = json!(wanted.clone())
    });
    let refused = rpc_error(conn.client.call_tool_once(params("all")).await);
    assert_eq!(
        refused.data.expect("data")["approval"]["status"],
        "tampered"
    );
    assert_eq!(setup.deletes(), 0);
}

#[tokio::test]
async fn refuses_stored_call_whose_id_differs_from_the_requested_one() {
    let setup = Setup::new();
    let conn = setup
        .connect(
            &setup.config(false, ""),
            "sid@example.com",
            ClientLifecycleMode::Initialize,
        )
        .await;
    let first = parked_id(&rpc_error(conn.client.call_tool_once(params("a")).await));
    let second = parked_id(&rpc_error(conn.client.call_tool_once(params("b")).await));
    // The second id's file holds the first call's record, seal and all.
    std::fs::copy(record_file(&setup, &first), record_file(&setup, &second)).expect("copy");
    assert_eq!(
        setup.approvals().get(&second).await.unwrap_err(),
        ApprovalError::Tampered(second.clone())
    );
    assert!(setup.approvals().get(&first).await.is_ok());
}

#[tokio::test]
async fn rejects_used_approval_whose_mark_was_cleared() {
    let setup = Setup::new();
    let conn = setup
        .connect(
            &setup.config(false, ""),
            "mark@example.com",
            ClientLifecycleMode::Initialize,
        )
        .await;
    let id = parked_id(&rpc_error(conn.client.call_tool_once(params("m")).await));
    setup
        .approve(&id, "bob@example.com")
        .await
        .expect("approved");
    let before_use = std::fs::read(record_file(&setup, &id)).expect("read");
    ran(conn.client.call_tool_once(params("m")).await);
    // The mark cleared by hand: the seal no longer matches.
    edit_record(&setup, &id, |record| record["used_at"] = json!(null));
    let refused = rpc_error(conn.client.call_tool_once(params("m")).await);
    assert_eq!(
        refused.data.expect("data")["approval"]["status"],
        "tampered"
    );
    // The record as it was before its use, seal and all, put back: this process remembers
    // what it used.
    std::fs::write(record_file(&setup, &id), before_use).expect("restore");
    let replayed = rpc_error(conn.client.call_tool_once(params("m")).await);
    assert_eq!(
        replayed.data.expect("data")["approval"]["status"],
        "already_used"
    );
    assert_eq!(setup.deletes(), 1);
}

#[tokio::test]
async fn records_approvers_unambiguously() {
    let setup = Setup::new();
    let audit = Recorder::global();
    let config = setup.config(false, "[tools.delete_item]\napproval = { min = 2 }\n");
    let conn = setup
        .connect(&config, "amb@example.com", ClientLifecycleMode::Initialize)
        .await;
    let id = parked_id(&rpc_error(conn.client.call_tool_once(params("u")).await));
    // Names with spaces: joined by spaces they would read as three approvers, or one.
    let approvals = Approvals::from_config(Arc::new(setup.store()), &config, None).expect("ok");
    for by in ["bob smith", "carol jones"] {
        let approver = Principal::new(by).with_grant(Grant::new("items:approve").expect("grant"));
        approvals
            .decide(
                &id,
                &Approver::new(approver, Door::Api, String::new()),
                true,
            )
            .await
            .expect("approved");
    }
    ran(conn.client.call_tool_once(params("u")).await);
    let events = audit.audit_events_of("amb@example.com");
    let call = events
        .iter()
        .find(|e| e["outcome"] == "ok")
        .expect("the call's event");
    assert_eq!(call["approvers"], json!(["bob smith", "carol jones"]));
}

/// An SSH key made with ssh-keygen in `dir`, named `name`: its private key file and its public
/// key line.
fn ssh_key(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen runs");
    assert!(made.success(), "ssh-keygen made no key");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    (path, public.trim().to_owned())
}

/// `[approvers]` allowing each (principal, public key) of `signers`, and approver grants for
/// `granted`.
fn approvers_toml(setup: &Setup, signers: &[(&str, &str)], granted: &[&str]) -> String {
    let lines: Vec<String> = signers
        .iter()
        .map(|(principal, key)| format!("{principal} {key}"))
        .collect();
    let file = setup.dir.path().join("approvers.allowed_signers");
    std::fs::write(&file, lines.join("\n") + "\n").expect("allowed signers");
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30);
    let expires = expires.round(jiff::Unit::Second).expect("rounded");
    let grants: Vec<String> = granted
        .iter()
        .map(|p| format!("\"{p}\" = [{{ name = \"items:approve\", expires = {expires} }}]"))
        .collect();
    format!(
        "[approvers]\nallowed_signers = \"{}\"\ngrants = {{ {} }}\n",
        file.display(),
        grants.join(", ")
    )
}

/// A call parked for `requester` under `config`: its record.
async fn parked_call(
    setup: &Setup,
    config: &Config,
    requester: &str,
) -> mcp_lp::approval::PendingCall {
    let conn = setup
        .connect(config, requester, ClientLifecycleMode::Initialize)
        .await;
    let id = parked_id(&rpc_error(conn.client.call_tool_once(params("cli")).await));
    Approvals::from_config(Arc::new(setup.store()), config, None)
        .expect("approvals")
        .get(&id)
        .await
        .expect("parked")
}

/// `by`'s verdict on `call`, signed with `key` as the command line signs it, from the
/// operating-system account `os_user`.
fn signed(
    config: &Config,
    call: &mcp_lp::approval::PendingCall,
    by: &str,
    os_user: &str,
    key: &std::path::Path,
) -> Approver {
    use mcp_lp::approval::signers;
    let signers = config.cli_approvers().expect("[approvers]");
    let mut verdict = mcp_lp::approval::Verdict {
        by: by.to_owned(),
        at: jiff::Timestamp::now().to_string(),
        reason: String::new(),
        door: Door::Cli,
        os_user: Some(os_user.to_owned()),
        signature: None,
    };
    let message = signers::verdict_message(call, &verdict, true);
    verdict.signature = Some(signers::sign(key, &message).expect("signed"));
    Approver {
        principal: signers.principal(by),
        verdict,
    }
}

#[tokio::test]
async fn refuses_second_cli_approval_by_the_same_os_user() {
    let setup = Setup::new();
    let (bob_key, bob) = ssh_key(setup.dir.path(), "bob");
    let (carol_key, carol) = ssh_key(setup.dir.path(), "carol");
    let config = setup.config(
        false,
        &format!(
            "[tools.delete_item]\napproval = {{ min = 2 }}\n{}",
            approvers_toml(
                &setup,
                &[("bob@example.com", &bob), ("carol@example.com", &carol)],
                &["bob@example.com", "carol@example.com"],
            )
        ),
    );
    let call = parked_call(&setup, &config, "two-cli@example.com").await;
    let approvals =
        Approvals::from_config(Arc::new(setup.store()), &config, None).expect("approvals");
    approvals
        .decide(
            &call.id,
            &signed(&config, &call, "bob@example.com", "ops", &bob_key),
            true,
        )
        .await
        .expect("bob approves");
    // One account holding both keys is one person.
    let second = approvals
        .decide(
            &call.id,
            &signed(&config, &call, "carol@example.com", "ops", &carol_key),
            true,
        )
        .await;
    assert_eq!(second, Err(ApprovalError::SameAccount("ops".into())));
    approvals
        .decide(
            &call.id,
            &signed(&config, &call, "carol@example.com", "carol", &carol_key),
            true,
        )
        .await
        .expect("carol, on her own account, approves");
}

#[tokio::test]
async fn refuses_cli_approval_without_the_approver_grant() {
    let setup = Setup::new();
    let (dave_key, dave) = ssh_key(setup.dir.path(), "dave");
    let (eve_key, _eve) = ssh_key(setup.dir.path(), "eve");
    // Dave's key is allowed, but no grant is configured for him.
    let config = setup.config(
        false,
        &approvers_toml(&setup, &[("dave@example.com", &dave)], &[]),
    );
    let call = parked_call(&setup, &config, "grantless@example.com").await;
    let approvals =
        Approvals::from_config(Arc::new(setup.store()), &config, None).expect("approvals");
    let refused = approvals
        .decide(
            &call.id,
            &signed(&config, &call, "dave@example.com", "dave", &dave_key),
            true,
        )
        .await;
    assert_eq!(
        refused,
        Err(ApprovalError::LacksGrant("items:approve".into()))
    );
    // A key the allowed signers do not list for the name it signs as is no approver either.
    let impostor = approvals
        .decide(
            &call.id,
            &signed(&config, &call, "dave@example.com", "eve", &eve_key),
            true,
        )
        .await
        .unwrap_err();
    assert_eq!(impostor.code(), "bad_signature");
    let call = approvals.get(&call.id).await.expect("kept");
    assert!(call.approvals.is_empty());
}

#[tokio::test]
async fn rejects_self_approval_across_principal_and_os_user_names() {
    let setup = Setup::new();
    let (alice_key, alice) = ssh_key(setup.dir.path(), "alice");
    let (bob_key, bob) = ssh_key(setup.dir.path(), "bob");
    let config = setup.config(
        false,
        &approvers_toml(
            &setup,
            &[("ALICE@example.com", &alice), ("bob@example.com", &bob)],
            &["ALICE@example.com", "bob@example.com"],
        ),
    );
    let call = parked_call(&setup, &config, "alice@example.com").await;
    let approvals =
        Approvals::from_config(Arc::new(setup.store()), &config, None).expect("approvals");
    // Her own name written otherwise, with a key listed for it.
    let by_name = approvals
        .decide(
            &call.id,
            &signed(&config, &call, "ALICE@example.com", "ops", &alice_key),
            true,
        )
        .await;
    assert_eq!(by_name, Err(ApprovalError::Requester));
    // Bob's key, used from alice's own account.
    let by_account = approvals
        .decide(
            &call.id,
            &signed(&config, &call, "bob@example.com", "alice", &bob_key),
            true,
        )
        .await;
    assert_eq!(by_account, Err(ApprovalError::Requester));
    approvals
        .decide(
            &call.id,
            &signed(&config, &call, "bob@example.com", "bob", &bob_key),
            true,
        )
        .await
        .expect("bob, on his own account, approves");
}

/// An approval channel of its own, as a crate would add one: each notice it is given, or a
/// failure to deliver.
struct Channel {
    sent: tokio::sync::mpsc::UnboundedSender<(Notice, PendingCall)>,
    fails: bool,
}

impl ApprovalNotifier for Channel {
    fn describe(&self) -> String {
        "test channel".into()
    }

    fn notify(
        &self,
        notice: Notice,
        call: PendingCall,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            if self.fails {
                return Err("the channel is down".into());
            }
            self.sent.send((notice, call)).map_err(|e| e.to_string())
        })
    }
}

fn channel(
    fails: bool,
) -> (
    Channel,
    tokio::sync::mpsc::UnboundedReceiver<(Notice, PendingCall)>,
) {
    let (sent, received) = tokio::sync::mpsc::unbounded_channel();
    (Channel { sent, fails }, received)
}

async fn next_notice(
    received: &mut tokio::sync::mpsc::UnboundedReceiver<(Notice, PendingCall)>,
) -> (Notice, PendingCall) {
    tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("a notice within the deadline")
        .expect("the channel is open")
}

#[tokio::test]
async fn accepts_notifier_told_of_the_waiting_call_and_each_verdict() {
    let setup = Setup::new();
    let (notifier, mut received) = channel(false);
    let server = mcp_lp::Server::new(setup.server.clone()).notify_approvals(notifier);
    let conn = connect_with(
        server,
        &setup.config(false, ""),
        requester("notified@example.com"),
        ClientLifecycleMode::Initialize,
    )
    .await;
    let id = parked_id(&rpc_error(
        conn.client.call_tool_once(params("report-9")).await,
    ));
    let (notice, call) = next_notice(&mut received).await;
    assert_eq!(notice, Notice::Waiting);
    assert_eq!(
        (
            call.id.as_str(),
            call.tool.as_str(),
            call.principal.as_str()
        ),
        (id.as_str(), "delete_item", "notified@example.com")
    );
    assert!(call.approvals.is_empty());

    // A verdict through the approvals that the doors use tells the channel too.
    let (notifier, mut received) = channel(false);
    let approvals = setup.approvals().with_notifier(Arc::new(notifier));
    let approver =
        Principal::new("bob@example.com").with_grant(Grant::new("items:approve").expect("grant"));
    approvals
        .decide(
            &id,
            &Approver::new(approver, Door::Api, String::new()),
            true,
        )
        .await
        .expect("approved");
    let (notice, call) = next_notice(&mut received).await;
    assert_eq!(notice, Notice::Approved);
    assert_eq!(call.approvals.len(), 1);
    assert_eq!(call.approvals[0].by, "bob@example.com");
    assert_eq!(setup.deletes(), 0, "a notice runs nothing");
}

#[tokio::test]
async fn keeps_parking_when_a_notifier_fails() {
    let setup = Setup::new();
    let audit = Recorder::global();
    let (notifier, _received) = channel(true);
    let server = mcp_lp::Server::new(setup.server.clone()).notify_approvals(notifier);
    let conn = connect_with(
        server,
        &setup.config(false, ""),
        requester("unnotified@example.com"),
        ClientLifecycleMode::Initialize,
    )
    .await;
    let error = rpc_error(conn.client.call_tool_once(params("report-10")).await);
    assert_eq!(refusal_code(&error), "approval_required", "{error:?}");
    let id = parked_id(&error);
    setup.store().get(&id).await.expect("parked all the same");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let failed = audit
            .audit_events()
            .into_iter()
            .find(|e| e["event"] == "approval_notice_failed" && e["approval"] == id.as_str());
        if let Some(event) = failed {
            assert_eq!(event["notifier"], "test channel");
            assert_eq!(event["notice"], "waiting");
            assert_eq!(event["reason"], "the channel is down");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no approval_notice_failed event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
