//! The revocation list of several replicas: `mcp_lp_governance.revocations`, pushed to every
//! replica by `LISTEN/NOTIFY` and read again after every reconnect.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use mcp_lp::revocation::{Revocation, RevocationError, RevocationFeed, RevocationStore, Target};
use mcp_lp_db::PgReason;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use crate::store::{StateTls, pool_error_reason};

/// The channel the table's trigger notifies on every change.
const CHANNEL: &str = "mcp_lp_revocations";

/// How often the list is read even without a notification: a heartbeat that notices a dead
/// connection, and keeps the store's last read fresh for `[governance] fail_closed_after`.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// How long to wait before connecting again after the store was lost.
const RECONNECT: Duration = Duration::from_millis(500);

const LIST: &str = "SELECT kind, name, reason, revoked_by,
        to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), key_id, mac
    FROM mcp_lp_governance.revocations ORDER BY revoked_at, kind, name";

/// The `[state]` store's revocation list, for [`mcp_lp::Server::revocations`]. Made by
/// [`StateStore::revocations`](crate::StateStore::revocations).
pub struct PgRevocations {
    pool: Pool,
    /// The listening connection is opened apart from the pool: it is held for as long as the
    /// server runs.
    pg: tokio_postgres::Config,
    tls: StateTls,
    target: String,
}

/// The notifications of a connection opened apart from the pool, and the task that drives it.
pub(crate) struct Messages {
    notified: mpsc::UnboundedReceiver<()>,
    driver: tokio::task::JoinHandle<Result<(), String>>,
}

impl Messages {
    /// Drive `connection` in a task of its own, passing on its notifications.
    pub(crate) fn spawn<S, T>(mut connection: tokio_postgres::Connection<S, T>) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, notified) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        if sender.send(()).is_err() {
                            return Ok(());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(PgReason(&e).to_string()),
                }
            }
            Ok(())
        });
        Self { notified, driver }
    }
}

impl PgRevocations {
    pub(crate) fn new(pool: Pool, pg: tokio_postgres::Config, tls: StateTls, target: &str) -> Self {
        Self {
            pool,
            pg,
            tls,
            target: target.to_owned(),
        }
    }

    /// The error of a change the role may not make: the replicas' role cannot change the
    /// list, which is the operator role's to change.
    fn refused_change(&self, e: &tokio_postgres::Error) -> RevocationError {
        if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
            return self.unavailable(format!(
                "{}; revocations are changed by the operator role: give [state] operator_url its URL",
                PgReason(e)
            ));
        }
        self.unavailable(PgReason(e).to_string())
    }

    fn unavailable(&self, reason: impl Into<String>) -> RevocationError {
        RevocationError::Unavailable {
            store: self.describe(),
            reason: reason.into(),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, RevocationError> {
        self.pool
            .get()
            .await
            .map_err(|e| self.unavailable(pool_error_reason(&e)))
    }

    /// Follow the table on one listening connection until it fails; `Ok` when the feed closed.
    async fn listen(&self, feed: &RevocationFeed) -> Result<(), String> {
        let (client, messages) = self
            .tls
            .connect(&self.pg)
            .await
            .map_err(|e| PgReason(&e).to_string())?;
        let Messages {
            notified: mut notifications,
            driver,
        } = messages;
        let result = async {
            client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .await
                .map_err(|e| PgReason(&e).to_string())?;
            let mut heartbeat = tokio::time::interval(HEARTBEAT);
            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // Listening first, then reading: a change between the two is read now or
                // notified later, never lost.
                let rows = client
                    .query(LIST, &[])
                    .await
                    .map_err(|e| PgReason(&e).to_string())?;
                let list = rows_to_list(&rows).map_err(|e| e.to_string())?;
                if !feed.publish(list) {
                    return Ok(());
                }
                tokio::select! {
                    got = notifications.recv() => {
                        if got.is_none() {
                            return Err("the listening connection closed".to_owned());
                        }
                        while notifications.try_recv().is_ok() {}
                    }
                    _ = heartbeat.tick() => {}
                }
            }
        }
        .await;
        driver.abort();
        result
    }
}

fn rows_to_list(rows: &[tokio_postgres::Row]) -> Result<Vec<Revocation>, RevocationError> {
    rows.iter()
        .map(|row| {
            let (kind, name): (String, String) = (row.get(0), row.get(1));
            let at: String = row.get(4);
            Ok(Revocation {
                target: Target::from_parts(&kind, &name)?,
                reason: row.get(2),
                by: row.get(3),
                at: at
                    .parse()
                    .map_err(|e| RevocationError::Invalid(format!("revoked_at `{at}`: {e}")))?,
                key_id: row.get(5),
                mac: row.get(6),
            })
        })
        .collect()
}

impl RevocationStore for PgRevocations {
    fn describe(&self) -> String {
        format!("postgres {} ({})", self.target, crate::REVOCATIONS_TABLE)
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Revocation>, RevocationError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(LIST, &[])
                .await
                .map_err(|e| self.unavailable(PgReason(&e).to_string()))?;
            rows_to_list(&rows)
        })
    }

    fn revoke(&self, revocation: Revocation) -> BoxFuture<'_, Result<(), RevocationError>> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO mcp_lp_governance.revocations
                       (kind, name, reason, revoked_by, revoked_at, key_id, mac)
                     VALUES ($1, $2, $3, $4, $5::text::timestamptz, $6, $7)
                     ON CONFLICT (kind, name) DO UPDATE
                     SET reason = EXCLUDED.reason, revoked_by = EXCLUDED.revoked_by,
                         revoked_at = EXCLUDED.revoked_at, key_id = EXCLUDED.key_id,
                         mac = EXCLUDED.mac",
                    &[
                        &revocation.target.kind(),
                        &revocation.target.name(),
                        &revocation.reason,
                        &revocation.by,
                        &revocation.at.to_string(),
                        &revocation.key_id,
                        &revocation.mac,
                    ],
                )
                .await
                .map_err(|e| self.refused_change(&e))?;
            Ok(())
        })
    }

    fn unrevoke(&self, target: Target) -> BoxFuture<'_, Result<bool, RevocationError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let removed = client
                .execute(
                    "DELETE FROM mcp_lp_governance.revocations WHERE kind = $1 AND name = $2",
                    &[&target.kind(), &target.name()],
                )
                .await
                .map_err(|e| self.refused_change(&e))?;
            Ok(removed > 0)
        })
    }

    fn follow(self: Arc<Self>, feed: RevocationFeed) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            loop {
                match self.listen(&feed).await {
                    Ok(()) => return,
                    Err(reason) => {
                        if !feed.unreachable(reason) {
                            return;
                        }
                    }
                }
                tokio::time::sleep(RECONNECT).await;
            }
        })
    }
}
