//! When each tool was last used, and by whom: what `review` reports so that an owner can
//! retire what nobody uses.
//!
//! The checkpoint notes every call that ran in memory, without waiting on anything; a
//! background task writes what changed to the [`LastUsedStore`] once a second, when the server
//! has one (mcp-lp-state's `[state]` table, shared by replicas).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

/// How often noted uses are written to the store.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// One tool used by one principal, last at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// The tool.
    pub tool: String,
    /// Who called it.
    pub principal: String,
    /// When, last.
    pub at: jiff::Timestamp,
}

/// Where last uses are kept beyond one process.
pub trait LastUsedStore: Send + Sync + 'static {
    /// The store, for messages.
    fn describe(&self) -> String;

    /// Record `uses`, keeping for each tool and principal the latest time.
    fn write(&self, uses: Vec<Use>) -> BoxFuture<'_, Result<(), String>>;

    /// Every recorded use.
    fn read(&self) -> BoxFuture<'_, Result<Vec<Use>, String>>;
}

/// The last uses a server notes, kept in memory and, with a store, written out in batches.
#[derive(Clone)]
pub struct LastUsed(Arc<Inner>);

struct Inner {
    /// Every use this process saw: `tool -> principal -> at`. Nested so that noting a known
    /// caller again allocates nothing.
    seen: Mutex<HashMap<&'static str, HashMap<String, jiff::Timestamp>>>,
    /// Uses not yet written to the store.
    pending: Mutex<HashMap<(&'static str, String), jiff::Timestamp>>,
    store: Option<Arc<dyn LastUsedStore>>,
    /// Whether the last write failed, so that a failing store is logged once, not every second.
    failing: AtomicBool,
}

impl fmt::Debug for LastUsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LastUsed")
            .field("store", &self.0.store.as_ref().map(|s| s.describe()))
            .finish_non_exhaustive()
    }
}

impl LastUsed {
    /// Last uses kept in this process's memory only.
    pub fn in_memory() -> Self {
        Self(Arc::new(Inner {
            seen: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            store: None,
            failing: AtomicBool::new(false),
        }))
    }

    /// Last uses written to `store` once a second, from a background task (call it within a
    /// Tokio runtime). A failed write is retried with the next batch, never blocks a call.
    pub fn writing_to(store: impl LastUsedStore) -> Self {
        Self::writing_to_shared(Arc::new(store))
    }

    /// [`writing_to`](Self::writing_to) a store already shared.
    pub(crate) fn writing_to_shared(store: Arc<dyn LastUsedStore>) -> Self {
        let this = Self(Arc::new(Inner {
            seen: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            store: Some(store),
            failing: AtomicBool::new(false),
        }));
        let weak = Arc::downgrade(&this.0);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(FLUSH_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                inner.flush().await;
            }
        });
        this
    }

    /// Note that `principal` used `tool` now. Never waits.
    pub fn note(&self, tool: &'static str, principal: &str) {
        let now = jiff::Timestamp::now();
        if let Ok(mut seen) = self.0.seen.lock() {
            let callers = seen.entry(tool).or_default();
            match callers.get_mut(principal) {
                Some(at) => *at = now,
                None => {
                    callers.insert(principal.to_owned(), now);
                }
            }
        }
        if self.0.store.is_some()
            && let Ok(mut pending) = self.0.pending.lock()
        {
            pending.insert((tool, principal.to_owned()), now);
        }
    }

    /// What this process saw, and, with a store, what every replica recorded there.
    pub async fn read(&self) -> Result<Vec<Use>, String> {
        let mut latest: HashMap<(String, String), jiff::Timestamp> = HashMap::new();
        if let Some(store) = &self.0.store {
            for u in store.read().await? {
                latest.insert((u.tool, u.principal), u.at);
            }
        }
        if let Ok(seen) = self.0.seen.lock() {
            for ((tool, principal), at) in seen
                .iter()
                .flat_map(|(tool, callers)| callers.iter().map(move |(p, at)| ((tool, p), at)))
            {
                let entry = latest
                    .entry(((*tool).to_owned(), principal.clone()))
                    .or_insert(*at);
                *entry = (*entry).max(*at);
            }
        }
        let mut uses: Vec<Use> = latest
            .into_iter()
            .map(|((tool, principal), at)| Use {
                tool,
                principal,
                at,
            })
            .collect();
        uses.sort_by(|a, b| (&a.tool, b.at).cmp(&(&b.tool, a.at)));
        Ok(uses)
    }

    /// Write what is noted and not yet written, now: at shutdown, so that the last second's
    /// uses are not lost.
    pub async fn flush(&self) {
        self.0.flush().await;
    }

    /// Whether uses go beyond this process.
    pub fn is_shared(&self) -> bool {
        self.0.store.is_some()
    }
}

impl Inner {
    async fn flush(&self) {
        let Some(store) = &self.store else { return };
        let drained: Vec<_> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => return,
        };
        if drained.is_empty() {
            return;
        }
        let batch = drained
            .iter()
            .map(|((tool, principal), at)| Use {
                tool: (*tool).to_owned(),
                principal: principal.clone(),
                at: *at,
            })
            .collect();
        match store.write(batch).await {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(store = %store.describe(), "last-used records written again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(store = %store.describe(), error = %e, "cannot write last-used records; keeping them for the next attempt");
                }
                self.requeue(drained);
            }
        }
    }

    /// Put back uses whose write failed, unless a later use of the same pair came since.
    fn requeue(&self, drained: Vec<((&'static str, String), jiff::Timestamp)>) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for (key, at) in drained {
            let entry = pending.entry(key).or_insert(at);
            *entry = (*entry).max(at);
        }
    }
}
