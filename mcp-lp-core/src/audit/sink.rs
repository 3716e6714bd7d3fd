//! Durable places the trail writes to: the [`AuditSink`] trait, which the file sink here and
//! the PostgreSQL sink of the state crate implement.

use futures::future::BoxFuture;

use super::chain::SealedEvent;
use super::verify::TrailLine;

/// Why a sink could not take a batch. The trail keeps the batch and tries again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuditSinkError(pub String);

/// A durable place for sealed events.
///
/// The trail hands each sink batches in chain order, one batch at a time, and counts an event
/// as recorded once `write` returns `Ok` for its batch. A `write` that fails must leave nothing
/// of the batch behind (or nothing the retry would duplicate): the trail retries the same batch
/// until it succeeds.
pub trait AuditSink: Send + 'static {
    /// What the sink writes to, for messages: `file audit/trail.jsonl`.
    fn describe(&self) -> String;

    /// Write `batch` durably.
    fn write<'a>(
        &'a mut self,
        batch: &'a [SealedEvent],
    ) -> BoxFuture<'a, Result<(), AuditSinkError>>;

    /// The trail as this sink holds it, in the order written, for `audit verify --db`; `None`
    /// for a sink that is not read back this way (files are verified by path).
    fn read_back(&mut self) -> Option<BoxFuture<'_, Result<Vec<TrailLine>, AuditSinkError>>> {
        None
    }

    /// Called when no event came for a while: a sink that syncs on an interval syncs here.
    fn idle(&mut self) -> BoxFuture<'_, Result<(), AuditSinkError>> {
        Box::pin(async { Ok(()) })
    }
}
