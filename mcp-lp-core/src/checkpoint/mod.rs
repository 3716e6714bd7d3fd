//! The checkpoint: the one place every `tools/call` and `tools/list` passes through, whatever
//! the transport.
//!
//! For a call it takes the steps of [`steps`](self) in order (who calls, the trail, the tool,
//! revocation, grants, rate, size, the state brought back, approval), each refusing with one
//! [`Refusal`]; then it runs the handler under the tool's timeout and output cap and emits one
//! audit event. A refused call never reaches the handler, so no credential is minted and no
//! connection is checked out for it.
//!
//! - `server`: [`Server`], a service and what its tools draw on, before assembly;
//! - `assembly`: a checkpoint built from a [`Server`] and the configuration;
//! - `scope`: [`CallScope`], what a running handler knows of its call;
//! - `steps`: the steps of a call, and the HTTP gate's pre-check;
//! - `approval_gate`: the approval step;
//! - `refusal`: [`Refusal`], every way a call is refused;
//! - `run`: running an admitted call;
//! - `handler`: the rmcp `ServerHandler`, which hands everything but tools to the service.

mod approval_gate;
mod assembly;
mod handler;
mod refusal;
mod run;
mod scope;
mod server;
mod steps;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rmcp::RoleServer;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ErrorCode, ProtocolVersion, Tool};
use rmcp::service::RequestContext;

pub use self::refusal::{ParkedAnswer, Refusal};
pub use self::scope::CallScope;
use self::scope::Providers;
pub use self::server::{Provide, Server};
use crate::approval::{ApprovalRule, Approvals};
use crate::authorize::authorize;
use crate::config::{Config, ConfigError};
use crate::last_used::LastUsed;
use crate::limits::Limits;
use crate::policy::{ToolPolicy, ToolSet};
use crate::principal::Principal;
use crate::rate::RateLimiter;
use crate::revocation::Revocations;
use crate::sealed_state::StateSealer;
use crate::transport::LineTransport;

/// The JSON-RPC error code of a call refused for a missing grant.
pub const FORBIDDEN: ErrorCode = ErrorCode(-32003);

/// The JSON-RPC error code of a call refused by the tool's rate limit; `data.retry_after_secs`
/// says when to call again.
pub const RATE_LIMITED: ErrorCode = ErrorCode(-32029);

/// The JSON-RPC error a 2025-11-25 client gets when a call waits for a person to act on a
/// page: `URLElicitationRequiredError`, with the elicitation in its data.
pub const URL_ELICITATION_REQUIRED: ErrorCode = ErrorCode(-32042);

/// The longest client-sent tool name echoed back in an error or written to the audit trail.
const MAX_ECHOED_NAME: usize = 64;

/// How long a client may reuse a `tools/list` result. The list depends on the caller's grants,
/// which can expire, so it is short, and never longer than the caller's next grant expiry.
const TOOL_LIST_TTL: Duration = Duration::from_secs(60);

pub(crate) struct ToolEntry {
    pub(crate) policy: &'static ToolPolicy,
    /// The declared capabilities as audit events list them, `kind:access:name`, made once.
    pub(crate) capabilities: &'static [&'static str],
    pub(crate) limits: Limits,
    /// `policy.requires` joined by spaces, once, for audit events.
    pub(crate) requires: String,
    /// `None` when the tool has no rate limit: the call path then does no rate work at all.
    pub(crate) rate: Option<RateLimiter>,
    /// What a call needs before it runs, when it needs approval.
    pub(crate) approval: Option<ApprovalRule>,
    /// SHA-256 of the tool's definition, as the manifest has it: an approval is bound to it.
    pub(crate) definition_sha256: String,
    /// The tool's description, shown to approvers.
    pub(crate) description: String,
}

/// Who calls run for.
#[derive(Clone)]
enum Identity {
    /// One principal named by the operator's configuration: stdio, where a request carries no
    /// identity.
    Operator(Arc<Principal>),
    /// The principal the bearer-token layer attached to each HTTP request.
    #[cfg(feature = "http")]
    Bearer,
}

struct Shared<S> {
    service: S,
    router: ToolRouter<S>,
    tools: HashMap<&'static str, ToolEntry>,
    providers: Providers,
    /// Seals the state tools hand clients to bring back, and opens it on their return.
    sealer: StateSealer,
    protocol_versions: Vec<ProtocolVersion>,
    /// The pinned manifest's digest, owner and review date, for the server's `_meta`.
    manifest: Option<serde_json::Value>,
    revocations: Revocations,
    last_used: LastUsed,
    /// Approvals, when a tool needs one.
    approvals: Option<Arc<Approvals>>,
    /// The approval page's URL up to the id, when the server has one (HTTP).
    approval_page: Option<String>,
    /// What state this server seals is bound to: its resource URI over HTTP, else
    /// `mcp-lp:<server name>`.
    resource: String,
}

/// An MCP server handler that puts the checkpoint around the tools of `S`.
///
/// Cloning is cheap and shares the service, tool table and providers.
///
/// ```no_run
/// # use mcp_lp::prelude::*;
/// # #[derive(Clone)] struct Notes;
/// # #[mcp_lp::server] impl Notes {
/// #     /// Say hello.
/// #     #[tool] async fn hello(&self) -> String { "hello".into() }
/// # }
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = mcp_lp::Config::load("mcp-lp.toml")?;
/// let server = mcp_lp::Checkpoint::for_stdio(Notes, &config)?;
/// server.serve_stdio().await?;
/// # Ok(()) }
/// ```
pub struct Checkpoint<S: ToolSet> {
    shared: Arc<Shared<S>>,
    identity: Identity,
}

impl<S: ToolSet> Clone for Checkpoint<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            identity: self.identity.clone(),
        }
    }
}

impl<S: ToolSet> Checkpoint<S> {
    /// A checkpoint whose every call runs for `principal`, with limits from `config`.
    ///
    /// Refuses a configuration whose `[tools.<name>]`, `[db.<name>]` or `[aws.roles.<name>]`
    /// tables do not match what the tools declare.
    pub fn new(
        server: impl Into<Server<S>>,
        config: &Config,
        principal: Principal,
    ) -> Result<Self, ConfigError> {
        Self::with_identity(server, config, Identity::Operator(Arc::new(principal)))
    }

    /// A checkpoint for stdio, where the operator's `[stdio]` configuration names the principal
    /// and its grants.
    pub fn for_stdio(server: impl Into<Server<S>>, config: &Config) -> Result<Self, ConfigError> {
        Self::new(server, config, config.stdio_principal().clone())
    }

    /// A checkpoint whose calls run for the principal the HTTP bearer-token layer attached to
    /// each request; a request without one is refused.
    #[cfg(feature = "http")]
    pub(crate) fn for_bearer(
        server: impl Into<Server<S>>,
        config: &Config,
    ) -> Result<Self, ConfigError> {
        Self::with_identity(server, config, Identity::Bearer)
    }

    /// The principal every call runs for, when the operator names it (stdio).
    pub fn operator_principal(&self) -> Option<&Principal> {
        match &self.identity {
            Identity::Operator(principal) => Some(principal),
            #[cfg(feature = "http")]
            Identity::Bearer => None,
        }
    }

    /// Serve MCP over stdin and stdout until the client disconnects.
    pub async fn serve_stdio(self) -> Result<(), ServeError> {
        self.serve_lines(LineTransport::stdio()).await
    }

    /// Serve MCP over `transport` until its input ends. A failure to read or write is an error,
    /// not an end: the server did not finish its work.
    pub async fn serve_lines<R, W>(self, transport: LineTransport<R, W>) -> Result<(), ServeError>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        use rmcp::ServiceExt as _;
        let failure = transport.failure();
        let transport = match self.operator_principal() {
            Some(principal) => transport.auditing_as(principal.id()),
            None => transport,
        };
        let running = self
            .serve(transport)
            .await
            .map_err(|e| ServeError(e.to_string()))?;
        running
            .waiting()
            .await
            .map_err(|e| ServeError(e.to_string()))?;
        failure.take().map_or(Ok(()), |f| Err(ServeError(f)))
    }

    fn principal_of(&self, context: &RequestContext<RoleServer>) -> Option<Arc<Principal>> {
        match &self.identity {
            Identity::Operator(principal) => {
                let _ = context;
                Some(Arc::clone(principal))
            }
            #[cfg(feature = "http")]
            Identity::Bearer => context
                .extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Arc<Principal>>())
                .cloned(),
        }
    }

    fn visible(&self, tool: &Tool, principal: &Principal, now: SystemTime) -> bool {
        self.shared
            .tools
            .get(tool.name.as_ref())
            .is_some_and(|entry| {
                authorize(entry.policy, principal, now).is_ok()
                    && self
                        .shared
                        .revocations
                        .check(principal.id(), entry.policy)
                        .is_ok()
            })
    }

    /// Approvals, when a tool needs one.
    #[cfg(feature = "http")]
    pub(crate) fn approvals(&self) -> Option<&Arc<Approvals>> {
        self.shared.approvals.as_ref()
    }

    /// The sealer of what the server hands out to bring back.
    #[cfg(feature = "http")]
    pub(crate) fn sealer(&self) -> &StateSealer {
        &self.shared.sealer
    }

    /// The last uses this checkpoint notes.
    pub fn last_uses(&self) -> &LastUsed {
        &self.shared.last_used
    }

    /// The revocation list this checkpoint follows.
    pub fn revocation_list(&self) -> &Revocations {
        &self.shared.revocations
    }
}

/// Serving stopped because the transport failed.
#[derive(Debug, thiserror::Error)]
#[error("MCP transport failed: {0}")]
pub struct ServeError(String);

/// A client-sent name, cut to [`MAX_ECHOED_NAME`] characters with control characters escaped,
/// safe to echo into an error and the audit trail.
pub(crate) fn echo(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(MAX_ECHOED_NAME)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().count() > MAX_ECHOED_NAME {
        out.push('…');
    }
    out
}

/// How long `principal`'s tool list stays fresh at `now`: [`TOOL_LIST_TTL`], or less when one of
/// its grants expires sooner.
pub(crate) fn list_ttl_ms(principal: &Principal, now: SystemTime) -> u64 {
    let ttl = principal
        .grants()
        .iter()
        .filter_map(|grant| grant.expires_at()?.duration_since(now).ok())
        .fold(TOOL_LIST_TTL, Duration::min);
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}
