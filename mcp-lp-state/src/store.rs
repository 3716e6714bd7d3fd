//! The store: one pool logging in as the `[state]` role, checked at startup.

use std::fmt;

use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, QueueMode, RecyclingMethod, Runtime,
};
use mcp_lp::Config;
use mcp_lp_db::{PgReason, target};

use crate::audit_sink::PgAuditSink;
use crate::config::StateSettings;
use crate::error::StateError;
use crate::privileges;

/// The shared PostgreSQL store of a server's replicas, from `[state]`. Cloning is cheap and
/// shares the pool.
///
/// ```no_run
/// # async fn build(config: &mcp_lp::Config) -> Result<(), Box<dyn std::error::Error>> {
/// // Refuses to start when the role can do more than the store needs.
/// let store = mcp_lp_state::StateStore::connect(config).await?;
/// let sink = store.audit_sink();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StateStore {
    pool: Pool,
    role: String,
    target: String,
}

impl fmt::Debug for StateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateStore")
            .field("role", &self.role)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// Open the pool `[state]` describes, connect once and check the role's privileges:
    /// refuses, naming the role and every offending privilege, a role that can do more than
    /// INSERT and SELECT the audit table (see [`AUDIT_TABLE`](crate::AUDIT_TABLE)).
    pub async fn connect(config: &Config) -> Result<Self, StateError> {
        let settings =
            StateSettings::from_config(config)?.ok_or_else(|| StateError::NotConfigured {
                path: config.path().to_owned(),
                why: "the state store was asked for".into(),
            })?;
        let role = settings.pg.get_user().unwrap_or_default().to_owned();
        let target = target(&settings.pg);
        let manager = Manager::from_config(
            settings.pg.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .queue_mode(QueueMode::Lifo)
            .max_size(settings.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| StateError::CheckFailed {
                role: role.clone(),
                reason: e.to_string(),
            })?;
        let connection = pool.get().await.map_err(|e| StateError::Connect {
            role: role.clone(),
            target: target.clone(),
            reason: pool_error_reason(&e),
        })?;
        privileges::check(&connection, &role).await?;
        drop(connection);
        tracing::info!(role = %role, database = %target, max_connections = settings.max_connections, "state store ready");
        Ok(Self { pool, role, target })
    }

    /// [`StateStore::connect`] when `[audit] postgres = true`, else `None`; refuses when the
    /// audit table is asked for and there is no `[state]`.
    pub async fn connect_for_audit(config: &Config) -> Result<Option<Self>, StateError> {
        if !config.audit().postgres {
            return Ok(None);
        }
        if StateSettings::from_config(config)?.is_none() {
            return Err(StateError::NotConfigured {
                path: config.path().to_owned(),
                why: "`[audit] postgres = true` writes the trail to its audit table".into(),
            });
        }
        Self::connect(config).await.map(Some)
    }

    /// A durable audit sink writing to the audit table, for [`mcp_lp::Server::audit_to`].
    pub fn audit_sink(&self) -> PgAuditSink {
        PgAuditSink::new(self.pool.clone(), &self.target)
    }

    /// The role the store logs in as.
    pub fn role(&self) -> &str {
        &self.role
    }
}

pub(crate) fn pool_error_reason(error: &PoolError) -> String {
    match error {
        PoolError::Backend(e) => PgReason(e).to_string(),
        other => other.to_string(),
    }
}
