//! Building blocks of the multi-round-trip fixtures (MCP 2026-07-28, SEP-2322): the input
//! requests a tool or prompt asks the client to fulfil, and reading the client's answers.
//!
//! The state these fixtures hand the client is plain text: the mcp-lp checkpoint seals it
//! before it leaves the server and refuses it on return unless the seal holds for the same
//! principal, tool and arguments.

use rmcp::model::{
    CreateMessageRequest, CreateMessageRequestParams, ElicitRequest, ElicitRequestParams,
    ElicitationSchema, InputRequest, InputRequests, InputResponses, ListRootsRequest,
    SamplingMessage,
};
use serde_json::{Map, Value};

/// An `elicitation/create` form asking for one required string field.
pub(crate) fn ask_text(message: &str, field: &str) -> InputRequest {
    let schema = ElicitationSchema::builder().required_string(field).build();
    elicit(
        message,
        schema.expect("a form with one string field is a valid schema"),
    )
}

/// An `elicitation/create` form asking for one required boolean field.
pub(crate) fn ask_bool(message: &str, field: &str) -> InputRequest {
    let schema = ElicitationSchema::builder().required_bool(field).build();
    elicit(
        message,
        schema.expect("a form with one boolean field is a valid schema"),
    )
}

fn elicit(message: &str, requested_schema: ElicitationSchema) -> InputRequest {
    InputRequest::Elicitation(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: message.into(),
            requested_schema,
        },
    ))
}

/// A `sampling/createMessage` request for `prompt`.
pub(crate) fn ask_llm(prompt: &str) -> InputRequest {
    InputRequest::CreateMessage(CreateMessageRequest::new(CreateMessageRequestParams::new(
        vec![SamplingMessage::user_text(prompt)],
        100,
    )))
}

/// A `roots/list` request.
pub(crate) fn ask_roots() -> InputRequest {
    InputRequest::ListRoots(ListRootsRequest::default())
}

/// Input requests keyed by name.
pub(crate) fn requests<const N: usize>(entries: [(&str, InputRequest); N]) -> InputRequests {
    entries
        .into_iter()
        .map(|(key, request)| (key.to_owned(), request))
        .collect()
}

/// The client's answer to the input request `key`, when it is a JSON object (the shape of an
/// elicitation, sampling or roots result). Anything else counts as no answer, so the fixture
/// asks again rather than failing.
pub(crate) fn answer<'a>(
    responses: Option<&'a InputResponses>,
    key: &str,
) -> Option<&'a Map<String, Value>> {
    responses?.get(key)?.as_object()
}

/// The string at `content.<field>` of an elicitation or sampling answer.
pub(crate) fn content_str<'a>(answer: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    answer.get("content")?.get(field)?.as_str()
}
