//! The role credential cache: lazy, single-flight, refreshed ahead of expiry, bounded.
//!
//! - **Lazy**: nothing is fetched until a call needs it.
//! - **Single-flight**: however many calls need the same session at once, one AssumeRole runs
//!   and they all get its result, success or error. The fetch runs in its own task, so a caller
//!   that gives up (timeout, cancelled call) does not abort it for the others.
//! - **Refresh ahead**: a call that finds credentials inside their refresh window gets them at
//!   once and starts one background fetch for their successor, so after warm-up no call waits
//!   for STS. Credentials too close to expiry to finish a request are never handed out.
//! - **Bounded**: at most `capacity` sessions; the least recently used one goes first.
//! - **Keyed** by the caller: the role and every call-dependent AssumeRole parameter (see
//!   `SessionParams`), so calls that would send different requests never share credentials.
//!
//! Time comes from an injected `TimeSource`, so expiry is tested exactly and instantly.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError};
use aws_smithy_async::time::SharedTimeSource;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};

use crate::error::AssumeRoleError;

/// Refresh starts this long before expiry (or at half the lifetime, if that is later).
pub const REFRESH_BUFFER: Duration = Duration::from_secs(5 * 60);
/// Credentials are not handed out in their last this-long (or last tenth of their lifetime, if
/// that is shorter): a request signed with them must still arrive before they expire.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// After a failed background refresh, the next one starts no sooner than this.
pub const REFRESH_RETRY_DELAY: Duration = Duration::from_secs(5);

/// A fetch of fresh credentials: one AssumeRole.
pub(crate) type LoadFuture = BoxFuture<'static, Result<Credentials, AssumeRoleError>>;
/// What starts a fetch for one session.
pub(crate) type Loader = Arc<dyn Fn() -> LoadFuture + Send + Sync>;
type SharedLoad = Shared<BoxFuture<'static, Result<Credentials, AssumeRoleError>>>;

/// Counters of what the cache has done since startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// AssumeRole calls started.
    pub assume_role_calls: u64,
    /// AssumeRole calls that failed.
    pub failed_assume_role_calls: u64,
    /// Credential requests that waited for an AssumeRole (first use, or expired credentials).
    pub waited: u64,
    /// Credential requests answered at once from the cache.
    pub served_from_cache: u64,
    /// AssumeRole calls started ahead of expiry while the current credentials were still served.
    pub refreshed_ahead: u64,
    /// Sessions dropped to stay within capacity.
    pub evictions: u64,
    /// Sessions held now.
    pub sessions: usize,
}

#[derive(Debug, Default)]
struct Counters {
    loads: AtomicU64,
    failed: AtomicU64,
    waited: AtomicU64,
    served: AtomicU64,
    ahead: AtomicU64,
    evictions: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

struct Context {
    time: SharedTimeSource,
    counters: Counters,
}

/// The cache: one [`Slot`] per key.
pub(crate) struct CredentialCache<K, X> {
    slots: Mutex<Slots<K, X>>,
    capacity: usize,
    context: Arc<Context>,
}

struct Slots<K, X> {
    map: HashMap<K, (Arc<Slot<X>>, u64)>,
    tick: u64,
}

/// One session's credentials, and `extra` state that lives as long as the session is cached
/// (such as clients built for it).
pub(crate) struct Slot<X> {
    pub(crate) credentials: Arc<SessionCredentials>,
    pub(crate) extra: X,
}

impl<K: Eq + Hash + Clone, X> CredentialCache<K, X> {
    /// An empty cache holding at most `capacity` sessions, reading time from `time`.
    pub(crate) fn new(capacity: usize, time: SharedTimeSource) -> Self {
        Self {
            slots: Mutex::new(Slots {
                map: HashMap::new(),
                tick: 0,
            }),
            capacity: capacity.max(1),
            context: Arc::new(Context {
                time,
                counters: Counters::default(),
            }),
        }
    }

    /// The slot for `key`, made with `make` (its loader and extra state) if absent. Fetches
    /// nothing: credentials load on first use.
    pub(crate) fn slot(&self, key: &K, make: impl FnOnce() -> (Loader, X)) -> Arc<Slot<X>> {
        let mut slots = lock(&self.slots);
        slots.tick += 1;
        let tick = slots.tick;
        if let Some((slot, used)) = slots.map.get_mut(key) {
            *used = tick;
            return Arc::clone(slot);
        }
        if slots.map.len() >= self.capacity {
            let oldest = slots
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                slots.map.remove(&oldest);
                bump(&self.context.counters.evictions);
            }
        }
        let (loader, extra) = make();
        let slot = Arc::new(Slot {
            credentials: Arc::new(SessionCredentials {
                state: Mutex::new(State::default()),
                loader,
                context: Arc::clone(&self.context),
            }),
            extra,
        });
        slots.map.insert(key.clone(), (Arc::clone(&slot), tick));
        slot
    }

    /// Drop every session whose key `drop` names; the number dropped. A session in use by a
    /// call keeps its credentials until the call ends, and is never handed out again.
    pub(crate) fn drop_where(&self, drop: impl Fn(&K) -> bool) -> usize {
        let mut slots = lock(&self.slots);
        let before = slots.map.len();
        slots.map.retain(|key, _| !drop(key));
        before - slots.map.len()
    }

    /// What the cache has done so far.
    pub(crate) fn stats(&self) -> CacheStats {
        let c = &self.context.counters;
        CacheStats {
            assume_role_calls: c.loads.load(Ordering::Relaxed),
            failed_assume_role_calls: c.failed.load(Ordering::Relaxed),
            waited: c.waited.load(Ordering::Relaxed),
            served_from_cache: c.served.load(Ordering::Relaxed),
            refreshed_ahead: c.ahead.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            sessions: lock(&self.slots).map.len(),
        }
    }
}

/// The credentials of one session, loaded on first use and refreshed ahead of expiry. Also the
/// credentials provider of the SDK clients handed to tools for that session.
pub(crate) struct SessionCredentials {
    state: Mutex<State>,
    loader: Loader,
    context: Arc<Context>,
}

#[derive(Default)]
struct State {
    current: Option<Issued>,
    loading: Option<(u64, SharedLoad)>,
    generation: u64,
    /// After a failed background refresh: no new one before this.
    refresh_not_before: Option<SystemTime>,
}

#[derive(Clone)]
struct Issued {
    credentials: Credentials,
    refresh_at: SystemTime,
    usable_until: SystemTime,
}

impl Issued {
    fn new(credentials: Credentials, now: SystemTime) -> Self {
        // Without an expiry the credentials cannot be trusted past this instant.
        let expiry = credentials.expiry().unwrap_or(now);
        let lifetime = expiry.duration_since(now).unwrap_or(Duration::ZERO);
        Self {
            refresh_at: expiry - REFRESH_BUFFER.min(lifetime / 2),
            usable_until: expiry - EXPIRY_MARGIN.min(lifetime / 10),
            credentials,
        }
    }
}

impl SessionCredentials {
    /// Credentials usable now: cached ones, or the result of the one fetch in flight, or of a
    /// new one.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<Credentials, AssumeRoleError> {
        let counters = &self.context.counters;
        let now = self.context.time.now();
        let pending = {
            let mut state = lock(&self.state);
            if let Some(issued) = state.current.clone()
                && now < issued.usable_until
            {
                let may_refresh = state.refresh_not_before.is_none_or(|t| now >= t);
                if now >= issued.refresh_at && state.loading.is_none() && may_refresh {
                    bump(&counters.ahead);
                    let _background = self.start_load(&mut state, true);
                }
                bump(&counters.served);
                return Ok(issued.credentials);
            }
            bump(&counters.waited);
            match &state.loading {
                Some((_, load)) => load.clone(),
                None => self.start_load(&mut state, false),
            }
        };
        pending.await
    }

    fn start_load(self: &Arc<Self>, state: &mut State, ahead: bool) -> SharedLoad {
        state.generation += 1;
        let generation = state.generation;
        bump(&self.context.counters.loads);
        let this = Arc::clone(self);
        let fetch = (self.loader)();
        let task = tokio::spawn(async move {
            let result = fetch.await;
            let now = this.context.time.now();
            let mut state = lock(&this.state);
            match &result {
                Ok(credentials) => {
                    state.current = Some(Issued::new(credentials.clone(), now));
                    state.refresh_not_before = None;
                }
                Err(_) => {
                    bump(&this.context.counters.failed);
                    if ahead {
                        state.refresh_not_before = Some(now + REFRESH_RETRY_DELAY);
                    }
                }
            }
            if state
                .loading
                .as_ref()
                .is_some_and(|(g, _)| *g == generation)
            {
                state.loading = None;
            }
            result
        });
        let shared = async move {
            task.await.unwrap_or_else(|_| {
                Err(AssumeRoleError {
                    role: String::new(),
                    arn: String::new(),
                    code: None,
                    status: None,
                    detail: "the credential fetch was aborted".into(),
                })
            })
        }
        .boxed()
        .shared();
        state.loading = Some((generation, shared.clone()));
        shared
    }
}

impl fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        let mut s = f.debug_struct("SessionCredentials");
        match &state.current {
            Some(issued) => s
                .field("credentials", &"** redacted **")
                .field("refresh_at", &issued.refresh_at)
                .field("usable_until", &issued.usable_until),
            None => s.field("credentials", &"none yet"),
        };
        s.field("loading", &state.loading.is_some()).finish()
    }
}

/// The SDK-facing credentials provider of one session.
#[derive(Clone)]
pub(crate) struct SessionProvider(pub(crate) Arc<SessionCredentials>);

impl fmt::Debug for SessionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionProvider").field(&self.0).finish()
    }
}

impl ProvideCredentials for SessionProvider {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.0.get().await.map_err(CredentialsError::provider_error)
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; if something did, the state is still valid.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use aws_smithy_async::test_util::ManualTimeSource;
    use aws_smithy_async::time::TimeSource as _;

    use super::*;

    const START: Duration = Duration::from_secs(1_800_000_000);

    /// A cache over a counting loader that issues `lifetime`-long credentials stamped with the
    /// manual clock, numbered by fetch, after `gate` opens.
    struct Fixture {
        time: ManualTimeSource,
        cache: CredentialCache<&'static str, ()>,
        fetches: Arc<AtomicUsize>,
        fail: Arc<std::sync::atomic::AtomicBool>,
        gate: Arc<tokio::sync::Semaphore>,
    }

    impl Fixture {
        fn new(capacity: usize) -> Self {
            let time = ManualTimeSource::new(SystemTime::UNIX_EPOCH + START);
            let cache = CredentialCache::new(capacity, SharedTimeSource::new(time.clone()));
            Self {
                time,
                cache,
                fetches: Arc::default(),
                fail: Arc::default(),
                gate: Arc::new(Semaphore::new(GATE_PERMITS as usize)),
            }
        }

        fn loader(&self, lifetime: Duration) -> Loader {
            let time = self.time.clone();
            let fetches = Arc::clone(&self.fetches);
            let fail = Arc::clone(&self.fail);
            let gate = Arc::clone(&self.gate);
            Arc::new(move || {
                let time = time.clone();
                let fetches = Arc::clone(&fetches);
                let fail = Arc::clone(&fail);
                let gate = Arc::clone(&gate);
                async move {
                    let _permit = gate.acquire().await.expect("gate open");
                    let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
                    if fail.load(Ordering::SeqCst) {
                        return Err(AssumeRoleError {
                            role: "docs-read".into(),
                            arn: "arn:aws:iam::123456789012:role/r".into(),
                            code: Some("AccessDenied".into()),
                            status: Some(403),
                            detail: "no".into(),
                        });
                    }
                    Ok(Credentials::new(
                        format!("ASIA{n}"),
                        "secret-key-value",
                        Some(format!("session-token-{n}")),
                        Some(time.now() + lifetime),
                        "test",
                    ))
                }
                .boxed()
            })
        }

        fn session(&self, key: &'static str, lifetime: Duration) -> Arc<SessionCredentials> {
            let loader = self.loader(lifetime);
            Arc::clone(&self.cache.slot(&key, || (loader, ())).credentials)
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    use tokio::sync::Semaphore;

    const GATE_PERMITS: u32 = 1 << 20;
    const FIFTEEN_MINUTES: Duration = Duration::from_secs(900);

    /// Let spawned fetches run to completion.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn accepts_lazy_start_nothing_fetched_before_first_use() {
        let f = Fixture::new(8);
        let _session = f.session("docs-read", FIFTEEN_MINUTES);
        assert_eq!(f.fetches(), 0);
        assert_eq!(f.cache.stats().assume_role_calls, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn accepts_thousand_concurrent_first_calls_with_one_fetch() {
        let f = Fixture::new(8);
        let session = f.session("docs-read", FIFTEEN_MINUTES);
        // Hold the fetch until every caller is waiting on it.
        let held = f.gate.acquire_many(GATE_PERMITS).await.unwrap();
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let session = Arc::clone(&session);
                tokio::spawn(async move { session.get().await })
            })
            .collect();
        while f.cache.stats().waited < 1000 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for task in tasks {
            let credentials = task.await.unwrap().unwrap();
            assert_eq!(credentials.access_key_id(), "ASIA1");
        }
        assert_eq!(f.fetches(), 1);
        assert_eq!(f.cache.stats().assume_role_calls, 1);
    }

    #[tokio::test]
    async fn accepts_cached_credentials_until_refresh_window() {
        let f = Fixture::new(8);
        let session = f.session("docs-read", FIFTEEN_MINUTES);
        assert_eq!(session.get().await.unwrap().access_key_id(), "ASIA1");
        // 15-minute credentials refresh in their last 5 minutes: at 9m59s, still cached.
        f.time.advance(Duration::from_secs(599));
        assert_eq!(session.get().await.unwrap().access_key_id(), "ASIA1");
        settle().await;
        assert_eq!(f.fetches(), 1);
    }

    #[tokio::test]
    async fn accepts_refresh_ahead_without_waiting() {
        let f = Fixture::new(8);
        let session = f.session("docs-read", FIFTEEN_MINUTES);
        session.get().await.unwrap();
        f.time.advance(Duration::from_secs(600));
        // Inside the refresh window the current credentials come back at once ...
        assert_eq!(session.get().await.unwrap().access_key_id(), "ASIA1");
        let stats = f.cache.stats();
        assert_eq!((stats.refreshed_ahead, stats.waited), (1, 1));
        settle().await;
        // ... and the next call gets the successor without having waited either.
        assert_eq!(session.get().await.unwrap().access_key_id(), "ASIA2");
        assert_eq!(f.cache.stats().waited, 1, "only the very first call waited");
        assert_eq!(f.fetches(), 2);
    }

    #[tokio::test]
    async fn rejects_credentials_in_their_last_seconds() {
        let f = Fixture::new(8);
        let session = f.session("docs-read", FIFTEEN_MINUTES);
        session.get().await.unwrap();
        // No call between 10m and 14m30s, so no refresh ahead: at 14m31s the credentials have
        // 29 s left, inside the 30 s margin, and the caller waits for fresh ones.
        f.time.advance(Duration::from_secs(871));
        let credentials = session.get().await.unwrap();
        assert_eq!(credentials.access_key_id(), "ASIA2");
        assert!(credentials.expiry().unwrap() > f.time.now() + EXPIRY_MARGIN);
        assert_eq!(f.cache.stats().waited, 2);
    }

    #[tokio::test]
    async fn accepts_no_expired_credentials_across_many_rollovers() {
        let f = Fixture::new(8);
        let session = f.session("docs-read", FIFTEEN_MINUTES);
        // One call every 10 seconds for 3 hours: every credential handed out is valid for the
        // margin, and only the first call waited.
        for _ in 0..(3 * 360) {
            let credentials = session.get().await.unwrap();
            assert!(credentials.expiry().unwrap() >= f.time.now() + EXPIRY_MARGIN);
            settle().await;
            f.time.advance(Duration::from_secs(10));
        }
        let stats = f.cache.stats();
        assert_eq!(stats.waited, 1);
        assert_eq!(
            stats.assume_role_calls, 18,
            "one at first use, then one per 10 minutes"
        );
    }

    #[tokio::test]
    async fn rejects_all_waiters_with_the_sts_error_and_retries_next_call() {
        let f = Fixture::new(8);
        let session = f.session("docs-read", FIFTEEN_MINUTES);
        f.fail.store(true, Ordering::SeqCst);
        let (a, b) = tokio::join!(session.get(), session.get());
        for err in [a.unwrap_err(), b.unwrap_err()] {
            assert_eq!(err.code.as_deref(), Some("AccessDenied"));
        }
        assert_eq!(f.fetches(), 1, "one fetch for both concurrent callers");
        settle().await;
        // Errors are not cached: the next call asks STS again and succeeds.
        f.fail.store(false, Ordering::SeqCst);
        assert_eq!(session.get().await.unwrap().access_key_id(), "ASIA2");
        assert_eq!(f.cache.stats().failed_assume_role_calls, 1);
    }

    #[tokio::test]
    async fn accepts_current_credentials_when_refresh_ahead_fails() {
        let f = Fixture::new(8);
        let session = f.session("docs-read", FIFTEEN_MINUTES);
        session.get().await.unwrap();
        f.fail.store(true, Ordering::SeqCst);
        f.time.advance(Duration::from_secs(600));
        assert_eq!(session.get().await.unwrap().access_key_id(), "ASIA1");
        settle().await;
        // The failed refresh is not retried at once ...
        assert_eq!(session.get().await.unwrap().access_key_id(), "ASIA1");
        settle().await;
        assert_eq!(f.fetches(), 2);
        // ... but after the retry delay it is, and succeeds.
        f.fail.store(false, Ordering::SeqCst);
        f.time.advance(REFRESH_RETRY_DELAY);
        session.get().await.unwrap();
        settle().await;
        assert_eq!(session.get().await.unwrap().access_key_id(), "ASIA3");
    }

    #[tokio::test]
    async fn accepts_separate_sessions_per_key() {
        let f = Fixture::new(8);
        let alice = f.session("docs-read/readDocument/alice", FIFTEEN_MINUTES);
        let bob = f.session("docs-read/readDocument/bob", FIFTEEN_MINUTES);
        let again = f.session("docs-read/readDocument/alice", FIFTEEN_MINUTES);
        assert_ne!(
            alice.get().await.unwrap().access_key_id(),
            bob.get().await.unwrap().access_key_id()
        );
        assert_eq!(again.get().await.unwrap().access_key_id(), "ASIA1");
        assert_eq!(f.fetches(), 2);
    }

    #[tokio::test]
    async fn rejects_growth_past_capacity_evicting_least_recently_used() {
        let f = Fixture::new(2);
        f.session("a", FIFTEEN_MINUTES).get().await.unwrap();
        f.session("b", FIFTEEN_MINUTES).get().await.unwrap();
        f.session("a", FIFTEEN_MINUTES); // a is now more recent than b
        f.session("c", FIFTEEN_MINUTES).get().await.unwrap();
        let stats = f.cache.stats();
        assert_eq!((stats.sessions, stats.evictions), (2, 1));
        // a survived (no new fetch); b was evicted (a new fetch).
        f.session("a", FIFTEEN_MINUTES).get().await.unwrap();
        assert_eq!(f.fetches(), 3);
        f.session("b", FIFTEEN_MINUTES).get().await.unwrap();
        assert_eq!(f.fetches(), 4);
    }

    #[tokio::test]
    async fn rejects_secrets_in_debug_output() {
        let f = Fixture::new(8);
        let session = f.session("docs-read", FIFTEEN_MINUTES);
        session.get().await.unwrap();
        let debug = format!("{:?}", SessionProvider(Arc::clone(&session)));
        assert!(debug.contains("redacted"), "{debug}");
        assert!(!debug.contains("secret-key-value"), "{debug}");
        assert!(!debug.contains("session-token"), "{debug}");
    }
}
