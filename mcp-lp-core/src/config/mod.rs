//! Configuration: one TOML file, refused at startup on any unknown key, wrong type or
//! unresolvable secret reference.
//!
//! ```toml
//! [stdio]                        # who is calling when there is no token
//! principal = "alice@example.com"
//! grants = [{ name = "notes:delete", expires = 2026-12-01T00:00:00Z }]
//!
//! [governance]                   # what an operator may configure, and for how long
//! max_grant_lifetime = "90d"     # every grant must expire within this much of startup
//!
//! [limits]                       # defaults for every tool
//! timeout = "30s"
//! max_output_bytes = 1048576
//! max_argument_bytes = 65536
//! rate = "60/min"               # calls per principal and tool (default: unlimited)
//!
//! [tools.delete_note]            # one tool's limits; the operator has the last word
//! timeout = "5s"
//!
//! [secrets]                      # references, resolved at startup, never values
//! signing-key = { file = "/vault/secrets/signing-key" }
//!
//! [secrets_refresh]              # how secrets refresh under a running server
//! max_age = "1h"                 # last good value kept this long after refreshes fail
//! poll = "30s"                   # secret files re-read this often without a reported change
//!
//! [dev]                          # risky switches, each named for what it allows
//! allow_env_secrets = false
//!
//! [aws.roles.docs-read]          # one table per `role = "..."`, read by the AWS provider
//! # ...                          # (mcp-lp-aws); [aws] itself holds that provider's settings
//!
//! [db.read]                      # one table per `db = "..."` capability, read by the provider
//! # ...                          # (mcp-lp-db); its keys are the provider's to check
//!
//! [state]                        # the shared PostgreSQL store of replicas, read by the
//! # ...                          # state crate (mcp-lp-state); its keys are that crate's to check
//!
//! [protocol]                     # MCP revisions served; default: all rmcp knows
//! versions = ["2026-07-28", "2025-11-25"]
//!
//! [request_state]                # keys sealing state clients bring back (requestState)
//! keys = [{ id = "2026-11", secret = { file = "/vault/secrets/state-key" } }]
//!
//! [app]                          # the application's own settings, see Config::app
//! ```
//!
//! This file reads the whole file into [`Config`]; the sections with rules of their own live
//! beside it: `tools.rs` (`[limits]`, `[tools.<name>]` and the checks against the declared
//! tools), `grants.rs` (`[stdio] grants` and their lifetimes), `protocol.rs` (`[protocol]`,
//! `[request_state]`), `http.rs`, `audit.rs`, `secret.rs` (secret references), `locate.rs`
//! (which line a problem is on) and `error.rs`. Loading starts no task and watches no file:
//! what refreshes starts when the server asks for it.

mod audit;
mod error;
mod grants;
mod http;
mod locate;
mod protocol;
mod secret;
mod tools;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rmcp::model::ProtocolVersion;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer};
use sha2::{Digest as _, Sha256};

use self::audit::AuditSection;
pub use self::audit::AuditSettings;

pub use self::error::{ConfigError, ConfigErrorKind};
pub(crate) use self::grants::lifetime_text;
use self::grants::{GrantSpec, check_grant_lifetime};
pub use self::http::{ALLOWED_ALGORITHMS, ApprovalPageSection, AuthSection, HttpSection};
use self::locate::{grant_line, line_of, serde_error};
use self::protocol::{
    KeySpec, ProtocolSection, RequestStateKeys, RequestStateSection, refreshing_secret,
    start_refreshing,
};
pub use self::secret::{SecretError, SecretRef};
use crate::approval::DEFAULT_MAX_PENDING;
use crate::approval::signers::CliApprovers;
use crate::audit::ChainKey;
use crate::governance_key::{DEFAULT_KEY_FILE, GovernanceKey, GovernanceKeys};
use crate::limits;
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::principal::Principal;
use crate::rate::Rate;
use crate::sealed_state::{DEFAULT_STATE_TTL, MIN_KEY_BYTES, SealingKey, StateSealer};
use crate::secret_refresh::{RefreshSettings, RefreshingSecret, Validator};

/// The environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "MCP_LP_CONFIG";

/// The principal used over stdio when the configuration names none. It holds no grants.
pub const ANONYMOUS: &str = "anonymous";

/// The longest a configured grant may live when `[governance] max_grant_lifetime` is not set:
/// 90 days from the start that loads it.
pub const DEFAULT_MAX_GRANT_LIFETIME: Duration = Duration::from_secs(90 * 86_400);

/// A loaded and validated configuration, with its secrets resolved.
#[derive(Debug)]
pub struct Config {
    path: PathBuf,
    allow_env_secrets: bool,
    stdio_principal: Principal,
    limits: LimitsSection,
    tools: BTreeMap<String, ToolSection>,
    secrets: BTreeMap<String, SecretString>,
    secret_refs: BTreeMap<String, SecretRef>,
    refresh: RefreshSettings,
    state: Option<toml::Table>,
    /// The tables of capability providers (`[aws]`, `[db]`, ...): the core reads none of them,
    /// each provider reads its own, and one that no declared capability claims refuses the start.
    providers: BTreeMap<String, toml::Value>,
    /// `[dev]` switches of providers (`allow_static_aws_keys`), which the core does not name.
    provider_switches: BTreeMap<String, bool>,
    http: Option<HttpSection>,
    allow_unauthenticated_http: bool,
    allow_unapproved_tools: bool,
    manifest_path: PathBuf,
    manifest: Option<Manifest>,
    review_overdue: ReviewOverdue,
    revocations_path: PathBuf,
    approvals_path: PathBuf,
    governance_keys: Option<GovernanceKeys>,
    max_pending: u32,
    cli_approvers: Option<Arc<CliApprovers>>,
    running_command: Option<&'static str>,
    fail_closed_after: Duration,
    max_grant_lifetime: Duration,
    protocol_versions: Vec<ProtocolVersion>,
    request_state: Option<RequestStateKeys>,
    audit: AuditSettings,
    audit_keys: Vec<ChainKey>,
    /// SHA-256 of the configuration text, hex.
    digest: String,
    /// Every secret reference resolved: where it is configured, and the reference.
    resolved_secrets: Vec<(String, String)>,
    app: toml::Table,
}

/// The core's own top-level tables.
const CORE_TABLES: &[&str] = &[
    "stdio",
    "limits",
    "tools",
    "secrets",
    "secrets_refresh",
    "dev",
    "state",
    "http",
    "protocol",
    "request_state",
    "audit",
    "governance",
    "approvers",
    "app",
];

/// Refuse a top-level key that is no provider's table: a value that is not a table, or a name
/// one typo away from one of the core's tables (`[stido]`), which would otherwise be taken for a
/// provider's and leave the real table at its defaults until `check_tools` refuses it.
fn check_provider_roots(
    providers: &BTreeMap<String, toml::Value>,
    path: &Path,
) -> Result<(), ConfigError> {
    for (name, value) in providers {
        let near = CORE_TABLES
            .iter()
            .map(|core| (strsim::osa_distance(name, core), core))
            .filter(|(distance, core)| *distance <= if core.len() <= 4 { 1 } else { 2 })
            .min();
        let problem = match near {
            Some((_, core)) => format!("unknown field `{name}`: did you mean `{core}`?"),
            None if !value.is_table() => format!(
                "unknown field `{name}`: a top-level key is one of mcp-lp's tables ({}) or a capability provider's table, such as [aws] or [db]",
                CORE_TABLES.join(", ")
            ),
            None => continue,
        };
        return Err(ConfigError::new(
            path,
            Some(name.clone()),
            ConfigErrorKind::UnknownKey,
            problem,
        ));
    }
    Ok(())
}

/// The configuration file as written. Tables the core does not know are capability providers'
/// (`[aws]`, `[db]`, a new kind's): kept for them, and refused at start when no declared
/// capability claims them.
#[derive(Debug, Default, Deserialize)]
struct RawConfig {
    #[serde(default)]
    stdio: StdioSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    tools: BTreeMap<String, ToolSection>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretRef>,
    #[serde(default)]
    secrets_refresh: RefreshSection,
    #[serde(default)]
    dev: DevSection,
    state: Option<toml::Table>,
    http: Option<HttpSection>,
    #[serde(default)]
    protocol: ProtocolSection,
    request_state: Option<RequestStateSection>,
    #[serde(default)]
    audit: AuditSection,
    #[serde(default)]
    governance: GovernanceSection,
    approvers: Option<ApproversSection>,
    #[serde(default)]
    app: toml::Table,
    #[serde(flatten)]
    providers: BTreeMap<String, toml::Value>,
}

/// `[approvers]`: who may give verdicts from the command line (see
/// [`crate::approval::signers`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproversSection {
    /// ssh-keygen's allowed-signers file: `principal key-type key` per line.
    allowed_signers: PathBuf,
    /// The approver grants of each principal, each expiring as `[stdio] grants` do.
    #[serde(default)]
    grants: BTreeMap<String, Vec<GrantSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StdioSection {
    #[serde(default = "anonymous")]
    principal: String,
    #[serde(default)]
    grants: Vec<GrantSpec>,
}

impl Default for StdioSection {
    fn default() -> Self {
        Self {
            principal: anonymous(),
            grants: Vec::new(),
        }
    }
}

fn anonymous() -> String {
    ANONYMOUS.to_owned()
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    #[serde(default, deserialize_with = "de_duration")]
    timeout: Option<Duration>,
    max_output_bytes: Option<NonZeroUsize>,
    max_argument_bytes: Option<NonZeroUsize>,
    rate: Option<Rate>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolSection {
    #[serde(default, deserialize_with = "de_duration")]
    timeout: Option<Duration>,
    max_output_bytes: Option<NonZeroUsize>,
    max_argument_bytes: Option<NonZeroUsize>,
    rate: Option<Rate>,
    approval: Option<ApprovalSection>,
}

/// `[tools.<name>] approval = { ... }`: require approval of a tool, or tighten what its
/// attribute requires.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalSection {
    /// The grant an approver holds; the attribute's when it names one.
    grant: Option<String>,
    /// How many distinct people approve.
    min: Option<std::num::NonZeroU32>,
    /// How long an approval request stays open, and an approval usable.
    #[serde(default, deserialize_with = "de_duration")]
    expires: Option<Duration>,
    /// Whether the requester may approve their own call.
    #[serde(default)]
    self_approve: bool,
}

/// `[secrets_refresh]`, see [`RefreshSettings`].
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshSection {
    #[serde(default, deserialize_with = "de_duration")]
    max_age: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    poll: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
struct DevSection {
    #[serde(default)]
    allow_env_secrets: bool,
    #[serde(default)]
    allow_unauthenticated_http: bool,
    #[serde(default)]
    allow_unapproved_tools: bool,
    /// Providers' own switches, each named for what it allows.
    #[serde(flatten)]
    providers: BTreeMap<String, bool>,
}

/// `[governance]`: where the approved manifest is, what an overdue review does, and how long a
/// configured grant may live.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GovernanceSection {
    manifest: Option<PathBuf>,
    #[serde(default)]
    review_overdue: ReviewOverdue,
    revocations: Option<PathBuf>,
    approvals: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_duration")]
    fail_closed_after: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    max_grant_lifetime: Option<Duration>,
    /// The keys that seal approval records and revocation entries; the first seals.
    #[serde(default)]
    keys: Vec<KeySpec>,
    /// How many calls of one principal and tool may wait for approval at once.
    max_pending_per_caller: Option<std::num::NonZeroU32>,
}

/// What a manifest past its review date does at startup.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewOverdue {
    /// The server refuses to start.
    #[default]
    Refuse,
    /// The server starts with a warning.
    Warn,
}

impl Config {
    /// Load, validate and resolve the configuration file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                path,
                None,
                ConfigErrorKind::Unreadable,
                format!("cannot read the configuration file: {e}"),
            )
        })?;
        Self::from_toml(&text, path)
    }

    /// Parse configuration text; `path` names it in messages and anchors relative secret files.
    pub fn from_toml(text: &str, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::from_toml_at(text, path.as_ref(), SystemTime::now())
    }

    /// [`from_toml`](Self::from_toml) as if loaded at `now`, which bounds the grants' expiry.
    fn from_toml_at(text: &str, path: &Path, now: SystemTime) -> Result<Self, ConfigError> {
        let deserializer = toml::de::Deserializer::parse(text).map_err(|e| {
            let mut err = ConfigError::new(path, None, ConfigErrorKind::Syntax, e.message());
            err.line = e.span().map(|span| line_of(text, span.start));
            err
        })?;
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer)
            .map_err(|e| serde_error(path, Some(text), "", e))?;
        let mut config = Self::resolve(raw, path, now).map_err(|mut err| {
            if err.line.is_none() {
                err.line = grant_line(text, err.key.as_deref());
            }
            err
        })?;
        config.digest = crate::audit::chain::hex(&Sha256::digest(text.as_bytes()));
        Ok(config)
    }

    /// The configuration used when no file is given: principal [`ANONYMOUS`] with no grants and
    /// default limits.
    pub fn defaults() -> Self {
        Self {
            path: PathBuf::from("<defaults>"),
            allow_env_secrets: false,
            stdio_principal: Principal::new(ANONYMOUS),
            limits: LimitsSection::default(),
            tools: BTreeMap::new(),
            secrets: BTreeMap::new(),
            secret_refs: BTreeMap::new(),
            refresh: RefreshSettings::default(),
            state: None,
            providers: BTreeMap::new(),
            provider_switches: BTreeMap::new(),
            http: None,
            allow_unauthenticated_http: false,
            allow_unapproved_tools: false,
            manifest_path: PathBuf::from(MANIFEST_FILE),
            manifest: None,
            review_overdue: ReviewOverdue::Refuse,
            revocations_path: PathBuf::from(crate::revocation::REVOCATIONS_FILE),
            approvals_path: PathBuf::from(crate::approval::APPROVALS_DIR),
            governance_keys: None,
            max_pending: DEFAULT_MAX_PENDING,
            cli_approvers: None,
            running_command: None,
            fail_closed_after: crate::revocation::DEFAULT_FAIL_CLOSED_AFTER,
            max_grant_lifetime: DEFAULT_MAX_GRANT_LIFETIME,
            protocol_versions: ProtocolVersion::KNOWN_VERSIONS.to_vec(),
            request_state: None,
            audit: AuditSettings::default(),
            audit_keys: Vec::new(),
            digest: String::new(),
            resolved_secrets: Vec::new(),
            app: toml::Table::new(),
        }
    }

    fn resolve(raw: RawConfig, path: &Path, now: SystemTime) -> Result<Self, ConfigError> {
        let at =
            |key: String, kind, message: String| ConfigError::new(path, Some(key), kind, message);
        check_provider_roots(&raw.providers, path)?;

        let id = raw.stdio.principal;
        if id.trim().is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
            return Err(at(
                "stdio.principal".into(),
                ConfigErrorKind::InvalidValue,
                "a principal is 1 to 256 characters with no control characters".into(),
            ));
        }
        let max_grant_lifetime = raw
            .governance
            .max_grant_lifetime
            .unwrap_or(DEFAULT_MAX_GRANT_LIFETIME);
        let latest = now.checked_add(max_grant_lifetime).ok_or_else(|| {
            at(
                "governance.max_grant_lifetime".into(),
                ConfigErrorKind::InvalidValue,
                format!(
                    "{} is too long to count from now; the default is {}",
                    lifetime_text(max_grant_lifetime),
                    lifetime_text(DEFAULT_MAX_GRANT_LIFETIME)
                ),
            )
        })?;
        for (i, spec) in raw.stdio.grants.iter().enumerate() {
            check_grant_lifetime(&spec.0, now, latest, max_grant_lifetime)
                .map_err(|(kind, message)| at(format!("stdio.grants[{i}]"), kind, message))?;
        }
        let stdio_principal = raw
            .stdio
            .grants
            .into_iter()
            .fold(Principal::new(id), |p, spec| p.with_grant(spec.0));

        if let Some(http) = &raw.http
            && let Some((key, message)) = http.problems().into_iter().next()
        {
            return Err(at(key, ConfigErrorKind::InvalidValue, message));
        }

        let mut refresh = RefreshSettings::default();
        for (key, value) in [
            ("max_age", raw.secrets_refresh.max_age),
            ("poll", raw.secrets_refresh.poll),
        ] {
            let Some(value) = value else { continue };
            if value.is_zero() {
                return Err(at(
                    format!("secrets_refresh.{key}"),
                    ConfigErrorKind::InvalidValue,
                    "must be longer than zero".into(),
                ));
            }
            if key == "max_age" {
                refresh.max_age = value;
            } else {
                refresh.poll = value;
            }
        }

        let base = path.parent().unwrap_or(Path::new("."));
        let mut secrets = BTreeMap::new();
        let mut resolved_secrets = Vec::new();
        let secret_refs = raw.secrets.clone();
        for (name, reference) in raw.secrets {
            let secret = reference
                .resolve(base, raw.dev.allow_env_secrets)
                .map_err(|e| {
                    at(
                        format!("secrets.{name}"),
                        ConfigErrorKind::Secret,
                        format!("secret {reference} {e}"),
                    )
                })?;
            resolved_secrets.push((format!("secrets.{name}"), reference.to_string()));
            secrets.insert(name, secret);
        }

        let protocol_versions = raw.protocol.versions().map_err(|message| {
            at(
                "protocol.versions".into(),
                ConfigErrorKind::InvalidValue,
                message,
            )
        })?;
        let request_state = match raw.request_state {
            None => None,
            Some(section) => {
                let mut keys = Vec::with_capacity(section.keys.len());
                for (i, spec) in section.keys.into_iter().enumerate() {
                    let secret = spec
                        .secret
                        .resolve(base, raw.dev.allow_env_secrets)
                        .map_err(|e| {
                            at(
                                format!("request_state.keys[{i}].secret"),
                                ConfigErrorKind::Secret,
                                format!("secret {} {e}", spec.secret),
                            )
                        })?;
                    resolved_secrets.push((
                        format!("request_state.keys[{i}].secret"),
                        spec.secret.to_string(),
                    ));
                    keys.push((spec.id, spec.secret, secret));
                }
                let ttl = section.ttl.unwrap_or(DEFAULT_STATE_TTL);
                let configured: Vec<SealingKey> = keys
                    .iter()
                    .map(|(id, _, secret)| SealingKey {
                        id: id.clone(),
                        secret: secret.clone(),
                    })
                    .collect();
                let checked = StateSealer::new(&configured, ttl).map_err(|e| {
                    at(
                        "request_state.keys".into(),
                        ConfigErrorKind::InvalidValue,
                        e.to_string(),
                    )
                })?;
                drop(checked);
                // Each key file is watched; a rotated key must be long enough to replace one.
                let validate: Validator = Arc::new(|secret: &SecretString| {
                    let bytes = secret.expose_secret().len();
                    if bytes < MIN_KEY_BYTES {
                        Err(format!(
                            "the key is {bytes} bytes; a sealing key is at least {MIN_KEY_BYTES} bytes of random data"
                        ))
                    } else {
                        Ok(())
                    }
                });
                let keys: Vec<(String, RefreshingSecret, SecretRef)> = keys
                    .into_iter()
                    .enumerate()
                    .map(|(i, (id, reference, secret))| {
                        let secret = refreshing_secret(
                            refresh,
                            format!("request_state.keys[{i}].secret"),
                            &reference,
                            secret,
                            Some(validate.clone()),
                        );
                        (id, secret, reference)
                    })
                    .collect();
                let ring: Vec<(String, RefreshingSecret)> = keys
                    .iter()
                    .map(|(id, secret, _)| (id.clone(), secret.clone()))
                    .collect();
                let sealer = StateSealer::of_keys(&ring, ttl).map_err(|e| {
                    at(
                        "request_state.keys".into(),
                        ConfigErrorKind::InvalidValue,
                        e.to_string(),
                    )
                })?;
                Some(RequestStateKeys {
                    sealer,
                    keys,
                    poll: refresh.poll,
                    base: path.parent().unwrap_or(Path::new(".")).to_owned(),
                    following: std::sync::Once::new(),
                })
            }
        };

        let audit = raw
            .audit
            .settings(base)
            .map_err(|(key, message)| at(key, ConfigErrorKind::InvalidValue, message))?;
        let mut audit_keys = Vec::with_capacity(raw.audit.keys.len());
        for (i, spec) in raw.audit.keys.iter().enumerate() {
            let key = format!("audit.keys[{i}].secret");
            let secret = spec
                .secret
                .resolve(base, raw.dev.allow_env_secrets)
                .map_err(|e| {
                    at(
                        key.clone(),
                        ConfigErrorKind::Secret,
                        format!("secret {} {e}", spec.secret),
                    )
                })?;
            let chain_key = ChainKey::new(&spec.id, &secret).map_err(|e| {
                at(
                    format!("audit.keys[{i}]"),
                    ConfigErrorKind::InvalidValue,
                    e.to_string(),
                )
            })?;
            resolved_secrets.push((key, spec.secret.to_string()));
            audit_keys.push(chain_key);
        }

        let mut governance_keys = Vec::with_capacity(raw.governance.keys.len());
        for (i, spec) in raw.governance.keys.iter().enumerate() {
            let key = format!("governance.keys[{i}].secret");
            let secret = spec
                .secret
                .resolve(base, raw.dev.allow_env_secrets)
                .map_err(|e| {
                    at(
                        key.clone(),
                        ConfigErrorKind::Secret,
                        format!("secret {} {e}", spec.secret),
                    )
                })?;
            let governance_key = GovernanceKey::new(&spec.id, &secret).map_err(|e| {
                at(
                    format!("governance.keys[{i}]"),
                    ConfigErrorKind::InvalidValue,
                    e.to_string(),
                )
            })?;
            resolved_secrets.push((key, spec.secret.to_string()));
            governance_keys.push(governance_key);
        }
        let governance_keys = if governance_keys.is_empty() {
            None
        } else {
            Some(GovernanceKeys::new(governance_keys).map_err(|e| {
                at(
                    "governance.keys".into(),
                    ConfigErrorKind::InvalidValue,
                    e.to_string(),
                )
            })?)
        };
        let cli_approvers = match raw.approvers {
            None => None,
            Some(section) => {
                let mut grants = Vec::new();
                for (principal, specs) in section.grants {
                    if let Some(problem) = crate::visible::id_problem(&principal) {
                        return Err(at(
                            format!("approvers.grants.{principal}"),
                            ConfigErrorKind::InvalidValue,
                            format!(
                                "`{}` cannot name an approver: {problem}",
                                crate::visible::escape_invisible(&principal)
                            ),
                        ));
                    }
                    for (i, spec) in specs.iter().enumerate() {
                        check_grant_lifetime(&spec.0, now, latest, max_grant_lifetime).map_err(
                            |(kind, message)| {
                                at(format!("approvers.grants.{principal}[{i}]"), kind, message)
                            },
                        )?;
                    }
                    grants.push((principal, specs.into_iter().map(|s| s.0).collect()));
                }
                let signers = CliApprovers::load(&base.join(&section.allowed_signers), grants)
                    .map_err(|message| {
                        at(
                            "approvers.allowed_signers".into(),
                            ConfigErrorKind::InvalidValue,
                            message,
                        )
                    })?;
                Some(Arc::new(signers))
            }
        };

        let manifest_path = base.join(
            raw.governance
                .manifest
                .as_deref()
                .unwrap_or(Path::new(MANIFEST_FILE)),
        );
        let revocations_path = base.join(
            raw.governance
                .revocations
                .as_deref()
                .unwrap_or(Path::new(crate::revocation::REVOCATIONS_FILE)),
        );
        let fail_closed_after = raw
            .governance
            .fail_closed_after
            .unwrap_or(crate::revocation::DEFAULT_FAIL_CLOSED_AFTER);
        if fail_closed_after.is_zero() {
            return Err(at(
                "governance.fail_closed_after".into(),
                ConfigErrorKind::InvalidValue,
                "must be longer than zero: it is how long privileged tools keep serving while the revocation store cannot be read".into(),
            ));
        }
        let manifest = Manifest::load(&manifest_path).map_err(|e| {
            at(
                "governance.manifest".into(),
                ConfigErrorKind::Mismatch,
                e.to_string(),
            )
        })?;

        Ok(Self {
            path: path.to_owned(),
            allow_env_secrets: raw.dev.allow_env_secrets,
            stdio_principal,
            limits: raw.limits,
            tools: raw.tools,
            secrets,
            secret_refs,
            refresh,
            state: raw.state,
            providers: raw.providers,
            provider_switches: raw.dev.providers,
            http: raw.http,
            allow_unauthenticated_http: raw.dev.allow_unauthenticated_http,
            allow_unapproved_tools: raw.dev.allow_unapproved_tools,
            manifest_path,
            manifest,
            review_overdue: raw.governance.review_overdue,
            revocations_path,
            approvals_path: base.join(
                raw.governance
                    .approvals
                    .as_deref()
                    .unwrap_or(Path::new(crate::approval::APPROVALS_DIR)),
            ),
            governance_keys,
            max_pending: raw
                .governance
                .max_pending_per_caller
                .map_or(DEFAULT_MAX_PENDING, std::num::NonZeroU32::get),
            cli_approvers,
            running_command: None,
            fail_closed_after,
            max_grant_lifetime,
            protocol_versions,
            request_state,
            audit,
            audit_keys,
            digest: String::new(),
            resolved_secrets,
            app: raw.app,
        })
    }

    /// The keys that seal approval records and revocation entries: `[governance] keys`, or,
    /// for a single process, its key file next to the configuration (`mcp-lp.governance.key`,
    /// made on first use, mode 0600). With `[state]` the keys must be configured, since every
    /// replica and the command line must hold the same ones.
    pub fn governance_keys(&self) -> Result<GovernanceKeys, ConfigError> {
        if let Some(keys) = &self.governance_keys {
            return Ok(keys.clone());
        }
        if self.has_state() {
            return Err(ConfigError::new(
                &self.path,
                Some("governance.keys".to_owned()),
                ConfigErrorKind::MissingKey,
                "replicas sharing a [state] store seal its approval records and revocations with one key that the store does not hold: configure [governance] keys = [{ id = \"...\", secret = { file = \"...\" } }]".to_owned(),
            ));
        }
        let base = self.path.parent().unwrap_or(Path::new("."));
        GovernanceKeys::from_file(&base.join(DEFAULT_KEY_FILE)).map_err(|e| {
            ConfigError::new(
                &self.path,
                Some("governance.keys".to_owned()),
                ConfigErrorKind::Unreadable,
                e.to_string(),
            )
        })
    }

    /// The governance keys that exist now, made by no one here: `[governance] keys`, or the
    /// key file next to the configuration when it is there. What a reader that only checks
    /// seals (the revocation list) uses, so that serving makes no file.
    pub fn existing_governance_keys(&self) -> Option<GovernanceKeys> {
        if let Some(keys) = &self.governance_keys {
            return Some(keys.clone());
        }
        let base = self.path.parent().unwrap_or(Path::new("."));
        GovernanceKeys::read_file(&base.join(DEFAULT_KEY_FILE))
            .ok()
            .flatten()
    }

    /// How many calls of one principal and tool may wait for approval at once (`[governance]
    /// max_pending_per_caller`).
    pub fn max_pending(&self) -> u32 {
        self.max_pending
    }

    /// The same configuration, loaded for the governance command `command` (`revoke`,
    /// `approvals approve`, ...) rather than to serve: what a store that logs in differently for
    /// operators (the `[state]` store's `operator_url`) reads.
    #[must_use]
    pub fn for_command(mut self, command: &'static str) -> Self {
        self.running_command = Some(command);
        self
    }

    /// The governance command this configuration was loaded for; `None` when serving.
    pub fn running_command(&self) -> Option<&'static str> {
        self.running_command
    }

    /// The command-line approvers of `[approvers]`, when configured.
    pub fn cli_approvers(&self) -> Option<&Arc<CliApprovers>> {
        self.cli_approvers.as_ref()
    }

    /// Where the approved manifest is (`[governance] manifest`, by default `mcp-lp.lock` next
    /// to the configuration file).
    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }

    /// The approved manifest, when one is pinned. Its digests were checked when it was read.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// Whether `[dev] allow_unapproved_tools` lets a server whose tools drifted from the
    /// manifest start, with a warning named in every audit event.
    pub fn allows_unapproved_tools(&self) -> bool {
        self.allow_unapproved_tools
    }

    /// Where a single process keeps its revocation list (`[governance] revocations`, by
    /// default `mcp-lp.revocations.json` next to the configuration file).
    pub fn revocations_path(&self) -> &Path {
        &self.revocations_path
    }

    /// Where a single process keeps pending approvals (`[governance] approvals`, by default
    /// the directory `mcp-lp.approvals` next to the configuration file).
    pub fn approvals_path(&self) -> &Path {
        &self.approvals_path
    }

    /// How long privileged tools keep serving while the revocation store cannot be read:
    /// `[governance] fail_closed_after`.
    pub fn fail_closed_after(&self) -> Duration {
        self.fail_closed_after
    }

    /// Whether a `[state]` table is configured: replicas then share governance state there.
    pub fn has_state(&self) -> bool {
        self.state.is_some()
    }

    /// What a manifest past its review date does: `[governance] review_overdue`.
    pub fn review_overdue(&self) -> ReviewOverdue {
        self.review_overdue
    }

    /// The longest a configured grant may live, counted from the start that loads it:
    /// `[governance] max_grant_lifetime`, by default [`DEFAULT_MAX_GRANT_LIFETIME`].
    pub fn max_grant_lifetime(&self) -> Duration {
        self.max_grant_lifetime
    }

    /// The `[audit]` table.
    pub fn audit(&self) -> &AuditSettings {
        &self.audit
    }

    /// The keys of `[audit] keys`, in order: the first seals, every one verifies.
    pub fn audit_keys(&self) -> &[ChainKey] {
        &self.audit_keys
    }

    /// The SHA-256 of the configuration text, as 64 hex digits (empty for the defaults).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Every secret reference this configuration resolved: the key it is at and the
    /// reference, never the value.
    pub fn resolved_secrets(&self) -> &[(String, String)] {
        &self.resolved_secrets
    }

    /// The file this configuration came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The principal, and its grants, for calls over stdio.
    pub fn stdio_principal(&self) -> &Principal {
        &self.stdio_principal
    }

    /// The resolved secret configured as `[secrets] name = { ... }`.
    pub fn secret(&self, name: &str) -> Option<&SecretString> {
        self.secrets.get(name)
    }

    /// The secret configured as `[secrets] name = { ... }`, refreshed under the running server
    /// (see [`RefreshingSecret`]): a file is watched and re-read when it changes. Each call
    /// starts its own watch; keep the result rather than calling it per use. Call it within a
    /// Tokio runtime.
    pub fn refreshing(&self, name: &str) -> Option<RefreshingSecret> {
        let reference = self.secret_refs.get(name)?;
        let value = self.secrets.get(name)?.clone();
        Some(self.start_refreshing(format!("secrets.{name}"), reference, value, None))
    }

    /// `[secrets_refresh]`: how secrets refresh under the running server.
    pub fn secrets_refresh(&self) -> RefreshSettings {
        self.refresh
    }

    /// Keep `value`, resolved from `reference` at `key` in a provider's table (with
    /// [`resolve_secret`](Self::resolve_secret)), refreshed under the running server: a file is
    /// watched and re-read. Every refreshed value must pass `validate` (if any) before it
    /// replaces the last good one. Call it within a Tokio runtime; outside one, the value never
    /// refreshes.
    pub fn keep_refreshed(
        &self,
        key: &str,
        reference: &SecretRef,
        value: SecretString,
        validate: Option<Validator>,
    ) -> RefreshingSecret {
        self.start_refreshing(key.to_owned(), reference, value, validate)
    }

    fn start_refreshing(
        &self,
        key: String,
        reference: &SecretRef,
        value: SecretString,
        validate: Option<Validator>,
    ) -> RefreshingSecret {
        start_refreshing(&self.path, self.refresh, key, reference, value, validate)
    }

    /// The application's own `[app]` table as `T`; a mismatch names the file and the `app.` key.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// #[serde(deny_unknown_fields)]
    /// struct Settings { greeting: String }
    ///
    /// let config = mcp_lp::Config::from_toml("[app]\ngreeting = \"hi\"", "demo.toml")?;
    /// assert_eq!(config.app::<Settings>()?.greeting, "hi");
    /// # Ok::<(), mcp_lp::ConfigError>(())
    /// ```
    pub fn app<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.table(&self.app, "app")
    }

    /// A capability provider's top-level table `[<name>]` as `T` (an empty table when there is
    /// none); a mismatch names the file and the key under `<name>.`. The core reads no
    /// provider's table: `[aws]` is mcp-lp-aws's, `[db]` mcp-lp-db's.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Vault { address: String }
    ///
    /// let config = mcp_lp::Config::from_toml("[vault]\naddress = \"https://vault\"", "demo.toml")?;
    /// assert_eq!(config.provider_table::<Vault>("vault")?.address, "https://vault");
    /// # Ok::<(), mcp_lp::ConfigError>(())
    /// ```
    pub fn provider_table<T: DeserializeOwned>(&self, name: &str) -> Result<T, ConfigError> {
        let table = match self.providers.get(name) {
            Some(toml::Value::Table(table)) => table.clone(),
            Some(_) => {
                return Err(ConfigError::new(
                    &self.path,
                    Some(name.to_owned()),
                    ConfigErrorKind::WrongType,
                    format!("expected a table, [{name}]"),
                ));
            }
            None => toml::Table::new(),
        };
        self.table(&table, name)
    }

    /// The value at the dotted path `path` of the providers' tables (`aws.roles.docs-read`), as
    /// JSON, if there is one: what the manifest pins of a declared capability.
    pub fn provider_entry(&self, path: &str) -> Option<serde_json::Value> {
        let mut parts = path.split('.');
        let mut value = self.providers.get(parts.next()?)?;
        for part in parts {
            value = value.as_table()?.get(part)?;
        }
        serde_json::to_value(value).ok()
    }

    /// Whether the provider's development switch `[dev] <name> = true` is set, such as
    /// `allow_static_aws_keys` (mcp-lp-aws). A switch is named for what it allows; one nobody
    /// reads allows nothing.
    pub fn dev_switch(&self, name: &str) -> bool {
        self.provider_switches.get(name).copied().unwrap_or(false)
    }

    /// The `[state]` table as `T`, for the shared PostgreSQL store (mcp-lp-state), or `None`
    /// when there is none; a mismatch names the file and the `state.` key.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct State { max_connections: u32 }
    ///
    /// let config = mcp_lp::Config::from_toml("[state]\nmax_connections = 4", "demo.toml")?;
    /// assert_eq!(config.state::<State>()?.map(|s| s.max_connections), Some(4));
    /// # Ok::<(), mcp_lp::ConfigError>(())
    /// ```
    pub fn state<T: DeserializeOwned>(&self) -> Result<Option<T>, ConfigError> {
        self.state
            .as_ref()
            .map(|table| self.table(table, "state"))
            .transpose()
    }

    /// The `[http]` table, if the server may be served over HTTP.
    pub fn http(&self) -> Option<&HttpSection> {
        self.http.as_ref()
    }

    /// Whether `[dev] allow_unauthenticated_http = true`: serving HTTP without `[http.auth]`, every
    /// request running for principal [`ANONYMOUS`] with no grants. For local development and
    /// protocol test suites only.
    pub fn allows_unauthenticated_http(&self) -> bool {
        self.allow_unauthenticated_http
    }

    /// The MCP protocol revisions to serve, from `[protocol] versions`: by default every
    /// revision rmcp knows.
    pub fn protocol_versions(&self) -> &[ProtocolVersion] {
        &self.protocol_versions
    }

    /// The sealer configured by `[request_state]`, if any. Without one the checkpoint seals with
    /// a random key of its own process. The first call, from the server's runtime, starts
    /// following the keys' rotation; loading the configuration starts nothing.
    pub fn request_state_sealer(&self) -> Option<&StateSealer> {
        let keys = self.request_state.as_ref()?;
        keys.follow();
        Some(&keys.sealer)
    }

    fn table<T: DeserializeOwned>(
        &self,
        table: &toml::Table,
        prefix: &str,
    ) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(toml::Value::Table(table.clone()))
            .map_err(|e| serde_error(&self.path, None, prefix, e))
    }

    /// Resolve a secret reference found at `key` in a provider's table, as `[secrets]` entries
    /// are: relative files from the configuration's directory, environment variables only with
    /// `[dev] allow_env_secrets = true`. The error names the key and the reference, never a value.
    pub fn resolve_secret(
        &self,
        key: &str,
        reference: &SecretRef,
    ) -> Result<SecretString, ConfigError> {
        let base = self.path.parent().unwrap_or(Path::new("."));
        let secret = reference
            .resolve(base, self.allow_env_secrets)
            .map_err(|e| {
                ConfigError::new(
                    &self.path,
                    Some(key.to_owned()),
                    ConfigErrorKind::Secret,
                    format!("secret {reference} {e}"),
                )
            })?;
        let reference = reference.to_string();
        crate::audit::record(
            &crate::audit::Record::new("secret_resolved")
                .str("secret", key)
                .str("reference", &reference),
        );
        Ok(secret)
    }
}

fn de_duration_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    limits::parse_duration(&text).map_err(de::Error::custom)
}

fn de_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    limits::parse_duration(&text)
        .map(Some)
        .map_err(de::Error::custom)
}

#[cfg(test)]
mod tests;
