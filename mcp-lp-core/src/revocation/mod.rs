//! Revocation and breakglass: take a principal, a grant, a tool or everything out of service,
//! at the next call, without a restart.
//!
//! A [`RevocationStore`] keeps the list: a file the server watches when one process serves
//! ([`FileRevocations`], the default), or the `[state]` PostgreSQL store that pushes every change
//! to every replica (mcp-lp-state). [`Revocations`] is the live view the checkpoint consults on
//! every call: a revoked call is refused with the revocation's reason, the tool is hidden from
//! `tools/list`, and what a revoked caller had cached (AWS sessions, validated tokens, HTTP
//! sessions) is dropped by the [`Evict`]ors registered with the server.
//!
//! When the store cannot be reached, what was known revoked stays revoked. After
//! `[governance] fail_closed_after` without the store, privileged tools (those that require a
//! grant) are refused too, since a revocation may have been missed.

mod file;

use std::fmt;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use self::file::FileRevocations;
#[cfg(feature = "fuzzing")]
pub(crate) use self::file::parse_list;
use crate::config::{Config, ConfigError, ConfigErrorKind};
use crate::governance_key::{GovernanceKeys, Purpose, Seal};
use crate::policy::ToolPolicy;

/// The revocation list's file name next to the configuration, unless `[governance]
/// revocations` names another.
pub const REVOCATIONS_FILE: &str = "mcp-lp.revocations.json";

/// How long the server serves privileged tools without reaching its revocation store, unless
/// `[governance] fail_closed_after` says otherwise.
pub const DEFAULT_FAIL_CLOSED_AFTER: Duration = Duration::from_secs(60);

/// What a revocation takes out of service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// Every call of one principal, on every tool.
    Principal(String),
    /// One grant, for every holder: the tools that require it are refused.
    Grant(String),
    /// One tool, for every caller.
    Tool(String),
    /// Everything: the breakglass switch.
    All,
}

impl Target {
    /// The kind as stored: `principal`, `grant`, `tool` or `all`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Principal(_) => "principal",
            Self::Grant(_) => "grant",
            Self::Tool(_) => "tool",
            Self::All => "all",
        }
    }

    /// The principal, grant or tool named; empty for [`Target::All`].
    pub fn name(&self) -> &str {
        match self {
            Self::Principal(name) | Self::Grant(name) | Self::Tool(name) => name,
            Self::All => "",
        }
    }

    /// The target from its stored kind and name.
    pub fn from_parts(kind: &str, name: &str) -> Result<Self, RevocationError> {
        let named = |make: fn(String) -> Self| {
            if name.is_empty() {
                Err(RevocationError::Invalid(format!(
                    "a `{kind}` revocation names the {kind}"
                )))
            } else {
                Ok(make(name.to_owned()))
            }
        };
        match kind {
            "principal" => named(Self::Principal),
            "grant" => named(Self::Grant),
            "tool" => named(Self::Tool),
            "all" => Ok(Self::All),
            other => Err(RevocationError::Invalid(format!(
                "unknown revocation kind `{other}`: expected principal, grant, tool or all"
            ))),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("everything"),
            other => write!(f, "{} {}", other.kind(), other.name()),
        }
    }
}

/// One entry of the revocation list: what, why, by whom and when, sealed with the governance
/// key (see [`crate::governance_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredRevocation", into = "StoredRevocation")]
pub struct Revocation {
    /// What is revoked.
    pub target: Target,
    /// Why, as the operator gave it; refused callers see it.
    pub reason: String,
    /// Who revoked it.
    pub by: String,
    /// When.
    pub at: jiff::Timestamp,
    /// The id of the governance key that sealed the entry; empty when none did (an entry
    /// written by hand, or by an operator with SQL).
    pub key_id: String,
    /// The entry's seal, HMAC-SHA256 of its other fields.
    pub mac: String,
}

impl Revocation {
    /// A revocation of `target` made now, to the second, not yet sealed.
    pub fn now(target: Target, reason: impl Into<String>, by: impl Into<String>) -> Self {
        let now = jiff::Timestamp::now();
        Self {
            target,
            reason: reason.into(),
            by: by.into(),
            at: jiff::Timestamp::from_second(now.as_second()).unwrap_or(now),
            key_id: String::new(),
            mac: String::new(),
        }
    }

    /// What the seal covers: every field but the seal.
    fn unsealed(&self) -> StoredRevocation {
        StoredRevocation::from(Self {
            key_id: String::new(),
            mac: String::new(),
            ..self.clone()
        })
    }

    /// Seal the entry with the first of `keys`.
    pub fn seal(&mut self, keys: &GovernanceKeys) {
        let seal = keys.seal(Purpose::Revocation, &self.unsealed());
        self.key_id = seal.key_id;
        self.mac = seal.mac;
    }

    /// Whether the entry carries a seal of one of `keys` over everything it says. An entry
    /// that does not is still in force (it can only take away), and is reported.
    pub fn verifies(&self, keys: &GovernanceKeys) -> bool {
        let seal = Seal {
            key_id: self.key_id.clone(),
            mac: self.mac.clone(),
        };
        keys.verifies(Purpose::Revocation, &self.unsealed(), &seal)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredRevocation {
    kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    name: String,
    reason: String,
    by: String,
    at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    key_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    mac: String,
}

impl TryFrom<StoredRevocation> for Revocation {
    type Error = RevocationError;

    fn try_from(stored: StoredRevocation) -> Result<Self, Self::Error> {
        Ok(Self {
            target: Target::from_parts(&stored.kind, &stored.name)?,
            reason: stored.reason,
            by: stored.by,
            at: stored.at.parse().map_err(|e| {
                RevocationError::Invalid(format!("`at = {:?}` is not a timestamp: {e}", stored.at))
            })?,
            key_id: stored.key_id,
            mac: stored.mac,
        })
    }
}

impl From<Revocation> for StoredRevocation {
    fn from(revocation: Revocation) -> Self {
        Self {
            kind: revocation.target.kind().to_owned(),
            name: revocation.target.name().to_owned(),
            reason: revocation.reason,
            by: revocation.by,
            at: revocation.at.to_string(),
            key_id: revocation.key_id,
            mac: revocation.mac,
        }
    }
}

/// The revocations in force at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    entries: Vec<Revocation>,
}

impl RevocationList {
    /// A list of `entries`; a target listed twice keeps its first entry.
    pub fn new(mut entries: Vec<Revocation>) -> Self {
        let mut seen = std::collections::HashSet::new();
        entries.retain(|entry| seen.insert(entry.target.clone()));
        Self { entries }
    }

    /// Every revocation in force.
    pub fn entries(&self) -> &[Revocation] {
        &self.entries
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The revocation that refuses `principal` calling `tool`, if any: everything, the
    /// principal, the tool, or a grant the tool requires.
    pub fn refusing(&self, principal: &str, tool: &ToolPolicy) -> Option<&Revocation> {
        self.entries.iter().find(|entry| match &entry.target {
            Target::All => true,
            Target::Principal(p) => p == principal,
            Target::Tool(t) => t == tool.name,
            Target::Grant(g) => tool.requires.contains(&g.as_str()),
        })
    }

    /// The revocation that refuses `tool` for every caller, if any: everything, the tool, or a
    /// grant it requires. What credentials shared by a tool's callers are dropped for.
    pub fn refusing_tool(&self, tool: &ToolPolicy) -> Option<&Revocation> {
        self.entries.iter().find(|entry| match &entry.target {
            Target::All => true,
            Target::Principal(_) => false,
            Target::Tool(t) => t == tool.name,
            Target::Grant(g) => tool.requires.contains(&g.as_str()),
        })
    }

    /// Whether every call of `principal` is refused: it, or everything, is revoked.
    pub fn refuses_principal(&self, principal: &str) -> bool {
        self.entries.iter().any(|entry| {
            matches!(&entry.target, Target::All)
                || matches!(&entry.target, Target::Principal(p) if p == principal)
        })
    }
}

/// Why the revocation list could not be read or changed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// The store could not be reached or read.
    #[error("the revocation store {store} cannot be read: {reason}")]
    Unavailable {
        /// The store, as [`RevocationStore::describe`] names it.
        store: String,
        /// Why.
        reason: String,
    },
    /// A revocation, or the stored list, is malformed.
    #[error("invalid revocation: {0}")]
    Invalid(String),
}

/// Where the revocation list is kept. The core has [`FileRevocations`]; mcp-lp-state keeps it
/// in PostgreSQL for several replicas.
pub trait RevocationStore: Send + Sync + 'static {
    /// The store for messages and audit events, such as `file /etc/mcp/revocations.json`.
    fn describe(&self) -> String;

    /// Every revocation in force.
    fn list(&self) -> BoxFuture<'_, Result<Vec<Revocation>, RevocationError>>;

    /// Add `revocation`, replacing one with the same target.
    fn revoke(&self, revocation: Revocation) -> BoxFuture<'_, Result<(), RevocationError>>;

    /// Remove the revocation of `target`; whether there was one.
    fn unrevoke(&self, target: Target) -> BoxFuture<'_, Result<bool, RevocationError>>;

    /// Keep `feed` current until it closes: publish the whole list whenever it may have
    /// changed (and after every reconnect), and report every failure to reach the store.
    fn follow(self: Arc<Self>, feed: RevocationFeed) -> BoxFuture<'static, ()>;
}

/// Something that holds what a revoked caller could still use, and drops it when a revocation
/// arrives: mcp-lp-aws's cached AWS sessions, the HTTP transport's tokens and sessions.
pub trait Evict: Send + Sync + 'static {
    /// Drop what `list` now refuses. `tools` are the server's tools. Called on every change
    /// of the list, so it must be idempotent.
    fn evict(&self, list: &RevocationList, tools: &[ToolPolicy]);
}

/// A call the revocation list refuses.
#[derive(Debug, Clone)]
pub enum Refused {
    /// A revocation covers the call.
    Revoked(Box<Revocation>),
    /// The store has not been reached for longer than `fail_closed_after`, and the tool is
    /// privileged.
    StoreUnreachable {
        /// The store.
        store: String,
        /// How long since it was last read.
        for_: Duration,
        /// Why it cannot be read.
        reason: String,
    },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Revoked(r) => write!(
                f,
                "{} is revoked: {} (by {} at {})",
                r.target,
                r.reason,
                r.by,
                r.at.strftime("%Y-%m-%dT%H:%M:%SZ")
            ),
            Self::StoreUnreachable {
                store,
                for_,
                reason,
            } => write!(
                f,
                "the revocation store {store} has not been read for {}s ({reason}): privileged tools are refused until it is back",
                for_.as_secs()
            ),
        }
    }
}

/// The live revocation list of a server, kept current by its store. Cloning is cheap.
#[derive(Clone)]
pub struct Revocations(Arc<Inner>);

struct Inner {
    store: Arc<dyn RevocationStore>,
    describe: String,
    fail_closed_after: Duration,
    current: RwLock<Arc<RevocationList>>,
    health: Mutex<Health>,
    changes: watch::Sender<Arc<RevocationList>>,
    evictors: Mutex<Vec<Evictor>>,
    /// What entries are checked against; entries that do not verify are reported once each.
    keys: KeySource,
    reported: Mutex<std::collections::HashSet<Target>>,
}

/// An evictor and the tools of the server it evicts for.
type Evictor = (Arc<dyn Evict>, &'static [ToolPolicy]);

/// Where the governance keys that check entries come from.
enum KeySource {
    /// Configured, or read at start.
    Keys(GovernanceKeys),
    /// A single process's key file, which a governance command may make after the server
    /// started: read again when the list changes.
    File(std::path::PathBuf),
}

impl KeySource {
    fn of(config: &Config) -> Self {
        match config.existing_governance_keys() {
            Some(keys) => Self::Keys(keys),
            None => Self::File(
                config
                    .path()
                    .parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join(crate::governance_key::DEFAULT_KEY_FILE),
            ),
        }
    }

    fn keys(&self) -> Option<GovernanceKeys> {
        match self {
            Self::Keys(keys) => Some(keys.clone()),
            Self::File(path) => GovernanceKeys::read_file(path).ok().flatten(),
        }
    }
}

struct Health {
    last_read: Instant,
    failing: Option<String>,
}

impl fmt::Debug for Revocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocations")
            .field("store", &self.0.describe)
            .field("in_force", &self.current().entries.len())
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// Read `store`'s list, then follow it in a background task, as `config` says: refusing
    /// privileged tools after `[governance] fail_closed_after` without the store, and checking
    /// each entry's seal with the governance keys. Refuses to start when the list cannot be
    /// read: a server that does not know what is revoked must not serve. Call it within a
    /// Tokio runtime.
    pub async fn follow(
        store: impl RevocationStore,
        config: &Config,
    ) -> Result<Self, RevocationError> {
        Self::follow_shared(Arc::new(store), config).await
    }

    pub(crate) async fn follow_shared(
        store: Arc<dyn RevocationStore>,
        config: &Config,
    ) -> Result<Self, RevocationError> {
        let initial = store.list().await?;
        let this = Self::with_list(
            Arc::clone(&store),
            initial,
            config.fail_closed_after(),
            KeySource::of(config),
        );
        let feed = RevocationFeed(Arc::downgrade(&this.0));
        tokio::spawn(store.follow(feed));
        Ok(this)
    }

    /// The list of one process: the file `[governance] revocations` names, read now and
    /// watched from now on (within a Tokio runtime). Refuses a configuration with `[state]`,
    /// whose replicas must share one list: give the server the state store's with
    /// [`Server::revocations`](crate::Server::revocations).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        if config.has_state() {
            return Err(ConfigError::new(
                config.path(),
                Some("state".to_owned()),
                ConfigErrorKind::Mismatch,
                "replicas sharing a [state] store share its revocation list, but the server follows none: give it the store's with Server::revocations(mcp_lp_state::StateStore::connect(&config).await?.revocations(&config).await?)".to_owned(),
            ));
        }
        let store = FileRevocations::new(config.revocations_path());
        let initial = store.read_now().map_err(|e| {
            ConfigError::new(
                config.path(),
                Some("governance.revocations".to_owned()),
                ConfigErrorKind::Unreadable,
                format!("{e}; the server does not start without knowing what is revoked"),
            )
        })?;
        let store: Arc<dyn RevocationStore> = Arc::new(store);
        let this = Self::with_list(
            Arc::clone(&store),
            initial,
            config.fail_closed_after(),
            KeySource::of(config),
        );
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(store.follow(RevocationFeed(Arc::downgrade(&this.0))));
            }
            Err(_) => tracing::warn!(
                store = %this.0.describe,
                "no async runtime: the revocation list read at start is not watched for changes"
            ),
        }
        Ok(this)
    }

    fn with_list(
        store: Arc<dyn RevocationStore>,
        initial: Vec<Revocation>,
        fail_closed_after: Duration,
        keys: KeySource,
    ) -> Self {
        let list = Arc::new(RevocationList::new(initial));
        let (changes, _) = watch::channel(Arc::clone(&list));
        let this = Self(Arc::new(Inner {
            describe: store.describe(),
            store,
            fail_closed_after,
            current: RwLock::new(Arc::clone(&list)),
            health: Mutex::new(Health {
                last_read: Instant::now(),
                failing: None,
            }),
            changes,
            evictors: Mutex::new(Vec::new()),
            keys,
            reported: Mutex::new(std::collections::HashSet::new()),
        }));
        this.report_unverified(&list);
        this
    }

    /// A list that never changes, for tests of what it refuses.
    #[cfg(test)]
    pub(crate) fn fixed(entries: Vec<Revocation>, keys: GovernanceKeys) -> Self {
        Self::with_list(
            Arc::new(FileRevocations::new("/nonexistent/revocations.json")),
            entries,
            Duration::from_secs(3600),
            KeySource::Keys(keys),
        )
    }

    /// Report each entry of `list` that does not carry the governance key's seal, once: it
    /// stays in force, since a revocation only takes away, but it was not made by mcp-lp with
    /// this deployment's key.
    fn report_unverified(&self, list: &RevocationList) {
        let Some(keys) = self.0.keys.keys() else {
            return;
        };
        let Ok(mut reported) = self.0.reported.lock() else {
            return;
        };
        for entry in list.entries() {
            if !entry.verifies(&keys) && reported.insert(entry.target.clone()) {
                tracing::warn!(store = %self.0.describe, target = %entry.target, "a revocation does not carry the governance key's seal; it is in force all the same");
                crate::audit::record(
                    &crate::audit::Record::new("revocation_unverified")
                        .warn()
                        .str("store", &self.0.describe)
                        .str("kind", entry.target.kind())
                        .str("name", entry.target.name())
                        .str("by", &entry.by),
                );
            }
        }
    }

    /// The store the list comes from, to revoke and unrevoke through.
    pub fn store(&self) -> &Arc<dyn RevocationStore> {
        &self.0.store
    }

    /// The revocations in force now.
    pub fn current(&self) -> Arc<RevocationList> {
        self.0
            .current
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |l| Arc::clone(&l))
    }

    /// Every change of the list, for those who drop state on revocation.
    pub fn subscribe(&self) -> watch::Receiver<Arc<RevocationList>> {
        self.0.changes.subscribe()
    }

    /// Register `evictor`: it drops what the list refuses now, and on every change.
    pub fn evict_with(&self, evictor: Arc<dyn Evict>, tools: &'static [ToolPolicy]) {
        evictor.evict(&self.current(), tools);
        if let Ok(mut evictors) = self.0.evictors.lock() {
            evictors.push((evictor, tools));
        }
    }

    /// Whether `principal` may call `tool` as far as revocation goes: `Err` with why not.
    pub fn check(&self, principal: &str, tool: &ToolPolicy) -> Result<(), Refused> {
        if let Some(revocation) = self.current().refusing(principal, tool) {
            return Err(Refused::Revoked(Box::new(revocation.clone())));
        }
        if tool.requires.is_empty() {
            return Ok(());
        }
        let Ok(health) = self.0.health.lock() else {
            return Ok(());
        };
        if let Some(reason) = &health.failing {
            let for_ = health.last_read.elapsed();
            if for_ > self.0.fail_closed_after {
                return Err(Refused::StoreUnreachable {
                    store: self.0.describe.clone(),
                    for_,
                    reason: reason.clone(),
                });
            }
        }
        Ok(())
    }

    fn publish(&self, entries: Vec<Revocation>) {
        let list = Arc::new(RevocationList::new(entries));
        let previous = match self.0.current.write() {
            Ok(mut current) => std::mem::replace(&mut *current, Arc::clone(&list)),
            Err(_) => return,
        };
        if let Ok(mut health) = self.0.health.lock() {
            health.last_read = Instant::now();
            if let Some(reason) = health.failing.take() {
                tracing::info!(store = %self.0.describe, was = %reason, "revocation store read again");
                crate::audit::record(
                    &crate::audit::Record::new("revocation_store_restored")
                        .str("store", &self.0.describe),
                );
            }
        }
        if previous == list {
            return;
        }
        self.report_unverified(&list);
        let added: Vec<String> = list
            .entries
            .iter()
            .filter(|e| !previous.entries.iter().any(|p| p.target == e.target))
            .map(|e| e.target.to_string())
            .collect();
        let removed: Vec<String> = previous
            .entries
            .iter()
            .filter(|p| !list.entries.iter().any(|e| e.target == p.target))
            .map(|p| p.target.to_string())
            .collect();
        tracing::warn!(store = %self.0.describe, added = ?added, removed = ?removed, in_force = list.entries.len(), "revocations changed");
        let (added, removed) = (added.join(", "), removed.join(", "));
        crate::audit::record(
            &crate::audit::Record::new("revocations_applied")
                .str("store", &self.0.describe)
                .str("added", &added)
                .str("removed", &removed)
                .int("in_force", list.entries.len() as u64),
        );
        if let Ok(evictors) = self.0.evictors.lock() {
            for (evictor, tools) in evictors.iter() {
                evictor.evict(&list, tools);
            }
        }
        self.0.changes.send_replace(list);
    }

    fn unreachable(&self, reason: String) {
        let Ok(mut health) = self.0.health.lock() else {
            return;
        };
        if health.failing.is_none() {
            tracing::error!(store = %self.0.describe, error = %reason, fail_closed_after = ?self.0.fail_closed_after, "revocation store unreachable; known revocations stay in force");
            crate::audit::record(
                &crate::audit::Record::new("revocation_store_unreachable")
                    .str("store", &self.0.describe)
                    .str("reason", &reason),
            );
        }
        health.failing = Some(reason);
    }
}

/// A store's way to keep a [`Revocations`] current, handed to [`RevocationStore::follow`].
#[derive(Clone)]
pub struct RevocationFeed(Weak<Inner>);

impl RevocationFeed {
    /// Replace the list with `entries`, as just read from the store. `false` once the
    /// server is gone and following can stop.
    pub fn publish(&self, entries: Vec<Revocation>) -> bool {
        match self.0.upgrade() {
            Some(inner) => {
                Revocations(inner).publish(entries);
                true
            }
            None => false,
        }
    }

    /// Report that the store cannot be read. `false` once the server is gone.
    pub fn unreachable(&self, reason: impl Into<String>) -> bool {
        match self.0.upgrade() {
            Some(inner) => {
                Revocations(inner).unreachable(reason.into());
                true
            }
            None => false,
        }
    }

    /// Whether the server is gone.
    pub fn is_closed(&self) -> bool {
        self.0.strong_count() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocation(target: Target) -> Revocation {
        Revocation {
            target,
            reason: "incident 42".into(),
            by: "oncall".into(),
            at: jiff::Timestamp::UNIX_EPOCH,
            key_id: String::new(),
            mac: String::new(),
        }
    }

    const DELETE: ToolPolicy = ToolPolicy::new("delete_note").with_requires(&["notes:delete"]);
    const READ: ToolPolicy = ToolPolicy::new("read_note");

    #[test]
    fn rejects_calls_each_target_covers() {
        let list = |t| RevocationList::new(vec![revocation(t)]);
        let principal = list(Target::Principal("alice".into()));
        assert!(principal.refusing("alice", &READ).is_some());
        assert!(principal.refusing("bob", &READ).is_none());
        assert!(principal.refusing_tool(&READ).is_none());
        let grant = list(Target::Grant("notes:delete".into()));
        assert!(grant.refusing("bob", &DELETE).is_some());
        assert!(grant.refusing("bob", &READ).is_none());
        let tool = list(Target::Tool("read_note".into()));
        assert!(tool.refusing("bob", &READ).is_some());
        assert!(tool.refusing("bob", &DELETE).is_none());
        let all = list(Target::All);
        assert!(all.refusing("anyone", &READ).is_some());
        assert!(all.refuses_principal("anyone"));
    }

    #[test]
    fn rejects_malformed_stored_revocations() {
        for bad in [
            r#"{"kind":"principal","reason":"r","by":"b","at":"2026-01-01T00:00:00Z"}"#,
            r#"{"kind":"user","name":"x","reason":"r","by":"b","at":"2026-01-01T00:00:00Z"}"#,
            r#"{"kind":"all","reason":"r","by":"b","at":"yesterday"}"#,
            r#"{"kind":"all","reason":"r","by":"b","at":"2026-01-01T00:00:00Z","extra":1}"#,
        ] {
            assert!(serde_json::from_str::<Revocation>(bad).is_err(), "{bad}");
        }
        let good: Revocation = serde_json::from_str(
            r#"{"kind":"all","reason":"r","by":"b","at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(good.target, Target::All);
    }
}
