//! The error a tool handler returns.

use std::fmt;

use rmcp::model::{ContentBlock, IntoContents};

/// A failure a tool handler reports to its caller as an error result (`isError: true`).
///
/// Its message goes to the model: say what was wrong and where, and never include a secret.
///
/// ```
/// use mcp_lp::ToolError;
///
/// let err = ToolError::invalid_argument("name", "must be 1 to 64 characters of a-z, 0-9, - and _");
/// assert_eq!(err.to_string(), "argument `name`: must be 1 to 64 characters of a-z, 0-9, - and _");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    message: String,
}

impl ToolError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// An error about one argument, named as the caller sent it.
    pub fn invalid_argument(argument: &str, problem: impl fmt::Display) -> Self {
        Self::new(format!("argument `{argument}`: {problem}"))
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {}

impl IntoContents for ToolError {
    fn into_contents(self) -> Vec<ContentBlock> {
        vec![ContentBlock::text(self.message)]
    }
}
