//! [`Server`]: a service and what the checkpoint gives its tools, before it is assembled.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use crate::approval::{ApprovalNotifier, ApprovalStore};
use crate::audit::AuditSink;
use crate::config::Config;
use crate::last_used::LastUsed;
use crate::policy::ToolSet;
use crate::revocation::{Evict, RevocationError, Revocations};
use crate::stores::SharedStores;

/// Something a [`Server`] gives its tools through capability extractors: AWS roles, database
/// pools, a new kind's provider.
///
/// ```
/// /// What the `vault.secret` kind's extractor reads its secrets from.
/// struct Vault;
///
/// impl mcp_lp::Provide for Vault {}
/// ```
pub trait Provide: Send + Sync + 'static {
    /// What drops what a revocation takes away, when the provider holds any (mcp-lp-aws's
    /// cached role sessions). Registered with the server's revocation list when the provider
    /// is given to [`Server::provide`].
    fn evictor(&self) -> Option<Arc<dyn Evict>> {
        None
    }
}

/// A service and the capability providers its tools draw on: what a [`Checkpoint`](crate::Checkpoint) serves.
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
/// impl mcp_lp::Provide for Pools {}
///
/// let server = mcp_lp::Server::new(Notes).provide(Pools);
/// ```
pub struct Server<S> {
    pub(super) service: S,
    pub(super) providers: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    pub(super) audit_sinks: Vec<Box<dyn AuditSink>>,
    pub(super) revocations: Option<Revocations>,
    pub(super) evictors: Vec<Arc<dyn Evict>>,
    pub(super) last_used: Option<LastUsed>,
    pub(super) approvals: Option<Arc<dyn ApprovalStore>>,
    pub(super) notifiers: Vec<Arc<dyn ApprovalNotifier>>,
    #[cfg(feature = "http")]
    pub(crate) http_routes: Vec<crate::transport::http::ExtraRoutes>,
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
            notifiers: Vec::new(),
            #[cfg(feature = "http")]
            http_routes: Vec::new(),
        }
    }

    /// Keep pending approvals and their single-use ledger here, such as in the `[state]`
    /// store that replicas share, instead of the directory next to the configuration.
    #[must_use]
    pub fn approvals(mut self, store: impl ApprovalStore) -> Self {
        self.approvals = Some(Arc::new(store));
        self
    }

    /// Tell `notifier` of each call that waits for approval and of each verdict on one: a new
    /// approval channel (chat, paging) is a crate implementing [`ApprovalNotifier`].
    #[must_use]
    pub fn notify_approvals(mut self, notifier: impl ApprovalNotifier) -> Self {
        self.notifiers.push(Arc::new(notifier));
        self
    }

    /// Serve the routes `routes` makes under `prefix` beside the MCP endpoint, when serving
    /// over HTTP: an approval channel's callbacks, for one. `routes` is given the server's
    /// [`Approvals`](crate::approval::Approvals), through which alone a verdict is given. The
    /// routes authenticate their own callers; `prefix` may not overlap the MCP endpoint,
    /// `/.well-known` or `/approvals` (the start is refused, naming it).
    #[cfg(feature = "http")]
    #[must_use]
    pub fn http_routes(
        mut self,
        prefix: impl Into<String>,
        routes: impl FnOnce(crate::transport::http::RoutesContext) -> axum::Router + Send + 'static,
    ) -> Self {
        self.http_routes.push(crate::transport::http::ExtraRoutes {
            prefix: prefix.into(),
            make: Box::new(routes),
        });
        self
    }

    /// Keep last-used records here instead of in this process's memory only, such as in the
    /// `[state]` store, which `review` reads.
    #[must_use]
    pub fn last_used(mut self, last_used: LastUsed) -> Self {
        self.last_used = Some(last_used);
        self
    }

    /// Share what the replicas share ([`SharedStores`], from `[state]`): follow its revocation
    /// list (read now; refused when it cannot be read), keep approvals and last uses there, and
    /// write the trail to its sinks too. `mcp_lp::cli::Program::shared_stores` does this for
    /// `serve`.
    pub async fn share(
        mut self,
        stores: SharedStores,
        config: &Config,
    ) -> Result<Self, RevocationError> {
        self.revocations = Some(Revocations::follow_shared(stores.revocations, config).await?);
        self.last_used = Some(LastUsed::writing_to_shared(stores.last_used));
        self.approvals = Some(stores.approvals);
        self.audit_sinks.extend(stores.audit_sinks);
        Ok(self)
    }

    /// Follow this revocation list instead of the file next to the configuration, such as
    /// the `[state]` store's, which every replica shares.
    #[must_use]
    pub fn revocations(mut self, revocations: Revocations) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Write the audit trail to `sink` too, such as the state crate's PostgreSQL table. The
    /// sink joins the process's trail when the checkpoint is built, with the events recorded
    /// since the server started.
    #[must_use]
    pub fn audit_to(mut self, sink: impl AuditSink) -> Self {
        self.audit_sinks.push(Box::new(sink));
        self
    }

    /// Give the checkpoint a capability provider, such as a set of database pools or AWS
    /// roles. Handlers reach it only through extractors that read their
    /// [`CallScope`](super::CallScope). A provider that holds what a revocation takes away
    /// (cached credentials) is registered to drop it: nothing else is needed.
    #[must_use]
    pub fn provide<T: Provide>(mut self, provider: T) -> Self {
        if let Some(evictor) = provider.evictor() {
            self.evictors.push(evictor);
        }
        self.providers.insert(TypeId::of::<T>(), Arc::new(provider));
        self
    }
}

impl<S: ToolSet> From<S> for Server<S> {
    fn from(service: S) -> Self {
        Self::new(service)
    }
}
