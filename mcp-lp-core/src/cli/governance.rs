//! The governance commands: `revoke`, `unrevoke`, `revocations`, `approvals` and
//! `audit verify`. Each opens what it acts on from the configuration alone (the files next to
//! it, or the stores `[state]` names) and never builds the application: the breakglass
//! `revoke --all` must work while the application's database or cloud identity is down.
//! A command that changes something records it in a trail of its own, written to the
//! configured sinks under the configured key.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use super::{
    ApprovalsCommand, BuildError, SignerArgs, Stores, TargetArgs, acting_person, load, start_trail,
};
use crate::approval::{ApprovalStore, Approvals, FileApprovals, PendingCall, Standing};
use crate::audit::{self, AuditTrail, Record};
use crate::config::Config;
use crate::policy::ToolSet;
use crate::revocation::{FileRevocations, Revocation, RevocationStore, Revocations};
use crate::visible::{escape_invisible, escape_invisible_keeping_lines};

/// `audit verify`: check the trail's chains and anchors, from files or (`--db`) the shared
/// stores' audit table.
pub(super) async fn verify(
    path: Option<PathBuf>,
    stores: Stores,
    files: Vec<PathBuf>,
    mut anchors: Vec<PathBuf>,
    db: bool,
    mixed: bool,
    allow_unkeyed: bool,
) -> Result<bool, BuildError> {
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
        let mut shared = stores.open(&config).await?;
        let mut read = 0;
        for sink in shared.iter_mut().flat_map(|s| &mut s.audit_sinks) {
            if let Some(reading) = sink.read_back() {
                lines.extend(reading.await?);
                read += 1;
            }
        }
        if read == 0 {
            return Err("--db: the configuration names no audit store that can be read back (see `[audit] postgres`)".into());
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

/// `revoke`: add a sealed revocation to the list every replica follows.
pub(super) async fn revoke<S: ToolSet>(
    path: Option<PathBuf>,
    stores: Stores,
    target: TargetArgs,
    reason: String,
    by: Option<String>,
) -> Result<(), BuildError> {
    if reason.trim().is_empty() {
        return Err("--reason must say why: refused callers and the audit trail see it".into());
    }
    let by = acting_person(by, "revokes")?;
    let governance = Governance::open::<S>(path, stores, Some("revoke")).await?;
    let outcome = async {
        let target = target.target::<S>(&governance.config)?;
        let store = governance.revocation_store();
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

/// `unrevoke`: lift a revocation.
pub(super) async fn unrevoke<S: ToolSet>(
    path: Option<PathBuf>,
    stores: Stores,
    target: TargetArgs,
) -> Result<(), BuildError> {
    let governance = Governance::open::<S>(path, stores, Some("unrevoke")).await?;
    let outcome = async {
        let target = target.target::<S>(&governance.config)?;
        let store = governance.revocation_store();
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

/// `revocations`: the revocations in force, each marked when this deployment's governance
/// key did not seal it.
pub(super) async fn revocations<S: ToolSet>(
    path: Option<PathBuf>,
    stores: Stores,
) -> Result<(), BuildError> {
    let governance = Governance::open::<S>(path, stores, None).await?;
    let outcome = async {
        let store = governance.revocation_store();
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
/// files next to the configuration, or the stores `[state]` names).
struct Governance {
    /// The command's own trail; `None` for a command that only reads.
    trail: Option<AuditTrail>,
    config: Arc<Config>,
    approvals: Arc<dyn ApprovalStore>,
    revocations: Arc<dyn RevocationStore>,
}

impl Governance {
    /// What the command `command` works on; a command that changes something (`Some`) records
    /// what it did in a trail of its own.
    async fn open<S: ToolSet>(
        path: Option<PathBuf>,
        stores: Stores,
        command: Option<&'static str>,
    ) -> Result<Self, BuildError> {
        let mut config = load(path)?;
        if let Some(command) = command {
            config = config.for_command(command);
        }
        let config = Arc::new(config);
        let trail = match command {
            Some(command) => Some(start_trail::<S>(&config, Some(command))?),
            None => None,
        };
        let (approvals, revocations) = match stores.open(&config).await? {
            Some(shared) => {
                for sink in shared.audit_sinks {
                    match &trail {
                        Some(trail) => trail.attach(sink),
                        None => drop(sink),
                    }
                }
                (shared.approvals, shared.revocations)
            }
            None => (
                Arc::new(FileApprovals::new(config.approvals_path())) as Arc<dyn ApprovalStore>,
                Arc::new(FileRevocations::new(config.revocations_path()))
                    as Arc<dyn RevocationStore>,
            ),
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

    fn revocation_store(&self) -> Arc<dyn RevocationStore> {
        Arc::clone(&self.revocations)
    }

    /// The approvals, with the approvers checked against the revocation list in force now.
    async fn approvals(&self) -> Result<Approvals, BuildError> {
        let store = Arc::clone(&self.approvals);
        let revocations = Revocations::follow_shared(self.revocation_store(), &self.config).await?;
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

/// `approvals list|show|approve|deny`.
pub(super) async fn approvals<S: ToolSet>(
    path: Option<PathBuf>,
    stores: Stores,
    action: ApprovalsCommand,
) -> Result<(), BuildError> {
    let command = match &action {
        ApprovalsCommand::List | ApprovalsCommand::Show { .. } => None,
        ApprovalsCommand::Approve { .. } => Some("approvals approve"),
        ApprovalsCommand::Deny { .. } => Some("approvals deny"),
    };
    let governance = Governance::open::<S>(path, stores, command).await?;
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
