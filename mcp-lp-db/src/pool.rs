//! One pool per database capability, built and checked at startup, held by the checkpoint.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Object, ObjectId, Pool, PoolError, QueueMode,
    RecyclingMethod, Runtime, TimeoutType,
};
use mcp_lp::{Config, ToolSet};

use mcp_lp::capability::Kind as _;

use crate::kind::{DbAccess, DbRead};
use tokio_postgres::config::Host;

use crate::config::{CapabilitySettings, DbSection, PrivilegeCheck};
use crate::envelope::{self, Envelope, KEY_LEN};
use crate::error::{DbError, PgReason, StartupError};
use crate::privileges::{self, Privilege, PrivilegeError};

/// After a rotated URL failed its check (the role's password not changed yet, a new role not
/// granted yet), try it again this often until it passes or the URL changes again.
const ROTATION_RETRY: Duration = Duration::from_secs(5);

/// Which connection's session holds what: connection ids are only unique within one deadpool
/// pool, so they are paired with the number of the pool, which a rotation increments.
pub(crate) type SessionId = (u64, ObjectId);

/// The database pools of a server, one per `[db.<name>]` capability, each logging in as its own
/// role. Give it to the checkpoint with [`mcp_lp::Server::provide`]; handlers reach a pool only
/// through [`PgRead`](crate::PgRead) and [`PgWrite`](crate::PgWrite), and only the pool of the
/// capability their tool declares.
///
/// Cloning is cheap and shares the pools. A clone hands out no connection: it is for
/// [`Databases::stats`].
///
/// ```no_run
/// # use mcp_lp::prelude::*;
/// # #[derive(Clone)] struct Records;
/// # #[mcp_lp::server] impl Records {
/// #     /// Count records.
/// #     #[tool(db = "records-read")]
/// #     async fn count(&self, mut db: mcp_lp_db::PgRead) -> Result<String, ToolError> {
/// #         Ok(db.query_one("SELECT count(*)::text FROM records", &[]).await?.get(0))
/// #     }
/// # }
/// # async fn build(config: &mcp_lp::Config) -> Result<(), Box<dyn std::error::Error>> {
/// let databases = mcp_lp_db::Databases::connect::<Records>(config).await?;
/// let metrics = databases.clone();
/// let server = mcp_lp::Server::new(Records).provide(databases);
/// println!("{:?}", metrics.stats("records-read"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Databases {
    pools: Arc<HashMap<String, Arc<CapabilityPool>>>,
}

/// A pool's counters, from [`Databases::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections asked of the pool for calls since startup: one per handle that ran a
    /// statement, none for a call refused before its handler ran.
    pub checkouts: u64,
    /// Connections open now.
    pub size: usize,
    /// Connections open and idle now.
    pub available: usize,
    /// The pool's maximum size, `max_connections`.
    pub max_size: usize,
}

/// One capability's pool and what calls need to know about it.
pub(crate) struct CapabilityPool {
    pub(crate) name: String,
    pub(crate) access: DbAccess,
    /// The role the current pool logs in as.
    role: RwLock<String>,
    pub(crate) envelope: Envelope,
    /// The key this pool's connections register, when principals are signed.
    pub(crate) key: Option<[u8; KEY_LEN]>,
    /// How a cancel request reaches the server: as the connections do, with or without TLS.
    pub(crate) connector: Connector,
    pub(crate) statement_timeout: Duration,
    /// The settings statement with session scope (readers on a read-only connection) and with
    /// transaction scope (everyone else).
    pub(crate) set_session: String,
    pub(crate) set_local: String,
    /// The principal each connection's session holds, as set by its last settings statement
    /// with only plain statements since (readers on a read-only connection only).
    session_principals: Mutex<HashMap<SessionId, String>>,
    /// The pool serving new checkouts, and its number. A rotated URL replaces it once the new
    /// role passed the privilege check; the old one is closed, so its connections are dropped
    /// as they come back.
    current: RwLock<(Pool, u64)>,
    /// Startup settings; the URL in them follows its secret.
    settings: CapabilitySettings,
    key_slot: Arc<OnceLock<[u8; KEY_LEN]>>,
    max_connections: usize,
    checkout_timeout: Duration,
    connect_timeout: Duration,
    checkouts: AtomicU64,
}

/// What a cancel request connects with.
#[derive(Clone)]
pub(crate) enum Connector {
    Plain,
    #[cfg(feature = "tls")]
    Tls(tokio_postgres_rustls::MakeRustlsConnect),
}

impl Connector {
    /// Ask the server to cancel what `connection` is running.
    pub(crate) async fn cancel(&self, connection: &Object) -> Result<(), tokio_postgres::Error> {
        let token = connection.cancel_token();
        match self {
            Self::Plain => token.cancel_query(tokio_postgres::NoTls).await,
            #[cfg(feature = "tls")]
            Self::Tls(tls) => token.cancel_query(tls.clone()).await,
        }
    }
}

impl Databases {
    /// Open a pool for every `[db.<name>]` table of `config`, connect each once and check its
    /// role's privileges against what the tools of `S` do with it (`db = ...` reads,
    /// `db_write = ...` writes).
    ///
    /// Refuses, naming the capability, the role and every offending [`Privilege`](crate::Privilege),
    /// unless the table says `privilege_check = "warn-only"`. Run it in the build step of
    /// [`mcp_lp::cli::run`] so that `check` runs it too.
    pub async fn connect<S: ToolSet>(config: &Config) -> Result<Self, StartupError> {
        config.check_tools(S::policies())?;
        let section: DbSection = config.provider_table("db")?;
        let mut pools = HashMap::new();
        for (name, table) in section.0 {
            // check_tools guarantees a declaring tool.
            let declaring = || {
                S::policies().iter().filter_map(|p| {
                    let capability = p.capability(DbRead::NAME)?;
                    (capability.name == name).then_some((p, DbAccess::of(capability.access)))
                })
            };
            let reader = declaring().find(|(_, access)| *access == DbAccess::Read);
            let writer = declaring().find(|(_, access)| *access == DbAccess::Write);
            if let (Some((reader, _)), Some((writer, _))) = (reader, writer) {
                return Err(StartupError::Setting {
                    path: config.path().to_owned(),
                    key: format!("db.{name}"),
                    problem: format!(
                        "tool `{}` reads through db capability `{name}` and tool `{}` writes through it; a reader must not hold a role that can write, so give the writer its own capability",
                        reader.name, writer.name
                    ),
                });
            }
            let access = if writer.is_some() {
                DbAccess::Write
            } else {
                DbAccess::Read
            };
            let declaring = || declaring().map(|(p, _)| p);
            let longest_tool_timeout = declaring()
                .map(|p| config.limits_for(p).timeout)
                .max()
                .unwrap_or(crate::DEFAULT_STATEMENT_TIMEOUT);
            let settings = table.resolve(&name, config, access, longest_tool_timeout)?;
            let pool = Arc::new(CapabilityPool::open(settings, access, config).await?);
            follow_url(&pool);
            pools.insert(name, pool);
        }
        Ok(Self {
            pools: Arc::new(pools),
        })
    }

    /// The counters of `capability`'s pool, or `None` if there is no such capability.
    pub fn stats(&self, capability: &str) -> Option<PoolStats> {
        self.pools.get(capability).map(|pool| {
            let status = pool.pool().0.status();
            PoolStats {
                checkouts: pool.checkouts.load(Ordering::Relaxed),
                size: status.size,
                available: status.available,
                max_size: status.max_size,
            }
        })
    }

    /// The capability names, in no particular order.
    pub fn capabilities(&self) -> impl Iterator<Item = &str> {
        self.pools.keys().map(String::as_str)
    }

    /// What `capability`'s handles send around each statement, as learned at startup, or
    /// `None` if there is no such capability.
    pub fn envelope(&self, capability: &str) -> Option<Envelope> {
        self.pools.get(capability).map(|pool| pool.envelope)
    }

    pub(crate) fn pool(&self, capability: &str) -> Option<&Arc<CapabilityPool>> {
        self.pools.get(capability)
    }
}

impl fmt::Debug for Databases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.pools.values().collect();
        names.sort_by(|a, b| a.name.cmp(&b.name));
        f.debug_list().entries(names).finish()
    }
}

impl fmt::Debug for CapabilityPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapabilityPool")
            .field("name", &self.name)
            .field("access", &self.access)
            .field("role", &self.role())
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl CapabilityPool {
    async fn open(
        settings: CapabilitySettings,
        access: DbAccess,
        config: &Config,
    ) -> Result<Self, StartupError> {
        let role = settings.pg.get_user().unwrap_or_default().to_owned();
        let target = target(&settings.pg);
        let connector = match &settings.tls_ca_file {
            None => Connector::Plain,
            #[cfg(feature = "tls")]
            Some(ca_file) => {
                Connector::Tls(crate::tls::connector(&settings.name, ca_file, config)?)
            }
            #[cfg(not(feature = "tls"))]
            Some(_) => unreachable_without_tls(),
        };
        // Set once the envelope is known to sign principals: from then on every new connection
        // registers the pool's key before it serves a call.
        let key_slot: Arc<OnceLock<[u8; KEY_LEN]>> = Arc::new(OnceLock::new());
        let pool = build_pool(&settings, settings.pg.clone(), &connector, &key_slot).map_err(
            |reason| StartupError::CheckFailed {
                capability: settings.name.clone(),
                role: role.clone(),
                reason,
            },
        )?;

        let connection = pool.get().await.map_err(|e| StartupError::Connect {
            capability: settings.name.clone(),
            role: role.clone(),
            target: target.clone(),
            reason: pool_error_reason(&e, settings.connect_timeout),
        })?;
        let offending = privileges::check(&connection, &settings, &role, access).await?;
        let check_failed = |e: tokio_postgres::Error| StartupError::CheckFailed {
            capability: settings.name.clone(),
            role: role.clone(),
            reason: PgReason(&e).to_string(),
        };
        let envelope = envelope::learn(
            &connection,
            access,
            offending.is_empty(),
            settings.principal,
        )
        .await
        .map_err(check_failed)?;
        let key = if envelope.signed_principal {
            let key = envelope::new_key().map_err(|e| StartupError::CheckFailed {
                capability: settings.name.clone(),
                role: role.clone(),
                reason: format!("no random key for signing principals: {e}"),
            })?;
            envelope::register_key(&connection, &key)
                .await
                .map_err(check_failed)?;
            let _ = key_slot.set(key);
            Some(key)
        } else {
            None
        };
        drop(connection);

        if !offending.is_empty() {
            let error = PrivilegeError {
                capability: settings.name.clone(),
                role: role.clone(),
                access,
                offending,
            };
            match settings.privilege_check {
                PrivilegeCheck::Enforce => return Err(error.into()),
                PrivilegeCheck::WarnOnly => tracing::warn!(
                    capability = %settings.name,
                    role = %role,
                    privileges = %error.list(),
                    path = %config.path().display(),
                    "starting despite the privilege check, because `privilege_check = \"warn-only\"`: {error}"
                ),
            }
        }

        tracing::info!(
            capability = %settings.name,
            access = access.as_str(),
            role = %role,
            database = %target,
            max_connections = settings.max_connections,
            tls = settings.tls_ca_file.is_some(),
            read_only = ?envelope.read_only,
            principal = envelope.principal,
            signed_principal = envelope.signed_principal,
            advisory_unlock = envelope.advisory_unlock,
            "database capability ready"
        );
        Ok(Self {
            name: settings.name.clone(),
            access,
            role: RwLock::new(role),
            envelope,
            key,
            connector,
            statement_timeout: settings.statement_timeout,
            session_principals: Mutex::new(HashMap::new()),
            set_session: envelope::settings_sql(envelope.signed_principal, false),
            set_local: envelope::settings_sql(envelope.signed_principal, true),
            current: RwLock::new((pool, 0)),
            max_connections: settings.max_connections,
            checkout_timeout: settings.checkout_timeout,
            connect_timeout: settings.connect_timeout,
            checkouts: AtomicU64::new(0),
            settings,
            key_slot,
        })
    }

    /// The role the pool serving new checkouts logs in as.
    pub(crate) fn role(&self) -> String {
        self.role.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// The pool serving new checkouts, and its number.
    fn pool(&self) -> (Pool, u64) {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether the session of connection `id` holds `principal`.
    pub(crate) fn session_holds(&self, id: SessionId, principal: &str) -> bool {
        self.session_principals
            .lock()
            .is_ok_and(|held| held.get(&id).is_some_and(|p| p == principal))
    }

    /// Record that the session of connection `id` now holds `principal`.
    pub(crate) fn session_remember(&self, id: SessionId, principal: &str) {
        if let Ok(mut held) = self.session_principals.lock() {
            // Entries of closed connections are never looked up again (ids are not reused);
            // forget them all now and then rather than track every close.
            if held.len() > 4 * self.max_connections {
                held.clear();
            }
            held.insert(id, principal.to_owned());
        }
    }

    /// Forget what the session of connection `id` holds: it was reset, or may have changed.
    pub(crate) fn session_forget(&self, id: SessionId) {
        if let Ok(mut held) = self.session_principals.lock() {
            held.remove(&id);
        }
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// A connection for one call, and the number of the pool it came from. Refused while the
    /// URL's secret is past its max age.
    pub(crate) async fn checkout(&self) -> Result<(Object, u64), DbError> {
        if let Err(expired) = self.settings.url.check() {
            let error = DbError::SecretExpired {
                capability: self.name.clone(),
                reason: expired.to_string(),
            };
            tracing::error!(capability = %self.name, error = %error, "no database connection for a call");
            return Err(error);
        }
        self.checkouts.fetch_add(1, Ordering::Relaxed);
        // A rotation closes the pool a checkout may be waiting on: take the new one then.
        let mut attempts = 0;
        let error = loop {
            let (pool, number) = self.pool();
            match pool.get().await {
                Ok(connection) => return Ok((connection, number)),
                Err(PoolError::Closed) if attempts < 3 => attempts += 1,
                Err(error) => break error,
            }
        };
        let error = match error {
            PoolError::Timeout(TimeoutType::Wait) => DbError::PoolExhausted {
                capability: self.name.clone(),
                timeout: self.checkout_timeout,
                max_connections: self.max_connections,
            },
            PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => {
                DbError::ConnectTimeout {
                    capability: self.name.clone(),
                    timeout: self.connect_timeout,
                }
            }
            other => DbError::Unavailable {
                capability: self.name.clone(),
                reason: pool_error_reason(&other, self.connect_timeout),
            },
        };
        tracing::warn!(capability = %self.name, role = %self.role(), error = %error, "no database connection for a call");
        Err(error)
    }

    /// Move to the URL the secret holds now: open a pool with it, check the role behind it as
    /// at startup, and only then let it serve new checkouts, closing the old pool (its
    /// connections in use finish their calls and are dropped as they come back). If the check
    /// fails, the old pool keeps serving and the failure is logged at ERROR.
    async fn rotate(&self) -> Result<(), String> {
        let Ok(url) = self.settings.url.current() else {
            // Expired: checkouts refuse; nothing to move to until a good value arrives.
            return Ok(());
        };
        let result = async {
            let pg = self.settings.connection_config(&url)?;
            let role = pg.get_user().unwrap_or_default().to_owned();
            let candidate = build_pool(&self.settings, pg, &self.connector, &self.key_slot)?;
            let checked = self.check_candidate(&candidate, &role).await;
            match checked {
                Ok(()) => Ok((candidate, role)),
                Err(reason) => {
                    candidate.close();
                    Err(format!("role `{role}`: {reason}"))
                }
            }
        }
        .await;
        match result {
            Ok((candidate, role)) => {
                let old = {
                    let mut current = match self.current.write() {
                        Ok(current) => current,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    let number = current.1 + 1;
                    std::mem::replace(&mut *current, (candidate, number))
                };
                if let Ok(mut held) = self.role.write() {
                    *held = role.clone();
                }
                old.0.close();
                tracing::info!(
                    capability = %self.name,
                    role = %role,
                    secret = %self.settings.url.name(),
                    "database URL rotated: new connections use the new URL, the old ones retire as they return"
                );
                Ok(())
            }
            Err(reason) => {
                tracing::error!(
                    capability = %self.name,
                    secret = %self.settings.url.name(),
                    reason = %reason,
                    retry = ?ROTATION_RETRY,
                    "the database URL changed, but connections with the new URL failed the startup check; the previous connections keep serving"
                );
                Err(reason)
            }
        }
    }

    /// Run the startup privilege check on a connection of `candidate`, and insist on the
    /// envelope the capability has: what each call sends was decided at startup.
    async fn check_candidate(&self, candidate: &Pool, role: &str) -> Result<(), String> {
        let connection = candidate.get().await.map_err(|e| {
            format!(
                "cannot connect: {}",
                pool_error_reason(&e, self.connect_timeout)
            )
        })?;
        let offending: Vec<Privilege> =
            privileges::check(&connection, &self.settings, role, self.access)
                .await
                .map_err(|e| e.to_string())?;
        let envelope = envelope::learn(
            &connection,
            self.access,
            offending.is_empty(),
            self.settings.principal,
        )
        .await
        .map_err(|e| PgReason(&e).to_string())?;
        if !offending.is_empty() {
            let error = PrivilegeError {
                capability: self.name.clone(),
                role: role.to_owned(),
                access: self.access,
                offending,
            };
            match self.settings.privilege_check {
                PrivilegeCheck::Enforce => return Err(error.to_string()),
                PrivilegeCheck::WarnOnly => tracing::warn!(
                    capability = %self.name,
                    role = %role,
                    privileges = %error.list(),
                    "rotating despite the privilege check, because `privilege_check = \"warn-only\"`: {error}"
                ),
            }
        }
        if envelope != self.envelope {
            return Err(format!(
                "the new role needs a different per-call envelope ({envelope:?}) than the one the capability started with ({:?}); restart to adopt it",
                self.envelope
            ));
        }
        Ok(())
    }
}

/// Rotate `pool` each time its URL's secret changes, retrying a rotation that failed its check.
fn follow_url(pool: &Arc<CapabilityPool>) {
    let weak: Weak<CapabilityPool> = Arc::downgrade(pool);
    let mut changes = pool.settings.url.subscribe();
    tokio::spawn(async move {
        let mut retry = false;
        loop {
            if retry {
                tokio::select! {
                    changed = changes.changed() => if changed.is_none() { return },
                    () = tokio::time::sleep(ROTATION_RETRY) => {}
                }
            } else if changes.changed().await.is_none() {
                return;
            }
            let Some(pool) = weak.upgrade() else { return };
            retry = pool.rotate().await.is_err();
        }
    });
}

/// A deadpool pool logging in with `pg`, registering the signing key (once known) on every new
/// connection.
fn build_pool(
    settings: &CapabilitySettings,
    pg: tokio_postgres::Config,
    connector: &Connector,
    key_slot: &Arc<OnceLock<[u8; KEY_LEN]>>,
) -> Result<Pool, String> {
    // Fast recycling only checks that the connection is open: every handle resets its
    // session itself when the call ends (see `extract`), before the connection returns.
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match connector {
        Connector::Plain => Manager::from_config(pg, tokio_postgres::NoTls, manager_config),
        #[cfg(feature = "tls")]
        Connector::Tls(tls) => Manager::from_config(pg, tls.clone(), manager_config),
    };
    let register = {
        let key_slot = key_slot.clone();
        Hook::async_fn(move |client, _| {
            let key = key_slot.get().copied();
            Box::pin(async move {
                if let Some(key) = key {
                    envelope::register_key(client, &key)
                        .await
                        .map_err(HookError::Backend)?;
                }
                Ok(())
            })
        })
    };
    Pool::builder(manager)
        // The connection returned last is handed out first: sequential calls keep using one
        // backend, warm, while the others stay idle, instead of waking each in turn.
        .queue_mode(QueueMode::Lifo)
        .post_create(register)
        .max_size(settings.max_connections)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.checkout_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "tls"))]
fn unreachable_without_tls() -> Connector {
    // `CapabilitySection::resolve` refuses `tls` when the feature is off.
    unreachable!("a TLS CA file is configured but the `tls` feature is off")
}

fn pool_error_reason(error: &PoolError, connect_timeout: Duration) -> String {
    match error {
        PoolError::Backend(e) => PgReason(e).to_string(),
        PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => {
            format!("no connection within the connect timeout of {connect_timeout:?}")
        }
        PoolError::Timeout(TimeoutType::Wait) => "no connection became free".to_owned(),
        other => other.to_string(),
    }
}

/// `host:port/database` of a connection configuration, for messages: never the user's
/// password or other parameters. Other stores that log in as their own role (mcp-lp-state)
/// name their database the same way.
pub fn target(pg: &tokio_postgres::Config) -> String {
    let host = match pg.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let database = pg.get_dbname().or(pg.get_user()).unwrap_or_default();
    format!("{host}:{port}/{database}")
}

/// The pools hold no credential a revocation takes away: each call checks out a connection
/// anew, after the checkpoint let it through.
impl mcp_lp::Provide for Databases {}
