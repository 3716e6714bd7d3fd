//! The PostgreSQL audit sink: each batch one multi-row INSERT into the audit table.

use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use mcp_lp::audit::verify::TrailLine;
use mcp_lp::audit::{AuditSink, AuditSinkError, SealedEvent};
use mcp_lp_db::PgReason;

use crate::privileges::AUDIT_TABLE;
use crate::store::pool_error_reason;

/// One batch, in chain order, as one statement: atomic, and `id`s follow the batch's order.
/// A retry of a batch that did commit inserts nothing (`ON CONFLICT DO NOTHING`, which needs
/// no UPDATE privilege); the rows it skipped are then compared with the batch.
const INSERT: &str = "
INSERT INTO mcp_lp_audit.events (instance, seq, hash, event, line)
SELECT b.instance, b.seq, b.hash, b.event, b.line
FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[])
     WITH ORDINALITY AS b(instance, seq, hash, event, line, ord)
ORDER BY b.ord
ON CONFLICT (instance, seq) DO NOTHING
RETURNING instance, seq";

/// The hash of a row already there, for an event a batch did not insert.
const EXISTING: &str = "SELECT hash FROM mcp_lp_audit.events WHERE instance = $1 AND seq = $2";

const READ_BACK: &str = "SELECT id, line FROM mcp_lp_audit.events ORDER BY id";

/// The audit table as a durable sink: give it to [`mcp_lp::Server::audit_to`]. Made by
/// [`StateStore::audit_sink`](crate::StateStore::audit_sink).
#[derive(Debug)]
pub struct PgAuditSink {
    pool: Pool,
    description: String,
}

impl PgAuditSink {
    pub(crate) fn new(pool: Pool, target: &str) -> Self {
        Self {
            pool,
            description: format!("postgres {AUDIT_TABLE} at {target}"),
        }
    }

    async fn insert(&self, batch: &[SealedEvent]) -> Result<(), AuditSinkError> {
        let fail = |reason: String| AuditSinkError(format!("{}: {reason}", self.description));
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| fail(pool_error_reason(&e)))?;
        let mut instances = Vec::with_capacity(batch.len());
        let mut seqs = Vec::with_capacity(batch.len());
        let mut hashes = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        let mut lines = Vec::with_capacity(batch.len());
        for e in batch {
            instances.push(e.instance.as_str());
            seqs.push(
                i64::try_from(e.seq).map_err(|_| fail(format!("seq {} is out of range", e.seq)))?,
            );
            hashes.push(e.hash.as_str());
            events.push(e.event.as_str());
            lines.push(e.line.as_str());
        }
        let statement = client
            .prepare_cached(INSERT)
            .await
            .map_err(|e| fail(PgReason(&e).to_string()))?;
        let inserted = client
            .query(&statement, &[&instances, &seqs, &hashes, &events, &lines])
            .await
            .map_err(|e| fail(PgReason(&e).to_string()))?;
        if inserted.len() == batch.len() {
            return Ok(());
        }
        // A retry of a batch that committed, or rows someone else put there first: only the
        // former holds the same events.
        let inserted: Vec<(String, i64)> = inserted.iter().map(|r| (r.get(0), r.get(1))).collect();
        for (event, seq) in batch.iter().zip(&seqs) {
            if inserted
                .iter()
                .any(|(i, s)| s == seq && *i == event.instance)
            {
                continue;
            }
            let existing = client
                .query_opt(EXISTING, &[&event.instance, seq])
                .await
                .map_err(|e| fail(PgReason(&e).to_string()))?;
            if existing.is_none_or(|row| row.get::<_, &str>(0) != event.hash) {
                return Err(fail(format!(
                    "instance {} seq {} is already in the table with another hash; the trail cannot be recorded there",
                    event.instance, event.seq
                )));
            }
        }
        Ok(())
    }

    async fn lines(&self) -> Result<Vec<TrailLine>, AuditSinkError> {
        let fail = |reason: String| AuditSinkError(format!("{}: {reason}", self.description));
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| fail(pool_error_reason(&e)))?;
        let rows = client
            .query(READ_BACK, &[])
            .await
            .map_err(|e| fail(PgReason(&e).to_string()))?;
        Ok(rows
            .iter()
            .map(|row| TrailLine {
                location: format!("{AUDIT_TABLE} id {}", row.get::<_, i64>(0)),
                text: row.get(1),
            })
            .collect())
    }
}

impl AuditSink for PgAuditSink {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn write<'a>(
        &'a mut self,
        batch: &'a [SealedEvent],
    ) -> BoxFuture<'a, Result<(), AuditSinkError>> {
        Box::pin(self.insert(batch))
    }

    fn read_back(&mut self) -> Option<BoxFuture<'_, Result<Vec<TrailLine>, AuditSinkError>>> {
        Some(Box::pin(self.lines()))
    }
}
