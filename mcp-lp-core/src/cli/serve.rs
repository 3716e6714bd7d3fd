//! `serve`: one lifecycle for stdio and HTTP. Load the configuration, start the trail, build
//! the application and give it the shared stores, serve until the input ends or a signal
//! comes, then record `shutdown` and anchor the trail's head.

use std::path::PathBuf;
use std::sync::Arc;

use super::{BuildError, Stores, load, start_trail};
use crate::audit::AuditTrail;
use crate::checkpoint::Server;
use crate::config::Config;
use crate::policy::ToolSet;

/// The server `build` makes from `config`, sharing the stores `config` names.
pub(super) async fn assemble<S, F, Fut>(
    config: &Arc<Config>,
    build: F,
    stores: Stores,
) -> Result<Server<S>, BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    // The shared stores first: a [state] that cannot be opened or holds too much refuses the
    // start before the application connects to anything.
    let shared = stores.open(config).await?;
    let server = build(Arc::clone(config)).await?;
    Ok(match shared {
        Some(shared) => server.share(shared, config).await?,
        None => server,
    })
}

/// Load the configuration and start the trail, then serve what `build` makes with `serve`,
/// and record how it ended. `serve` refuses (the outer error) before it serves anything;
/// the start is then recorded as refused, not as a shutdown.
async fn lifecycle<S, F, Fut, Serve, Served>(
    path: Option<PathBuf>,
    build: F,
    stores: Stores,
    serve: Serve,
) -> Result<(), BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
    Serve: FnOnce(Server<S>, Arc<Config>, AuditTrail) -> Served,
    Served: Future<Output = Result<(Result<(), BuildError>, &'static str), BuildError>>,
{
    let config = Arc::new(load(path)?);
    let trail = start_trail::<S>(&config, None)?;
    let server = assemble(&config, build, stores).await?;
    let (served, reason) = serve(server, config, trail.clone()).await?;
    trail.shutdown(reason).await;
    served
}

/// `serve --http`: streamable HTTP as `[http]` configures it, until SIGTERM or SIGINT.
#[cfg(feature = "http")]
pub(super) async fn serve_http<S, F, Fut>(
    path: Option<PathBuf>,
    build: F,
    stores: Stores,
) -> Result<(), BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    lifecycle(path, build, stores, |server, config, _trail| async move {
        Ok(
            match crate::transport::http::serve_http(server, &config).await {
                Ok(()) => (Ok(()), "signal"),
                Err(e) => (Err(e.into()), "http transport failed"),
            },
        )
    })
    .await
}

/// `serve`: stdio as the operator's principal, until stdin closes or SIGTERM or SIGINT.
pub(super) async fn serve<S, F, Fut>(
    path: Option<PathBuf>,
    build: F,
    stores: Stores,
) -> Result<(), BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    lifecycle(path, build, stores, |server, config, trail| async move {
        let checkpoint = crate::checkpoint::Checkpoint::for_stdio(server, &config)?;
        trail.end_startup();
        let principal = checkpoint
            .operator_principal()
            .ok_or("stdio needs the operator's principal")?;
        let grants: Vec<_> = principal
            .grants()
            .iter()
            .map(|g| format!("{g:?}"))
            .collect();
        tracing::info!(
            config = %config.path().display(),
            principal = principal.id(),
            grants = grants.join(", "),
            tools = S::policies().len(),
            "serving MCP over stdio"
        );
        let last_uses = checkpoint.last_uses().clone();
        // SIGTERM and SIGINT end the server as the end of input does: the trail records
        // `shutdown` and anchors its head before the process exits.
        let ended = tokio::select! {
            served = checkpoint.serve_stdio() => match served {
                Ok(()) => (Ok(()), "stdin closed"),
                Err(e) => (Err(e.into()), "stdio transport failed"),
            },
            signal = crate::transport::shutdown_signal() => (Ok(()), signal),
        };
        last_uses.flush().await;
        Ok(ended)
    })
    .await
}
