//! The store: one pool logging in as the `[state]` role, checked at startup.

use std::fmt;
use std::sync::Arc;

use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, QueueMode, RecyclingMethod, Runtime,
};
use mcp_lp::Config;
use mcp_lp_db::{PgReason, target};

use crate::approvals::PgApprovals;
use crate::audit_sink::PgAuditSink;
use crate::config::StateSettings;
use crate::error::StateError;
use crate::last_used::PgLastUsed;
use crate::privileges;
use crate::revocations::PgRevocations;
use mcp_lp::revocation::Revocations;
use mcp_lp::stores::SharedStores;

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
    pg: tokio_postgres::Config,
    tls: StateTls,
    role: String,
    target: String,
}

/// How the store's connections are made: in plain text on this machine, or over TLS.
#[derive(Clone)]
pub(crate) enum StateTls {
    Plain,
    #[cfg(feature = "tls")]
    Tls(tokio_postgres_rustls::MakeRustlsConnect),
}

impl StateTls {
    fn of(settings: &StateSettings, config: &Config) -> Result<Self, StateError> {
        match &settings.tls_ca_file {
            None => Ok(Self::Plain),
            #[cfg(feature = "tls")]
            Some(ca_file) => mcp_lp_db::tls_connector("state", ca_file, config)
                .map(Self::Tls)
                .map_err(|e| StateError::Setting {
                    path: config.path().to_owned(),
                    key: "state.tls.ca_file".into(),
                    problem: e.to_string(),
                }),
            #[cfg(not(feature = "tls"))]
            Some(_) => Err(StateError::Setting {
                path: config.path().to_owned(),
                key: "state.tls".into(),
                problem: "this server was built without TLS support: enable the `tls` feature of mcp-lp-state".into(),
            }),
        }
    }

    /// Open one connection apart from the pool (the revocation list's listener), driven by a
    /// task of its own; the task ends with the connection and gives its messages to `on`.
    pub(crate) async fn connect(
        &self,
        pg: &tokio_postgres::Config,
    ) -> Result<(tokio_postgres::Client, crate::revocations::Messages), tokio_postgres::Error> {
        match self {
            Self::Plain => {
                let (client, connection) = pg.connect(tokio_postgres::NoTls).await?;
                Ok((client, crate::revocations::Messages::spawn(connection)))
            }
            #[cfg(feature = "tls")]
            Self::Tls(connector) => {
                let (client, connection) = pg.connect(connector.clone()).await?;
                Ok((client, crate::revocations::Messages::spawn(connection)))
            }
        }
    }
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
        let tls = StateTls::of(&settings, config)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            StateTls::Plain => {
                Manager::from_config(settings.pg.clone(), tokio_postgres::NoTls, manager_config)
            }
            #[cfg(feature = "tls")]
            StateTls::Tls(connector) => {
                Manager::from_config(settings.pg.clone(), connector.clone(), manager_config)
            }
        };
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
        privileges::check(&connection, &role, settings.role).await?;
        drop(connection);
        tracing::info!(role = %role, kind = ?settings.role, database = %target, max_connections = settings.max_connections, tls = settings.tls_ca_file.is_some(), "state store ready");
        Ok(Self {
            pool,
            pg: settings.pg,
            tls,
            role,
            target,
        })
    }

    /// The stores replicas share, opened from `config` alone: the approvals, the revocation
    /// list, last uses and, with `[audit] postgres = true`, the audit table. `None` without
    /// `[state]` (refused when `[audit] postgres` asks for the table). Give it to
    /// `mcp_lp::cli::Program::shared_stores`; `serve` hands it to the server and the governance
    /// commands use it without building the application.
    pub async fn shared(config: &Config) -> Result<Option<SharedStores>, StateError> {
        if !config.has_state() {
            if config.audit().postgres {
                return Err(StateError::NotConfigured {
                    path: config.path().to_owned(),
                    why: "`[audit] postgres = true` writes the trail to its audit table".into(),
                });
            }
            return Ok(None);
        }
        let store = Self::connect(config).await?;
        let mut shared = SharedStores::new(
            Arc::new(store.approvals()),
            Arc::new(store.revocation_store()),
            Arc::new(store.last_used()),
        );
        if config.audit().postgres {
            shared = shared.audit_to(store.audit_sink());
        }
        Ok(Some(shared))
    }

    /// The approvals table: pending calls and their single-use ledger, shared by replicas.
    pub fn approvals(&self) -> PgApprovals {
        PgApprovals::new(self.pool.clone(), &self.target)
    }

    /// The last-used table, written in batches by [`mcp_lp::last_used::LastUsed::writing_to`].
    pub fn last_used(&self) -> PgLastUsed {
        PgLastUsed::new(self.pool.clone(), &self.target)
    }

    /// The shared revocation list, read now and followed from now on: every change reaches
    /// this replica by `LISTEN/NOTIFY`. Refuses when it cannot be read.
    pub async fn revocations(&self, config: &Config) -> Result<Revocations, StateError> {
        Revocations::follow(self.revocation_store(), config)
            .await
            .map_err(|e| StateError::CheckFailed {
                role: self.role.clone(),
                reason: e.to_string(),
            })
    }

    /// The shared revocation table, each change pushed to followers by `LISTEN/NOTIFY`.
    pub fn revocation_store(&self) -> PgRevocations {
        PgRevocations::new(
            self.pool.clone(),
            self.pg.clone(),
            self.tls.clone(),
            &self.target,
        )
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
