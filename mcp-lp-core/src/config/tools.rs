//! What `[tools.<name>]` and `[limits]` make of each tool (its limits, its approval rule) and
//! the checks of the configuration against the server's declared tools.

use std::num::NonZeroUsize;

use super::{Config, ConfigError, ConfigErrorKind};
use crate::approval::{ApprovalRule, DEFAULT_APPROVAL_WINDOW};
use crate::limits::Limits;
use crate::policy::ToolPolicy;

impl Config {
    /// The limits of the tool with `policy`: its `[tools.<name>]` table, then its attribute,
    /// then `[limits]`, then the defaults.
    pub fn limits_for(&self, policy: &ToolPolicy) -> Limits {
        let tool = self.tools.get(policy.name).cloned().unwrap_or_default();
        let default = Limits::default();
        Limits {
            timeout: tool
                .timeout
                .or(policy.timeout)
                .or(self.limits.timeout)
                .unwrap_or(default.timeout),
            max_output_bytes: tool
                .max_output_bytes
                .map(NonZeroUsize::get)
                .or(policy.max_output_bytes)
                .or(self.limits.max_output_bytes.map(NonZeroUsize::get))
                .unwrap_or(default.max_output_bytes),
            max_argument_bytes: tool
                .max_argument_bytes
                .or(self.limits.max_argument_bytes)
                .map_or(default.max_argument_bytes, NonZeroUsize::get),
            rate: tool.rate.or(policy.rate).or(self.limits.rate),
        }
    }

    /// The approval `policy`'s calls need: its attribute's, tightened by `[tools.<name>]
    /// approval`; `None` when neither asks for one. [`Config::check_tools`] has refused what
    /// would loosen the attribute.
    pub fn approval_for(&self, policy: &ToolPolicy) -> Option<ApprovalRule> {
        let configured = self.tools.get(policy.name).and_then(|t| t.approval.clone());
        let grant = policy
            .approval
            .map(str::to_owned)
            .or_else(|| configured.as_ref().and_then(|c| c.grant.clone()))?;
        let configured = configured.unwrap_or_default();
        Some(ApprovalRule {
            grant,
            min: configured.min.map_or(1, std::num::NonZeroU32::get),
            window: configured.expires.unwrap_or(DEFAULT_APPROVAL_WINDOW),
            self_approve: configured.self_approve,
        })
    }

    fn check_approval(&self, policy: &ToolPolicy) -> Result<(), ConfigError> {
        let Some(configured) = self
            .tools
            .get(policy.name)
            .and_then(|t| t.approval.as_ref())
        else {
            return Ok(());
        };
        let key = format!("tools.{}.approval", policy.name);
        let refuse = |problem: String| {
            Err(ConfigError::new(
                &self.path,
                Some(key.clone()),
                ConfigErrorKind::InvalidValue,
                problem,
            ))
        };
        match (policy.approval, configured.grant.as_deref()) {
            (None, None) => {
                return refuse(format!(
                    "tool `{}` declares no approval, so the configuration names who approves: `grant = \"...\"`",
                    policy.name
                ));
            }
            (Some(declared), Some(grant)) if declared != grant => {
                return refuse(format!(
                    "tool `{}` is approved by holders of `{declared}` (its attribute); the configuration may tighten the rule, not hand it to `{grant}`",
                    policy.name
                ));
            }
            (_, Some(grant)) => {
                if let Some(reason) = crate::grant::grant_syntax_error(grant) {
                    return refuse(format!("grant `{grant}`: {reason}"));
                }
            }
            (Some(_), None) => {}
        }
        if policy.approval.is_some() && configured.self_approve {
            return refuse(format!(
                "tool `{}` declares its approval in its attribute, and `self_approve = true` would let the requester approve their own call: the configuration may tighten the rule, not loosen it",
                policy.name
            ));
        }
        if let Some(expires) = configured.expires
            && (expires.is_zero() || expires > DEFAULT_APPROVAL_WINDOW)
        {
            return refuse(format!(
                "expires = {expires:?}: an approval stays usable for more than zero and at most {DEFAULT_APPROVAL_WINDOW:?}"
            ));
        }
        Ok(())
    }

    /// Refuse a configuration that does not match what `policies` declare: a declared
    /// capability without its `[<table>.<name>]` table, such a table no tool declares, a
    /// provider's table no declared capability claims, and `[tools.<name>]` tables that name no
    /// tool or loosen its approval. Each provider checks the content of its own tables when it
    /// starts.
    pub fn check_tools(&self, policies: &[ToolPolicy]) -> Result<(), ConfigError> {
        let mismatch = |key: String, message: String| {
            ConfigError::new(&self.path, Some(key), ConfigErrorKind::Mismatch, message)
        };
        let declared = || {
            policies
                .iter()
                .flat_map(|p| p.capabilities.iter().map(move |c| (p, c)))
        };
        for (policy, capability) in declared() {
            let key = format!("{}.{}", capability.table, capability.name);
            if self.provider_entry(&key).is_none() {
                return Err(mismatch(
                    key.clone(),
                    format!(
                        "tool `{}` declares {} `{}`, but the configuration has no [{key}] table",
                        policy.name, capability.kind, capability.name
                    ),
                ));
            }
        }
        let mut tables: Vec<&str> = declared().map(|(_, c)| c.table).collect();
        tables.sort_unstable();
        tables.dedup();
        for table in &tables {
            let Some(entries) = self.provider_entry(table) else {
                continue;
            };
            let Some(entries) = entries.as_object() else {
                return Err(ConfigError::new(
                    &self.path,
                    Some((*table).to_owned()),
                    ConfigErrorKind::WrongType,
                    format!("expected a table of tables, [{table}.<name>]"),
                ));
            };
            for name in entries.keys() {
                let used = declared().any(|(_, c)| c.table == *table && c.name == name);
                if !used {
                    let kind = declared()
                        .find(|(_, c)| c.table == *table)
                        .map_or("", |(_, c)| c.kind);
                    return Err(mismatch(
                        format!("{table}.{name}"),
                        format!("no tool declares {kind} `{name}`; remove [{table}.{name}]"),
                    ));
                }
            }
        }
        for root in self.providers.keys() {
            let claimed = tables
                .iter()
                .any(|table| table.split('.').next() == Some(root.as_str()));
            if !claimed {
                return Err(mismatch(
                    root.clone(),
                    format!(
                        "[{root}] is none of mcp-lp's tables, and no tool declares a capability configured there (a credential nothing needs should not be configured)"
                    ),
                ));
            }
        }
        for policy in policies {
            self.check_approval(policy)?;
        }
        for name in self.tools.keys() {
            if !policies.iter().any(|p| p.name == name) {
                let known: Vec<_> = policies.iter().map(|p| format!("`{}`", p.name)).collect();
                return Err(ConfigError::new(
                    &self.path,
                    Some(format!("tools.{name}")),
                    ConfigErrorKind::Mismatch,
                    format!(
                        "the server has no tool `{name}`; its tools are {}",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}
