//! Last-used records of every replica: `mcp_lp_governance.last_used`, one row per tool and
//! principal, written in batches.

use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use mcp_lp::last_used::{LastUsedStore, Use};
use mcp_lp_db::PgReason;

use crate::store::pool_error_reason;

/// The `[state]` store's last-used table, for [`mcp_lp::last_used::LastUsed::writing_to`].
pub struct PgLastUsed {
    pool: Pool,
    target: String,
}

impl PgLastUsed {
    pub(crate) fn new(pool: Pool, target: &str) -> Self {
        Self {
            pool,
            target: target.to_owned(),
        }
    }
}

impl LastUsedStore for PgLastUsed {
    fn describe(&self) -> String {
        format!("postgres {} ({})", self.target, crate::LAST_USED_TABLE)
    }

    fn write(&self, uses: Vec<Use>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(|e| pool_error_reason(&e))?;
            let tools: Vec<&str> = uses.iter().map(|u| u.tool.as_str()).collect();
            let principals: Vec<&str> = uses.iter().map(|u| u.principal.as_str()).collect();
            let ats: Vec<String> = uses.iter().map(|u| u.at.to_string()).collect();
            // One statement per batch; a later use never goes back in time.
            client
                .execute(
                    "INSERT INTO mcp_lp_governance.last_used AS l (tool, principal, used_at)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::text[]::timestamptz[])
                     ON CONFLICT (tool, principal) DO UPDATE
                     SET used_at = greatest(l.used_at, EXCLUDED.used_at)",
                    &[&tools, &principals, &ats],
                )
                .await
                .map_err(|e| PgReason(&e).to_string())?;
            Ok(())
        })
    }

    fn read(&self) -> BoxFuture<'_, Result<Vec<Use>, String>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(|e| pool_error_reason(&e))?;
            let rows = client
                .query(
                    "SELECT tool, principal,
                            to_char(used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
                     FROM mcp_lp_governance.last_used",
                    &[],
                )
                .await
                .map_err(|e| PgReason(&e).to_string())?;
            rows.iter()
                .map(|row| {
                    let at: String = row.get(2);
                    Ok(Use {
                        tool: row.get(0),
                        principal: row.get(1),
                        at: at.parse().map_err(|e| format!("used_at `{at}`: {e}"))?,
                    })
                })
                .collect()
        })
    }
}
