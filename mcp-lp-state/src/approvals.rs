//! Approvals shared by replicas: `mcp_lp_governance.approvals`. An approval made through one
//! replica is used on another, and of two replicas consuming it at once exactly one runs the
//! call: the consumption is one `UPDATE ... WHERE used_at IS NULL ... RETURNING`.

use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use mcp_lp::approval::{ApprovalError, ApprovalStore, CallKey, PendingCall, Verdict, is_id};
use mcp_lp_db::PgReason;

use crate::store::pool_error_reason;

/// The `[state]` store's approvals, for [`mcp_lp::Server::approvals`]. Made by
/// [`StateStore::approvals`](crate::StateStore::approvals).
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

    fn parse(&self, text: String) -> Result<PendingCall, ApprovalError> {
        serde_json::from_str(&text).map_err(|e| self.fail(format!("a stored call: {e}")))
    }

    async fn read(&self, id: &str) -> Result<PendingCall, ApprovalError> {
        if !is_id(id) {
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
            .ok_or_else(|| ApprovalError::Unknown(id.to_owned()))?;
        self.parse(row.get(0))
    }
}

impl ApprovalStore for PgApprovals {
    fn describe(&self) -> String {
        format!("postgres {} ({})", self.target, crate::APPROVALS_TABLE)
    }

    fn request(&self, call: PendingCall) -> BoxFuture<'_, Result<(), ApprovalError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let value = serde_json::to_string(&call).map_err(|e| self.fail(e.to_string()))?;
            client
                .execute(
                    "INSERT INTO mcp_lp_governance.approvals
                       (id, principal, tool, arguments_sha256, definition_sha256, requested_at,
                        expires_at, call)
                     VALUES ($1, $2, $3, $4, $5, $6::text::timestamptz, $7::text::timestamptz, $8::text::jsonb)",
                    &[
                        &call.id,
                        &call.principal,
                        &call.tool,
                        &call.arguments_sha256,
                        &call.definition_sha256,
                        &call.requested_at,
                        &call.expires_at,
                        &value,
                    ],
                )
                .await
                .map_err(|e| self.pg(&e))?;
            Ok(())
        })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<PendingCall, ApprovalError>> {
        let id = id.to_owned();
        Box::pin(async move { self.read(&id).await })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<PendingCall>, ApprovalError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT call::text FROM mcp_lp_governance.approvals WHERE used_at IS NULL
                     ORDER BY requested_at DESC LIMIT 1000",
                    &[],
                )
                .await
                .map_err(|e| self.pg(&e))?;
            rows.into_iter().map(|row| self.parse(row.get(0))).collect()
        })
    }

    fn decide(
        &self,
        id: &str,
        verdict: Verdict,
        approve: bool,
    ) -> BoxFuture<'_, Result<PendingCall, ApprovalError>> {
        let id = id.to_owned();
        Box::pin(async move {
            if !is_id(&id) {
                return Err(ApprovalError::Unknown(id.chars().take(40).collect()));
            }
            let mut client = self.client().await?;
            // The row is locked from the check to the update: two verdicts do not interleave.
            let transaction = client.transaction().await.map_err(|e| self.pg(&e))?;
            let row = transaction
                .query_opt(
                    "SELECT call::text FROM mcp_lp_governance.approvals WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await
                .map_err(|e| self.pg(&e))?
                .ok_or_else(|| ApprovalError::Unknown(id.clone()))?;
            let mut call = self.parse(row.get(0))?;
            call.check_verdict(&verdict.by, jiff::Timestamp::now())?;
            call.record_verdict(verdict, approve);
            let value = serde_json::to_string(&call).map_err(|e| self.fail(e.to_string()))?;
            transaction
                .execute(
                    "UPDATE mcp_lp_governance.approvals SET call = $2::text::jsonb WHERE id = $1",
                    &[&id, &value],
                )
                .await
                .map_err(|e| self.pg(&e))?;
            transaction.commit().await.map_err(|e| self.pg(&e))?;
            Ok(call)
        })
    }

    fn consume(
        &self,
        id: &str,
        key: CallKey<'_>,
    ) -> BoxFuture<'_, Result<PendingCall, ApprovalError>> {
        let id = id.to_owned();
        let key = (
            key.principal.to_owned(),
            key.tool.to_owned(),
            key.arguments_sha256.to_owned(),
            key.definition_sha256.to_owned(),
        );
        Box::pin(async move {
            if !is_id(&id) {
                return Err(ApprovalError::Unknown(id.chars().take(40).collect()));
            }
            let client = self.client().await?;
            let now = jiff::Timestamp::now().to_string();
            // One statement: of concurrent consumers, the row's lock lets one through and the
            // others find `used_at` set.
            let used = client
                .query_opt(
                    "UPDATE mcp_lp_governance.approvals
                     SET used_at = $6::text::timestamptz,
                         call = jsonb_set(call, '{used_at}', to_jsonb($6::text))
                     WHERE id = $1 AND used_at IS NULL AND expires_at > now()
                       AND principal = $2 AND tool = $3 AND arguments_sha256 = $4
                       AND definition_sha256 = $5
                       AND jsonb_typeof(call->'denial') IS DISTINCT FROM 'object'
                       AND jsonb_array_length(call->'approvals') >= (call->>'min')::int
                     RETURNING call::text",
                    &[&id, &key.0, &key.1, &key.2, &key.3, &now],
                )
                .await
                .map_err(|e| self.pg(&e))?;
            if let Some(row) = used {
                return self.parse(row.get(0));
            }
            // Not consumed: say why, from the row as it stands.
            let call = self.read(&id).await?;
            let key = CallKey {
                principal: &key.0,
                tool: &key.1,
                arguments_sha256: &key.2,
                definition_sha256: &key.3,
            };
            match call.check_use(key, jiff::Timestamp::now()) {
                Err(refused) => Err(refused),
                // It became usable after the update looked: the caller retries.
                Ok(()) => Err(ApprovalError::Decided(
                    "the approval changed while it was being used; call again".into(),
                )),
            }
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
                       AND used_at IS NULL AND expires_at > now()
                     ORDER BY requested_at DESC LIMIT 1",
                    &[&key.0, &key.1, &key.2],
                )
                .await
                .map_err(|e| self.pg(&e))?;
            Ok(row.map(|r| r.get(0)))
        })
    }
}
