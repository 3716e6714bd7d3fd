//! The conformance server: the fixtures the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`) calls, served by mcp-lp over streamable HTTP.
//!
//! Its tools are ordinary mcp-lp tools, so every `tools/call` passes the checkpoint (policy
//! lookup, authorization, limits, one audit event) before a fixture runs. Resources, prompts,
//! completion and logging are served by the server's own `rmcp::ServerHandler` (see `handler`),
//! which `#[mcp_lp::server(handler)]` plugs in beside the checkpoint.
//!
//! ```sh
//! cargo run -p conformance-server -- --config examples/conformance-server/mcp-lp.toml serve --http
//! ./scripts/conformance.sh    # build, serve on a free port, run the suite, stop
//! ```
//!
//! Every fixture name and payload is the one the suite's scenario documentation asks for.

// rmcp deprecates logging, sampling and resource subscriptions in favour of protocol 2026-07-28
// (SEP-2577), but they are part of 2025-11-25, the version this server and the suite speak.
#![allow(deprecated)]

mod handler;
mod input_required;
mod media;

use std::sync::Arc;
use std::time::Duration;

use mcp_lp::prelude::*;
use rmcp::handler::server::tool::{InputResponses as Answers, RequestState};
use rmcp::model::{
    CallToolResponse, CallToolResult, ClientCapabilities, ContentBlock, CreateMessageRequestParams,
    ElicitRequestParams, ElicitResult, ElicitationSchema, EnumSchema, InputRequiredResult,
    LegacyEnumSchema, LoggingLevel, LoggingMessageNotificationParam, ProgressNotificationParam,
    RequestMetaObject, ResourceContents, SamplingMessage,
};
use rmcp::service::{ElicitationMode, RequestContext};
use rmcp::{ErrorData, Peer, RoleServer};
use serde::Deserialize;
use serde_json::json;

use crate::handler::LogThreshold;
use crate::input_required::{
    answer, ask_bool, ask_llm, ask_roots, ask_text, content_str, requests,
};

/// How long the logging and progress fixtures pause between two notifications, so that a
/// client sees them arrive one by one while the call is still running.
const STEP: Duration = Duration::from_millis(50);

/// The conformance fixtures. Clones share the logging threshold.
#[derive(Debug, Clone, Default)]
struct Conformance {
    /// The least severe level of `notifications/message` the client asked for.
    log_threshold: Arc<LogThreshold>,
}

/// Arguments of `test_sampling`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct SamplingArgs {
    /// The prompt to send to the client's LLM.
    prompt: String,
}

/// Arguments of `test_elicitation`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ElicitationArgs {
    /// The message to show the user.
    message: String,
}

/// Arguments of `json_schema_2020_12_tool`: a schema with `$defs`, a `$ref` and
/// `additionalProperties: false`, which a server must list unchanged (SEP-1613).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Person {
    /// The person's name.
    name: Option<String>,
    /// Where the person lives.
    address: Option<Address>,
}

/// A postal address, listed under `$defs/address`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "address")]
struct Address {
    /// The street and number.
    street: Option<String>,
    /// The city.
    city: Option<String>,
}

#[mcp_lp::server(
    handler,
    instructions = "The fixtures of the MCP conformance suite: tools, resources, prompts, completion and logging."
)]
impl Conformance {
    /// Return a simple text (scenario `tools-call-simple-text`).
    #[tool]
    async fn test_simple_text(&self) -> String {
        "This is a simple text response for testing.".into()
    }

    /// Return a 1x1 red PNG image (scenario `tools-call-image`).
    #[tool]
    async fn test_image_content(&self) -> ContentBlock {
        ContentBlock::image(media::red_pixel_png(), "image/png")
    }

    /// Return a short WAV clip of silence (scenario `tools-call-audio`).
    #[tool]
    async fn test_audio_content(&self) -> ContentBlock {
        ContentBlock::audio(media::silence_wav(), "audio/wav")
    }

    /// Return an embedded text resource (scenario `tools-call-embedded-resource`).
    #[tool]
    async fn test_embedded_resource(&self) -> ContentBlock {
        ContentBlock::resource(ResourceContents::text(
            "This is an embedded resource content.",
            "test://embedded-resource",
        ))
    }

    /// Return text, an image and an embedded resource in one result (scenario
    /// `tools-call-mixed-content`).
    #[tool]
    async fn test_multiple_content_types(&self) -> CallToolResult {
        let data = json!({"test": "data", "value": 123}).to_string();
        CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(media::red_pixel_png(), "image/png"),
            ContentBlock::resource(
                ResourceContents::text(data, "test://mixed-content-resource")
                    .with_mime_type("application/json"),
            ),
        ])
    }

    /// Send three log messages at level info while running (scenario
    /// `tools-call-with-logging`); messages below the level set with `logging/setLevel` are
    /// not sent.
    #[tool]
    async fn test_tool_with_logging(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<String, ToolError> {
        let steps = [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed",
        ];
        for (i, message) in steps.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(STEP).await;
            }
            self.log(&context.peer, LoggingLevel::Info, message).await?;
        }
        Ok("Tool with logging executed successfully: sent 3 log messages".into())
    }

    /// Always fail, with an error result the caller can read (scenario `tools-call-error`).
    #[tool]
    async fn test_error_handling(&self) -> Result<String, ToolError> {
        Err(ToolError::new(
            "This tool intentionally returns an error for testing",
        ))
    }

    /// Report progress 0, 50 and 100 of 100 when the request carries a progress token (scenario
    /// `tools-call-with-progress`).
    #[tool]
    async fn test_tool_with_progress(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<String, ToolError> {
        let token = context.meta.get_progress_token();
        for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(STEP).await;
            }
            if let Some(token) = &token {
                let notification =
                    ProgressNotificationParam::new(token.clone(), progress).with_total(100.0);
                context
                    .peer
                    .notify_progress(notification)
                    .await
                    .map_err(|e| ToolError::new(format!("cannot report progress: {e}")))?;
            }
        }
        Ok(match token {
            Some(_) => "Tool with progress executed successfully: reported 3 steps".into(),
            None => "Tool with progress executed successfully (no progress token was sent)".into(),
        })
    }

    /// Ask the client's LLM to answer a prompt (`sampling/createMessage`) and return its answer
    /// (scenario `tools-call-sampling`).
    #[tool]
    async fn test_sampling(
        &self,
        peer: Peer<RoleServer>,
        Parameters(args): Parameters<SamplingArgs>,
    ) -> Result<String, ToolError> {
        let supported = peer
            .peer_info()
            .is_some_and(|client| client.capabilities.sampling.is_some());
        if !supported {
            return Err(ToolError::new(
                "the client does not support sampling: it declared no `sampling` capability",
            ));
        }
        let request =
            CreateMessageRequestParams::new(vec![SamplingMessage::user_text(args.prompt)], 100);
        let response = peer
            .create_message(request)
            .await
            .map_err(|e| ToolError::new(format!("sampling failed: {e}")))?;
        let text: Vec<&str> = response
            .message
            .content
            .iter()
            .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
            .collect();
        Ok(format!("LLM response: {}", text.join("\n")))
    }

    /// Ask the user for a username and an email address (`elicitation/create`) and return the
    /// answer (scenario `tools-call-elicitation`).
    #[tool]
    async fn test_elicitation(
        &self,
        peer: Peer<RoleServer>,
        Parameters(args): Parameters<ElicitationArgs>,
    ) -> Result<String, ToolError> {
        let schema = ElicitationSchema::builder()
            .required_string_property("username", |s| s.description("User's response"))
            .required_string_property("email", |s| s.description("User's email address"))
            .build()
            .map_err(ToolError::new)?;
        let result = elicit(&peer, args.message, schema).await?;
        Ok(format!("User response: {}", describe(&result)))
    }

    /// Ask the user for values whose schema gives a default for every primitive type
    /// (scenario `elicitation-sep1034-defaults`, SEP-1034).
    #[tool]
    async fn test_elicitation_sep1034_defaults(
        &self,
        peer: Peer<RoleServer>,
    ) -> Result<String, ToolError> {
        let status = EnumSchema::builder(strings(&["active", "inactive", "pending"]))
            .description("User status")
            .with_default("active")
            .map_err(ToolError::new)?
            .build();
        let schema = ElicitationSchema::builder()
            .string_property("name", |s| {
                s.description("User name").with_default("John Doe")
            })
            .integer_property("age", |s| s.description("User age").with_default(30))
            .number_property("score", |s| s.description("User score").with_default(95.5))
            .optional_enum_schema("status", status)
            .bool_property("verified", |s| {
                s.description("Verification status").with_default(true)
            })
            .build()
            .map_err(ToolError::new)?;
        let message = "Test client default value handling - please accept with defaults";
        let result = elicit(&peer, message.into(), schema).await?;
        Ok(format!("Elicitation completed: {}", describe(&result)))
    }

    /// Ask the user to choose from the five kinds of enum schema: untitled and titled single
    /// select, the legacy `enumNames` form, untitled and titled multi-select (scenario
    /// `elicitation-sep1330-enums`, SEP-1330).
    #[tool]
    async fn test_elicitation_sep1330_enums(
        &self,
        peer: Peer<RoleServer>,
    ) -> Result<String, ToolError> {
        let options = strings(&["option1", "option2", "option3"]);
        let values = strings(&["value1", "value2", "value3"]);
        let untitled_single = EnumSchema::builder(options.clone())
            .description("Untitled single-select")
            .build();
        let titled_single = EnumSchema::builder(values.clone())
            .description("Titled single-select")
            .enum_titles(strings(&["First Option", "Second Option", "Third Option"]))
            .map_err(ToolError::new)?
            .build();
        let mut legacy = LegacyEnumSchema::new(strings(&["opt1", "opt2", "opt3"]));
        legacy.description = Some("Legacy titled enum (enumNames)".into());
        legacy.enum_names = Some(strings(&["Option One", "Option Two", "Option Three"]));
        let untitled_multi = EnumSchema::builder(options)
            .description("Untitled multi-select")
            .multiselect()
            .build();
        let titled_multi = EnumSchema::builder(values)
            .description("Titled multi-select")
            .multiselect()
            .enum_titles(strings(&["First Choice", "Second Choice", "Third Choice"]))
            .map_err(ToolError::new)?
            .build();
        let schema = ElicitationSchema::builder()
            .optional_enum_schema("untitledSingle", untitled_single)
            .optional_enum_schema("titledSingle", titled_single)
            .optional_enum_schema("legacyEnum", EnumSchema::Legacy(legacy))
            .optional_enum_schema("untitledMulti", untitled_multi)
            .optional_enum_schema("titledMulti", titled_multi)
            .build()
            .map_err(ToolError::new)?;
        let message = "Test enum schema variants - please choose";
        let result = elicit(&peer, message.into(), schema).await?;
        Ok(format!("Elicitation completed: {}", describe(&result)))
    }

    /// Refuse to run unless the request declares the `sampling` client capability in its
    /// `_meta` (scenario `server-stateless`, SEP-2575): `-32021` naming what is missing.
    #[tool]
    async fn test_missing_capability(
        &self,
        meta: RequestMetaObject,
    ) -> Result<CallToolResponse, ErrorData> {
        let declared = meta.client_capabilities().unwrap_or_default();
        if declared.sampling.is_none() {
            return Err(ErrorData::missing_required_client_capability(
                ClientCapabilities::builder().enable_sampling().build(),
            ));
        }
        Ok(text("Required capability declared"))
    }

    /// Ask for a value through an `InputRequiredResult` in the response stream, never through
    /// an independent request (scenario `server-stateless`, SEP-2575).
    #[tool]
    async fn test_streaming_elicitation(&self) -> InputRequiredResult {
        InputRequiredResult::from_input_requests(requests([(
            "streaming_elicitation",
            ask_text("Provide a value", "value"),
        )]))
    }

    /// Log one message, only when the request's `_meta` asks for a log level (scenario
    /// `server-stateless`, SEP-2575).
    #[tool]
    async fn test_logging_tool(
        &self,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<String, ToolError> {
        if let Some(level) = meta.log_level() {
            let notification =
                LoggingMessageNotificationParam::new(level, json!("logLevel was requested"))
                    .with_logger(env!("CARGO_PKG_NAME"));
            peer.notify_logging_message(notification)
                .await
                .map_err(|e| ToolError::new(format!("cannot send a log message: {e}")))?;
        }
        Ok("Logging tool completed".into())
    }

    /// Ask the user's name, then greet them (scenarios `input-required-result-*`, SEP-2322).
    /// Answers that are missing or not objects are asked for again.
    #[tool]
    async fn test_input_required_result_elicitation(
        &self,
        Answers(answers): Answers,
    ) -> CallToolResponse {
        match answer(answers.as_ref(), "user_name") {
            Some(user) => text(format!(
                "Hello, {}!",
                content_str(user, "name").unwrap_or("friend")
            )),
            None => InputRequiredResult::from_input_requests(requests([(
                "user_name",
                ask_text("What is your name?", "name"),
            )]))
            .into(),
        }
    }

    /// Ask the client's LLM a question, then return its answer (scenario
    /// `input-required-result-basic-sampling`).
    #[tool]
    async fn test_input_required_result_sampling(
        &self,
        Answers(answers): Answers,
    ) -> CallToolResponse {
        match answer(answers.as_ref(), "capital_question") {
            Some(reply) => text(format!(
                "Sampling response: {}",
                content_str(reply, "text").unwrap_or("(no text)")
            )),
            None => InputRequiredResult::from_input_requests(requests([(
                "capital_question",
                ask_llm("What is the capital of France?"),
            )]))
            .into(),
        }
    }

    /// Ask for the client's roots, then list them (scenario
    /// `input-required-result-basic-list-roots`).
    #[tool]
    async fn test_input_required_result_list_roots(
        &self,
        Answers(answers): Answers,
    ) -> CallToolResponse {
        match answer(answers.as_ref(), "client_roots") {
            Some(reply) => {
                let uris: Vec<&str> = reply
                    .get("roots")
                    .and_then(|roots| roots.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|root| root.get("uri")?.as_str())
                    .collect();
                text(format!("Client roots: [{}]", uris.join(", ")))
            }
            None => {
                InputRequiredResult::from_input_requests(requests([("client_roots", ask_roots())]))
                    .into()
            }
        }
    }

    /// Ask for a confirmation with a state to bring back; confirm once it comes back (scenario
    /// `input-required-result-request-state`). The checkpoint seals the state, so it arrives
    /// here only as this tool issued it.
    #[tool]
    async fn test_input_required_result_request_state(
        &self,
        RequestState(state): RequestState,
    ) -> CallToolResponse {
        confirm_with_state(state.as_deref())
    }

    /// The same as `test_input_required_result_request_state`; the suite alters the state it
    /// brings back, which the checkpoint refuses with `-32602` (scenario
    /// `input-required-result-tampered-state`).
    #[tool]
    async fn test_input_required_result_tampered_state(
        &self,
        RequestState(state): RequestState,
    ) -> CallToolResponse {
        confirm_with_state(state.as_deref())
    }

    /// Ask for a name, an LLM greeting and the client's roots at once (scenario
    /// `input-required-result-multiple-input-requests`).
    #[tool]
    async fn test_input_required_result_multiple_inputs(
        &self,
        Answers(answers): Answers,
        RequestState(state): RequestState,
    ) -> CallToolResponse {
        let keys = ["user_name", "greeting", "client_roots"];
        let all = keys
            .iter()
            .all(|key| answer(answers.as_ref(), key).is_some());
        if all && state.as_deref() == Some(GATHER) {
            return text("All inputs received");
        }
        InputRequiredResult::new(
            Some(requests([
                ("user_name", ask_text("What is your name?", "name")),
                ("greeting", ask_llm("Generate a greeting")),
                ("client_roots", ask_roots()),
            ])),
            Some(GATHER.into()),
        )
        .into()
    }

    /// Ask two questions in two rounds, the state saying which round it is (scenario
    /// `input-required-result-multi-round`).
    #[tool]
    async fn test_input_required_result_multi_round(
        &self,
        RequestState(state): RequestState,
    ) -> CallToolResponse {
        let (key, question, field, next) = match state.as_deref() {
            None => ("step1", "Step 1: What is your name?", "name", "round=1"),
            Some("round=1") => (
                "step2",
                "Step 2: What is your favorite color?",
                "color",
                "round=2",
            ),
            Some(_) => return text("Multi-round flow complete"),
        };
        InputRequiredResult::new(
            Some(requests([(key, ask_text(question, field))])),
            Some(next.into()),
        )
        .into()
    }

    /// Ask only for the inputs the client declared it can give in its `_meta` (scenario
    /// `input-required-result-capability-check`).
    #[tool]
    async fn test_input_required_result_capabilities(
        &self,
        Answers(answers): Answers,
        meta: RequestMetaObject,
    ) -> CallToolResponse {
        if answers.is_some() {
            return text("Capability-aware flow complete");
        }
        let declared = meta.client_capabilities().unwrap_or_default();
        let mut wanted = rmcp::model::InputRequests::new();
        if declared.elicitation.is_some() {
            wanted.insert("user_name".into(), ask_text("What is your name?", "name"));
        }
        if declared.sampling.is_some() {
            wanted.insert("greeting".into(), ask_llm("Generate a greeting"));
        }
        if declared.roots.is_some() {
            wanted.insert("client_roots".into(), ask_roots());
        }
        if wanted.is_empty() {
            return text("Client declared no capability to answer with");
        }
        InputRequiredResult::from_input_requests(wanted).into()
    }

    /// Take arguments whose input schema uses JSON Schema 2020-12 keywords: `$schema`, `$defs`
    /// and `additionalProperties` (scenario `json-schema-2020-12`, SEP-1613).
    #[tool]
    async fn json_schema_2020_12_tool(&self, Parameters(person): Parameters<Person>) -> String {
        let name = person.name.as_deref().unwrap_or("nobody");
        match person.address {
            Some(Address { street, city }) => format!(
                "{name} lives at {}, {}",
                street.as_deref().unwrap_or("an unknown street"),
                city.as_deref().unwrap_or("an unknown city")
            ),
            None => format!("{name} gave no address"),
        }
    }
}

impl Conformance {
    /// Send `message` as a `notifications/message` at `level`, unless the client asked for
    /// more severe messages only.
    async fn log(
        &self,
        peer: &Peer<RoleServer>,
        level: LoggingLevel,
        message: &str,
    ) -> Result<(), ToolError> {
        if !self.log_threshold.allows(level) {
            return Ok(());
        }
        let notification = LoggingMessageNotificationParam::new(level, json!(message))
            .with_logger(env!("CARGO_PKG_NAME"));
        peer.notify_logging_message(notification)
            .await
            .map_err(|e| ToolError::new(format!("cannot send a log message: {e}")))
    }
}

/// Send a form elicitation and wait for the user's answer. Refused when the client declared no
/// form elicitation.
async fn elicit(
    peer: &Peer<RoleServer>,
    message: String,
    requested_schema: ElicitationSchema,
) -> Result<ElicitResult, ToolError> {
    if !peer
        .supported_elicitation_modes()
        .contains(&ElicitationMode::Form)
    {
        return Err(ToolError::new(
            "the client does not support form elicitation: it declared no `elicitation` capability",
        ));
    }
    let request = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message,
        requested_schema,
    };
    peer.create_elicitation(request)
        .await
        .map_err(|e| ToolError::new(format!("elicitation failed: {e}")))
}

/// The state `test_input_required_result_multiple_inputs` hands out while it gathers.
const GATHER: &str = "gather";

/// A complete result with one text block.
fn text(message: impl Into<String>) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(message.into())]).into()
}

/// Round 1 asks for a confirmation and hands out the state `confirm`; a retry bringing that
/// state back is confirmed.
fn confirm_with_state(state: Option<&str>) -> CallToolResponse {
    match state {
        Some(CONFIRM) => text("Confirmed: state-ok"),
        _ => InputRequiredResult::new(
            Some(requests([("confirm", ask_bool("Please confirm", "ok"))])),
            Some(CONFIRM.into()),
        )
        .into(),
    }
}

/// The state the confirmation fixtures hand out.
const CONFIRM: &str = "confirm";

/// `action=<action>, content=<json>`: what the user answered.
fn describe(result: &ElicitResult) -> String {
    let action = serde_json::to_value(&result.action).unwrap_or_default();
    let action = action.as_str().unwrap_or("unknown");
    match &result.content {
        Some(content) => format!("action={action}, content={content}"),
        None => format!("action={action}"),
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    mcp_lp::cli::run(|_config| async { Ok(Conformance::default().into()) }).await
}
