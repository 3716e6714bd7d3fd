//! Secrets that refresh under a running server.
//!
//! A [`RefreshingSecret`] holds the last good value of one secret reference. Something feeds it
//! fresh reads: [`RefreshingSecret::watch_file`] re-reads a `{ file = ... }` reference when its
//! directory changes (a Vault agent or a Kubernetes volume replaces files by rename) and on a
//! polling interval as the fallback; a provider such as mcp-lp-aws feeds it on a TTL through
//! [`RefreshingSecret::refresh_every`]. A new value takes effect for new uses: whoever needs the
//! secret calls [`RefreshingSecret::current`] when it uses it, or follows
//! [`RefreshingSecret::subscribe`].
//!
//! A refresh that fails, or yields an empty or invalid value, keeps the last good value and warns,
//! for at most `max_age` after the first failure (`[secrets_refresh] max_age`). Past that,
//! `current` refuses with [`SecretExpired`], naming the secret: the capability that depends on
//! it fails closed rather than run on a value nobody vouches for any more, or on an empty one.
//!
//! Each change is an audit event (`secret_rotated`, `secret_refresh_failed`,
//! `secret_expired`) naming the secret and its reference, never the value.
//!
//! ```
//! use std::time::Duration;
//! use mcp_lp::secret_refresh::RefreshingSecret;
//! use secrecy::{ExposeSecret, SecretString};
//!
//! let secret = RefreshingSecret::new(
//!     "secrets.api-key",
//!     "{ file = \"/vault/secrets/api-key\" }",
//!     SecretString::from("first"),
//!     Duration::from_secs(3600),
//! );
//! secret.refresh_with(Ok(SecretString::from("second")));
//! assert_eq!(secret.current()?.expose_secret(), "second");
//! secret.refresh_with(Ok(SecretString::from("")));        // refused: keeps "second"
//! assert_eq!(secret.current()?.expose_secret(), "second");
//! # Ok::<(), mcp_lp::secret_refresh::SecretExpired>(())
//! ```

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::audit;
use crate::config::SecretRef;

/// How long the last good value serves after refreshes start failing, unless
/// `[secrets_refresh] max_age` says otherwise.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60 * 60);

/// How often a watched secret file is re-read even when no change was reported, unless
/// `[secrets_refresh] poll` says otherwise. The fallback for file systems that report nothing.
pub const DEFAULT_POLL: Duration = Duration::from_secs(30);

/// After a change is reported in a watched directory, wait this long for the writer's other
/// events (a rename is several) before reading, so one rotation is one read.
pub(crate) const SETTLE: Duration = Duration::from_millis(50);

/// `[secrets_refresh]`: how secrets refresh under a running server.
///
/// ```toml
/// [secrets_refresh]
/// max_age = "1h"   # after refreshes start failing, the last good value serves this long
/// poll = "30s"     # secret files are re-read this often even when no change is reported
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshSettings {
    /// After the first failed refresh, how long the last good value still serves.
    pub max_age: Duration,
    /// How often a secret file is re-read without a reported change.
    pub poll: Duration,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        Self {
            max_age: DEFAULT_MAX_AGE,
            poll: DEFAULT_POLL,
        }
    }
}

/// Checks a freshly read value before it replaces the last good one (a database URL must parse,
/// a key must be long enough). Its message must not quote the value.
pub type Validator = Arc<dyn Fn(&SecretString) -> Result<(), String> + Send + Sync>;

/// A secret whose refreshes have failed for longer than its max age: whatever depends on it
/// refuses. Names the secret and its reference, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "secret `{name}` ({reference}) could not be refreshed for longer than its max age of {max_age:?} (last failure: {reason}); refusing rather than use a value that is no longer confirmed"
)]
#[non_exhaustive]
pub struct SecretExpired {
    /// Where the secret is configured, e.g. `db.records-read.url`.
    pub name: String,
    /// The reference, e.g. `{ file = "/vault/secrets/db" }`.
    pub reference: String,
    /// The configured max age.
    pub max_age: Duration,
    /// Why the last refresh failed.
    pub reason: String,
}

/// Follows one [`RefreshingSecret`]'s rotations, from [`RefreshingSecret::subscribe`].
pub struct SecretChanges {
    states: watch::Receiver<State>,
    seen: u64,
}

impl fmt::Debug for SecretChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretChanges")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl SecretChanges {
    /// Wait for the next rotation and return the new value's version; `None` once the secret
    /// is gone. Failed refreshes do not wake it.
    pub async fn changed(&mut self) -> Option<u64> {
        loop {
            self.states.changed().await.ok()?;
            let version = self.states.borrow_and_update().version;
            if version != self.seen {
                self.seen = version;
                return Some(version);
            }
        }
    }
}

/// The last good value of one secret reference, refreshed under a running server. Cloning
/// shares it. See the [module documentation](self).
#[derive(Clone)]
pub struct RefreshingSecret {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    reference: String,
    max_age: Duration,
    validate: Option<Validator>,
    state: watch::Sender<State>,
    /// Whether this failing spell's expiry was already reported (logged and audited once).
    expiry_reported: AtomicBool,
}

#[derive(Clone)]
struct State {
    value: SecretString,
    /// Counts the values: 0 for the one resolved at startup, one more per rotation.
    version: u64,
    /// When the first refresh after the last good one failed, and why the latest failed.
    failing: Option<(Instant, String)>,
}

impl fmt::Debug for RefreshingSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.borrow();
        f.debug_struct("RefreshingSecret")
            .field("name", &self.inner.name)
            .field("reference", &self.inner.reference)
            .field("version", &state.version)
            .field("failing", &state.failing.as_ref().map(|(_, reason)| reason))
            .finish_non_exhaustive()
    }
}

impl RefreshingSecret {
    /// A secret named `name` (where it is configured), read from `reference`, whose startup
    /// value `initial` was already checked.
    pub fn new(
        name: impl Into<String>,
        reference: impl fmt::Display,
        initial: SecretString,
        max_age: Duration,
    ) -> Self {
        Self::build(name.into(), reference.to_string(), initial, max_age, None)
    }

    /// As [`new`](Self::new), with a check every refreshed value must pass before it is used.
    pub fn with_validator(
        name: impl Into<String>,
        reference: impl fmt::Display,
        initial: SecretString,
        max_age: Duration,
        validate: Validator,
    ) -> Self {
        Self::build(
            name.into(),
            reference.to_string(),
            initial,
            max_age,
            Some(validate),
        )
    }

    fn build(
        name: String,
        reference: String,
        initial: SecretString,
        max_age: Duration,
        validate: Option<Validator>,
    ) -> Self {
        // The first resolution is recorded where it happens: with the configuration when the
        // trail starts, or by the provider that resolved it.
        let (state, _) = watch::channel(State {
            value: initial,
            version: 0,
            failing: None,
        });
        Self {
            inner: Arc::new(Inner {
                name,
                reference,
                max_age,
                validate,
                state,
                expiry_reported: AtomicBool::new(false),
            }),
        }
    }

    /// Where the secret is configured, e.g. `db.records-read.url`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The reference it is read from, as configured.
    pub fn reference(&self) -> &str {
        &self.inner.reference
    }

    /// The value to use now: the last good one, unless refreshes have failed for longer than
    /// the max age.
    pub fn current(&self) -> Result<SecretString, SecretExpired> {
        let state = self.inner.state.borrow();
        self.check_state(&state)?;
        Ok(state.value.clone())
    }

    /// Whether the value may still be used, without cloning it.
    pub fn check(&self) -> Result<(), SecretExpired> {
        self.check_state(&self.inner.state.borrow())
    }

    fn check_state(&self, state: &State) -> Result<(), SecretExpired> {
        let Some((since, reason)) = &state.failing else {
            return Ok(());
        };
        if since.elapsed() < self.inner.max_age {
            return Ok(());
        }
        let expired = SecretExpired {
            name: self.inner.name.clone(),
            reference: self.inner.reference.clone(),
            max_age: self.inner.max_age,
            reason: reason.clone(),
        };
        if !self.inner.expiry_reported.swap(true, Ordering::Relaxed) {
            tracing::error!(
                secret = %self.inner.name,
                reference = %self.inner.reference,
                max_age = ?self.inner.max_age,
                reason = %reason,
                "secret expired: its refreshes have failed for longer than its max age; what depends on it now refuses"
            );
            audit::secret_event(
                "secret_expired",
                &self.inner.name,
                &self.inner.reference,
                Some(reason),
            );
        }
        Err(expired)
    }

    /// Why the latest refresh failed, while refreshes fail (the last good value still serving
    /// until the max age); `None` when the last refresh was good.
    pub fn failing(&self) -> Option<String> {
        self.inner
            .state
            .borrow()
            .failing
            .as_ref()
            .map(|(_, reason)| reason.clone())
    }

    /// How many times the value has changed since startup.
    pub fn version(&self) -> u64 {
        self.inner.state.borrow().version
    }

    /// Follow the secret's rotations: [`SecretChanges::changed`] returns when a new value
    /// replaces the last one.
    pub fn subscribe(&self) -> SecretChanges {
        let states = self.inner.state.subscribe();
        let seen = states.borrow().version;
        SecretChanges { states, seen }
    }

    /// Apply the result of one refresh: a good new value replaces the last one; the same value
    /// confirms it; an error, an empty value or one the validator refuses keeps the last good
    /// value and starts (or continues) the failing spell that ends in [`SecretExpired`].
    pub fn refresh_with(&self, fetched: Result<SecretString, String>) {
        let checked = fetched.and_then(|value| {
            if value.expose_secret().trim().is_empty() {
                return Err("the refreshed value is empty".to_owned());
            }
            if let Some(validate) = &self.inner.validate {
                validate(&value)?;
            }
            Ok(value)
        });
        let inner = &self.inner;
        match checked {
            Ok(value) => {
                let mut rotated = false;
                let mut recovered = false;
                inner.state.send_if_modified(|state| {
                    recovered = state.failing.take().is_some();
                    if state.value.expose_secret() != value.expose_secret() {
                        state.value = value;
                        state.version += 1;
                        rotated = true;
                    }
                    rotated || recovered
                });
                if recovered {
                    inner.expiry_reported.store(false, Ordering::Relaxed);
                    tracing::info!(secret = %inner.name, reference = %inner.reference, "secret refreshed again after failures");
                }
                if rotated {
                    tracing::info!(secret = %inner.name, reference = %inner.reference, "secret rotated; new uses get the new value");
                    audit::secret_event("secret_rotated", &inner.name, &inner.reference, None);
                }
            }
            Err(reason) => {
                let now = Instant::now();
                inner.state.send_modify(|state| {
                    let since = state.failing.as_ref().map_or(now, |(since, _)| *since);
                    state.failing = Some((since, reason.clone()));
                });
                tracing::warn!(
                    secret = %inner.name,
                    reference = %inner.reference,
                    reason = %reason,
                    max_age = ?inner.max_age,
                    "secret refresh failed; keeping the last good value for at most its max age after the first failure, then refusing"
                );
                audit::secret_event(
                    "secret_refresh_failed",
                    &inner.name,
                    &inner.reference,
                    Some(&reason),
                );
            }
        }
    }

    /// Re-read `reference` (relative files from `base`) whenever its directory reports a change,
    /// and every `poll` in any case, until every clone of this secret is dropped. An `env`
    /// reference never changes under a running process and is not watched. Call it within a
    /// Tokio runtime.
    pub fn watch_file(&self, reference: &SecretRef, base: &Path, poll: Duration) {
        let SecretRef::File(path) = reference else {
            return;
        };
        let path = base.join(path);
        let (tx, rx) = mpsc::channel(1);
        // The directory, not the file: a rename replaces the file's inode, which a watch on the
        // file itself would lose.
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let watcher = watch_directory(&dir, tx).map_err(|e| {
            tracing::warn!(
                secret = %self.inner.name,
                directory = %dir.display(),
                error = %e,
                poll = ?poll,
                "cannot watch the secret's directory; re-reading it on the polling interval only"
            );
        });
        let weak = Arc::downgrade(&self.inner);
        let reference = reference.clone();
        tokio::spawn(async move {
            let _watcher = watcher;
            file_loop(weak, reference, path, poll, rx).await;
        });
    }

    /// Call `fetch` every `ttl` and apply its result, until every clone of this secret is
    /// dropped. For sources with no change notification, such as AWS Secrets Manager.
    pub fn refresh_every<F, Fut>(&self, ttl: Duration, fetch: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<SecretString, String>> + Send,
    {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + ttl, ttl);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if weak.strong_count() == 0 {
                    return;
                }
                let fetched = fetch().await;
                let Some(inner) = weak.upgrade() else { return };
                RefreshingSecret { inner }.refresh_with(fetched);
            }
        });
    }
}

pub(crate) fn watch_directory(
    dir: &Path,
    changed: mpsc::Sender<()>,
) -> Result<notify::RecommendedWatcher, notify::Error> {
    use notify::Watcher as _;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            // A full channel already holds a wake-up.
            let _ = changed.try_send(());
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

async fn file_loop(
    weak: Weak<Inner>,
    reference: SecretRef,
    path: PathBuf,
    poll: Duration,
    mut changed: mpsc::Receiver<()>,
) {
    let mut ticks = tokio::time::interval_at(Instant::now() + poll, poll);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let file = SecretRef::File(path.file_name().map(PathBuf::from).unwrap_or_default());
    loop {
        tokio::select! {
            Some(()) = changed.recv() => {
                tokio::time::sleep(SETTLE).await;
                while changed.try_recv().is_ok() {}
            }
            _ = ticks.tick() => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        let fetched = file
            .resolve(&base, false)
            .map_err(|e| format!("{reference} {e}"));
        RefreshingSecret { inner }.refresh_with(fetched);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_AGE: Duration = Duration::from_secs(600);

    fn secret() -> RefreshingSecret {
        RefreshingSecret::new(
            "db.read.url",
            "{ file = \"/vault/secrets/db\" }",
            SecretString::from("good-1"),
            MAX_AGE,
        )
    }

    fn value(secret: &RefreshingSecret) -> String {
        secret.current().unwrap().expose_secret().to_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn rejects_empty_secret_on_refresh() {
        let secret = secret();
        for empty in ["", "   ", "\n"] {
            secret.refresh_with(Ok(SecretString::from(empty)));
            assert_eq!(value(&secret), "good-1");
            assert_eq!(secret.version(), 0);
        }
        // A validator's refusal counts the same: the value never replaces the good one.
        let validated = RefreshingSecret::with_validator(
            "db.read.url",
            "{ file = \"db\" }",
            SecretString::from("postgres://a"),
            MAX_AGE,
            Arc::new(|v: &SecretString| {
                if v.expose_secret().starts_with("postgres://") {
                    Ok(())
                } else {
                    Err("not a PostgreSQL URL".into())
                }
            }),
        );
        validated.refresh_with(Ok(SecretString::from("garbage")));
        assert_eq!(validated.current().unwrap().expose_secret(), "postgres://a");
        tokio::time::advance(MAX_AGE).await;
        let err = validated.current().unwrap_err();
        assert_eq!(err.reason, "not a PostgreSQL URL");
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_last_good_secret_within_max_age() {
        let secret = secret();
        secret.refresh_with(Ok(SecretString::from("good-2")));
        assert_eq!((value(&secret), secret.version()), ("good-2".into(), 1));
        secret.refresh_with(Err("cannot read /vault/secrets/db: not found".into()));
        tokio::time::advance(MAX_AGE - Duration::from_secs(1)).await;
        // Further failures do not restart the clock, nor end the spell early.
        secret.refresh_with(Ok(SecretString::from("")));
        assert_eq!(value(&secret), "good-2");
        // A good read ends the failing spell: the clock starts again at the next failure.
        secret.refresh_with(Ok(SecretString::from("good-2")));
        tokio::time::advance(Duration::from_secs(2)).await;
        secret.refresh_with(Err("timeout".into()));
        tokio::time::advance(MAX_AGE - Duration::from_secs(1)).await;
        assert_eq!(value(&secret), "good-2");
    }

    #[tokio::test(start_paused = true)]
    async fn fails_closed_after_max_age() {
        let secret = secret();
        secret.refresh_with(Err("cannot read /vault/secrets/db: not found".into()));
        tokio::time::advance(MAX_AGE).await;
        let err = secret.current().unwrap_err();
        assert_eq!(err.name, "db.read.url");
        assert_eq!(err.reference, "{ file = \"/vault/secrets/db\" }");
        let message = err.to_string();
        assert!(message.contains("db.read.url"), "{message}");
        assert!(!message.contains("good-1"), "{message}");
        assert!(secret.check().is_err());
        // It stays closed until a good value arrives, and then opens with that value.
        secret.refresh_with(Ok(SecretString::from("")));
        assert!(secret.current().is_err());
        secret.refresh_with(Ok(SecretString::from("good-3")));
        assert_eq!(value(&secret), "good-3");
    }

    #[tokio::test]
    async fn accepts_file_rewritten_by_rename() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), "one\n").unwrap();
        let reference = SecretRef::File("db".into());
        let secret = RefreshingSecret::new(
            "db.read.url",
            &reference,
            SecretString::from("one"),
            MAX_AGE,
        );
        let mut versions = secret.subscribe();
        secret.watch_file(&reference, dir.path(), Duration::from_secs(3600));
        // Let the watch start before the change it must see.
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(dir.path().join(".db.tmp"), "two\n").unwrap();
        std::fs::rename(dir.path().join(".db.tmp"), dir.path().join("db")).unwrap();
        tokio::time::timeout(Duration::from_secs(30), versions.changed())
            .await
            .expect("the rename is noticed")
            .expect("the secret is alive");
        assert_eq!(value(&secret), "two");
    }

    #[tokio::test(start_paused = true)]
    async fn accepts_file_change_seen_only_by_polling() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), "one").unwrap();
        let secret = RefreshingSecret::new(
            "db.read.url",
            "{ file = \"db\" }",
            SecretString::from("one"),
            MAX_AGE,
        );
        let (_tx, rx) = mpsc::channel(1);
        let weak = Arc::downgrade(&secret.inner);
        let path = dir.path().join("db");
        let poll = Duration::from_secs(30);
        tokio::spawn(file_loop(
            weak,
            SecretRef::File("db".into()),
            path,
            poll,
            rx,
        ));
        std::fs::write(dir.path().join("db"), "two").unwrap();
        let mut versions = secret.subscribe();
        tokio::time::advance(poll).await;
        versions.changed().await.expect("the secret is alive");
        assert_eq!(value(&secret), "two");
    }
}
