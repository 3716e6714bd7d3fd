//! The checkpoint: the one place every `tools/call` and `tools/list` passes through, whatever
//! the transport.
//!
//! For a call it looks up the tool's policy, authorizes the principal, applies the argument
//! limit, runs the handler under the tool's timeout and output cap, and emits one audit event.
//! A refused call never reaches the handler, so no credential is minted and no connection is
//! checked out for it.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt as _;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use std::borrow::Cow;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams,
    CompleteResult, ContentBlock, ElicitRequest, ElicitRequestParams, ErrorCode,
    GetPromptRequestParams, GetPromptResponse, InputRequest, InputRequiredResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter, Tool,
    UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::approval::{
    ApprovalError, ApprovalRule, ApprovalStore, Approvals, CallKey, FileApprovals, PendingCall,
    RoundState,
};
use crate::audit::Record;
use crate::audit::{ArgumentDigest, AuditEvent, AuditSink, Decision, Outcome, Recorded};
use crate::authorize::{Authorized, Denial, authorize};
use crate::config::{Config, ConfigError};
use crate::last_used::LastUsed;
use crate::limits::Limits;
use crate::policy::{ToolPolicy, ToolSet};
use crate::principal::Principal;
#[cfg(feature = "http")]
use crate::rate::Counted;
use crate::rate::{RateLimited, RateLimiter};
use crate::revocation::{Evict, Refused, Revocations};
use crate::sealed_state::{Binding, DEFAULT_STATE_TTL, StateRejected, StateSealer};
use crate::transport::LineTransport;

/// The JSON-RPC error code of a call refused for a missing grant.
pub const FORBIDDEN: ErrorCode = ErrorCode(-32003);

/// The JSON-RPC error code of a call refused by the tool's rate limit; `data.retry_after_secs`
/// says when to call again.
pub const RATE_LIMITED: ErrorCode = ErrorCode(-32029);

/// The longest client-sent tool name echoed back in an error or written to the audit trail.
const MAX_ECHOED_NAME: usize = 64;

/// How long a client may reuse a `tools/list` result. The list depends on the caller's grants,
/// which can expire, so it is short, and never longer than the caller's next grant expiry.
const TOOL_LIST_TTL: Duration = Duration::from_secs(60);

/// What a running handler knows about its call: which tool, for whom, and the capability
/// providers the server was given. Capability extractors read it to hand out the tool's own
/// credentials; a handler can take it as an argument.
///
/// It is built only by the checkpoint and cannot be changed afterwards, so a provider can trust
/// [`CallScope::tool`] to decide what to hand out.
#[derive(Clone)]
pub struct CallScope {
    tool: &'static ToolPolicy,
    principal: Arc<Principal>,
    providers: Providers,
}

impl CallScope {
    /// The policy of the tool being called.
    pub fn tool(&self) -> &'static ToolPolicy {
        self.tool
    }

    /// The principal the call runs for.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The provider of type `T` given to [`Server::provide`], if any. A provider hands out only
    /// what [`CallScope::tool`] declares.
    pub fn provider<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.providers
            .0
            .get(&TypeId::of::<T>())
            .and_then(|p| p.downcast_ref::<T>())
    }
}

impl fmt::Debug for CallScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallScope")
            .field("tool", &self.tool.name)
            .field("principal", &self.principal.id())
            .finish_non_exhaustive()
    }
}

impl<C: AsRequestContext> FromContextPart<C> for CallScope {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        context
            .as_request_context()
            .extensions
            .get::<CallScope>()
            .cloned()
            .ok_or_else(|| {
                ErrorData::internal_error(
                    "this handler was not called through the mcp-lp checkpoint",
                    None,
                )
            })
    }
}

/// Capability providers, by type. Held by the checkpoint, never by the service, so a handler
/// reaches one only through its [`CallScope`].
#[derive(Clone, Default)]
struct Providers(Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

/// A service and the capability providers its tools draw on: what a [`Checkpoint`] serves.
///
/// ```
/// # use mcp_lp::prelude::*;
/// # #[derive(Clone)] struct Notes;
/// # #[mcp_lp::server] impl Notes {
/// #     /// Say hello.
/// #     #[tool] async fn hello(&self) -> String { "hello".into() }
/// # }
/// /// Something tools receive only through an extractor, never through `self`.
/// struct Pools;
///
/// let server = mcp_lp::Server::new(Notes).provide(Pools);
/// ```
pub struct Server<S> {
    service: S,
    providers: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    audit_sinks: Vec<Box<dyn AuditSink>>,
    revocations: Option<Revocations>,
    evictors: Vec<Arc<dyn Evict>>,
    last_used: Option<LastUsed>,
    approvals: Option<Arc<dyn ApprovalStore>>,
}

impl<S: ToolSet> Server<S> {
    /// A server with no providers.
    pub fn new(service: S) -> Self {
        Self {
            service,
            providers: HashMap::new(),
            audit_sinks: Vec::new(),
            revocations: None,
            evictors: Vec::new(),
            last_used: None,
            approvals: None,
        }
    }

    /// Keep pending approvals and their single-use ledger here, such as in the `[state]`
    /// store that replicas share, instead of the directory next to the configuration.
    #[must_use]
    pub fn approvals(mut self, store: impl ApprovalStore) -> Self {
        self.approvals = Some(Arc::new(store));
        self
    }

    /// The approval store given with [`Server::approvals`], if any.
    pub(crate) fn given_approvals(&self) -> Option<&Arc<dyn ApprovalStore>> {
        self.approvals.as_ref()
    }

    /// Keep last-used records here instead of in this process's memory only, such as in the
    /// `[state]` store, which `review` reads.
    #[must_use]
    pub fn last_used(mut self, last_used: LastUsed) -> Self {
        self.last_used = Some(last_used);
        self
    }

    /// The last-used records given with [`Server::last_used`], if any.
    pub(crate) fn given_last_used(&self) -> Option<&LastUsed> {
        self.last_used.as_ref()
    }

    /// Follow this revocation list instead of the file next to the configuration, such as
    /// the `[state]` store's, which every replica shares.
    #[must_use]
    pub fn revocations(mut self, revocations: Revocations) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// The revocation list given with [`Server::revocations`], if any.
    pub(crate) fn given_revocations(&self) -> Option<&Revocations> {
        self.revocations.as_ref()
    }

    /// Have `evictor` drop what a revocation takes away, such as cached AWS sessions
    /// (mcp-lp-aws's `AwsRoles`).
    #[must_use]
    pub fn evict_on_revocation(mut self, evictor: impl Evict) -> Self {
        self.evictors.push(Arc::new(evictor));
        self
    }

    /// The durable audit sinks given with [`Server::audit_to`].
    pub(crate) fn audit_sinks(&mut self) -> &mut Vec<Box<dyn AuditSink>> {
        &mut self.audit_sinks
    }

    /// Write the audit trail to `sink` too, such as the state crate's PostgreSQL table. The
    /// sink joins the process's trail when the checkpoint is built, with the events recorded
    /// since the server started.
    #[must_use]
    pub fn audit_to(mut self, sink: impl AuditSink) -> Self {
        self.audit_sinks.push(Box::new(sink));
        self
    }

    /// Give the checkpoint a capability provider, such as a set of database pools. Handlers
    /// reach it only through extractors that read their [`CallScope`].
    #[must_use]
    pub fn provide<T: Send + Sync + 'static>(mut self, provider: T) -> Self {
        self.providers.insert(TypeId::of::<T>(), Arc::new(provider));
        self
    }
}

impl<S: ToolSet> From<S> for Server<S> {
    fn from(service: S) -> Self {
        Self::new(service)
    }
}

struct ToolEntry {
    policy: &'static ToolPolicy,
    limits: Limits,
    /// `policy.requires` joined by spaces, once, for audit events.
    requires: String,
    /// `None` when the tool has no rate limit: the call path then does no rate work at all.
    rate: Option<RateLimiter>,
    /// What a call needs before it runs, when it needs approval.
    approval: Option<ApprovalRule>,
    /// SHA-256 of the tool's definition, as the manifest has it: an approval is bound to it.
    definition_sha256: String,
    /// The tool's description, shown to approvers.
    description: String,
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

/// A call refused before its handler ran, with the policy it was refused by.
pub(crate) struct Refusal {
    pub(crate) policy: &'static ToolPolicy,
    pub(crate) denial: Denial,
    pub(crate) message: String,
    /// Set when the call was refused by the tool's rate limit rather than for a grant.
    pub(crate) limited: Option<RateLimited>,
}

impl Refusal {
    /// The JSON-RPC error for the caller: [`FORBIDDEN`] with the lacking grants, or
    /// [`RATE_LIMITED`] with when to retry; and the explanation.
    pub(crate) fn into_error(self) -> ErrorData {
        if let Some(limited) = self.limited {
            let retry_after_ms = u64::try_from(limited.retry_after.as_millis()).unwrap_or(u64::MAX);
            let data = serde_json::json!({
                "tool": self.policy.name,
                "rate": limited.rate.to_string(),
                "retry_after_secs": limited.retry_after_secs(),
                "retry_after_ms": retry_after_ms,
            });
            return ErrorData::new(RATE_LIMITED, self.message, Some(data));
        }
        let data = serde_json::json!({
            "tool": self.policy.name,
            "missing_grants": self.denial.lacking().collect::<Vec<_>>(),
        });
        ErrorData::new(FORBIDDEN, self.message, Some(data))
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

    fn with_identity(
        server: impl Into<Server<S>>,
        config: &Config,
        identity: Identity,
    ) -> Result<Self, ConfigError> {
        let Server {
            service,
            providers,
            audit_sinks,
            revocations,
            evictors,
            last_used,
            approvals,
        } = server.into();
        config.check_tools(S::policies())?;
        crate::manifest::hold_to_manifest::<S>(config)?;
        let revocations = match revocations {
            Some(revocations) => revocations,
            None => Revocations::from_config(config)?,
        };
        for evictor in evictors {
            revocations.evict_with(evictor, S::policies());
        }
        // Fail closed: a trail the operator asked to keep in PostgreSQL must not quietly go
        // only to stderr because the server never attached the store's sink.
        if config.audit().postgres && audit_sinks.is_empty() {
            return Err(ConfigError::new(
                config.path(),
                Some("audit.postgres".to_owned()),
                crate::config::ConfigErrorKind::Mismatch,
                "the trail is to go to the [state] store's audit table, but the server adds no durable audit sink: attach one with Server::audit_to(mcp_lp_state::StateStore::connect(&config).await?.audit_sink())".to_owned(),
            ));
        }
        let router = S::tool_router();
        let tools: HashMap<&'static str, ToolEntry> = S::policies()
            .iter()
            .map(|policy| {
                let limits = config.limits_for(policy);
                let tool = router.get(policy.name);
                let entry = ToolEntry {
                    policy,
                    limits,
                    requires: policy.requires.join(" "),
                    rate: limits.rate.map(RateLimiter::new),
                    approval: config.approval_for(policy),
                    definition_sha256: crate::manifest::digest_of(&crate::manifest::definition(
                        policy, tool, config,
                    )),
                    description: tool
                        .and_then(|t| t.description.as_deref())
                        .unwrap_or_default()
                        .to_owned(),
                };
                (policy.name, entry)
            })
            .collect();
        let approvals = if tools.values().any(|t| t.approval.is_some()) {
            let store: Arc<dyn ApprovalStore> = match approvals {
                Some(store) => store,
                None if config.has_state() => {
                    return Err(ConfigError::new(
                        config.path(),
                        Some("state".to_owned()),
                        crate::config::ConfigErrorKind::Mismatch,
                        "replicas sharing a [state] store share its approvals, but the server keeps none there: give it the store's with mcp_lp_state::StateStore::attach".to_owned(),
                    ));
                }
                None => Arc::new(FileApprovals::new(config.approvals_path())),
            };
            Some(Arc::new(Approvals::from_config(
                store,
                config,
                Some(revocations.clone()),
            )?))
        } else {
            None
        };
        #[cfg(feature = "http")]
        let approval_page = config.http().map(|http| {
            let resource = http.resource_uri();
            let after_scheme = resource.find("://").map_or(0, |i| i + 3);
            let origin = match resource[after_scheme..].find('/') {
                Some(i) => &resource[..after_scheme + i],
                None => resource.as_str(),
            };
            format!("{origin}/approvals/")
        });
        #[cfg(not(feature = "http"))]
        let approval_page = None;
        let resource = config.http().map_or_else(
            || format!("mcp-lp:{}", S::server_info().name),
            crate::config::HttpSection::resource_uri,
        );
        let sealer = match config.request_state_sealer() {
            Some(sealer) => sealer.clone(),
            None => StateSealer::ephemeral(DEFAULT_STATE_TTL),
        };
        let shared = Shared {
            service,
            router: S::tool_router(),
            tools,
            providers: Providers(Arc::new(providers)),
            sealer,
            protocol_versions: config.protocol_versions().to_vec(),
            manifest: config.manifest().map(|m| {
                serde_json::json!({
                    "digest": m.digest,
                    "owner": m.owner,
                    "review_by": m.review_by,
                })
            }),
            revocations,
            last_used: last_used.unwrap_or_else(LastUsed::in_memory),
            approvals,
            approval_page,
            resource,
        };
        for sink in audit_sinks {
            crate::audit::trail().attach(sink);
        }
        Ok(Self {
            shared: Arc::new(shared),
            identity,
        })
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

    /// Refuse a call to `tool` that `principal` may not make, or may not make yet under the
    /// tool's rate limit, emitting its audit event. The HTTP layer asks this before a request
    /// reaches rmcp, so that it can answer a missing scope with `403` and a rate limit with `429`.
    /// `Ok(Some(_))` when the call was counted against the rate limit: the proof goes into the
    /// request's extensions so the checkpoint does not count it twice. `Ok(None)` when the tool
    /// is unknown or has no rate limit.
    ///
    /// `call` gives the request id and arguments for the audit event; it runs only on refusal.
    #[cfg(feature = "http")]
    pub(crate) fn precheck(
        &self,
        principal: &Principal,
        tool: &str,
        call: impl FnOnce() -> (String, Option<rmcp::model::JsonObject>),
    ) -> Result<Option<Counted>, Refusal> {
        let started = Instant::now();
        let Some(entry) = self.shared.tools.get(tool) else {
            return Ok(None);
        };
        let refused = match authorize(entry.policy, principal, SystemTime::now()) {
            Err(denial) => Err(denial),
            Ok(_) => match &entry.rate {
                None => return Ok(None),
                Some(limiter) => match limiter.check(principal.id()) {
                    Ok(()) => {
                        return Ok(Some(Counted {
                            tool: entry.policy.name,
                        }));
                    }
                    Err(limited) => Ok(limited),
                },
            },
        };
        let (request_id, arguments) = call();
        let arguments = ArgumentDigest::of(arguments.as_ref());
        let event = AuditEvent::start(&request_id, principal.id(), &arguments, started);
        Err(match refused {
            Err(denial) => deny(event, entry, principal, denial).0,
            Ok(limited) => rate_limit(event, entry, principal, limited).0,
        })
    }

    /// Whether the HTTP layer already counted this request's call of `tool` against its rate
    /// limit (see [`Checkpoint::precheck`]).
    fn counted_upstream(&self, context: &RequestContext<RoleServer>, tool: &str) -> bool {
        match &self.identity {
            Identity::Operator(_) => {
                let _ = (context, tool);
                false
            }
            #[cfg(feature = "http")]
            Identity::Bearer => context
                .extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Counted>())
                .is_some_and(|counted| counted.tool == tool),
        }
    }

    /// Park a call that needs approval, or let it through on an approval of this very call.
    #[allow(clippy::too_many_arguments)]
    async fn approval_gate(
        &self,
        entry: &ToolEntry,
        rule: &ApprovalRule,
        key: CallKey<'_>,
        binding: &Binding<'_>,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
        mut approval_id: Option<String>,
    ) -> Result<PendingCall, Parked> {
        let tool = entry.policy.name;
        let Some(approvals) = &self.shared.approvals else {
            return Err(Parked::refused(
                None,
                format!("tool `{tool}` needs approval, and the server keeps no approvals"),
                Outcome::ApprovalRefused,
                None,
            ));
        };
        let modern = context
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        // Without a page to send a 2026-07-28 client to, or for a 2025-11-25 client, the retry
        // is the same call without state: it is found by what it is.
        let by_state = modern && self.shared.approval_page.is_some();
        if approval_id.is_none() && !by_state {
            approval_id = approvals.find(key).await.map_err(|refused| match refused {
                // The record the index names is not this deployment's: say so, as for a
                // retry that names it.
                ApprovalError::Tampered(ref id) => {
                    self.refused_approval(tool, key.principal, id.clone(), &refused)
                }
                other => Parked::unavailable(tool, &other),
            })?;
        }
        if let Some(id) = approval_id {
            return approvals
                .consume(&id, key)
                .await
                .map_err(|refused| self.refused_approval(tool, key.principal, id, &refused));
        }

        let arguments = serde_json::Value::Object(request.arguments.clone().unwrap_or_default());
        let mut why = entry.description.clone();
        if why.is_empty() {
            why = format!("tool `{tool}` changes what it is given");
        }
        let call = approvals
            .park(key, rule, &arguments, &why)
            .await
            .map_err(|e| match e {
                ApprovalError::TooManyPending { .. } => {
                    let reason = format!("tool `{tool}` did not run: {e}");
                    let data =
                        serde_json::json!({ "tool": tool, "approval": { "status": e.code() } });
                    Parked::refused(
                        None,
                        reason.clone(),
                        Outcome::RateLimited,
                        Some(ErrorData::new(RATE_LIMITED, reason, Some(data))),
                    )
                }
                other => Parked::unavailable(tool, &other),
            })?;
        let id = call.id;
        let expires_at = call.expires_at;
        crate::audit::record(
            &Record::new("approval_requested")
                .str("approval", &id)
                .str("tool", tool)
                .str("principal", key.principal)
                .str("args_sha256", key.arguments_sha256)
                .str("definition_sha256", key.definition_sha256)
                .str("grant", &rule.grant)
                .int("min", u64::from(rule.min))
                .str("expires_at", &expires_at),
        );
        let page = self.page_of(&id);
        // The model reads this message: it says that a person must approve, not how to.
        let message = match &page {
            Some(url) => format!(
                "Tool `{tool}` needs approval of this call by a person holding `{}`: open {url} to review it. It expires at {expires_at}.",
                rule.grant
            ),
            None => format!(
                "Tool `{tool}` needs approval of this call by a person holding `{}`, given outside this conversation; then call the tool again with the same arguments. It expires at {expires_at}.",
                rule.grant
            ),
        };
        let reason = format!("tool `{tool}` needs approval {id}");
        let response = match page {
            Some(url) if by_state => {
                let question = InputRequest::Elicitation(ElicitRequest::new(
                    ElicitRequestParams::UrlElicitationParams {
                        meta: None,
                        message,
                        url,
                        elicitation_id: id.clone(),
                    },
                ));
                let requests = [("approval".to_owned(), question)].into_iter().collect();
                let state = self.shared.sealer.seal(binding, &RoundState::parked(&id));
                Ok(InputRequiredResult::new(Some(requests), Some(state)).into())
            }
            Some(url) => {
                let data = serde_json::json!({
                    "elicitations": [{
                        "mode": "url",
                        "elicitationId": id,
                        "url": url,
                        "message": message,
                    }],
                    "approval": { "id": id, "url": url, "expires_at": expires_at },
                });
                Err(ErrorData::new(
                    URL_ELICITATION_REQUIRED,
                    message,
                    Some(data),
                ))
            }
            None => {
                let data = serde_json::json!({
                    "tool": tool,
                    "approval": { "id": id, "expires_at": expires_at },
                });
                Err(ErrorData::new(FORBIDDEN, message, Some(data)))
            }
        };
        Err(Parked {
            id: Some(id),
            reason,
            outcome: Outcome::ApprovalRequired,
            response,
        })
    }

    /// The refusal of a call whose approval `id` did not let it run.
    fn refused_approval(
        &self,
        tool: &str,
        principal: &str,
        id: String,
        refused: &ApprovalError,
    ) -> Parked {
        if let ApprovalError::Store { .. } = refused {
            return Parked::unavailable(tool, refused);
        }
        if *refused == ApprovalError::Expired {
            crate::audit::record(
                &Record::new("approval_expired")
                    .str("approval", &id)
                    .str("tool", tool)
                    .str("principal", principal),
            );
        }
        let reason = format!("tool `{tool}` did not run: {refused}");
        let data = serde_json::json!({
            "tool": tool,
            "approval": { "id": id, "status": refused.code(), "url": self.page_of(&id) },
        });
        let error = ErrorData::new(FORBIDDEN, reason.clone(), Some(data));
        Parked::refused(Some(id), reason, Outcome::ApprovalRefused, Some(error))
    }

    /// The approval page of `id`, when the server serves one.
    fn page_of(&self, id: &str) -> Option<String> {
        self.shared
            .approval_page
            .as_ref()
            .map(|page| format!("{page}{id}"))
    }

    async fn run(
        &self,
        authorized: Authorized<'_>,
        principal: Arc<Principal>,
        limits: Limits,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> (Outcome, Option<usize>, Result<CallToolResponse, ErrorData>) {
        let policy = authorized.policy();
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

/// Complete `event` as a denial by `entry`'s policy, record it, and describe the refusal.
fn deny<'a>(
    event: AuditEvent<'a>,
    entry: &'a ToolEntry,
    principal: &Principal,
    denial: Denial,
) -> (Refusal, Recorded) {
    let message = denial.explain(entry.policy.name, principal.id());
    let recorded = AuditEvent {
        tool: entry.policy.name,
        role: entry.policy.role,
        db: entry.policy.db,
        requires: &entry.requires,
        reason: Some(&message),
        outcome: Outcome::Denied,
        ..event
    }
    .finish();
    let refusal = Refusal {
        policy: entry.policy,
        denial,
        message,
        limited: None,
    };
    (refusal, recorded)
}

/// Complete `event` as a call refused by `entry`'s rate limit, record it, and describe the
/// refusal.
fn rate_limit<'a>(
    event: AuditEvent<'a>,
    entry: &'a ToolEntry,
    principal: &Principal,
    limited: RateLimited,
) -> (Refusal, Recorded) {
    let message = limited.explain(entry.policy.name, principal.id());
    let recorded = AuditEvent {
        tool: entry.policy.name,
        role: entry.policy.role,
        db: entry.policy.db,
        requires: &entry.requires,
        reason: Some(&message),
        outcome: Outcome::RateLimited,
        ..event
    }
    .finish();
    let refusal = Refusal {
        policy: entry.policy,
        denial: Denial::default(),
        message,
        limited: Some(limited),
    };
    (refusal, recorded)
}

impl<S: ToolSet> ServerHandler for Checkpoint<S> {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = self.shared.service.extras().get_info().capabilities;
        capabilities.tools = ServerCapabilities::builder().enable_tools().build().tools;
        let mut config = ServerConfig::new(capabilities).with_server_info(S::server_info());
        // A client can pin the approved manifest too.
        if let Some(manifest) = &self.shared.manifest {
            config.meta.get_or_insert_with(Default::default).insert(
                crate::manifest::MANIFEST_META_KEY.to_owned(),
                manifest.clone(),
            );
        }
        match S::instructions() {
            Some(text) => config.with_instructions(text),
            None => config,
        }
    }

    // Everything but tools is the server's own handler's: resources, prompts, completion and
    // logging are not capability-scoped.

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.shared
            .service
            .extras()
            .complete(request, context)
            .await
    }

    // Logging and subscriptions are deprecated for the next protocol version, but part of
    // 2025-11-25, which clients speak today.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .service
            .extras()
            .set_level(request, context)
            .await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.shared
            .service
            .extras()
            .get_prompt(request, context)
            .await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        self.shared
            .service
            .extras()
            .list_prompts(request, context)
            .await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.shared
            .service
            .extras()
            .list_resources(request, context)
            .await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        self.shared
            .service
            .extras()
            .list_resource_templates(request, context)
            .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.shared
            .service
            .extras()
            .read_resource(request, context)
            .await
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .service
            .extras()
            .subscribe(request, context)
            .await
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .service
            .extras()
            .unsubscribe(request, context)
            .await
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let Some(principal) = self.principal_of(&context) else {
            return Ok(ListToolsResult::with_all_items(Vec::new()));
        };
        let now = SystemTime::now();
        let mut tools = self.shared.router.list_all();
        tools.retain(|tool| self.visible(tool, &principal, now));
        // The list is this caller's: no shared cache may hand it to another.
        Ok(ListToolsResult::with_all_items(tools)
            .with_cache_scope(CacheScope::Private)
            .with_ttl_ms(list_ttl_ms(&principal, now)))
    }

    // rmcp asks for a tool's definition only to check the `Mcp-Param-*` headers of a request
    // against its input schema (SEP-2243), before the call reaches `call_tool`; nothing of it is
    // sent to the client. Authorization stays with `call_tool` and `list_tools`.
    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared.router.get(name).cloned()
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Owned(self.shared.protocol_versions.clone())
    }

    // `subscriptions/listen` (2026-07-28) carries list-changed and resource notifications, none
    // of which are capability-scoped: the server's own handler decides what it accepts. A server
    // without one still acknowledges the stream, with what its capabilities advertise (rmcp
    // narrows the filter to them), so a client can always listen.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.shared
            .service
            .extras()
            .accepted_subscription_filter(requested)
            .or_else(|| Some(requested.supported_by(&self.get_info().capabilities)))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        self.shared.service.extras().listen(context).await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (response, recorded) = self.decide(request, context).await;
        acknowledge(response, recorded).await
    }
}

impl<S: ToolSet> Checkpoint<S> {
    /// Decide, run and audit one `tools/call`: its response and its audit event.
    async fn decide(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> (Result<CallToolResponse, ErrorData>, Recorded) {
        let started = Instant::now();
        let request_id = context.id.to_string();
        let arguments = ArgumentDigest::of(request.arguments.as_ref());
        // A multi-round-trip retry also carries the client's answers and the state it echoes.
        let round = ArgumentDigest::of_round(
            request.input_responses.as_ref(),
            request.request_state.as_deref(),
        );
        let Some(principal) = self.principal_of(&context) else {
            let mut event = AuditEvent::start(&request_id, "", &arguments, started);
            event.round = round.as_ref();
            event.reason = Some("no authenticated principal");
            event.outcome = Outcome::Denied;
            let recorded = event.finish();
            let error = ErrorData::new(
                FORBIDDEN,
                "no authenticated principal: the transport did not identify this request",
                None,
            );
            return (Err(error), recorded);
        };
        let mut event = AuditEvent::start(&request_id, principal.id(), &arguments, started);
        event.round = round.as_ref();

        // Fail closed: a call whose event the trail cannot record does not run.
        if let Err(unavailable) = crate::audit::trail().admits_calls() {
            let reason = unavailable.to_string();
            let name = echo(&request.name);
            event.tool = &name;
            event.reason = Some(&reason);
            event.outcome = Outcome::AuditUnavailable;
            let recorded = event.finish();
            return (
                Err(ErrorData::internal_error(reason.clone(), None)),
                recorded,
            );
        }

        let Some(entry) = self.shared.tools.get(request.name.as_ref()) else {
            let name = echo(&request.name);
            let reason = format!("unknown tool `{name}`");
            event.tool = &name;
            event.reason = Some(&reason);
            let recorded = event.finish();
            return (
                Err(ErrorData::invalid_params(reason.clone(), None)),
                recorded,
            );
        };
        let policy = entry.policy;
        event.tool = policy.name;
        event.role = policy.role;
        event.db = policy.db;
        event.requires = &entry.requires;

        if let Err(refused) = self.shared.revocations.check(principal.id(), policy) {
            let reason = format!(
                "tool `{}` is refused for {}: {refused}",
                policy.name,
                principal.id()
            );
            event.reason = Some(&reason);
            event.outcome = Outcome::Revoked;
            let recorded = event.finish();
            let revoked = match &refused {
                Refused::Revoked(r) => serde_json::json!({
                    "kind": r.target.kind(),
                    "name": r.target.name(),
                    "reason": r.reason,
                    "by": r.by,
                    "at": r.at.to_string(),
                }),
                Refused::StoreUnreachable { store, .. } => {
                    serde_json::json!({ "store_unreachable": store })
                }
            };
            let data = serde_json::json!({ "tool": policy.name, "revoked": revoked });
            return (
                Err(ErrorData::new(FORBIDDEN, reason.clone(), Some(data))),
                recorded,
            );
        }

        let authorized = match authorize(policy, &principal, SystemTime::now()) {
            Ok(authorized) => authorized,
            Err(denial) => {
                let (refusal, recorded) = deny(event, entry, &principal, denial);
                return (Err(refusal.into_error()), recorded);
            }
        };

        if let Some(limiter) = &entry.rate
            && !self.counted_upstream(&context, policy.name)
            && let Err(limited) = limiter.check(principal.id())
        {
            let (refusal, recorded) = rate_limit(event, entry, &principal, limited);
            return (Err(refusal.into_error()), recorded);
        }

        let request_bytes = arguments.bytes() + round.as_ref().map_or(0, ArgumentDigest::bytes);
        if request_bytes > entry.limits.max_argument_bytes {
            let reason = format!(
                "arguments to tool `{}` are {request_bytes} bytes, over the limit of {} bytes",
                policy.name, entry.limits.max_argument_bytes
            );
            event.reason = Some(&reason);
            event.outcome = Outcome::ArgumentsTooLarge;
            let recorded = event.finish();
            return (
                Err(ErrorData::invalid_params(reason.clone(), None)),
                recorded,
            );
        }

        // The state a client brings back is attacker-controlled: the tool sees it only once the
        // seal shows it was issued by this server for this principal, this tool and these
        // arguments.
        let binding = Binding::request_state(
            &self.shared.resource,
            principal.id(),
            policy.name,
            &arguments,
        );
        let mut approval_id: Option<String> = None;
        let mut round: Option<(String, String)> = None;
        if let Some(sealed) = request.request_state.take() {
            match self.shared.sealer.open(&binding, &sealed) {
                Ok(state) => match (RoundState::of(&state), &entry.approval) {
                    // The state this checkpoint handed out when it parked the call: the
                    // client's answer to the approval page is no input for the tool.
                    (RoundState::Parked(id), Some(_)) => {
                        approval_id = Some(id.to_owned());
                        request.input_responses = None;
                    }
                    // A later round of an approved run: it continues on that approval, once.
                    (RoundState::Round { id, nonce, state }, Some(_)) => {
                        round = Some((id.to_owned(), nonce.to_owned()));
                        request.request_state = Some(state.to_owned());
                    }
                    // State that names no approval (sealed before the tool needed one) never
                    // lets a call past the gate: the call is asked for again.
                    (RoundState::Unbound, Some(_)) => request.input_responses = None,
                    (RoundState::Round { state, .. }, None) => {
                        request.request_state = Some(state.to_owned());
                    }
                    (_, None) => request.request_state = Some(state),
                },
                Err(rejected) => {
                    let reason = if entry.approval.is_some()
                        && rejected == StateRejected::OtherArguments
                    {
                        format!(
                            "tool `{}` did not run: arguments differ from those approved; call it again without requestState to ask for approval of these",
                            policy.name
                        )
                    } else {
                        format!(
                            "the requestState sent to tool `{}` was refused: {rejected}; call the tool again without it",
                            policy.name
                        )
                    };
                    event.reason = Some(&reason);
                    event.outcome = Outcome::StateRejected;
                    let recorded = event.finish();
                    let data = serde_json::json!({
                        "tool": policy.name,
                        "request_state": rejected.code(),
                    });
                    let error = ErrorData::invalid_params(reason.clone(), Some(data));
                    return (Err(error), recorded);
                }
            }
        }

        // A tool that needs approval runs only on an approval of this very call, used once,
        // and each later round of that run only once, on the same approval.
        let arguments_sha256 = arguments.hex();
        let key = CallKey {
            principal: principal.id(),
            tool: policy.name,
            arguments_sha256: arguments_sha256.as_str(),
            definition_sha256: &entry.definition_sha256,
        };
        let approved = match (&entry.approval, round) {
            (None, _) => None,
            (Some(_), Some((id, nonce))) => {
                let expires = jiff::Timestamp::now()
                    .checked_add(
                        jiff::SignedDuration::try_from(self.shared.sealer.ttl())
                            .unwrap_or_default(),
                    )
                    .unwrap_or_else(|_| jiff::Timestamp::now());
                let continued = match &self.shared.approvals {
                    Some(approvals) => approvals.continue_round(&id, &nonce, key, expires).await,
                    None => Err(ApprovalError::Unknown(id.clone())),
                };
                match continued {
                    Ok(call) => Some(call),
                    Err(refused) => {
                        let parked =
                            self.refused_approval(policy.name, principal.id(), id, &refused);
                        event.reason = Some(&parked.reason);
                        event.approval = parked.id.as_deref();
                        event.outcome = parked.outcome;
                        let recorded = event.finish();
                        return (parked.response, recorded);
                    }
                }
            }
            (Some(rule), None) => {
                match self
                    .approval_gate(entry, rule, key, &binding, &request, &context, approval_id)
                    .await
                {
                    Ok(call) => Some(call),
                    Err(parked) => {
                        event.reason = Some(&parked.reason);
                        event.approval = parked.id.as_deref();
                        event.outcome = parked.outcome;
                        let recorded = event.finish();
                        return (parked.response, recorded);
                    }
                }
            }
        };
        let approvers: Option<Vec<&str>> = approved.as_ref().map(|call| {
            self.shared
                .approvals
                .as_ref()
                .map(|a| a.approvers(call))
                .unwrap_or_default()
        });
        event.approval = approved.as_ref().map(|call| call.id.as_str());
        event.approvers = approvers.as_deref();

        let (outcome, output_bytes, mut response) = self
            .run(
                authorized,
                Arc::clone(&principal),
                entry.limits,
                request,
                context,
            )
            .await;
        if let Ok(CallToolResponse::InputRequired(result)) = &mut response
            && let Some(state) = result.request_state.take()
        {
            // A round of an approved run carries the approval and a nonce of its own.
            let state = match &approved {
                Some(call) => RoundState::round(&call.id, &state),
                None => Ok(state),
            };
            match state {
                Ok(state) => result.request_state = Some(self.shared.sealer.seal(&binding, &state)),
                Err(e) => {
                    response = Err(ErrorData::internal_error(
                        format!(
                            "tool `{}` asked for input, and its state cannot be sealed: {e}",
                            policy.name
                        ),
                        None,
                    ));
                }
            }
        }
        self.shared.last_used.note(policy.name, principal.id());
        event.decision = Decision::Allow;
        event.outcome = outcome;
        event.output_bytes = output_bytes;
        let recorded = event.finish();
        (response, recorded)
    }
}

/// Answer a call once its audit event is recorded as the trail's failure policy asks, with a
/// receipt in the result's `_meta` when the trail gives them. A result whose event could not be
/// recorded is withheld: the caller learns that the call's outcome is not on record.
pub(crate) async fn acknowledge(
    response: Result<CallToolResponse, ErrorData>,
    recorded: Recorded,
) -> Result<CallToolResponse, ErrorData> {
    if let Err(unavailable) = recorded.durable().await {
        tracing::error!(error = %unavailable, seq = recorded.seq(), "audit event not recorded");
        return Err(ErrorData::internal_error(
            format!("{unavailable}; the call's result is withheld"),
            None,
        ));
    }
    let mut response = response;
    if crate::audit::trail().receipts()
        && let Ok(CallToolResponse::Complete(result)) = &mut response
    {
        let receipt = serde_json::json!({
            "instance": recorded.instance(),
            "seq": recorded.seq(),
            "hash": recorded.hash(),
        });
        result
            .meta
            .get_or_insert_with(Default::default)
            .insert(crate::audit::RECEIPT_META_KEY.to_owned(), receipt);
    }
    response
}

/// A call the approval gate did not let through, and what to answer.
struct Parked {
    id: Option<String>,
    reason: String,
    outcome: Outcome,
    response: Result<CallToolResponse, ErrorData>,
}

impl Parked {
    fn refused(
        id: Option<String>,
        reason: String,
        outcome: Outcome,
        error: Option<ErrorData>,
    ) -> Self {
        let error = error.unwrap_or_else(|| ErrorData::new(FORBIDDEN, reason.clone(), None));
        Self {
            id,
            reason,
            outcome,
            response: Err(error),
        }
    }

    /// Fail closed: a call whose approval cannot be checked or recorded does not run.
    fn unavailable(tool: &str, error: &ApprovalError) -> Self {
        let reason = format!("tool `{tool}` did not run: {error}");
        let data = serde_json::json!({ "tool": tool, "approval": { "status": error.code() } });
        let error = ErrorData::internal_error(reason.clone(), Some(data));
        Self::refused(None, reason, Outcome::ApprovalRefused, Some(error))
    }
}

/// The JSON-RPC error a 2025-11-25 client gets when a call waits for a person to act on a
/// page: `URLElicitationRequiredError`, with the elicitation in its data.
pub const URL_ELICITATION_REQUIRED: ErrorCode = ErrorCode(-32042);

/// Serving stopped because the transport failed.
#[derive(Debug, thiserror::Error)]
#[error("MCP transport failed: {0}")]
pub struct ServeError(String);

fn error_result(message: String) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(message)]).into()
}

/// A client-sent name, cut to [`MAX_ECHOED_NAME`] characters with control characters escaped,
/// safe to echo into an error and the audit trail.
fn echo(name: &str) -> String {
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
fn list_ttl_ms(principal: &Principal, now: SystemTime) -> u64 {
    let ttl = principal
        .grants()
        .iter()
        .filter_map(|grant| grant.expires_at()?.duration_since(now).ok())
        .fold(TOOL_LIST_TTL, Duration::min);
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
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
