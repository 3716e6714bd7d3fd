//! Streamable HTTP, served as an OAuth 2.1 resource server.
//!
//! rmcp's `StreamableHttpService` speaks the protocol; in front of it a gate validates the
//! bearer token of every request (JWT, algorithm allow-list, issuer, audience = this server's
//! canonical resource URI, `exp`/`nbf`), binds each session to the principal it was issued to,
//! and answers a call whose required grants the token's scopes lack with
//! `403 insufficient_scope`. The principal, never the token, travels on to the checkpoint: tools
//! do not see the caller's token. `/.well-known/oauth-protected-resource` serves the protected
//! resource metadata (RFC 9728) that `401` challenges point to.

mod approval_doors;
pub(crate) mod bearer;
pub(crate) mod gate;
mod jwks;
mod malformed;
pub(crate) mod sessions;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get};
use axum::serve::ListenerExt as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use self::bearer::BearerValidator;
pub use self::bearer::TokenError;
use self::gate::Gate;
pub use self::jwks::JwksError;
use self::sessions::SessionOwners;
use crate::checkpoint::{Checkpoint, Server};
use crate::config::Config;
use crate::policy::ToolSet;

/// Why serving over HTTP could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The configuration has no `[http]` table.
    #[error("{0}: no [http] table; add one to serve over HTTP")]
    NotConfigured(String),
    /// `[http.auth]` is missing and unauthenticated HTTP was not asked for.
    #[error(
        "{0}: key `http.auth`: serving HTTP needs bearer-token validation; configure [http.auth] (or, for local development only, [dev] allow_unauthenticated_http = true)"
    )]
    Unauthenticated(String),
    /// The authorization server's keys could not be loaded.
    #[error("signing keys of the authorization server: {0}")]
    Keys(#[from] JwksError),
    /// The configuration disagrees with the tools.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: std::net::SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// Extra routes asked for a path they may not have.
    #[error("extra routes under `{prefix}` (Server::http_routes): {problem}")]
    Routes {
        /// The prefix asked for.
        prefix: String,
        /// Why it is refused.
        problem: String,
    },
}

/// Routes a server serves beside the MCP endpoint ([`Server::http_routes`]).
pub(crate) struct ExtraRoutes {
    pub(crate) prefix: String,
    pub(crate) make: Box<dyn FnOnce(RoutesContext) -> Router + Send>,
}

/// What extra routes ([`Server::http_routes`]) are given to work with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RoutesContext {
    /// The server's approvals, when a tool needs approval: the one way to give a verdict.
    pub approvals: Option<Arc<crate::approval::Approvals>>,
    /// The MCP endpoint's resource URI.
    pub resource: String,
}

/// Why extra routes may not live under `prefix`, if they may not: `reserved` are the paths the
/// server serves itself.
fn prefix_problem(prefix: &str, reserved: &[&str]) -> Option<String> {
    let well_formed = prefix.len() > 1
        && prefix.starts_with('/')
        && !prefix.ends_with('/')
        && !prefix.contains("//")
        && prefix
            .split('/')
            .skip(1)
            .all(|segment| segment != "." && segment != "..")
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c));
    if !well_formed {
        return Some(
            "write a path such as `/slack`: a leading `/`, then letters, digits, `-`, `_` and `.`"
                .into(),
        );
    }
    reserved
        .iter()
        .find(|r| {
            prefix == **r
                || prefix.starts_with(&format!("{r}/"))
                || r.starts_with(&format!("{prefix}/"))
        })
        .map(|r| format!("it overlaps `{r}`, which the server serves itself"))
}

/// Serve `server` over streamable HTTP as `[http]` configures, until Ctrl-C.
pub async fn serve_http<S: ToolSet>(
    mut server: Server<S>,
    config: &Config,
) -> Result<(), HttpError> {
    let extra_routes = std::mem::take(&mut server.http_routes);
    let path = config.path().display().to_string();
    let section = config
        .http()
        .ok_or_else(|| HttpError::NotConfigured(path.clone()))?;
    let resource = section.resource_uri();
    let validator = match &section.auth {
        Some(auth) => Some(Arc::new(
            BearerValidator::start(auth, resource.clone()).await?,
        )),
        None if config.allows_unauthenticated_http() => {
            tracing::warn!(
                "serving HTTP WITHOUT authentication: [dev] allow_unauthenticated_http = true"
            );
            None
        }
        None => return Err(HttpError::Unauthenticated(path)),
    };
    let checkpoint = Checkpoint::for_bearer(server, config)?;

    let metadata_path = format!("/.well-known/oauth-protected-resource{}", section.path);
    let resource_metadata = format!("{}{metadata_path}", origin_of(&resource));
    let scopes: BTreeSet<&str> = S::policies()
        .iter()
        .flat_map(|p| p.requires.iter().copied())
        .collect();
    let metadata = Arc::new(json!({
        "resource": resource,
        "authorization_servers": validator.iter().map(|v| v.issuer()).collect::<Vec<_>>(),
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": S::server_info().name,
    }));

    let shutdown = CancellationToken::new();
    let mut rmcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(section.allowed_hosts.clone())
        .with_allowed_origins(section.origins_accepted())
        .enforce_origin_validation();
    rmcp_config.cancellation_token = shutdown.child_token();
    let per_session = checkpoint.clone();
    let session_manager = Arc::new(LocalSessionManager::default());
    let mcp = StreamableHttpService::new(
        move || Ok(per_session.clone()),
        Arc::clone(&session_manager),
        rmcp_config,
    );
    let login = match (&section.approvals, &section.auth) {
        (Some(page), Some(auth)) => {
            let secret = page
                .client_secret
                .as_ref()
                .map(|reference| config.resolve_secret("http.approvals.client_secret", reference))
                .transpose()?;
            Some(approval_doors::Login::new(page, secret, &auth.issuer))
        }
        _ => None,
    };
    let approvals = checkpoint.approvals().cloned();
    let doors = checkpoint.approvals().map(|approvals| {
        Arc::new(approval_doors::Doors {
            approvals: Arc::clone(approvals),
            revocations: checkpoint.revocation_list().clone(),
            validator: validator.clone(),
            sealer: checkpoint.sealer().clone(),
            resource: resource.clone(),
            origin: origin_of(&resource).to_owned(),
            allowed_hosts: section.allowed_hosts.clone(),
            login,
        })
    });
    let gate = Arc::new(Gate {
        mcp,
        validator,
        checkpoint,
        sessions: SessionOwners::new(session_manager),
        resource_metadata,
        max_request_bytes: section.max_request_bytes.get(),
    });

    let last_uses = gate.checkpoint.last_uses().clone();
    // A revoked principal keeps neither its remembered tokens nor its sessions.
    let mut revocations = gate.checkpoint.revocation_list().subscribe();
    let evicting = Arc::downgrade(&gate);
    tokio::spawn(async move {
        while revocations.changed().await.is_ok() {
            let list = Arc::clone(&revocations.borrow_and_update());
            let Some(gate) = evicting.upgrade() else {
                return;
            };
            let revoked = |principal: &str| list.refuses_principal(principal);
            let tokens = gate.validator.as_ref().map_or(0, |v| v.forget(revoked));
            let sessions = gate.sessions.close_of(revoked).await;
            if tokens + sessions > 0 {
                tracing::warn!(
                    tokens,
                    sessions,
                    "revocation: forgot validated tokens and closed sessions of revoked principals"
                );
            }
        }
    });

    let metadata_route = get(move || {
        let metadata = Arc::clone(&metadata);
        async move { axum::Json((*metadata).clone()) }
    });
    let mut app = Router::new()
        .route(&section.path, any(gate::gate::<S>).with_state(gate))
        .route(&metadata_path, metadata_route.clone())
        .route("/.well-known/oauth-protected-resource", metadata_route);
    if let Some(doors) = doors {
        app = app.route(
            "/approvals/{*rest}",
            any(approval_doors::door).with_state(doors),
        );
    }
    let mut taken: Vec<String> = vec![
        section.path.clone(),
        "/.well-known".to_owned(),
        "/approvals".to_owned(),
    ];
    for routes in extra_routes {
        let reserved: Vec<&str> = taken.iter().map(String::as_str).collect();
        if let Some(problem) = prefix_problem(&routes.prefix, &reserved) {
            return Err(HttpError::Routes {
                prefix: routes.prefix,
                problem,
            });
        }
        let context = RoutesContext {
            approvals: approvals.clone(),
            resource: resource.clone(),
        };
        app = app.nest(&routes.prefix, (routes.make)(context));
        taken.push(routes.prefix);
    }

    let listener = tokio::net::TcpListener::bind(section.listen)
        .await
        .map_err(|source| HttpError::Bind {
            address: section.listen,
            source,
        })?
        // A response is written in several small pieces (headers, then server-sent events);
        // under Nagle's algorithm each later piece would wait for the client's delayed ACK.
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    tracing::info!(
        listen = %section.listen,
        resource = %resource,
        "serving MCP over streamable HTTP"
    );
    crate::audit::trail().end_startup();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            crate::transport::shutdown_signal().await;
            shutdown.cancel();
        })
        .await
        .map_err(HttpError::Serve);
    last_uses.flush().await;
    served
}

/// `scheme://host[:port]` of a URI.
fn origin_of(uri: &str) -> &str {
    let after_scheme = uri.find("://").map_or(0, |i| i + 3);
    match uri[after_scheme..].find('/') {
        Some(i) => &uri[..after_scheme + i],
        None => uri,
    }
}
