//! What a running handler knows about its call, and how its capability extractors reach the
//! providers the server was given.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};

use crate::policy::ToolPolicy;
use crate::principal::Principal;

/// What a running handler knows about its call: which tool, for whom, and the capability
/// providers the server was given. Capability extractors read it to hand out the tool's own
/// credentials; a handler can take it as an argument.
///
/// It is built only by the checkpoint and cannot be changed afterwards, so a provider can trust
/// [`CallScope::tool`] to decide what to hand out.
#[derive(Clone)]
pub struct CallScope {
    pub(super) tool: &'static ToolPolicy,
    pub(super) principal: Arc<Principal>,
    pub(super) providers: Providers,
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

    /// The provider of type `T` given to [`Server::provide`](crate::Server::provide), if any. A provider hands out only
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
pub(super) struct Providers(pub(super) Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);
