//! `Parameters<T>`: a tool's arguments, deserialized with errors that name the argument.

use std::borrow::Cow;

use rmcp::ErrorData;
use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::tool::ToolCallContext;
use serde::de::DeserializeOwned;

/// A tool's arguments as `T`.
///
/// Like rmcp's wrapper of the same name (rmcp's macros recognise it by name and take the tool's
/// input schema from `T`), but a bad argument is reported with the tool and the argument's
/// path, for example ``tool `read_note`, argument `name`: invalid type: integer `5`, expected a
/// string``. The caller receives it as an error result, so a model can correct itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parameters<T>(pub T);

impl<T: schemars::JsonSchema> schemars::JsonSchema for Parameters<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// rmcp turns an `invalid_params` error whose message starts with this into an error result
/// (`isError: true`) rather than a JSON-RPC error.
const RMCP_ARGUMENT_ERROR_PREFIX: &str = "failed to deserialize parameters:";

impl<S, T: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Parameters<T> {
    fn from_context_part(context: &mut ToolCallContext<'_, S>) -> Result<Self, ErrorData> {
        let arguments = context.arguments.take().unwrap_or_default();
        serde_path_to_error::deserialize(serde_json::Value::Object(arguments))
            .map(Parameters)
            .map_err(|error| {
                let path = error.path().to_string();
                let place = if path == "." {
                    "arguments".to_owned()
                } else {
                    format!("argument `{path}`")
                };
                ErrorData::invalid_params(
                    format!(
                        "{RMCP_ARGUMENT_ERROR_PREFIX} tool `{}`, {place}: {}",
                        context.name,
                        error.inner()
                    ),
                    None,
                )
            })
    }
}
