//! Assembly: a [`Checkpoint`] built from a [`Server`] and the configuration, refused when the
//! configuration does not match what the tools declare.

use std::collections::HashMap;
use std::sync::Arc;

use super::scope::Providers;
use super::{Checkpoint, Identity, Server, Shared, ToolEntry};
use crate::approval::{ApprovalStore, Approvals, FileApprovals};
use crate::config::{Config, ConfigError};
use crate::last_used::LastUsed;
use crate::policy::{ToolPolicy, ToolSet};
use crate::rate::RateLimiter;
use crate::revocation::Revocations;
use crate::sealed_state::{DEFAULT_STATE_TTL, StateSealer};

impl<S: ToolSet> Checkpoint<S> {
    pub(super) fn with_identity(
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
            notifiers,
            #[cfg(feature = "http")]
                http_routes: _,
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
                "the trail is to go to the [state] store's audit table, but the server adds no durable audit sink: open the shared stores with `Program::shared_stores(mcp_lp_state::stores)`, or attach one with Server::audit_to".to_owned(),
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
                    capabilities: capability_labels(policy),
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
                        "replicas sharing a [state] store share its approvals, but the server keeps none there: give it the store's with Server::share (`Program::shared_stores(mcp_lp_state::stores)` does)".to_owned(),
                    ));
                }
                None => Arc::new(FileApprovals::new(config.approvals_path())),
            };
            let approvals = Approvals::from_config(store, config, Some(revocations.clone()))?;
            Some(Arc::new(
                notifiers
                    .into_iter()
                    .fold(approvals, Approvals::with_notifier),
            ))
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
}

/// The labels of `policy`'s capabilities, made once per tool and kept for the process: the
/// tool table lives as long as the server, and every audit event of the tool borrows them.
fn capability_labels(policy: &ToolPolicy) -> &'static [&'static str] {
    let labels: Vec<&'static str> = policy
        .capabilities
        .iter()
        .map(|c| &*Box::leak(c.label().into_boxed_str()))
        .collect();
    Box::leak(labels.into_boxed_slice())
}
