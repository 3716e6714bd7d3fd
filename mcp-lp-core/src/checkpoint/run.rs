//! Running an admitted call: the handler under the tool's timeout and output cap, contained
//! if it panics.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::Checkpoint;
use super::scope::CallScope;
use crate::audit::Outcome;
use crate::limits::Limits;
use crate::policy::{ToolPolicy, ToolSet};
use crate::principal::Principal;

impl<S: ToolSet> Checkpoint<S> {
    /// Run the handler of the admitted call of `policy`'s tool for `principal` under `limits`:
    /// how it ended, the size of its output, and what to answer.
    pub(super) async fn run(
        &self,
        policy: &'static ToolPolicy,
        principal: Arc<Principal>,
        limits: Limits,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> (Outcome, Option<usize>, Result<CallToolResponse, ErrorData>) {
        context.extensions.insert(CallScope {
            tool: policy,
            principal,
            providers: self.shared.providers.clone(),
        });
        let call =
            self.shared
                .router
                .call(ToolCallContext::new(&self.shared.service, request, context));
        let finished =
            tokio::time::timeout(limits.timeout, AssertUnwindSafe(call).catch_unwind()).await;
        match finished {
            Err(_elapsed) => (
                Outcome::Timeout,
                None,
                Ok(error_result(format!(
                    "tool `{}` did not finish within {:?} and was cancelled",
                    policy.name, limits.timeout
                ))),
            ),
            Ok(Err(_panic)) => (
                Outcome::Panicked,
                None,
                Err(ErrorData::internal_error(
                    format!("tool `{}` failed unexpectedly", policy.name),
                    None,
                )),
            ),
            Ok(Ok(Err(error))) => (Outcome::Error, None, Err(error)),
            Ok(Ok(Ok(response))) => {
                let bytes = serialized_len(&response);
                if bytes > limits.max_output_bytes {
                    let message = format!(
                        "tool `{}` produced {bytes} bytes of output, over its cap of {} bytes; the output was withheld",
                        policy.name, limits.max_output_bytes
                    );
                    (
                        Outcome::OutputTooLarge,
                        Some(bytes),
                        Ok(error_result(message)),
                    )
                } else {
                    let outcome = match &response {
                        CallToolResponse::Complete(r) if r.is_error == Some(true) => {
                            Outcome::ToolError
                        }
                        CallToolResponse::InputRequired(_) => Outcome::InputRequired,
                        _ => Outcome::Ok,
                    };
                    (outcome, Some(bytes), Ok(response))
                }
            }
        }
    }
}

fn error_result(message: String) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(message)]).into()
}

fn serialized_len(response: &CallToolResponse) -> usize {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Serializing into a counter cannot fail for a response rmcp can send.
    let _ = match response {
        CallToolResponse::Complete(result) => serde_json::to_writer(&mut counter, result),
        CallToolResponse::InputRequired(result) => serde_json::to_writer(&mut counter, result),
        CallToolResponse::Task(result) => serde_json::to_writer(&mut counter, result),
        _ => Ok(()),
    };
    counter.0
}
