//! Fixtures for mcp-lp's integration tests and benchmarks: servers with tools that exercise
//! every branch of the checkpoint, an in-process client connected over a byte pipe, and an
//! audit-event recorder; and the benchmarks' shared helpers in [`mod@bench`].

pub mod bench;
pub mod http;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mcp_lp::prelude::*;
use mcp_lp::transport::LineTransport;
use mcp_lp::{Checkpoint, Config, Principal};
use rmcp::handler::server::tool::{InputResponses, RequestState};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ElicitRequest,
    ElicitRequestParams, ElicitationSchema, InputRequest, InputRequiredResult, JsonObject,
    ProtocolVersion,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt as _, RunningService, ServiceError};
use rmcp::{RoleClient, ServiceExt as _};
use serde::Deserialize;

/// Arguments of the `echo` tools.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// The text to return.
    pub text: String,
}

/// A server whose tools each exercise one branch of the checkpoint. Counts handler runs, so a
/// test can prove a refused call never reached its handler.
#[derive(Debug, Clone, Default)]
pub struct Fixture {
    /// How many handlers have started.
    pub runs: Arc<AtomicUsize>,
    /// How many handlers were dropped before finishing (cancelled).
    pub cancelled: Arc<AtomicUsize>,
}

struct CancelGuard(Option<Arc<AtomicUsize>>);

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(counter) = self.0.take() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[mcp_lp::server]
impl Fixture {
    /// Return the text.
    #[tool]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        args.text
    }

    /// Return the text; needs `fixture:admin`.
    #[tool(requires = "fixture:admin")]
    async fn admin_echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        args.text
    }

    /// Needs two grants.
    #[tool(requires = ["fixture:admin", "fixture:audit"])]
    async fn two_grants(&self) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        "ok".into()
    }

    /// Sleep far longer than its timeout.
    #[tool(timeout = "200ms")]
    async fn slow(&self) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let mut guard = CancelGuard(Some(Arc::clone(&self.cancelled)));
        tokio::time::sleep(Duration::from_secs(30)).await;
        guard.0 = None;
        "finished".into()
    }

    /// Return more than its output cap.
    #[tool(max_output_bytes = 256)]
    async fn big(&self) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        "x".repeat(10_000)
    }

    /// Panic.
    #[tool]
    async fn boom(&self) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        panic!("handler bug")
    }

    /// Fail with a tool error.
    #[tool]
    async fn fail(&self) -> Result<String, ToolError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Err(ToolError::invalid_argument("text", "is not welcome"))
    }

    /// Say which tool and principal the call runs as.
    #[tool]
    async fn whoami(&self, scope: CallScope) -> String {
        format!("{} as {}", scope.tool().name, scope.principal().id())
    }

    /// A multi-round-trip tool (MCP 2026-07-28): the first round asks for a confirmation and
    /// hands out the state [`ARMED`]; a retry bringing that state back with an answer runs
    /// (counted in `runs`) and says what state it was given.
    #[tool]
    async fn confirm(
        &self,
        Parameters(args): Parameters<EchoArgs>,
        RequestState(state): RequestState,
        InputResponses(answers): InputResponses,
    ) -> CallToolResponse {
        match (state, answers) {
            (Some(state), Some(_)) => {
                self.runs.fetch_add(1, Ordering::SeqCst);
                let done = format!("confirmed {} with state {state}", args.text);
                CallToolResult::success(vec![ContentBlock::text(done)]).into()
            }
            _ => {
                let schema = ElicitationSchema::builder()
                    .required_bool("ok")
                    .build()
                    .expect("a one-field form");
                let question = InputRequest::Elicitation(ElicitRequest::new(
                    ElicitRequestParams::FormElicitationParams {
                        meta: None,
                        message: format!("Confirm {}?", args.text),
                        requested_schema: schema,
                    },
                ));
                let requests = [("confirmation".to_owned(), question)]
                    .into_iter()
                    .collect();
                InputRequiredResult::new(Some(requests), Some(ARMED.into())).into()
            }
        }
    }
}

/// The state the `confirm` tool hands out in its first round.
pub const ARMED: &str = "armed";

/// A client connected in-process to a server, and the server's task.
pub struct Connection {
    /// The rmcp client.
    pub client: RunningService<RoleClient, ()>,
}

impl Connection {
    /// Call `tool` with `arguments`.
    pub async fn call(
        &self,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<CallToolResult, ServiceError> {
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let serde_json::Value::Object(object) = arguments {
            params = params.with_arguments(object);
        }
        self.client.call_tool(params).await
    }

    /// Call `tool` and return whether it was an error result, and its text.
    pub async fn text(&self, tool: &str, arguments: serde_json::Value) -> (bool, String) {
        let result = self
            .call(tool, arguments)
            .await
            .expect("tools/call answered");
        (result.is_error == Some(true), text(&result).to_owned())
    }

    /// The names `tools/list` shows.
    pub async fn tool_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .client
            .list_all_tools()
            .await
            .expect("tools/list")
            .into_iter()
            .map(|t| t.name.into_owned())
            .collect();
        names.sort();
        names
    }
}

/// Serve `server` (a service, or a `mcp_lp::Server` with its providers) behind the checkpoint
/// for `principal` with configuration `config_toml`, and connect an rmcp client to it over an
/// in-memory pipe.
pub async fn connect<S: mcp_lp::ToolSet>(
    server: impl Into<mcp_lp::Server<S>>,
    config_toml: &str,
    principal: Principal,
) -> Connection {
    let config = Config::from_toml(config_toml, "test.toml").expect("test configuration");
    connect_with(server, &config, principal, ClientLifecycleMode::Initialize).await
}

/// [`connect`] with a loaded configuration, the client starting its lifecycle as `lifecycle`
/// says: `initialize` (2025-11-25) or `server/discover` (2026-07-28, stateless).
pub async fn connect_with<S: mcp_lp::ToolSet>(
    server: impl Into<mcp_lp::Server<S>>,
    config: &Config,
    principal: Principal,
    lifecycle: ClientLifecycleMode,
) -> Connection {
    let checkpoint = Checkpoint::new(server, config, principal).expect("checkpoint");
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (server_read, server_write) = tokio::io::split(server_io);
    tokio::spawn(async move {
        let running = checkpoint
            .serve(LineTransport::new(server_read, server_write))
            .await
            .expect("server starts");
        let _ = running.waiting().await;
    });
    let client =
        ().serve_with_lifecycle(tokio::io::split(client_io), lifecycle)
            .await
            .expect("client connects");
    Connection { client }
}

/// The lifecycle of a client that speaks MCP 2026-07-28 only: `server/discover`, then
/// self-contained requests.
pub fn stateless() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

/// The stable code of a refused call (`data.code`), what tests match rather than the prose.
pub fn refusal_code(error: &rmcp::ErrorData) -> &str {
    error
        .data
        .as_ref()
        .and_then(|data| data["code"].as_str())
        .unwrap_or_default()
}

/// The text of a result's first content block.
pub fn text(result: &CallToolResult) -> &str {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map_or("", |t| t.text.as_str())
}

/// JSON arguments as an rmcp object.
pub fn object(value: serde_json::Value) -> JsonObject {
    match value {
        serde_json::Value::Object(object) => object,
        _ => JsonObject::new(),
    }
}

/// Records the JSON lines the process's tracing subscriber writes.
///
/// One global subscriber, like the CLI's JSON one, is installed on first use: thread-local
/// subscribers race with tracing's per-callsite interest cache when tests run in parallel.
/// Tests tell their events apart by giving each its own principal.
#[derive(Clone)]
pub struct Recorder(Arc<Mutex<Vec<u8>>>);

impl Recorder {
    /// The process-wide recorder, capturing every event at TRACE level.
    pub fn global() -> Self {
        static RECORDER: OnceLock<Recorder> = OnceLock::new();
        RECORDER
            .get_or_init(|| {
                let recorder = Recorder(Arc::default());
                let writer = recorder.clone();
                let subscriber = tracing_subscriber::fmt()
                    .json()
                    .flatten_event(true)
                    .with_max_level(tracing::Level::TRACE)
                    .with_writer(move || writer.clone())
                    .finish();
                tracing::subscriber::set_global_default(subscriber)
                    .expect("no other global subscriber in the test process");
                recorder
            })
            .clone()
    }

    /// Everything written so far, by every test in the process.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("recorder lock")).into_owned()
    }

    /// The audit events written so far for calls by `principal`.
    pub fn audit_events_of(&self, principal: &str) -> Vec<serde_json::Value> {
        self.audit_events()
            .into_iter()
            .filter(|event| event["principal"] == principal)
            .collect()
    }

    /// Every audit event written so far: the sealed line each `tracing` event carries.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["target"] == mcp_lp::audit::AUDIT_TARGET)
            .filter_map(|event| serde_json::from_str(event["chained"].as_str()?).ok())
            .collect()
    }
}

impl std::io::Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("recorder lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A server with a resource of its own: its `ServerHandler` serves everything but tools.
#[derive(Debug, Clone, Default)]
pub struct WithResources;

#[mcp_lp::server(handler)]
impl WithResources {
    /// Needs `fixture:admin`.
    #[tool(requires = "fixture:admin")]
    async fn purge(&self) -> String {
        "purged".into()
    }
}

impl rmcp::ServerHandler for WithResources {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            rmcp::model::ServerCapabilities::builder()
                .enable_resources()
                .build(),
        )
    }

    async fn list_resources(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, rmcp::ErrorData> {
        let resource = rmcp::model::Resource::new("fixture://readme", "readme");
        Ok(rmcp::model::ListResourcesResult::with_all_items(vec![
            resource,
        ]))
    }
}

/// The `echo` tool on plain rmcp, with its router built once as rmcp's examples do: the baseline
/// of the benchmarks.
#[derive(Clone)]
pub struct PlainEcho {
    tool_router: rmcp::handler::server::router::tool::ToolRouter<Self>,
}

impl PlainEcho {
    /// The plain server.
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

impl Default for PlainEcho {
    fn default() -> Self {
        Self::new()
    }
}

#[rmcp::tool_router]
impl PlainEcho {
    /// Return the text.
    #[rmcp::tool]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }
}

#[rmcp::tool_handler(router = self.tool_router)]
impl rmcp::ServerHandler for PlainEcho {}

/// The same `echo` tool on mcp-lp, requiring the grant `bench:echo` so the whole authorization
/// path runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedEcho;

#[mcp_lp::server]
impl GuardedEcho {
    /// Return the text.
    #[tool(requires = "bench:echo")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }
}

/// The same `echo` tool on mcp-lp with no grant required: the checkpoint without the
/// authorization it would refuse, for servers without authentication.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenEcho;

#[mcp_lp::server]
impl OpenEcho {
    /// Return the text.
    #[tool]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }
}

/// A tool with a rate limit in its attribute.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limited;

#[mcp_lp::server]
impl Limited {
    /// Return the text; at most two calls per minute per principal, unless configured otherwise.
    #[tool(rate = "2/min")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }
}

/// The header names of the HTTP request a handler's context carries, sorted and joined by
/// commas: what a handler could read of the caller's request.
fn header_names(context: &rmcp::service::RequestContext<rmcp::RoleServer>) -> String {
    let Some(parts) = context.extensions.get::<::http::request::Parts>() else {
        return "no HTTP request".into();
    };
    let mut names: Vec<&str> = parts.headers.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names.join(",")
}

/// A server whose tool, resource list and prompt list each report the request headers they
/// can see.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeaderProbe;

#[mcp_lp::server(handler)]
impl HeaderProbe {
    /// The names of the request headers this handler sees.
    #[tool]
    async fn headers(&self, context: rmcp::service::RequestContext<rmcp::RoleServer>) -> String {
        header_names(&context)
    }
}

impl rmcp::ServerHandler for HeaderProbe {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            rmcp::model::ServerCapabilities::builder()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
    }

    async fn list_resources(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, rmcp::ErrorData> {
        let resource = rmcp::model::Resource::new("probe://headers", header_names(&context));
        Ok(rmcp::model::ListResourcesResult::with_all_items(vec![
            resource,
        ]))
    }

    async fn list_prompts(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListPromptsResult, rmcp::ErrorData> {
        let prompt = rmcp::model::Prompt::new("headers", Some(header_names(&context)), None);
        Ok(rmcp::model::ListPromptsResult::with_all_items(vec![prompt]))
    }
}

/// A destructive tool that needs a person's approval of each call, and a harmless one. Counts
/// the destructive tool's runs, so a test can prove a call ran exactly once, or never.
#[derive(Debug, Clone, Default)]
pub struct Approved {
    /// How many times `delete_item` ran.
    pub deletes: Arc<AtomicUsize>,
    /// How many times `purge_items` finished its second round, where its effect happens.
    pub purges: Arc<AtomicUsize>,
}

#[mcp_lp::server]
impl Approved {
    /// Delete one item for good.
    #[tool(requires = "items:delete", approval = "items:approve")]
    async fn delete_item(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        format!("deleted {}", args.text)
    }

    /// Read one item.
    #[tool]
    async fn read_item(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }

    /// Purge items, in two rounds (MCP 2026-07-28): the approved call asks which items and
    /// hands out the state [`ARMED`]; the round that brings it back purges (counted in
    /// `purges`).
    #[tool(requires = "items:delete", approval = "items:approve")]
    async fn purge_items(
        &self,
        Parameters(args): Parameters<EchoArgs>,
        RequestState(state): RequestState,
    ) -> CallToolResponse {
        match state {
            Some(state) => {
                self.purges.fetch_add(1, Ordering::SeqCst);
                let done = format!("purged {} with state {state}", args.text);
                CallToolResult::success(vec![ContentBlock::text(done)]).into()
            }
            None => {
                let schema = ElicitationSchema::builder()
                    .required_bool("ok")
                    .build()
                    .expect("a one-field form");
                let question = InputRequest::Elicitation(ElicitRequest::new(
                    ElicitRequestParams::FormElicitationParams {
                        meta: None,
                        message: format!("Purge {}?", args.text),
                        requested_schema: schema,
                    },
                ));
                let requests = [("confirmation".to_owned(), question)]
                    .into_iter()
                    .collect();
                InputRequiredResult::new(Some(requests), Some(ARMED.into())).into()
            }
        }
    }
}
