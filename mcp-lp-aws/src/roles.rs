//! Loading the `[aws]` configuration into the providers a server hands to its checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, OnceLock};

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_async::time::SharedTimeSource;
use futures::FutureExt as _;
use mcp_lp::CallScope;
use mcp_lp::secret_refresh::RefreshingSecret;
use rmcp::ErrorData;

use crate::cache::{CacheStats, CredentialCache, SessionProvider, Slot};
use crate::config::Settings;
use crate::error::AwsError;
use crate::identity;
use crate::quiet_signing::QuietSigV4;
use crate::secrets;
use crate::sts::RoleProvider;

/// What a server's `build` step gets from the `[aws]` table: the roles its tools assume, and
/// the secrets read from AWS Secrets Manager.
///
/// ```no_run
/// # use mcp_lp::prelude::*;
/// # #[derive(Clone)] struct Docs;
/// # #[mcp_lp::server] impl Docs {
/// #     /// Read.
/// #     #[tool(role = "docs-read")] async fn read(&self, s3: mcp_lp_aws::S3) -> String { String::new() }
/// # }
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     mcp_lp::cli::run(|config| async move {
///         let aws = mcp_lp_aws::Aws::from_config(&config).await?;
///         Ok(mcp_lp::Server::new(Docs).provide(aws.roles()))
///     })
///     .await
/// }
/// ```
pub struct Aws {
    roles: AwsRoles,
    secrets: BTreeMap<String, RefreshingSecret>,
}

impl fmt::Debug for Aws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aws")
            .field("roles", &self.roles)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Aws {
    /// Check the `[aws]` table of `config`, load the process identity, and read the
    /// `[aws.secrets]` with their own role. Role credentials themselves are fetched on first use.
    ///
    /// Refuses to start, naming the key, on: a malformed or wildcard role ARN, a duration STS
    /// would refuse, an invalid session-policy file, a long-term static key as the process
    /// identity without `[dev] allow_static_aws_keys = true`, no identity or region at all, and
    /// a secret that cannot be read. With no roles and no secrets configured, loads nothing.
    pub async fn from_config(config: &mcp_lp::Config) -> Result<Self, AwsError> {
        let settings = Settings::from_config(config)?;
        if settings.is_empty() {
            return Ok(Self {
                roles: AwsRoles::empty(),
                secrets: BTreeMap::new(),
            });
        }
        let process = identity::load(&settings, config.dev_switch("allow_static_aws_keys")).await?;
        // The process identity's one use: this STS client.
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&process)
                .push_auth_scheme(QuietSigV4::default())
                .build(),
        );
        let template = identity::without_credentials(&process);
        drop(process);

        let secrets = match &settings.secrets_role {
            Some(role) => {
                let provider = RoleProvider::new(role.clone(), sts.clone());
                let max_age = config.secrets_refresh().max_age;
                secrets::read_all(&settings, provider, &template, max_age).await?
            }
            None => BTreeMap::new(),
        };

        let roles = settings
            .roles
            .iter()
            .map(|role| {
                let provider = RoleProvider::new(role.clone(), sts.clone());
                (role.name.clone(), Arc::new(provider))
            })
            .collect();
        let time = template.time_source().unwrap_or_else(|| {
            SharedTimeSource::new(aws_smithy_async::time::SystemTimeSource::new())
        });
        Ok(Self {
            roles: AwsRoles(Arc::new(Inner {
                roles,
                cache: CredentialCache::new(settings.cache_capacity, time),
                template,
                s3_force_path_style: settings.s3_force_path_style,
            })),
            secrets,
        })
    }

    /// The roles, to hand to the checkpoint: `mcp_lp::Server::new(service).provide(aws.roles())`.
    /// Tools reach them only through the [`S3`](crate::S3) and [`AwsConfig`](crate::AwsConfig)
    /// extractors, each bound to the calling tool's own role.
    pub fn roles(&self) -> AwsRoles {
        self.roles.clone()
    }

    /// The secret configured as `[aws.secrets] name = { aws_secret = "..." }`, fetched again
    /// every `ttl` of its reference: call [`RefreshingSecret::current`] at each use.
    pub fn secret(&self, name: &str) -> Option<&RefreshingSecret> {
        self.secrets.get(name)
    }
}

/// The AWS roles of a server: per-role providers and their credential cache.
///
/// Give it to the checkpoint with [`mcp_lp::Server::provide`], never to the service: a handler
/// then reaches a role only through an extractor, which hands out the role its tool declares.
#[derive(Clone)]
pub struct AwsRoles(Arc<Inner>);

struct Inner {
    roles: HashMap<String, Arc<RoleProvider>>,
    cache: CredentialCache<SessionKey, Clients>,
    /// The process's SDK settings without its credentials.
    template: SdkConfig,
    s3_force_path_style: bool,
}

/// Who a session is for. The AssumeRole parameters are a function of it and the role's fixed
/// settings, so it keys the cache by everything that changes the STS call.
#[derive(Clone, PartialEq, Eq, Hash)]
struct SessionKey {
    role: &'static str,
    /// Empty when the role's sessions are shared by its tools and callers.
    tool: &'static str,
    principal: Option<String>,
}

/// SDK clients built for one session, kept as long as the session is cached.
#[derive(Default)]
pub(crate) struct Clients {
    config: OnceLock<SdkConfig>,
    s3: OnceLock<aws_sdk_s3::Client>,
}

/// One session bound to the calling tool's role.
pub(crate) struct Session {
    pub(crate) role: &'static str,
    roles: AwsRoles,
    slot: Arc<Slot<Clients>>,
}

impl Session {
    pub(crate) fn config(&self) -> SdkConfig {
        self.slot
            .extra
            .config
            .get_or_init(|| {
                let provider = SessionProvider(Arc::clone(&self.slot.credentials));
                self.roles
                    .0
                    .template
                    .to_builder()
                    .credentials_provider(SharedCredentialsProvider::new(provider))
                    .build()
            })
            .clone()
    }

    pub(crate) fn s3(&self) -> aws_sdk_s3::Client {
        self.slot
            .extra
            .s3
            .get_or_init(|| {
                let config = aws_sdk_s3::config::Builder::from(&self.config())
                    .force_path_style(self.roles.0.s3_force_path_style)
                    .push_auth_scheme(QuietSigV4::default())
                    .build();
                aws_sdk_s3::Client::from_conf(config)
            })
            .clone()
    }
}

// A revoked tool or principal keeps no AWS session: its next call, once allowed again, assumes
// the role afresh, and until then nothing is minted for it.
impl mcp_lp::revocation::Evict for AwsRoles {
    fn evict(&self, list: &mcp_lp::revocation::RevocationList, tools: &[mcp_lp::ToolPolicy]) {
        if list.is_empty() {
            return;
        }
        let refused = |key: &SessionKey| {
            let tool_refused = tools
                .iter()
                .filter(|t| {
                    role_of(t) == Some(key.role) && (key.tool.is_empty() || t.name == key.tool)
                })
                .any(|t| list.refusing_tool(t).is_some());
            tool_refused
                || key
                    .principal
                    .as_deref()
                    .is_some_and(|p| list.refuses_principal(p))
        };
        let dropped = self.0.cache.drop_where(refused);
        if dropped > 0 {
            tracing::warn!(
                sessions = dropped,
                "revocation: dropped cached AWS sessions"
            );
        }
    }
}

impl AwsRoles {
    fn empty() -> Self {
        Self(Arc::new(Inner {
            roles: HashMap::new(),
            cache: CredentialCache::new(
                1,
                SharedTimeSource::new(aws_smithy_async::time::SystemTimeSource::new()),
            ),
            template: SdkConfig::builder().build(),
            s3_force_path_style: false,
        }))
    }

    /// What the credential cache has done since startup: AssumeRole calls, calls that waited
    /// for one, refreshes ahead of expiry, evictions.
    pub fn stats(&self) -> CacheStats {
        self.0.cache.stats()
    }

    /// The session of the tool `scope` runs, for its principal. Fetches nothing.
    pub(crate) fn session(scope: &CallScope) -> Result<Session, ErrorData> {
        let tool = scope.tool();
        let Some(role) = role_of(tool) else {
            return Err(ErrorData::internal_error(
                format!(
                    "tool `{}` declares no role, so it has no AWS credentials",
                    tool.name
                ),
                None,
            ));
        };
        let Some(roles) = scope.provider::<AwsRoles>() else {
            return Err(ErrorData::internal_error(
                "this server was not given its AWS roles; build it with `mcp_lp::Server::new(service).provide(aws.roles())`",
                None,
            ));
        };
        let Some(provider) = roles.0.roles.get(role) else {
            return Err(ErrorData::internal_error(
                format!(
                    "tool `{}` declares role `{role}`, which has no [aws.roles.{role}]",
                    tool.name
                ),
                None,
            ));
        };
        let attribution = provider.settings().attribution;
        let key = if attribution.per_principal {
            SessionKey {
                role,
                tool: tool.name,
                principal: Some(scope.principal().id().to_owned()),
            }
        } else {
            SessionKey {
                role,
                tool: "",
                principal: None,
            }
        };
        let slot = roles.0.cache.slot(&key, || {
            let params = attribution.params(role, tool.name, scope.principal().id());
            let provider = Arc::clone(provider);
            let loader: crate::cache::Loader = Arc::new(move || {
                let provider = Arc::clone(&provider);
                let params = params.clone();
                async move { provider.assume(&params).await }.boxed()
            });
            (loader, Clients::default())
        });
        Ok(Session {
            role,
            roles: roles.clone(),
            slot,
        })
    }
}

impl fmt::Debug for AwsRoles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut roles: Vec<_> = self
            .0
            .roles
            .iter()
            .map(|(name, p)| (name.as_str(), p.settings().arn.as_str()))
            .collect();
        roles.sort_unstable();
        f.debug_struct("AwsRoles")
            .field("roles", &roles)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The role `tool` declares, if any.
fn role_of(tool: &mcp_lp::ToolPolicy) -> Option<&'static str> {
    use mcp_lp::capability::Kind as _;
    tool.capability(crate::AwsRole::NAME).map(|c| c.name)
}

impl mcp_lp::Provide for AwsRoles {
    // A revocation drops the cached sessions of the tools and principals it refuses.
    fn evictor(&self) -> Option<Arc<dyn mcp_lp::revocation::Evict>> {
        Some(Arc::new(self.clone()))
    }
}
