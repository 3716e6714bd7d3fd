//! The server command line, so an example's `main` is one call to [`run`] (or to
//! [`Program::run`] when replicas share `[state]`):
//!
//! - `serve` (the default): serve MCP over stdio, or over HTTP with `--http` (`cli/serve.rs`).
//! - `check`, `inventory`, `approve` and `review`: what the server declares and how it is
//!   governed (`cli/report.rs`).
//! - `revoke`, `unrevoke`, `revocations`, `approvals` and `audit verify`: the governance
//!   commands (`cli/governance.rs`). They reach the revocation list, the approvals and the trail
//!   from the configuration alone and never build the application, so the breakglass
//!   `revoke --all` works while its database or cloud identity is down.
//!
//! The configuration file comes from `--config PATH` or the `MCP_LP_CONFIG` environment
//! variable. Logs and audit events go to stderr, as JSON lines unless `--log-format text`
//! (`cli/logging.rs`).

mod governance;
mod logging;
mod report;
mod serve;

use std::error::Error;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

use crate::audit::{self, AuditTrail, Record};
use crate::checkpoint::Server;
use crate::config::{CONFIG_ENV, Config, ConfigError};
use crate::policy::ToolSet;
use crate::revocation::Target;
use crate::stores::SharedStores;

pub use self::logging::{DEFAULT_LOG_FILTER, json_subscriber};

/// What building a server from configuration may fail with.
pub type BuildError = Box<dyn Error + Send + Sync>;

/// What opens the stores replicas share, from the configuration alone:
/// `mcp_lp_state::stores`, or `None` when the configuration names none.
type OpenStores = Box<
    dyn FnOnce(
            Arc<Config>,
        )
            -> Pin<Box<dyn Future<Output = Result<Option<SharedStores>, BuildError>> + Send>>
        + Send,
>;

#[derive(Debug, Parser)]
struct Cli {
    /// The configuration file [default: none, meaning principal `anonymous` with no grants]
    #[arg(long, short, global = true, env = CONFIG_ENV)]
    config: Option<PathBuf>,
    /// How logs and audit events are written to stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve MCP over stdio (the default), or over HTTP with --http
    Serve {
        /// Serve over streamable HTTP as the [http] table configures, instead of stdio
        #[cfg(feature = "http")]
        #[arg(long)]
        http: bool,
    },
    /// Validate the configuration and the tool table, then exit
    Check,
    /// Print every tool and what it declares, as JSON
    Inventory,
    /// Approve the tools this server serves now: write the manifest (`mcp-lp.lock` next to the
    /// configuration, or `[governance] manifest`) that later starts are held to
    Approve {
        /// The team that owns the server
        #[arg(long)]
        owner: String,
        /// The date by which the approval must be reviewed, YYYY-MM-DD
        #[arg(long)]
        review_by: String,
        /// Who approves [default: the USER environment variable]
        #[arg(long)]
        by: Option<String>,
    },
    /// Revoke a principal, a grant, a tool or everything, at the next call of every server
    /// that follows the revocation list (the file next to the configuration, or `[state]`)
    Revoke {
        #[command(flatten)]
        target: TargetArgs,
        /// Why; refused callers and the audit trail see it
        #[arg(long)]
        reason: String,
        /// Who revokes [default: the USER environment variable]
        #[arg(long)]
        by: Option<String>,
    },
    /// Lift a revocation
    Unrevoke {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Print the revocations in force
    Revocations,
    /// Print per tool: owner, approval, review date, last use and by whom, the configured
    /// grants outstanding with their expiry, and revocations
    Review,
    /// Approve or deny calls waiting for approval, from the store the server uses
    Approvals {
        #[command(subcommand)]
        action: ApprovalsCommand,
    },
    /// Work with the audit trail
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ApprovalsCommand {
    /// Every call waiting for approval, or approved and not yet run
    List,
    /// One call: the tool, the requester, the arguments, why it is sensitive
    Show {
        /// The approval id
        id: String,
    },
    /// Approve the call, signing the verdict with your SSH key
    Approve {
        /// The approval id
        id: String,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Deny the call, signing the verdict with your SSH key
    Deny {
        /// The approval id
        id: String,
        #[command(flatten)]
        signer: SignerArgs,
        /// Why; the caller sees it
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// Who gives a verdict on the command line: the SSH key that signs it, and which of the
/// principals `[approvers] allowed_signers` lists for that key.
#[derive(Debug, clap::Args)]
struct SignerArgs {
    /// The SSH private key that signs the verdict (`ssh-keygen -Y sign`; an agent holding it
    /// works too); its public key must be listed in `[approvers] allowed_signers`
    #[arg(long)]
    key: PathBuf,
    /// The principal to decide as, when the allowed signers list the key for several
    #[arg(long = "as")]
    as_principal: Option<String>,
}

/// Exactly one of what a revocation can name.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// Every call of this principal
    #[arg(long)]
    principal: Option<String>,
    /// This grant, for every holder: the tools that require it
    #[arg(long)]
    grant: Option<String>,
    /// This tool, for every caller
    #[arg(long)]
    tool: Option<String>,
    /// Everything (breakglass)
    #[arg(long)]
    all: bool,
}

impl TargetArgs {
    /// The target, checked against the server's tools so that a typo revokes nothing silently.
    /// A grant is one a tool requires, or the grant that approves a tool's calls.
    fn target<S: ToolSet>(self, config: &Config) -> Result<Target, BuildError> {
        let policies = S::policies();
        if let Some(principal) = self.principal {
            if principal.trim().is_empty() || principal.chars().any(char::is_control) {
                return Err("--principal must name a principal".into());
            }
            return Ok(Target::Principal(principal));
        }
        if let Some(grant) = self.grant {
            if let Some(reason) = crate::grant::grant_syntax_error(&grant) {
                return Err(format!("--grant `{grant}`: {reason}").into());
            }
            let used = policies.iter().any(|p| {
                p.requires.contains(&grant.as_str())
                    || config
                        .approval_for(p)
                        .is_some_and(|rule| rule.grant == grant)
            });
            if !used {
                return Err(format!(
                    "--grant `{grant}`: no tool of this server requires it or is approved by it"
                )
                .into());
            }
            return Ok(Target::Grant(grant));
        }
        if let Some(tool) = self.tool {
            if !policies.iter().any(|p| p.name == tool) {
                let names: Vec<_> = policies.iter().map(|p| p.name).collect();
                return Err(format!(
                    "--tool `{tool}`: no such tool; the tools are {}",
                    names.join(", ")
                )
                .into());
            }
            return Ok(Target::Tool(tool));
        }
        Ok(Target::All)
    }
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the trail's hash chains with the keys of `[audit] keys`, and its anchors; report
    /// the first bad event and exit non-zero
    Verify {
        /// Trail files, oldest first (rotated files `<path>.NNNNNN`, then the active one)
        files: Vec<PathBuf>,
        /// Anchor files to check the trail's tail against [default: `[audit] anchors`]
        #[arg(long)]
        anchors: Vec<PathBuf>,
        /// Read the trail from the durable sinks the server writes to, such as the `[state]`
        /// store's audit table, instead of files
        #[arg(long)]
        db: bool,
        /// The files are captured stderr: pass over the log lines between the events
        #[arg(long)]
        mixed: bool,
        /// Accept events and anchors sealed without a key, for a deployment that configures
        /// no `[audit] keys`: they show the trail undamaged, not unforged
        #[arg(long)]
        allow_unkeyed: bool,
    },
}

/// Parse the command line and run it with the server `build` makes from the configuration;
/// [`Program`] with no shared stores.
///
/// `build` is async so that capability providers can connect and check their privileges
/// before the server starts; `check` runs it too, the governance commands never do.
///
/// ```no_run
/// # use mcp_lp::prelude::*;
/// # #[derive(Clone)] struct Notes;
/// # #[mcp_lp::server] impl Notes {
/// #     /// Say hello.
/// #     #[tool] async fn hello(&self) -> String { "hello".into() }
/// # }
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     mcp_lp::cli::run(|_config| async { Ok(mcp_lp::Server::new(Notes)) }).await
/// }
/// ```
///
/// Returns the process exit code: 0 on success, 1 when the configuration or the server is
/// refused (with the reason on stderr), 2 on a usage error.
pub async fn run<S, F, Fut>(build: F) -> ExitCode
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    Program::new(build).run().await
}

/// The server's command line: how to build the application, and how to open the stores its
/// replicas share (`[state]`).
///
/// The two are apart because the governance commands need only the stores: `revoke --all`
/// opens the revocation list from the configuration and never runs `build`, which may connect
/// to the application's database or wait for a cloud identity. `serve` and `check` run both
/// and give the stores to the server ([`Server::share`]).
///
/// ```no_run
/// # use mcp_lp::prelude::*;
/// # #[derive(Clone)] struct Notes;
/// # #[mcp_lp::server] impl Notes {
/// #     /// Say hello.
/// #     #[tool] async fn hello(&self) -> String { "hello".into() }
/// # }
/// # async fn open_state(_: std::sync::Arc<mcp_lp::Config>)
/// #     -> Result<Option<mcp_lp::stores::SharedStores>, mcp_lp::cli::BuildError> { Ok(None) }
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     mcp_lp::cli::Program::new(|_config| async { Ok(mcp_lp::Server::new(Notes)) })
///         .shared_stores(open_state) // mcp_lp_state::stores
///         .run()
///         .await
/// }
/// ```
#[must_use = "a Program does nothing until it is run"]
pub struct Program<F> {
    build: F,
    open_stores: Option<OpenStores>,
}

impl<F> std::fmt::Debug for Program<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("shared_stores", &self.open_stores.is_some())
            .finish_non_exhaustive()
    }
}

impl<F> Program<F> {
    /// The command line of the server `build` makes from the configuration.
    pub fn new<S, Fut>(build: F) -> Self
    where
        S: ToolSet,
        F: FnOnce(Arc<Config>) -> Fut,
        Fut: Future<Output = Result<Server<S>, BuildError>>,
    {
        Self {
            build,
            open_stores: None,
        }
    }

    /// Open the stores replicas share with `open` (`mcp_lp_state::stores`), which returns
    /// `None` when the configuration names none. Without this, a configuration with `[state]`
    /// is refused rather than served with stores of its own.
    pub fn shared_stores<O, Fut, E>(mut self, open: O) -> Self
    where
        O: FnOnce(Arc<Config>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<SharedStores>, E>> + Send + 'static,
        E: Into<BuildError>,
    {
        self.open_stores = Some(Box::new(move |config| {
            let opening = open(config);
            Box::pin(async move { opening.await.map_err(Into::into) })
        }));
        self
    }

    /// Parse the command line and run it. Returns the process exit code: 0 on success, 1
    /// when the configuration or the server is refused (with the reason on stderr), 2 on a
    /// usage error.
    pub async fn run<S, Fut>(self) -> ExitCode
    where
        S: ToolSet,
        F: FnOnce(Arc<Config>) -> Fut,
        Fut: Future<Output = Result<Server<S>, BuildError>>,
    {
        let info = S::server_info();
        let command = Cli::command()
            .name(info.name.clone())
            .version(info.version.clone());
        let cli = match command
            .try_get_matches()
            .and_then(|matches| Cli::from_arg_matches(&matches))
        {
            Ok(cli) => cli,
            Err(e) => {
                let _ = e.print();
                return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
            }
        };
        logging::init::<S>(cli.log_format);

        let serve_default = Command::Serve {
            #[cfg(feature = "http")]
            http: false,
        };
        let command = cli.command.unwrap_or(serve_default);
        let serving = matches!(command, Command::Serve { .. });
        let path = cli.config;
        let stores = Stores(self.open_stores);
        let build = self.build;
        let outcome = match command {
            #[cfg(feature = "http")]
            Command::Serve { http: true } => serve::serve_http(path, build, stores).await,
            Command::Serve { .. } => serve::serve(path, build, stores).await,
            Command::Check => report::check(path, build, stores).await,
            Command::Inventory => report::inventory::<S>(path),
            Command::Approve {
                owner,
                review_by,
                by,
            } => report::approve::<S>(path, &owner, &review_by, by),
            Command::Review => report::review::<S>(path, stores).await,
            Command::Revoke { target, reason, by } => {
                governance::revoke::<S>(path, stores, target, reason, by).await
            }
            Command::Unrevoke { target } => governance::unrevoke::<S>(path, stores, target).await,
            Command::Revocations => governance::revocations::<S>(path, stores).await,
            Command::Approvals { action } => governance::approvals::<S>(path, stores, action).await,
            Command::Audit {
                action:
                    AuditCommand::Verify {
                        files,
                        anchors,
                        db,
                        mixed,
                        allow_unkeyed,
                    },
            } => match governance::verify(path, stores, files, anchors, db, mixed, allow_unkeyed)
                .await
            {
                Ok(true) => return ExitCode::SUCCESS,
                Ok(false) => return ExitCode::FAILURE,
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "refused to start");
                if serving {
                    let reason = e.to_string();
                    let refused =
                        audit::record(&Record::new("start_refused").warn().str("reason", &reason));
                    let _ = refused.durable().await;
                }
                let _ = writeln!(std::io::stderr(), "error: {e}");
                ExitCode::FAILURE
            }
        }
    }
}

/// How a command reaches the stores replicas share, if the program opens any.
struct Stores(Option<OpenStores>);

impl Stores {
    /// The shared stores `config` names, opened; `None` when it names none. Refused when it
    /// names them and the program opens none, rather than keeping approvals, revocations or
    /// the trail where the other replicas cannot see them.
    async fn open(self, config: &Arc<Config>) -> Result<Option<SharedStores>, BuildError> {
        let (key, what) = if config.audit().postgres {
            (
                "audit.postgres",
                "the trail is to go to the [state] store's audit table, but the server has no durable audit sink",
            )
        } else {
            (
                "state",
                "replicas are to share approvals and revocations in [state], but the server keeps its own",
            )
        };
        match self.0 {
            Some(open) => open(Arc::clone(config)).await,
            None if config.has_state() || config.audit().postgres => Err(format!(
                "{}: key `{key}`: {what}: it opens no shared stores; run it with `mcp_lp::cli::Program::new(build).shared_stores(mcp_lp_state::stores)`",
                config.path().display()
            )
            .into()),
            None => Ok(None),
        }
    }
}

fn load(path: Option<PathBuf>) -> Result<Config, ConfigError> {
    path.map_or_else(|| Ok(Config::defaults()), Config::load)
}

/// Start the process's audit trail as `config` describes it, before anything else is done;
/// `command` names a governance command run beside the serving process.
fn start_trail<S: ToolSet>(
    config: &Config,
    command: Option<&str>,
) -> Result<AuditTrail, BuildError> {
    let info = S::server_info();
    let trail = AuditTrail::from_config(config, &info.name, &info.version, command)?;
    if audit::install(trail.clone()).is_err() {
        return Err("an audit trail was already in place before the server started".into());
    }
    Ok(trail)
}

/// Who acts on the command line: `--by`, else the USER environment variable; `verb` names
/// the act in the error when neither is given.
fn acting_person(by: Option<String>, verb: &str) -> Result<String, BuildError> {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| format!("name who {verb} with --by (USER is not set)").into())
}
