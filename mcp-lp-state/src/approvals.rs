//! Approvals shared by replicas: `mcp_lp_governance.approvals`, and the nonces of approved
//! runs in `mcp_lp_governance.nonces`. An approval made through one replica is used on
//! another, and of two replicas using it at once exactly one runs the call: every write is one
//! `UPDATE ... WHERE revision = $2`, and a trigger keeps a used record used.

use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use mcp_lp::approval::{ApprovalError, ApprovalStore, CallKey, PendingCall, is_id};
use mcp_lp_db::PgReason;

use crate::store::pool_error_reason;

/// The `[state]` store's approvals, for [`mcp_lp::Server::approvals`]. Made by
/// [`StateStore::approvals`](crate::StateStore::approvals). It stores; deciding is
/// [`mcp_lp::approval::Approvals`]'.
pub struct PgApprovals {
    pool: Pool,
    target: String,
}

impl PgApprovals {
    pub(crate) fn new(pool: Pool, target: &str) -> Self {
        Self {
            pool,
            target: target.to_owned(),
        }
    }

    fn fail(&self, reason: impl Into<String>) -> ApprovalError {
        ApprovalError::Store {
            store: self.describe(),
            reason: reason.into(),
        }
    }

    fn pg(&self, e: &tokio_postgres::Error) -> ApprovalError {
        self.fail(PgReason(e).to_string())
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ApprovalError> {
        self.pool
            .get()
            .await
            .map_err(|e| self.fail(pool_error_reason(&e)))
    }

    fn parse(&self, text: &str) -> Result<PendingCall, ApprovalError> {
        serde_json::from_str(text).map_err(|e| self.fail(format!("a stored call: {e}")))
    }

    fn text(&self, call: &PendingCall) -> Result<String, ApprovalError> {
        serde_json::to_string(call).map_err(|e| self.fail(e.to_string()))
    }
}

impl ApprovalStore for PgApprovals {
    fn describe(&self) -> String {
        format!("postgres {} ({})", self.target, crate::APPROVALS_TABLE)
    }

    fn insert(&self, call: PendingCall) -> BoxFuture<'_, Result<(), ApprovalError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let value = self.text(&call)?;
            let revision = i64::try_from(call.revision).unwrap_or(i64::MAX);
            let inserted = client
                .execute(
                    "INSERT INTO mcp_lp_governance.approvals
                       (id, principal, tool, arguments_sha256, definition_sha256, requested_at,
                        expires_at, revision, call)
                     VALUES ($1, $2, $3, $4, $5, $6::text::timestamptz, $7::text::timestamptz, $8,
                             $9::text::jsonb)
                     ON CONFLICT (id) DO NOTHING",
                    &[
                        &call.id,
                        &call.principal,
                        &call.tool,
                        &call.arguments_sha256,
                        &call.definition_sha256,
                        &call.requested_at,
                        &call.expires_at,
                        &revision,
                        &value,
                    ],
                )
                .await
                .map_err(|e| self.pg(&e))?;
            if inserted == 0 {
                return Err(self.fail(format!("approval `{}` exists already", call.id)));
            }
            Ok(())
        })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<PendingCall, ApprovalError>> {
        let id = id.to_owned();
        Box::pin(async move {
            if !is_id(&id) {
                return Err(ApprovalError::Unknown(id.chars().take(40).collect()));
            }
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT call::text FROM mcp_lp_governance.approvals WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(|e| self.pg(&e))?
                .ok_or_else(|| ApprovalError::Unknown(id.clone()))?;
            self.parse(row.get(0))
        })
    }

    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<PendingCall>, ApprovalError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = client
                .query(
                    "SELECT call::text FROM mcp_lp_governance.approvals WHERE used_at IS NULL
                     ORDER BY requested_at DESC LIMIT $1",
                    &[&limit],
                )
                .await
                .map_err(|e| self.pg(&e))?;
            rows.iter().map(|row| self.parse(row.get(0))).collect()
        })
    }

    fn replace(
        &self,
        revision: u64,
        call: PendingCall,
    ) -> BoxFuture<'_, Result<bool, ApprovalError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let value = self.text(&call)?;
            let (was, now) = (
                i64::try_from(revision).unwrap_or(i64::MAX),
                i64::try_from(call.revision).unwrap_or(i64::MAX),
            );
            // One statement: of two writers that read one revision, one moves it on and the
            // other finds it moved.
            let replaced = client
                .execute(
                    "UPDATE mcp_lp_governance.approvals
                     SET call = $3::text::jsonb, revision = $4,
                         used_at = $5::text::timestamptz
                     WHERE id = $1 AND revision = $2",
                    &[&call.id, &was, &value, &now, &call.used_at],
                )
                .await
                .map_err(|e| self.pg(&e))?;
            Ok(replaced == 1)
        })
    }

    fn find(&self, key: CallKey<'_>) -> BoxFuture<'_, Result<Option<String>, ApprovalError>> {
        let key = (
            key.principal.to_owned(),
            key.tool.to_owned(),
            key.arguments_sha256.to_owned(),
        );
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT id FROM mcp_lp_governance.approvals
                     WHERE principal = $1 AND tool = $2 AND arguments_sha256 = $3
                       AND used_at IS NULL
                     ORDER BY requested_at DESC LIMIT 1",
                    &[&key.0, &key.1, &key.2],
                )
                .await
                .map_err(|e| self.pg(&e))?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn open_count(
        &self,
        principal: &str,
        tool: &str,
        now: jiff::Timestamp,
    ) -> BoxFuture<'_, Result<u32, ApprovalError>> {
        let (principal, tool, now) = (principal.to_owned(), tool.to_owned(), now.to_string());
        Box::pin(async move {
            let client = self.client().await?;
            let open: i64 = client
                .query_one(
                    "SELECT count(*) FROM mcp_lp_governance.approvals
                     WHERE principal = $1 AND tool = $2 AND used_at IS NULL
                       AND expires_at > $3::text::timestamptz
                       AND jsonb_typeof(call->'denial') IS DISTINCT FROM 'object'",
                    &[&principal, &tool, &now],
                )
                .await
                .map_err(|e| self.pg(&e))?
                .get(0);
            Ok(u32::try_from(open).unwrap_or(u32::MAX))
        })
    }

    fn forget_expired(&self, before: jiff::Timestamp) -> BoxFuture<'_, Result<u64, ApprovalError>> {
        Box::pin(async move {
            let client = self.client().await?;
            // The role deletes nothing itself: the owner's function removes only what expired
            // before now, whatever the replica asks.
            let forgotten: i64 = client
                .query_one(
                    "SELECT mcp_lp_governance.forget_expired($1::text::timestamptz)",
                    &[&before.to_string()],
                )
                .await
                .map_err(|e| self.pg(&e))?
                .get(0);
            Ok(u64::try_from(forgotten).unwrap_or(0))
        })
    }

    fn spend_nonce(
        &self,
        nonce: &str,
        expires: jiff::Timestamp,
    ) -> BoxFuture<'_, Result<bool, ApprovalError>> {
        let nonce = nonce.to_owned();
        Box::pin(async move {
            let client = self.client().await?;
            let spent = client
                .execute(
                    "INSERT INTO mcp_lp_governance.nonces (nonce, expires_at)
                     VALUES ($1, $2::text::timestamptz) ON CONFLICT (nonce) DO NOTHING",
                    &[&nonce, &expires.to_string()],
                )
                .await
                .map_err(|e| self.pg(&e))?;
            Ok(spent == 1)
        })
    }
}
