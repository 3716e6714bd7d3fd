//! Which principal each session was issued to, and how many sessions there may be.
//!
//! Every session is a task in rmcp, and rmcp sets no limit on them. So a new session is made
//! room for before it is created: a principal holds at most [`MAX_PER_PRINCIPAL`] sessions (its
//! own least recently used one is closed to make room for its next), and the server at most
//! [`MAX_SESSIONS`]. When the server is full, sessions rmcp already closed are forgotten first,
//! then the session idle longest, if idle at least [`IDLE_BEFORE_EVICTION`]; a session in use is
//! never closed for another principal. When nothing can go, the new session is refused with
//! the time after which one may.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::{SessionId, SessionManager as _};

/// Sessions per server.
pub(crate) const MAX_SESSIONS: usize = 10_000;

/// Sessions per principal.
pub(crate) const MAX_PER_PRINCIPAL: usize = 32;

/// How long a session must have been unused before it may be closed to make room for another
/// principal's.
pub(crate) const IDLE_BEFORE_EVICTION: Duration = Duration::from_secs(60);

/// The sessions of one server: their owners, bound when rmcp issues them, and rmcp's sessions.
pub(crate) struct SessionOwners {
    table: Mutex<Table>,
    manager: Arc<LocalSessionManager>,
}

impl SessionOwners {
    pub(crate) fn new(manager: Arc<LocalSessionManager>) -> Self {
        Self {
            table: Mutex::new(Table::new(MAX_SESSIONS, MAX_PER_PRINCIPAL)),
            manager,
        }
    }

    pub(crate) fn bind(&self, session: &str, principal: &str) {
        if let Ok(mut table) = self.table.lock() {
            table.bind(session, principal, Instant::now());
        }
    }

    /// Whether `session` was issued to `principal`, marking it used. A session this gate never
    /// bound, or has forgotten, is refused too: only sessions it saw created can be used.
    pub(crate) fn owned_by(&self, session: &str, principal: &str) -> bool {
        self.table
            .lock()
            .is_ok_and(|mut table| table.touch(session, principal, Instant::now()))
    }

    pub(crate) fn unbind(&self, session: &str) {
        if let Ok(mut table) = self.table.lock() {
            table.unbind(session);
        }
    }

    /// Close every session of a principal `revoked` names, in rmcp too: a revoked principal
    /// keeps no session open.
    pub(crate) async fn close_of(&self, revoked: impl Fn(&str) -> bool) -> usize {
        let closing: Vec<String> = match self.table.lock() {
            Ok(mut table) => {
                let ids: Vec<String> = table
                    .sessions
                    .iter()
                    .filter(|(_, owned)| revoked(&owned.owner))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in &ids {
                    table.unbind(id);
                }
                ids
            }
            Err(_) => return 0,
        };
        for id in &closing {
            let _ = self
                .manager
                .close_session(&SessionId::from(id.clone()))
                .await;
        }
        closing.len()
    }

    /// Make room for a new session of `principal`, closing in rmcp the sessions that must go;
    /// `Err` with when to retry when the server is full of sessions in use.
    pub(crate) async fn make_room(&self, principal: &str) -> Result<(), Duration> {
        let evicted = {
            let open = self.manager.sessions.read().await;
            let Ok(mut table) = self.table.lock() else {
                return Err(IDLE_BEFORE_EVICTION);
            };
            let evicted = table.make_room(principal, Instant::now(), |id| open.contains_key(id))?;
            // Sessions rmcp holds that the table does not (none, normally) count too.
            let unbound = open
                .len()
                .saturating_sub(table.sessions.len() + evicted.len());
            if table.sessions.len() + unbound >= MAX_SESSIONS {
                return Err(IDLE_BEFORE_EVICTION);
            }
            evicted
        };
        for id in evicted {
            tracing::info!(principal, "closing a session to make room for a new one");
            let _ = self.manager.close_session(&SessionId::from(id)).await;
        }
        Ok(())
    }
}

struct Owned {
    owner: Arc<str>,
    last_used: Instant,
}

/// The bookkeeping, without rmcp: what [`SessionOwners`] decides by.
struct Table {
    sessions: HashMap<String, Owned>,
    per_principal: HashMap<Arc<str>, usize>,
    max_sessions: usize,
    max_per_principal: usize,
}

impl Table {
    fn new(max_sessions: usize, max_per_principal: usize) -> Self {
        Self {
            sessions: HashMap::new(),
            per_principal: HashMap::new(),
            max_sessions,
            max_per_principal,
        }
    }

    fn bind(&mut self, session: &str, principal: &str, now: Instant) {
        self.unbind(session);
        let owner: Arc<str> = match self.per_principal.get_key_value(principal) {
            Some((owner, _)) => Arc::clone(owner),
            None => Arc::from(principal),
        };
        *self.per_principal.entry(Arc::clone(&owner)).or_default() += 1;
        self.sessions.insert(
            session.to_owned(),
            Owned {
                owner,
                last_used: now,
            },
        );
    }

    fn touch(&mut self, session: &str, principal: &str, now: Instant) -> bool {
        match self.sessions.get_mut(session) {
            Some(owned) if &*owned.owner == principal => {
                owned.last_used = now;
                true
            }
            _ => false,
        }
    }

    fn unbind(&mut self, session: &str) {
        if let Some(owned) = self.sessions.remove(session)
            && let Some(count) = self.per_principal.get_mut(&owned.owner)
        {
            *count -= 1;
            if *count == 0 {
                self.per_principal.remove(&owned.owner);
            }
        }
    }

    fn count_of(&self, principal: &str) -> usize {
        self.per_principal.get(principal).copied().unwrap_or(0)
    }

    /// The least recently used session satisfying `eligible`.
    fn least_recent(&self, eligible: impl Fn(&Owned) -> bool) -> Option<(String, Instant)> {
        self.sessions
            .iter()
            .filter(|(_, owned)| eligible(owned))
            .min_by_key(|(_, owned)| owned.last_used)
            .map(|(id, owned)| (id.clone(), owned.last_used))
    }

    /// Forget what must go for one more session of `principal`, and return the sessions to
    /// close; `Err` with when to retry if the table is full of sessions in use.
    fn make_room(
        &mut self,
        principal: &str,
        now: Instant,
        is_open: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, Duration> {
        let full = self.sessions.len() >= self.max_sessions;
        if full || self.count_of(principal) >= self.max_per_principal {
            let closed: Vec<String> = self
                .sessions
                .keys()
                .filter(|id| !is_open(id))
                .cloned()
                .collect();
            for id in &closed {
                self.unbind(id);
            }
        }
        let mut evict = Vec::new();
        while self.count_of(principal) >= self.max_per_principal {
            let Some((oldest, _)) = self.least_recent(|owned| &*owned.owner == principal) else {
                break;
            };
            self.unbind(&oldest);
            evict.push(oldest);
        }
        while self.sessions.len() >= self.max_sessions {
            let idle_since = |owned: &Owned| now.saturating_duration_since(owned.last_used);
            match self.least_recent(|_| true) {
                Some((oldest, last_used))
                    if now.saturating_duration_since(last_used) >= IDLE_BEFORE_EVICTION =>
                {
                    self.unbind(&oldest);
                    evict.push(oldest);
                }
                Some(_) => {
                    let soonest = self
                        .sessions
                        .values()
                        .map(idle_since)
                        .max()
                        .unwrap_or_default();
                    return Err(IDLE_BEFORE_EVICTION.saturating_sub(soonest));
                }
                None => break,
            }
        }
        Ok(evict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(_: &str) -> bool {
        true
    }

    #[test]
    fn keeps_other_principals_sessions_when_one_principal_floods() {
        let mut table = Table::new(10, 3);
        let t0 = Instant::now();
        table.bind("alice-1", "alice", t0);
        for i in 0..1000 {
            let evicted = table.make_room("mallory", t0, open).unwrap();
            assert!(
                evicted.iter().all(|id| id.starts_with("mallory")),
                "{evicted:?}"
            );
            table.bind(&format!("mallory-{i}"), "mallory", t0);
        }
        assert!(
            table.touch("alice-1", "alice", t0),
            "alice's session survives"
        );
        assert_eq!(table.count_of("mallory"), 3);
    }

    #[test]
    fn evicts_own_least_recently_used_session_at_the_per_principal_cap() {
        let mut table = Table::new(10, 2);
        let t0 = Instant::now();
        table.bind("a", "alice", t0);
        table.bind("b", "alice", t0 + Duration::from_secs(1));
        table.touch("a", "alice", t0 + Duration::from_secs(2));
        let evicted = table
            .make_room("alice", t0 + Duration::from_secs(3), open)
            .unwrap();
        assert_eq!(evicted, ["b"]);
        assert!(
            !table.touch("b", "alice", t0),
            "an evicted session is refused"
        );
    }

    #[test]
    fn evicts_closed_sessions_before_idle_ones() {
        let mut table = Table::new(3, 3);
        let t0 = Instant::now();
        table.bind("idle", "alice", t0);
        table.bind("closed", "bob", t0 + Duration::from_secs(1));
        table.bind("busy", "carol", t0 + Duration::from_secs(200));
        let later = t0 + Duration::from_secs(200);
        let evicted = table.make_room("dave", later, |id| id != "closed").unwrap();
        // The closed one is forgotten (rmcp already closed it); nothing open had to go.
        assert!(evicted.is_empty(), "{evicted:?}");
        assert!(table.touch("idle", "alice", later));
        assert!(!table.touch("closed", "bob", later));
    }

    #[test]
    fn evicts_the_longest_idle_session_of_another_principal_when_full() {
        let mut table = Table::new(2, 2);
        let t0 = Instant::now();
        table.bind("old", "alice", t0);
        table.bind("new", "bob", t0 + Duration::from_secs(100));
        let later = t0 + Duration::from_secs(120);
        assert_eq!(table.make_room("carol", later, open).unwrap(), ["old"]);
    }

    #[test]
    fn refuses_new_session_when_full_of_sessions_in_use() {
        let mut table = Table::new(2, 2);
        let t0 = Instant::now();
        table.bind("a", "alice", t0);
        table.bind("b", "bob", t0 + Duration::from_secs(10));
        let now = t0 + Duration::from_secs(20);
        let wait = table.make_room("carol", now, open).unwrap_err();
        // The longest idle (a, 20 s) may go 40 s from now.
        assert_eq!(wait, Duration::from_secs(40));
        assert!(table.touch("a", "alice", now) && table.touch("b", "bob", now));
    }
}
