//! The checkpoint answers what is about tools itself and hands every other method of rmcp's
//! `ServerHandler` to the service's own handler: each request and notification below reaches the
//! service, none is answered by a default that was forgotten.
// Logging is deprecated in rmcp (SEP-2577) but still a `ServerHandler` method: it is delegated.
#![allow(deprecated)]

use std::sync::{Arc, Mutex};

use mcp_lp::transport::LineTransport;
use mcp_lp::{Checkpoint, Config, Principal};
use rmcp::model::*;
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// A server whose own handler records every method that reaches it, and answers each request
/// with an error naming it.
#[derive(Clone, Default)]
struct Everything {
    seen: Arc<Mutex<Vec<&'static str>>>,
}

#[mcp_lp::server(handler)]
impl Everything {
    /// A tool, served by the checkpoint.
    #[tool]
    async fn noop(&self) -> String {
        String::new()
    }
}

impl Everything {
    fn saw(&self, method: &'static str) -> ErrorData {
        self.seen
            .lock()
            .expect("the record of methods")
            .push(method);
        ErrorData::new(ErrorCode(-32099), format!("reached {method}"), None)
    }

    fn noted(&self, method: &'static str) {
        self.seen
            .lock()
            .expect("the record of methods")
            .push(method);
    }
}

type Ctx = RequestContext<RoleServer>;
type Note = NotificationContext<RoleServer>;

impl rmcp::ServerHandler for Everything {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_completions()
                .enable_logging()
                .enable_prompts()
                .enable_resources()
                .enable_tasks()
                .enable_skills_with_directory_read()
                .build(),
        )
    }
    async fn complete(
        &self,
        _: CompleteRequestParams,
        _: Ctx,
    ) -> Result<CompleteResult, ErrorData> {
        Err(self.saw("completion/complete"))
    }
    async fn set_level(&self, _: SetLevelRequestParams, _: Ctx) -> Result<(), ErrorData> {
        Err(self.saw("logging/setLevel"))
    }
    async fn get_prompt(
        &self,
        _: GetPromptRequestParams,
        _: Ctx,
    ) -> Result<GetPromptResponse, ErrorData> {
        Err(self.saw("prompts/get"))
    }
    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        _: Ctx,
    ) -> Result<ListPromptsResult, ErrorData> {
        Err(self.saw("prompts/list"))
    }
    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: Ctx,
    ) -> Result<ListResourcesResult, ErrorData> {
        Err(self.saw("resources/list"))
    }
    async fn list_resource_templates(
        &self,
        _: Option<PaginatedRequestParams>,
        _: Ctx,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Err(self.saw("resources/templates/list"))
    }
    async fn read_resource(
        &self,
        _: ReadResourceRequestParams,
        _: Ctx,
    ) -> Result<ReadResourceResponse, ErrorData> {
        Err(self.saw("resources/read"))
    }
    #[allow(deprecated)]
    async fn subscribe(&self, _: SubscribeRequestParams, _: Ctx) -> Result<(), ErrorData> {
        Err(self.saw("resources/subscribe"))
    }
    #[allow(deprecated)]
    async fn unsubscribe(&self, _: UnsubscribeRequestParams, _: Ctx) -> Result<(), ErrorData> {
        Err(self.saw("resources/unsubscribe"))
    }
    async fn on_custom_request(&self, _: CustomRequest, _: Ctx) -> Result<CustomResult, ErrorData> {
        Err(self.saw("x-custom/request"))
    }
    async fn get_task(&self, _: GetTaskParams, _: Ctx) -> Result<GetTaskResult, ErrorData> {
        Err(self.saw("tasks/get"))
    }
    async fn update_task(&self, _: UpdateTaskParams, _: Ctx) -> Result<(), ErrorData> {
        Err(self.saw("tasks/update"))
    }
    async fn cancel_task(&self, _: CancelTaskParams, _: Ctx) -> Result<(), ErrorData> {
        Err(self.saw("tasks/cancel"))
    }
    async fn list_skills(
        &self,
        _: Option<PaginatedRequestParams>,
        _: Ctx,
    ) -> Result<ListSkillsResult, ErrorData> {
        Err(self.saw("skills/list"))
    }
    async fn get_skill(
        &self,
        _: GetSkillRequestParams,
        _: Ctx,
    ) -> Result<GetSkillResult, ErrorData> {
        Err(self.saw("skills/get"))
    }
    async fn read_resource_directory(
        &self,
        _: ReadResourceDirectoryRequestParams,
        _: Ctx,
    ) -> Result<ReadResourceDirectoryResult, ErrorData> {
        Err(self.saw("resources/directory/read"))
    }
    async fn on_cancelled(&self, _: CancelledNotificationParam, _: Note) {
        self.noted("notifications/cancelled");
    }
    async fn on_progress(&self, _: ProgressNotificationParam, _: Note) {
        self.noted("notifications/progress");
    }
    async fn on_initialized(&self, _: Note) {
        self.noted("notifications/initialized");
    }
    async fn on_roots_list_changed(&self, _: Note) {
        self.noted("notifications/roots/list_changed");
    }
    async fn on_custom_notification(&self, _: CustomNotification, _: Note) {
        self.noted("notifications/x-custom");
    }
}

/// Every request method the service's handler answers, with parameters it can read.
const REQUESTS: &[(&str, &str)] = &[
    (
        "completion/complete",
        r#"{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"b"}}"#,
    ),
    ("logging/setLevel", r#"{"level":"info"}"#),
    ("prompts/get", r#"{"name":"p"}"#),
    ("prompts/list", "{}"),
    ("resources/list", "{}"),
    ("resources/templates/list", "{}"),
    ("resources/read", r#"{"uri":"x://y"}"#),
    ("resources/subscribe", r#"{"uri":"x://y"}"#),
    ("resources/unsubscribe", r#"{"uri":"x://y"}"#),
    ("tasks/get", r#"{"taskId":"t"}"#),
    ("tasks/update", r#"{"taskId":"t","inputResponses":{}}"#),
    ("tasks/cancel", r#"{"taskId":"t"}"#),
    ("skills/list", "{}"),
    ("skills/get", r#"{"uri":"skill://s/SKILL.md"}"#),
    ("resources/directory/read", r#"{"uri":"x://d/"}"#),
    ("x-custom/request", "{}"),
];

/// Every notification the service's handler receives.
const NOTIFICATIONS: &[(&str, &str)] = &[
    ("notifications/cancelled", r#"{"requestId":999}"#),
    (
        "notifications/progress",
        r#"{"progressToken":"p","progress":1}"#,
    ),
    ("notifications/roots/list_changed", "{}"),
    ("notifications/x-custom", "{}"),
];

#[tokio::test]
async fn delegates_every_other_server_handler_method_to_the_service() {
    let server = Everything::default();
    let seen = Arc::clone(&server.seen);
    let checkpoint = Checkpoint::new(server, &Config::defaults(), Principal::new("d@example.com"))
        .expect("checkpoint");
    let (client, end) = tokio::io::duplex(1 << 16);
    let (read, write) = tokio::io::split(end);
    tokio::spawn(checkpoint.serve_lines(LineTransport::new(read, write)));
    let (client_read, mut client_write) = tokio::io::split(client);
    let mut replies = BufReader::new(client_read).lines();
    let mut send = async |line: String| {
        client_write.write_all(line.as_bytes()).await.unwrap();
        client_write.write_all(b"\n").await.unwrap();
    };
    send(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}},"clientInfo":{"name":"raw","version":"0"}}}"#.into()).await;
    send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into()).await;
    let mut answers = Vec::new();
    for (i, (method, params)) in REQUESTS.iter().enumerate() {
        send(format!(
            r#"{{"jsonrpc":"2.0","id":{},"method":"{method}","params":{params}}}"#,
            i + 10
        ))
        .await;
    }
    for (method, params) in NOTIFICATIONS {
        send(format!(
            r#"{{"jsonrpc":"2.0","method":"{method}","params":{params}}}"#
        ))
        .await;
    }
    // A ping last: answered once everything before it was handled.
    send(r#"{"jsonrpc":"2.0","id":99,"method":"ping"}"#.into()).await;
    while let Some(line) = replies.next_line().await.unwrap() {
        let reply: Value = serde_json::from_str(&line).unwrap();
        let done = reply["id"] == 99;
        answers.push(reply);
        if done {
            break;
        }
    }
    for (i, (method, _)) in REQUESTS.iter().enumerate() {
        let reply = answers
            .iter()
            .find(|a| a["id"] == json!(i + 10))
            .unwrap_or_else(|| panic!("no answer to {method}: {answers:#?}"));
        assert_eq!(
            reply["error"]["message"],
            format!("reached {method}"),
            "{method} was not handed to the service: {reply}"
        );
    }
    // Notifications are handled as they arrive; give the last ones a moment.
    for _ in 0..100 {
        if seen.lock().unwrap().len() > REQUESTS.len() + NOTIFICATIONS.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let seen = seen.lock().unwrap().clone();
    for (method, _) in REQUESTS.iter().chain(NOTIFICATIONS) {
        assert!(
            seen.contains(method),
            "{method} never reached the service: {seen:?}"
        );
    }
    assert!(seen.contains(&"notifications/initialized"), "{seen:?}");
}
