//! The server command line, so an example's `main` is one call to [`run`]:
//!
//! - `serve` (the default): serve MCP over stdio.
//! - `check`: load and validate the configuration and the tool table, print a report, exit
//!   non-zero on any problem.
//! - `inventory`: print every tool with its declared capabilities, required grants
//!   and limits as JSON — the registry of what this server can do.
//!
//! The configuration file comes from `--config PATH` or the `MCP_LP_CONFIG` environment
//! variable. Logs and audit events go to stderr, as JSON lines unless `--log-format text`.

use std::error::Error;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::approval::{ApprovalStore, Approvals, FileApprovals, PendingCall, Standing};
use crate::audit::{self, AuditTrail, Record};
use crate::authorize::authorize;
use crate::checkpoint::{Checkpoint, Server};
use crate::config::{CONFIG_ENV, Config, ConfigError};
use crate::manifest::Manifest;
use crate::policy::ToolSet;
use crate::revocation::Revocations;
use crate::revocation::{FileRevocations, Revocation, RevocationStore, Target};
use crate::visible::{escape_invisible, escape_invisible_keeping_lines};

/// The log filter when `RUST_LOG` is not set. rmcp's own protocol chatter stays at warn: at
/// debug it logs whole messages, tool arguments included.
pub const DEFAULT_LOG_FILTER: &str = "info,rmcp=warn";

/// What building a server from configuration may fail with.
pub type BuildError = Box<dyn Error + Send + Sync>;

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

/// Parse the command line and run it with the server `build` makes from the configuration.
///
/// `build` is async so that capability providers can connect and check their privileges
/// before the server starts; `check` runs it too.
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
    init_logging::<S>(cli.log_format);

    let serve_default = Command::Serve {
        #[cfg(feature = "http")]
        http: false,
    };
    let command = cli.command.unwrap_or(serve_default);
    let serving = matches!(command, Command::Serve { .. });
    let outcome = match command {
        #[cfg(feature = "http")]
        Command::Serve { http: true } => serve_http(cli.config, build).await,
        Command::Serve { .. } => serve(cli.config, build).await,
        Command::Check => check(cli.config, build).await,
        Command::Inventory => inventory::<S>(cli.config),
        Command::Approve {
            owner,
            review_by,
            by,
        } => approve::<S>(cli.config, &owner, &review_by, by),
        Command::Revoke { target, reason, by } => {
            revoke::<S, F, Fut>(cli.config, build, target, reason, by).await
        }
        Command::Unrevoke { target } => unrevoke::<S, F, Fut>(cli.config, build, target).await,
        Command::Revocations => revocations::<S, F, Fut>(cli.config, build).await,
        Command::Review => review::<S, F, Fut>(cli.config, build).await,
        Command::Approvals { action } => approvals::<S, F, Fut>(cli.config, build, action).await,
        Command::Audit {
            action:
                AuditCommand::Verify {
                    files,
                    anchors,
                    db,
                    mixed,
                    allow_unkeyed,
                },
        } => match verify(cli.config, build, files, anchors, db, mixed, allow_unkeyed).await {
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

fn load(path: Option<PathBuf>) -> Result<Config, ConfigError> {
    path.map_or_else(|| Ok(Config::defaults()), Config::load)
}

async fn start<S, F, Fut>(
    path: Option<PathBuf>,
    build: F,
) -> Result<(Arc<Config>, Checkpoint<S>), BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    let config = Arc::new(load(path)?);
    let server = build(Arc::clone(&config)).await?;
    let checkpoint = Checkpoint::for_stdio(server, &config)?;
    Ok((config, checkpoint))
}

async fn verify<S, F, Fut>(
    path: Option<PathBuf>,
    build: F,
    files: Vec<PathBuf>,
    mut anchors: Vec<PathBuf>,
    db: bool,
    mixed: bool,
    allow_unkeyed: bool,
) -> Result<bool, BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    use crate::audit::verify::{Verifier, lines_of, parse_anchors};

    let config = Arc::new(load(path)?);
    if files.is_empty() && !db {
        return Err("name the trail files to verify, or --db".into());
    }
    let mut lines = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        lines.extend(lines_of(&file.display().to_string(), &text));
    }
    if db {
        let mut server = build(Arc::clone(&config)).await?;
        let mut read = 0;
        for sink in server.audit_sinks() {
            if let Some(reading) = sink.read_back() {
                lines.extend(reading.await?);
                read += 1;
            }
        }
        if read == 0 {
            return Err("--db: the server writes its trail to no store that can be read back (see `[audit] postgres`)".into());
        }
    }
    if anchors.is_empty()
        && let Some(configured) = &config.audit().anchors
        && configured.path.exists()
    {
        anchors.push(configured.path.clone());
    }
    let mut anchor_lines = Vec::new();
    for file in &anchors {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        anchor_lines.extend(parse_anchors(&file.display().to_string(), &text)?);
    }
    let mut verifier = Verifier::new(config.audit_keys().iter().cloned());
    if mixed {
        verifier = verifier.allowing_other_lines();
    }
    if allow_unkeyed {
        verifier = verifier.allowing_unkeyed();
    }
    let report = verifier.verify(&lines, &anchor_lines);
    std::io::stdout().write_all(report.to_string().as_bytes())?;
    Ok(report.passed())
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

#[cfg(feature = "http")]
async fn serve_http<S, F, Fut>(path: Option<PathBuf>, build: F) -> Result<(), BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    let config = Arc::new(load(path)?);
    let trail = start_trail::<S>(&config, None)?;
    let server = build(Arc::clone(&config)).await?;
    let served = crate::transport::http::serve_http(server, &config).await;
    let reason = match &served {
        Ok(()) => "signal",
        Err(_) => "http transport failed",
    };
    trail.shutdown(reason).await;
    served?;
    Ok(())
}

async fn serve<S, F, Fut>(path: Option<PathBuf>, build: F) -> Result<(), BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    let config = Arc::new(load(path)?);
    let trail = start_trail::<S>(&config, None)?;
    let server = build(Arc::clone(&config)).await?;
    let checkpoint = Checkpoint::for_stdio(server, &config)?;
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
    let (served, reason) = tokio::select! {
        served = checkpoint.serve_stdio() => {
            let reason = match &served {
                Ok(()) => "stdin closed",
                Err(_) => "stdio transport failed",
            };
            (served, reason)
        }
        signal = crate::transport::shutdown_signal() => (Ok(()), signal),
    };
    last_uses.flush().await;
    trail.shutdown(reason).await;
    served?;
    Ok(())
}

async fn check<S, F, Fut>(path: Option<PathBuf>, build: F) -> Result<(), BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    let (config, checkpoint) = start(path, build).await?;
    let principal = checkpoint
        .operator_principal()
        .ok_or("stdio needs the operator's principal")?;
    let now = SystemTime::now();
    let mut report = format!(
        "ok: {}\nstdio principal `{}`\n",
        config.path().display(),
        principal.id()
    );
    report += &match config.manifest() {
        None => format!(
            "manifest: none pinned at {}; `approve --owner ... --review-by ...` pins one\n",
            config.manifest_path().display()
        ),
        Some(manifest) => format!(
            "manifest: {} matches, digest {}, owner {}, review by {}, approved by {} at {}\n",
            config.manifest_path().display(),
            manifest.digest,
            manifest.owner,
            manifest.review_by,
            manifest.approved_by,
            manifest.approved_at
        ),
    };
    report += &format!(
        "grants: each expires within {} of startup ([governance] max_grant_lifetime)\n",
        crate::config::lifetime_text(config.max_grant_lifetime())
    );
    for grant in principal.grants() {
        let state = if grant.is_active(now) {
            "active"
        } else {
            "EXPIRED"
        };
        report += &format!("  grant {grant:?}: {state}\n");
    }
    report += &format!("{} tools:\n", S::policies().len());
    for policy in S::policies() {
        let callable = authorize(policy, principal, now).is_ok();
        let limits = config.limits_for(policy);
        let approval = config
            .approval_for(policy)
            .map_or_else(String::new, |rule| {
                format!(
                    ", approval by {} holder(s) of `{}` within {:?}{}",
                    rule.min,
                    rule.grant,
                    rule.window,
                    if rule.self_approve {
                        ", the requester may approve"
                    } else {
                        ""
                    }
                )
            });
        let capabilities: Vec<String> = policy.capabilities.iter().map(|c| c.label()).collect();
        report += &format!(
            "  {}: capabilities [{}], requires [{}], {}, timeout {:?}, max output {} bytes, rate {}{approval}\n",
            policy.name,
            capabilities.join(", "),
            policy.requires.join(", "),
            if callable {
                "callable"
            } else {
                "hidden (grant missing)"
            },
            limits.timeout,
            limits.max_output_bytes,
            limits
                .rate
                .map_or_else(|| "unlimited".to_owned(), |rate| rate.to_string()),
        );
    }
    std::io::stdout().write_all(report.as_bytes())?;
    Ok(())
}

fn approve<S: ToolSet>(
    path: Option<PathBuf>,
    owner: &str,
    review_by: &str,
    by: Option<String>,
) -> Result<(), BuildError> {
    let config = load(path)?;
    config.check_tools(S::policies())?;
    let due: jiff::civil::Date = review_by
        .parse()
        .map_err(|_| format!("--review-by `{review_by}` is not a date: write YYYY-MM-DD"))?;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    if due <= today {
        return Err(format!("--review-by {due} is not in the future").into());
    }
    if owner.trim().is_empty() {
        return Err("--owner must name the team that owns the server".into());
    }
    let by = acting_person(by, "approves")?;
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)?
        .to_string();
    let manifest = Manifest::of::<S>(&config, &by, &now, owner, &due.to_string());
    let target = config.manifest_path();
    let before = config.manifest().map(|m| m.drift::<S>(&config));
    manifest.write(target)?;
    let mut report = format!(
        "approved {} tools of {} into {}\ndigest {}\nowner {owner}, review by {due}, approved by {by}\n",
        manifest.tools.len(),
        manifest.server,
        target.display(),
        manifest.digest
    );
    if let Some(drift) = before {
        for line in drift {
            report += &format!("  was: {line}\n");
        }
    }
    std::io::stdout().write_all(report.as_bytes())?;
    Ok(())
}

async fn revoke<S, F, Fut>(
    path: Option<PathBuf>,
    build: F,
    target: TargetArgs,
    reason: String,
    by: Option<String>,
) -> Result<(), BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    if reason.trim().is_empty() {
        return Err("--reason must say why: refused callers and the audit trail see it".into());
    }
    let by = acting_person(by, "revokes")?;
    let governance = Governance::open::<S, F, Fut>(path, build, Some("revoke")).await?;
    let outcome = async {
        let target = target.target::<S>(&governance.config)?;
        let store = governance.revocation_store()?;
        let mut revocation = Revocation::now(target, reason, by);
        revocation.seal(&governance.config.governance_keys()?);
        store.revoke(revocation.clone()).await?;
        let os_user = crate::approval::signers::os_user();
        audit::record(
            &Record::new("revocation_added")
                .str("kind", revocation.target.kind())
                .str("name", revocation.target.name())
                .str("reason", &revocation.reason)
                .str("by", &revocation.by)
                .str("os_user", &os_user)
                .str("store", &store.describe()),
        );
        let line = format!(
            "revoked {} in {}: {} (by {})\n",
            revocation.target,
            store.describe(),
            revocation.reason,
            revocation.by
        );
        std::io::stdout().write_all(line.as_bytes())?;
        Ok(())
    }
    .await;
    governance.close(&outcome).await;
    outcome
}

async fn unrevoke<S, F, Fut>(
    path: Option<PathBuf>,
    build: F,
    target: TargetArgs,
) -> Result<(), BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    let governance = Governance::open::<S, F, Fut>(path, build, Some("unrevoke")).await?;
    let outcome = async {
        let target = target.target::<S>(&governance.config)?;
        let store = governance.revocation_store()?;
        if !store.unrevoke(target.clone()).await? {
            return Err(format!("{target} is not revoked in {}", store.describe()).into());
        }
        let by = acting_person(None, "lifts it").unwrap_or_default();
        audit::record(
            &Record::new("revocation_lifted")
                .str("kind", target.kind())
                .str("name", target.name())
                .str("by", &by)
                .str("os_user", &crate::approval::signers::os_user())
                .str("store", &store.describe()),
        );
        let line = format!(
            "lifted the revocation of {target} in {}\n",
            store.describe()
        );
        std::io::stdout().write_all(line.as_bytes())?;
        Ok(())
    }
    .await;
    governance.close(&outcome).await;
    outcome
}

async fn revocations<S, F, Fut>(path: Option<PathBuf>, build: F) -> Result<(), BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    let governance = Governance::open::<S, F, Fut>(path, build, None).await?;
    let outcome = async {
        let store = governance.revocation_store()?;
        let keys = governance.config.governance_keys()?;
        let list = store.list().await?;
        let mut report = format!("{} revocations in {}\n", list.len(), store.describe());
        for r in list {
            let mark = if r.verifies(&keys) {
                ""
            } else {
                " [UNVERIFIED: not sealed by this deployment's governance key; in force all the same]"
            };
            report += &format!(
                "  {}: {} (by {} at {}){mark}\n",
                escape_invisible(&r.target.to_string()),
                escape_invisible(&r.reason),
                escape_invisible(&r.by),
                r.at
            );
        }
        std::io::stdout().write_all(report.as_bytes())?;
        Ok(())
    }
    .await;
    governance.close(&outcome).await;
    outcome
}

/// What a governance command works on: the trail it records into (the configured sinks,
/// under the configured key), the approvals and the revocation list the server uses (the
/// files next to the configuration, or the `[state]` store the server is built with).
struct Governance {
    /// The command's own trail; `None` for a command that only reads.
    trail: Option<AuditTrail>,
    config: Arc<Config>,
    approvals: Option<Arc<dyn ApprovalStore>>,
    revocations: Option<Arc<dyn RevocationStore>>,
}

impl Governance {
    /// What the command `command` works on; a command that changes something (`Some`) records
    /// what it did in a trail of its own.
    async fn open<S, F, Fut>(
        path: Option<PathBuf>,
        build: F,
        command: Option<&'static str>,
    ) -> Result<Self, BuildError>
    where
        S: ToolSet,
        F: FnOnce(Arc<Config>) -> Fut,
        Fut: Future<Output = Result<Server<S>, BuildError>>,
    {
        let mut config = load(path)?;
        if let Some(command) = command {
            config = config.for_command(command);
        }
        let config = Arc::new(config);
        let trail = match command {
            Some(command) => Some(start_trail::<S>(&config, Some(command))?),
            None => None,
        };
        let (approvals, revocations) = if config.has_state() {
            let mut server = build(Arc::clone(&config)).await?;
            for sink in std::mem::take(server.audit_sinks()) {
                match &trail {
                    Some(trail) => trail.attach(sink),
                    None => drop(sink),
                }
            }
            (
                server.given_approvals().cloned(),
                server.given_revocations().map(|r| Arc::clone(r.store())),
            )
        } else {
            (
                Some(
                    Arc::new(FileApprovals::new(config.approvals_path())) as Arc<dyn ApprovalStore>
                ),
                Some(Arc::new(FileRevocations::new(config.revocations_path()))
                    as Arc<dyn RevocationStore>),
            )
        };
        if let Some(trail) = &trail {
            trail.end_startup();
        }
        Ok(Self {
            trail,
            config,
            approvals,
            revocations,
        })
    }

    fn revocation_store(&self) -> Result<Arc<dyn RevocationStore>, BuildError> {
        self.revocations.clone().ok_or_else(|| {
            "[state] is configured, but the server follows no shared revocation list (Server::revocations)".into()
        })
    }

    /// The approvals, with the approvers checked against the revocation list in force now.
    async fn approvals(&self) -> Result<Approvals, BuildError> {
        let store = self.approvals.clone().ok_or(
            "[state] is configured, but the server keeps no approvals there (mcp_lp_state::StateStore::attach)",
        )?;
        let revocations =
            Revocations::follow_shared(self.revocation_store()?, &self.config).await?;
        Ok(Approvals::from_config(
            store,
            &self.config,
            Some(revocations),
        )?)
    }

    /// Record `shutdown` and anchor, whether the command succeeded or not.
    async fn close(self, outcome: &Result<(), BuildError>) {
        let reason = match outcome {
            Ok(()) => "command done",
            Err(_) => "command failed",
        };
        if let Some(trail) = self.trail {
            trail.shutdown(reason).await;
        }
    }
}

/// One call as an approver reads it, every character that does not show written as its
/// escape.
fn describe_call(call: &PendingCall, standing: &Standing) -> String {
    let approvers: Vec<String> = call
        .approvals
        .iter()
        .map(|v| escape_invisible(&v.by).into_owned())
        .collect();
    let arguments =
        serde_json::to_string_pretty(&call.arguments).unwrap_or_else(|_| "?".to_owned());
    let arguments = escape_invisible_keeping_lines(&arguments);
    format!(
        "approval {}\n  tool {}, requested by {} at {}\n  status {}, expires at {}\n  why: {}\n  approvers need grant {}; {} of {} approved{}\n  arguments (sha256 {}):\n{}\n",
        call.id,
        escape_invisible(&call.tool),
        escape_invisible(&call.principal),
        call.requested_at,
        escape_invisible(&standing.to_string()),
        call.expires_at,
        escape_invisible_keeping_lines(&call.why),
        call.grant,
        approvers.len(),
        call.min,
        if approvers.is_empty() {
            String::new()
        } else {
            format!(" ({})", approvers.join(", "))
        },
        call.arguments_sha256,
        arguments
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

async fn approvals<S, F, Fut>(
    path: Option<PathBuf>,
    build: F,
    action: ApprovalsCommand,
) -> Result<(), BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    let command = match &action {
        ApprovalsCommand::List | ApprovalsCommand::Show { .. } => None,
        ApprovalsCommand::Approve { .. } => Some("approvals approve"),
        ApprovalsCommand::Deny { .. } => Some("approvals deny"),
    };
    let governance = Governance::open::<S, F, Fut>(path, build, command).await?;
    let outcome = approvals_action(&governance, action).await;
    governance.close(&outcome).await;
    outcome
}

async fn approvals_action(
    governance: &Governance,
    action: ApprovalsCommand,
) -> Result<(), BuildError> {
    let approvals = governance.approvals().await?;
    let now = jiff::Timestamp::now();
    let report = match action {
        ApprovalsCommand::List => {
            let calls = approvals.list().await?;
            let mut report = format!("{} calls in {}\n", calls.len(), approvals.describe());
            for call in calls {
                report += &format!(
                    "  {}  {}  {}  {}  expires {}\n",
                    call.id,
                    escape_invisible(&call.tool),
                    escape_invisible(&call.principal),
                    approvals.standing(&call, now),
                    call.expires_at
                );
            }
            report
        }
        ApprovalsCommand::Show { id } => {
            let call = approvals.get(&id).await?;
            describe_call(&call, &approvals.standing(&call, now))
        }
        ApprovalsCommand::Approve { id, signer } => {
            let call = verdict(
                &approvals,
                &governance.config,
                &id,
                &signer,
                true,
                String::new(),
            )
            .await?;
            format!(
                "approved by {}\n{}",
                escape_invisible(call.approvals.last().map_or("", |v| v.by.as_str())),
                describe_call(&call, &approvals.standing(&call, jiff::Timestamp::now()))
            )
        }
        ApprovalsCommand::Deny { id, signer, reason } => {
            let call = verdict(&approvals, &governance.config, &id, &signer, false, reason).await?;
            format!(
                "denied by {}\n{}",
                escape_invisible(call.denial.as_ref().map_or("", |v| v.by.as_str())),
                describe_call(&call, &approvals.standing(&call, jiff::Timestamp::now()))
            )
        }
    };
    std::io::stdout().write_all(report.as_bytes())?;
    Ok(())
}

/// Give a signed verdict on `id` as the principal the allowed signers list for `signer.key`.
async fn verdict(
    approvals: &Approvals,
    config: &Config,
    id: &str,
    signer: &SignerArgs,
    approve: bool,
    reason: String,
) -> Result<PendingCall, BuildError> {
    let signers = config.cli_approvers().ok_or(
        "no command-line approvers are configured: add [approvers] allowed_signers (ssh-keygen's allowed-signers file) and the approvers' grants",
    )?;
    let public = crate::approval::signers::public_key_of(&signer.key)?;
    let listed = signers.principals_of(&public);
    let by = match (&signer.as_principal, listed.as_slice()) {
        (Some(wanted), listed) if listed.contains(&wanted.as_str()) => wanted.clone(),
        (Some(wanted), _) => {
            return Err(format!(
                "{} does not list this key for `{}`",
                signers.source().display(),
                escape_invisible(wanted)
            )
            .into());
        }
        (None, [one]) => (*one).to_owned(),
        (None, []) => {
            return Err(format!(
                "the key {} is not listed in {}",
                signer.key.display(),
                signers.source().display()
            )
            .into());
        }
        (None, several) => {
            return Err(format!(
                "{} lists this key for {}: name one with --as",
                signers.source().display(),
                several.join(", ")
            )
            .into());
        }
    };
    let call = approvals.get(id).await?;
    let approver = signers.approver(&by, &call, approve, reason, &signer.key)?;
    Ok(approvals.decide(id, &approver, approve).await?)
}

async fn review<S, F, Fut>(path: Option<PathBuf>, build: F) -> Result<(), BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    let config = Arc::new(load(path)?);
    config.check_tools(S::policies())?;
    // Without [state], last uses live in the serving process's memory: nothing to read here.
    let (uses, revoked) = if config.has_state() {
        let server = build(Arc::clone(&config)).await?;
        let uses = match server.given_last_used() {
            Some(last_used) => Some(last_used.read().await?),
            None => None,
        };
        let revoked = match server.given_revocations() {
            Some(r) => r.store().list().await?,
            None => Vec::new(),
        };
        (uses, revoked)
    } else {
        let store = FileRevocations::new(config.revocations_path());
        (None, store.list().await?)
    };
    let revoked = crate::revocation::RevocationList::new(revoked);
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let mut report = String::new();
    match config.manifest() {
        None => {
            report += &format!(
                "manifest: none pinned at {}; `approve --owner ... --review-by ...` pins one\n",
                config.manifest_path().display()
            );
        }
        Some(m) => {
            let due = m
                .review_by
                .parse::<jiff::civil::Date>()
                .is_ok_and(|d| d < today);
            report += &format!(
                "manifest: {}, owner {}, approved by {} at {}, review due {}{}\n",
                config.manifest_path().display(),
                m.owner,
                m.approved_by,
                m.approved_at,
                m.review_by,
                if due { " (OVERDUE)" } else { "" }
            );
        }
    }
    let stdio = config.stdio_principal();
    let now = SystemTime::now();
    for policy in S::policies() {
        report += &format!("tool {}\n", policy.name);
        for capability in policy.capabilities {
            report += &format!(
                "  capability {} {} ({})\n",
                capability.kind,
                capability.name,
                capability.access.as_str()
            );
        }
        if let Some(m) = config.manifest() {
            report += &format!(
                "  owner {}, approved at {}, review due {}\n",
                m.owner, m.approved_at, m.review_by
            );
        }
        report += &match &uses {
            None => "  last used: not recorded here (without [state], last uses stay in the serving process's memory)\n".to_owned(),
            Some(uses) => match uses.iter().filter(|u| u.tool == policy.name).max_by_key(|u| u.at) {
                None => "  last used: never\n".to_owned(),
                Some(u) => {
                    let callers = uses.iter().filter(|x| x.tool == policy.name).count();
                    format!("  last used: {} by {} ({callers} principals in all)\n", u.at, u.principal)
                }
            },
        };
        for grant in policy.requires {
            let held: Vec<String> = stdio
                .grants()
                .iter()
                .filter(|g| g.name() == *grant && g.is_active(now))
                .map(|g| {
                    format!(
                        "{} (stdio) until {}",
                        stdio.id(),
                        g.expires_at()
                            .and_then(|t| jiff::Timestamp::try_from(t).ok())
                            .map_or_else(|| "no expiry".to_owned(), |t| t.to_string())
                    )
                })
                .collect();
            report += &format!(
                "  grant {grant}: {}\n",
                if held.is_empty() {
                    "no configured holder (HTTP callers hold it by token scope)".to_owned()
                } else {
                    held.join(", ")
                }
            );
        }
        if let Some(r) = revoked.refusing_tool(policy) {
            report += &format!(
                "  REVOKED: {}: {} (by {} at {})\n",
                r.target, r.reason, r.by, r.at
            );
        }
    }
    for r in revoked.entries() {
        if let crate::revocation::Target::Principal(p) = &r.target {
            report += &format!(
                "principal {p} REVOKED: {} (by {} at {})\n",
                r.reason, r.by, r.at
            );
        }
    }
    std::io::stdout().write_all(report.as_bytes())?;
    Ok(())
}

/// Who acts on the command line: `--by`, else the USER environment variable; `verb` names
/// the act in the error when neither is given.
fn acting_person(by: Option<String>, verb: &str) -> Result<String, BuildError> {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| format!("name who {verb} with --by (USER is not set)").into())
}

fn inventory<S: ToolSet>(path: Option<PathBuf>) -> Result<(), BuildError> {
    let config = load(path)?;
    config.check_tools(S::policies())?;
    let router = S::tool_router();
    let tools: Vec<_> = S::policies()
        .iter()
        .map(|policy| {
            let limits = config.limits_for(policy);
            let description = router.get(policy.name).and_then(|t| t.description.clone());
            json!({
                "name": policy.name,
                "description": description,
                "capabilities": policy.capabilities.iter().map(|c| json!({
                    "kind": c.kind,
                    "name": c.name,
                    "access": c.access.as_str(),
                })).collect::<Vec<_>>(),
                "requires": policy.requires,
                "timeout_ms": u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
                "max_output_bytes": limits.max_output_bytes,
                "max_argument_bytes": limits.max_argument_bytes,
                "rate": limits.rate.map(|rate| rate.to_string()),
                "approval": config.approval_for(policy).map(|rule| json!({
                    "grant": rule.grant,
                    "min": rule.min,
                    "expires_secs": rule.window.as_secs(),
                    "self_approve": rule.self_approve,
                })),
            })
        })
        .collect();
    let info = S::server_info();
    let document = json!({
        "server": { "name": info.name, "version": info.version },
        "tools": tools,
    });
    let mut out = serde_json::to_string_pretty(&document)?;
    out.push('\n');
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

fn init_logging<S: ToolSet>(format: LogFormat) {
    // A subscriber may already be installed by the embedding program; keep it.
    match format {
        LogFormat::Json => {
            let _ =
                tracing::subscriber::set_global_default(json_subscriber::<S, _>(std::io::stderr));
        }
        LogFormat::Text => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(log_filter::<S>())
                .with_writer(std::io::stderr)
                .event_format(crate::text_log::TextLines)
                .try_init();
        }
    }
}

fn log_filter<S: ToolSet>() -> tracing_subscriber::EnvFilter {
    let targets = S::policies()
        .iter()
        .flat_map(|p| p.capabilities)
        .flat_map(|c| c.secret_trace_targets.iter().copied());
    capped(std::env::var("RUST_LOG").ok().as_deref(), targets)
}

/// The filter `rust_log` (or [`DEFAULT_LOG_FILTER`]) asks for, with `targets` capped at DEBUG
/// whatever it says: the log targets the tools' kinds of capability name as printing
/// credentials at TRACE ([`Kind::SECRET_TRACE_TARGETS`](crate::capability::Kind), such as the
/// AWS SDK's request signer, which logs the canonical request with its session token).
fn capped<'t>(
    rust_log: Option<&str>,
    targets: impl IntoIterator<Item = &'t str>,
) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    let filter = rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_LOG_FILTER));
    targets.into_iter().fold(filter, |filter, target| {
        match format!("{target}=debug").parse() {
            Ok(cap) => filter.add_directive(cap),
            Err(_) => filter,
        }
    })
}

/// The subscriber `serve` installs by default for the server `S`: JSON lines, one event each
/// with its fields at the top level, filtered by `RUST_LOG` or [`DEFAULT_LOG_FILTER`], with the
/// credential-printing targets of `S`'s kinds of capability capped at DEBUG. Public so
/// benchmarks and embedding programs log exactly as the CLI does.
pub fn json_subscriber<S, W>(writer: W) -> impl tracing::Subscriber + Send + Sync + 'static
where
    S: ToolSet,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(log_filter::<S>())
        .with_writer(writer)
        .event_format(crate::json_log::JsonLines)
        .finish()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0
                .lock()
                .unwrap()
                .push(event.metadata().target().to_owned());
        }
    }

    #[test]
    fn rejects_trace_from_credential_printing_targets_even_when_asked() {
        for asked in [
            "trace",
            "aws_sigv4=trace,mcp_lp=trace",
            "info,aws_smithy_runtime=trace,mcp_lp=trace",
        ] {
            let seen = Seen::default();
            let subscriber = tracing_subscriber::registry()
                .with(capped(
                    Some(asked),
                    ["aws_sigv4", "aws_smithy_runtime::client::orchestrator"],
                ))
                .with(seen.clone());
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(target: "aws_sigv4", "canonical request with x-amz-security-token");
                tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "signed request");
                tracing::debug!(target: "aws_sigv4", "signing");
                tracing::trace!(target: "mcp_lp::anything", "other trace");
            });
            let seen = seen.0.lock().unwrap().clone();
            assert!(
                !seen.iter().any(|t| t.starts_with("aws_smithy")),
                "{asked}: {seen:?}"
            );
            assert!(
                seen.contains(&"mcp_lp::anything".to_owned()),
                "{asked}: {seen:?}"
            );
            assert_eq!(
                seen.iter().filter(|t| *t == "aws_sigv4").count(),
                usize::from(asked.contains("aws_sigv4") || asked == "trace"),
                "{asked}: {seen:?}"
            );
        }
    }
}
