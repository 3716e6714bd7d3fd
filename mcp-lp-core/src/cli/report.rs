//! What the server declares and how it is governed: `check` (the configuration and tools,
//! with the application built as `serve` builds it), `inventory` (every tool as JSON),
//! `approve` (pin the manifest later starts are held to) and `review` (per tool: owner,
//! review date, last use, grants, revocations; from the shared stores, never building the
//! application).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;

use super::{BuildError, Stores, acting_person, load};
use crate::authorize::authorize;
use crate::checkpoint::{Checkpoint, Server};
use crate::config::Config;
use crate::manifest::Manifest;
use crate::policy::ToolSet;
use crate::revocation::{FileRevocations, RevocationStore as _};

/// `check`: build the server as `serve` does, then report what it would serve.
pub(super) async fn check<S, F, Fut>(
    path: Option<PathBuf>,
    build: F,
    stores: Stores,
) -> Result<(), BuildError>
where
    S: ToolSet,
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: Future<Output = Result<Server<S>, BuildError>>,
{
    let config = Arc::new(load(path)?);
    let server = super::serve::assemble(&config, build, stores).await?;
    let checkpoint = Checkpoint::for_stdio(server, &config)?;
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

/// `approve`: pin the manifest of what this server serves now.
pub(super) fn approve<S: ToolSet>(
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

/// `review`: per tool, who owns and approved it, when it was last used and by whom, the
/// grants outstanding and the revocations in force.
pub(super) async fn review<S: ToolSet>(
    path: Option<PathBuf>,
    stores: Stores,
) -> Result<(), BuildError> {
    let config = Arc::new(load(path)?);
    config.check_tools(S::policies())?;
    // Without [state], last uses live in the serving process's memory: nothing to read here.
    let (uses, revoked) = match stores.open(&config).await? {
        Some(shared) => (
            Some(shared.last_used.read().await?),
            shared.revocations.list().await?,
        ),
        None => {
            let store = FileRevocations::new(config.revocations_path());
            (None, store.list().await?)
        }
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

/// `inventory`: every tool and what it declares, as JSON.
pub(super) fn inventory<S: ToolSet>(path: Option<PathBuf>) -> Result<(), BuildError> {
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
