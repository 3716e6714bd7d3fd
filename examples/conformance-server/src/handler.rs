//! Everything but tools: the resource, prompt, completion and logging fixtures, served by the
//! server's own `rmcp::ServerHandler`. They are not capability-scoped; tools are never served
//! here but by the checkpoint.

use std::sync::atomic::{AtomicU8, Ordering};

use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, CompleteResult, CompletionInfo, ContentBlock,
    GetPromptRequestParams, GetPromptResponse, GetPromptResult, InputRequiredResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, LoggingLevel,
    PaginatedRequestParams, Prompt, PromptArgument, PromptMessage, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Reference, Resource, ResourceContents,
    ResourceTemplate, Role, ServerCapabilities, ServerConfig, SetLevelRequestParams,
    SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;

use crate::input_required::{answer, ask_text, content_str, requests};
use crate::{Conformance, media};

const STATIC_TEXT: &str = "test://static-text";
const STATIC_BINARY: &str = "test://static-binary";
const WATCHED: &str = "test://watched-resource";
const TEMPLATE: &str = "test://template/{id}/data";

const SIMPLE_PROMPT: &str = "test_simple_prompt";
const PROMPT_WITH_ARGUMENTS: &str = "test_prompt_with_arguments";
const PROMPT_WITH_RESOURCE: &str = "test_prompt_with_embedded_resource";
const PROMPT_WITH_IMAGE: &str = "test_prompt_with_image";
const PROMPT_WITH_INPUT: &str = "test_input_required_result_prompt";

/// Values `completion/complete` offers for `arg1` and `arg2` of `test_prompt_with_arguments`
/// and for `id` of the resource template, filtered by the prefix typed so far.
const ARG1_VALUES: &[&str] = &["paris", "park", "party"];
const ARG2_VALUES: &[&str] = &["red", "green", "blue"];
const ID_VALUES: &[&str] = &["123", "456", "789"];

/// The least severe level of `notifications/message` the client asked for with
/// `logging/setLevel`; every level until it asks.
///
/// One threshold for the whole server: this example serves one client at a time (the suite
/// runs its scenarios one after another). A server with concurrent clients would keep one per
/// session.
#[derive(Debug, Default)]
pub(crate) struct LogThreshold(AtomicU8);

impl LogThreshold {
    fn set(&self, level: LoggingLevel) {
        self.0.store(severity(level), Ordering::Relaxed);
    }

    /// Whether a message at `level` is at least as severe as the threshold.
    pub(crate) fn allows(&self, level: LoggingLevel) -> bool {
        severity(level) >= self.0.load(Ordering::Relaxed)
    }
}

/// RFC 5424 order: debug is the least severe, emergency the most.
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

impl ServerHandler for Conformance {
    fn get_info(&self) -> ServerConfig {
        // Tools are added by the checkpoint, which serves them.
        let capabilities = ServerCapabilities::builder()
            .enable_logging()
            .enable_completions()
            .enable_prompts()
            .enable_resources()
            .enable_resources_subscribe()
            .build();
        ServerConfig::new(capabilities)
    }

    // `subscriptions/listen` (2026-07-28): every notification kind the capabilities advertise
    // is accepted; rmcp acknowledges the stream and tags what is sent on it.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.log_threshold.set(request.level);
        Ok(())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(STATIC_TEXT, "static-text")
                .with_description("A static text resource")
                .with_mime_type("text/plain"),
            Resource::new(STATIC_BINARY, "static-binary")
                .with_description("A static binary resource: a 1x1 red PNG image")
                .with_mime_type("image/png"),
            Resource::new(WATCHED, "watched-resource")
                .with_description("A resource clients may subscribe to; it never changes")
                .with_mime_type("text/plain"),
        ]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(TEMPLATE, "template-data")
                .with_description("Data for one ID, substituted into the URI")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri;
        let contents = match uri.as_str() {
            STATIC_TEXT => {
                ResourceContents::text("This is the content of the static text resource.", &uri)
            }
            STATIC_BINARY => {
                ResourceContents::blob(media::red_pixel_png(), &uri).with_mime_type("image/png")
            }
            WATCHED => ResourceContents::text("This resource is watched for updates.", &uri),
            _ => match template_id(&uri) {
                Some(id) => {
                    let data = json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")});
                    ResourceContents::text(data.to_string(), &uri)
                        .with_mime_type("application/json")
                }
                None => return Err(not_found(&uri)),
            },
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    // The fixtures never change, so a subscription never produces
    // `notifications/resources/updated`; subscribing checks that the resource exists.
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        exists(&request.uri)
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        exists(&request.uri)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let required = |name: &str, description: &str| {
            PromptArgument::new(name)
                .with_description(description)
                .with_required(true)
        };
        Ok(ListPromptsResult::with_all_items(vec![
            Prompt::new(
                SIMPLE_PROMPT,
                Some("A simple prompt without arguments"),
                None,
            ),
            Prompt::new(
                PROMPT_WITH_ARGUMENTS,
                Some("A prompt with two required arguments"),
                Some(vec![
                    required("arg1", "First test argument"),
                    required("arg2", "Second test argument"),
                ]),
            ),
            Prompt::new(
                PROMPT_WITH_RESOURCE,
                Some("A prompt that embeds a resource"),
                Some(vec![required(
                    "resourceUri",
                    "URI of the resource to embed",
                )]),
            ),
            Prompt::new(
                PROMPT_WITH_IMAGE,
                Some("A prompt that includes an image"),
                None,
            ),
            Prompt::new(
                PROMPT_WITH_INPUT,
                Some("A prompt that first asks the user for context (2026-07-28)"),
                None,
            ),
        ]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let name = request.name.as_str();
        if name == PROMPT_WITH_INPUT {
            return Ok(
                match answer(request.input_responses.as_ref(), "user_context") {
                    Some(reply) => {
                        let context = content_str(reply, "context").unwrap_or("none given");
                        GetPromptResult::new(vec![PromptMessage::new_text(
                            Role::User,
                            format!("Prompt built with the context: {context}"),
                        )])
                        .into()
                    }
                    None => InputRequiredResult::from_input_requests(requests([(
                        "user_context",
                        ask_text("What context should the prompt use?", "context"),
                    )]))
                    .into(),
                },
            );
        }
        let arguments = request.arguments.unwrap_or_default();
        let argument = |key: &str| {
            arguments.get(key).and_then(|v| v.as_str()).ok_or_else(|| {
                ErrorData::invalid_params(
                    format!("prompt `{name}` needs the string argument `{key}`"),
                    None,
                )
            })
        };
        let messages = match name {
            SIMPLE_PROMPT => vec![PromptMessage::new_text(
                Role::User,
                "This is a simple prompt for testing.",
            )],
            PROMPT_WITH_ARGUMENTS => {
                let (arg1, arg2) = (argument("arg1")?, argument("arg2")?);
                vec![PromptMessage::new_text(
                    Role::User,
                    format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"),
                )]
            }
            PROMPT_WITH_RESOURCE => {
                let uri = argument("resourceUri")?;
                let resource =
                    ResourceContents::text("Embedded resource content for testing.", uri);
                vec![
                    PromptMessage::new(Role::User, ContentBlock::resource(resource)),
                    PromptMessage::new_text(
                        Role::User,
                        "Please process the embedded resource above.",
                    ),
                ]
            }
            PROMPT_WITH_IMAGE => vec![
                PromptMessage::new(
                    Role::User,
                    ContentBlock::image(media::red_pixel_png(), "image/png"),
                ),
                PromptMessage::new_text(Role::User, "Please analyze the image above."),
            ],
            _ => {
                return Err(ErrorData::invalid_params(
                    format!("no prompt is called `{name}`"),
                    None,
                ));
            }
        };
        Ok(GetPromptResult::new(messages).into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let ArgumentInfo { name, value, .. } = &request.argument;
        let candidates = match (&request.r#ref, name.as_str()) {
            (Reference::Prompt(prompt), "arg1") if prompt.name == PROMPT_WITH_ARGUMENTS => {
                ARG1_VALUES
            }
            (Reference::Prompt(prompt), "arg2") if prompt.name == PROMPT_WITH_ARGUMENTS => {
                ARG2_VALUES
            }
            (Reference::Resource(template), "id") if template.uri == TEMPLATE => ID_VALUES,
            (reference, _) => {
                return Err(ErrorData::invalid_params(
                    format!(
                        "nothing to complete for argument `{name}` of {} `{}`",
                        reference.reference_type(),
                        reference
                            .as_prompt_name()
                            .or(reference.as_resource_uri())
                            .unwrap_or_default()
                    ),
                    None,
                ));
            }
        };
        let values = candidates
            .iter()
            .filter(|candidate| candidate.starts_with(value.as_str()))
            .map(|candidate| (*candidate).to_owned())
            .collect();
        let completion = CompletionInfo::with_all_values(values)
            .map_err(|e| ErrorData::internal_error(e, None))?;
        Ok(CompleteResult::new(completion))
    }
}

/// The `{id}` of a URI of the template `test://template/{id}/data`.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix("test://template/")?
        .strip_suffix("/data")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

fn exists(uri: &str) -> Result<(), ErrorData> {
    let known = [STATIC_TEXT, STATIC_BINARY, WATCHED].contains(&uri) || template_id(uri).is_some();
    if known { Ok(()) } else { Err(not_found(uri)) }
}

fn not_found(uri: &str) -> ErrorData {
    ErrorData::resource_not_found(
        format!("no resource has the URI `{uri}`"),
        Some(json!({ "uri": uri })),
    )
}
