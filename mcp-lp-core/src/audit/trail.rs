//! The audit trail: one chain per process instance, written to stderr and to durable sinks,
//! with a failure policy for when a durable sink cannot keep up, and anchors of the chain's head
//! in a second place.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::AUDIT_TARGET;
use super::chain::{Chain, ChainKey, Hex64, SealedEvent};
use super::file_sink::FileSink;
use super::record::Record;
use super::sink::AuditSink;
use crate::config::Config;
use crate::json_log;

/// What the trail does when a durable sink fails or falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// A call is answered only once its event is recorded by every durable sink; while a sink
    /// fails, new calls are refused.
    #[default]
    FailClosed,
    /// Calls are answered while their events wait in a bounded in-memory queue; once the queue
    /// is full, new calls are refused. Queued events are written when the sink recovers.
    Buffer,
}

/// Where and how often the chain's head is anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorOptions {
    /// The anchor file, appended to and synced.
    pub path: PathBuf,
    /// How often the head is anchored when it moved.
    pub every: Duration,
}

/// How a trail behaves.
#[derive(Debug, Clone)]
pub struct TrailOptions {
    /// The key that seals the chain.
    pub key: ChainKey,
    /// What to do when a durable sink fails.
    pub policy: FailurePolicy,
    /// How long a call waits for its event to be recorded (fail closed), and the limit of the
    /// queue per durable sink, in events.
    pub write_timeout: Duration,
    /// The most events waiting for one durable sink.
    pub buffer_events: usize,
    /// Whether tool results carry their audit event's `seq` and `hash` in `_meta`.
    pub receipts: bool,
    /// Anchors of the chain's head.
    pub anchors: Option<AnchorOptions>,
}

impl Default for TrailOptions {
    fn default() -> Self {
        Self {
            key: ChainKey::unkeyed(),
            policy: FailurePolicy::FailClosed,
            write_timeout: Duration::from_secs(5),
            buffer_events: 10_000,
            receipts: false,
            anchors: None,
        }
    }
}

/// The process's audit trail. Cloning it is cheap; clones share the chain.
#[derive(Debug, Clone)]
pub struct AuditTrail {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    options: TrailOptions,
    /// The last anchored `seq`.
    anchored: Mutex<Option<u64>>,
}

#[derive(Debug)]
struct State {
    chain: Chain,
    writers: Vec<Arc<Writer>>,
    /// The events recorded while the server starts, for sinks attached before it serves.
    backlog: Option<Vec<SealedEvent>>,
    /// The last sealed event: `(seq, hash)`.
    head: Option<(u64, String)>,
}

/// The most events kept for sinks attached late.
const MAX_BACKLOG: usize = 10_000;

/// One durable sink's queue and progress.
#[derive(Debug)]
struct Writer {
    description: String,
    tx: mpsc::UnboundedSender<SealedEvent>,
    /// The last event this sink recorded: `(seq, hash)`.
    recorded: watch::Receiver<Option<(u64, String)>>,
    pending: Arc<AtomicUsize>,
    failing: Arc<Mutex<Option<String>>>,
}

impl Writer {
    /// Whether the sink recorded event `seq` (and so every earlier one) within `timeout`.
    async fn recorded_up_to(&self, seq: u64, timeout: Duration) -> bool {
        let mut recorded = self.recorded.clone();
        let waited = tokio::time::timeout(
            timeout,
            recorded.wait_for(|last| last.as_ref().is_some_and(|(s, _)| *s >= seq)),
        )
        .await;
        matches!(waited, Ok(Ok(_)))
    }
}

/// An event's place in the trail, returned by [`AuditTrail::record`].
#[derive(Debug, Clone)]
pub struct Recorded {
    seq: u64,
    hash: Hex64,
    instance: Arc<str>,
    trail: AuditTrail,
}

/// The trail could not record an event, or cannot record more: calls are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuditUnavailable(pub String);

impl Recorded {
    /// The event's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The event's hash.
    pub fn hash(&self) -> &str {
        self.hash.as_str()
    }

    /// The chain's instance.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Wait until every durable sink recorded the event, as the failure policy asks: under
    /// [`FailurePolicy::FailClosed`] up to the write timeout, under [`FailurePolicy::Buffer`]
    /// not at all.
    pub async fn durable(&self) -> Result<(), AuditUnavailable> {
        let inner = &self.trail.inner;
        if inner.options.policy == FailurePolicy::Buffer {
            return Ok(());
        }
        let seq = self.seq;
        for writer in &self.trail.writers() {
            if !writer
                .recorded_up_to(seq, inner.options.write_timeout)
                .await
            {
                let reason = writer
                    .failing
                    .lock()
                    .ok()
                    .and_then(|f| f.clone())
                    .unwrap_or_else(|| "it did not answer in time".to_owned());
                return Err(AuditUnavailable(format!(
                    "the audit {} did not record event {seq} within {:?}: {reason}",
                    writer.description, inner.options.write_timeout
                )));
            }
        }
        Ok(())
    }
}

impl AuditTrail {
    /// A trail sealed with `options.key`, writing to stderr (through `tracing`, on
    /// [`AUDIT_TARGET`]) and to each of `sinks`. With sinks or anchors it must be created on a
    /// Tokio runtime: each sink gets a writer task.
    pub fn start(options: TrailOptions, sinks: Vec<Box<dyn AuditSink>>) -> Self {
        Self::start_as(new_instance_id(), options, sinks)
    }

    fn start_as(instance: String, options: TrailOptions, sinks: Vec<Box<dyn AuditSink>>) -> Self {
        let writers = sinks
            .into_iter()
            .map(|sink| Arc::new(spawn_writer(sink)))
            .collect();
        let trail = Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    chain: Chain::new(instance, options.key.clone()),
                    writers,
                    backlog: Some(Vec::new()),
                    head: None,
                }),
                options,
                anchored: Mutex::new(None),
            }),
        };
        if let Some(anchors) = trail.inner.options.anchors.clone() {
            let weak = Arc::downgrade(&trail.inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(anchors.every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    let trail = AuditTrail { inner };
                    if let Err(e) = trail.anchor().await {
                        tracing::error!(error = %e, "could not write the audit anchor");
                    }
                }
            });
        }
        trail
    }

    /// The trail `config`'s `[audit]` table describes, started: its first key seals (without
    /// keys the chain is unkeyed), its file is a durable sink. Records `start`,
    /// `config_loaded` and a `secret_resolved` for each secret the configuration resolved.
    ///
    /// `command` names a governance command (`approvals approve`, `revoke`, ...) run beside the
    /// serving process: its events go to a file of its own next to the trail file (see
    /// [`FileSink::open_for_instance`]), under the same key, and its `start` event names it.
    pub fn from_config(
        config: &Config,
        server: &str,
        version: &str,
        command: Option<&str>,
    ) -> std::io::Result<Self> {
        let settings = config.audit();
        let instance = new_instance_id();
        let mut sinks: Vec<Box<dyn AuditSink>> = Vec::new();
        if let Some(file) = &settings.file {
            let opened = match command {
                None => FileSink::open(file.clone()),
                Some(_) => FileSink::open_for_instance(file.clone(), &instance),
            };
            let sink = opened.map_err(|e| {
                std::io::Error::new(e.kind(), format!("audit file {}: {e}", file.path.display()))
            })?;
            sinks.push(Box::new(sink));
        }
        let options = TrailOptions {
            key: config
                .audit_keys()
                .first()
                .cloned()
                .unwrap_or_else(ChainKey::unkeyed),
            policy: settings.policy,
            write_timeout: settings.write_timeout,
            buffer_events: settings.buffer_events,
            receipts: settings.receipts,
            anchors: settings.anchors.clone(),
        };
        let trail = Self::start_as(instance, options, sinks);
        if config.allows_unapproved_tools() {
            trail.name_dev_switch("allow_unapproved_tools");
        }
        let key_id = trail.key_id();
        let pid = u64::from(std::process::id());
        trail.record(
            &Record::new("start")
                .str("server", server)
                .str("version", version)
                .str("config_sha256", config.digest())
                .opt_str(
                    "manifest_sha256",
                    config.manifest().map(|m| m.digest.as_str()),
                )
                .str("audit_key_id", &key_id)
                .opt_str("command", command)
                .int("pid", pid),
        );
        let path = config.path().display().to_string();
        trail.record(
            &Record::new("config_loaded")
                .str("path", &path)
                .str("config_sha256", config.digest()),
        );
        for (key, reference) in config.resolved_secrets() {
            trail.record(
                &Record::new("secret_resolved")
                    .str("secret", key)
                    .str("reference", reference),
            );
        }
        Ok(trail)
    }

    /// The chain's instance id.
    pub fn instance(&self) -> String {
        self.lock().chain.instance().to_owned()
    }

    /// The id of the key sealing the chain now.
    pub fn key_id(&self) -> String {
        self.lock().chain.key_id().to_owned()
    }

    /// Add a durable sink. It first gets the events recorded since the trail started, unless
    /// the server already serves ([`AuditTrail::end_startup`]): then it starts with the next.
    pub fn attach(&self, sink: Box<dyn AuditSink>) {
        let writer = Arc::new(spawn_writer(sink));
        let mut state = self.lock();
        match &state.backlog {
            Some(backlog) => {
                for event in backlog {
                    writer.pending.fetch_add(1, Ordering::Relaxed);
                    let _ = writer.tx.send(event.clone());
                }
            }
            None => tracing::warn!(
                sink = writer.description,
                "audit sink attached after startup: it has only the events from now on"
            ),
        }
        state.writers.push(writer);
    }

    /// Name the development switch `switch` (such as `allow_unapproved_tools`) in every event
    /// from now on, as the `dev` field.
    pub fn name_dev_switch(&self, switch: &'static str) {
        self.lock().chain.name_dev_switch(switch);
    }

    /// The server serves from now on: sinks attached later start with the next event.
    pub fn end_startup(&self) {
        self.lock().backlog = None;
    }

    fn writers(&self) -> Vec<Arc<Writer>> {
        self.lock().writers.clone()
    }

    /// Whether tool results carry receipts.
    pub fn receipts(&self) -> bool {
        self.inner.options.receipts
    }

    /// What each durable sink writes to.
    pub fn sinks(&self) -> Vec<String> {
        self.writers()
            .iter()
            .map(|w| w.description.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while sealing leaves the chain as it was: sealing mutates only at its end.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Seal `record` into the chain, write it to stderr and queue it for every durable sink.
    pub fn record(&self, record: &Record<'_>) -> Recorded {
        let mut state = self.lock();
        let sealed = state.chain.seal(record);
        // Written while the chain is held, so that stderr has the events in chain order.
        if record.is_warn() {
            tracing::warn!(target: AUDIT_TARGET, chained = sealed.line.as_str());
        } else {
            tracing::info!(target: AUDIT_TARGET, chained = sealed.line.as_str());
        }
        let instance = Arc::clone(state.chain.instance_arc());
        if !state.writers.is_empty() || state.backlog.is_some() {
            let event = SealedEvent {
                instance: instance.to_string(),
                seq: sealed.seq,
                hash: sealed.hash.as_str().to_owned(),
                event: record.event().to_owned(),
                line: sealed.line,
            };
            for writer in &state.writers {
                writer.pending.fetch_add(1, Ordering::Relaxed);
                // A closed queue means the writer task ended with its runtime; `durable` then
                // times out and calls are refused.
                let _ = writer.tx.send(event.clone());
            }
            if let Some(backlog) = &mut state.backlog {
                if backlog.len() < MAX_BACKLOG {
                    backlog.push(event);
                } else {
                    state.backlog = None;
                }
            }
        }
        if self.inner.options.anchors.is_some() {
            state.head = Some((sealed.seq, sealed.hash.as_str().to_owned()));
        }
        drop(state);
        Recorded {
            seq: sealed.seq,
            hash: sealed.hash,
            instance,
            trail: self.clone(),
        }
    }

    /// Seal with `key` from now on, recording the rotation under the old key.
    pub fn rotate_key(&self, key: ChainKey) -> Recorded {
        let from = self.key_id();
        let to = key.id().to_owned();
        let recorded = self.record(&Record::new("key_rotated").str("from", &from).str("to", &to));
        self.lock().chain.rekey(key);
        recorded
    }

    /// Whether new calls may run: `Err` with the reason when a durable sink is failing (fail
    /// closed) or its queue is full (either policy).
    pub fn admits_calls(&self) -> Result<(), AuditUnavailable> {
        for writer in &self.writers() {
            let pending = writer.pending.load(Ordering::Relaxed);
            let failing = writer.failing.lock().ok().and_then(|f| f.clone());
            if pending >= self.inner.options.buffer_events {
                return Err(AuditUnavailable(format!(
                    "the audit {} has {pending} events waiting to be written ({}); calls are refused until it catches up",
                    writer.description,
                    failing.as_deref().unwrap_or("it is slow")
                )));
            }
            if self.inner.options.policy == FailurePolicy::FailClosed
                && let Some(reason) = failing
            {
                return Err(AuditUnavailable(format!(
                    "the audit {} is failing: {reason}; calls are refused until it recovers",
                    writer.description
                )));
            }
        }
        Ok(())
    }

    /// Record `shutdown`, wait for the durable sinks to record it, and anchor the head.
    pub async fn shutdown(&self, reason: &str) {
        let recorded = self.record(&Record::new("shutdown").str("reason", reason));
        for writer in &self.writers() {
            writer
                .recorded_up_to(recorded.seq, self.inner.options.write_timeout)
                .await;
        }
        if let Err(e) = self.anchor().await {
            tracing::error!(error = %e, "could not write the audit anchor");
        }
    }

    /// Append the head every durable sink has recorded (or, without sinks, the last sealed
    /// event) to the anchor file, when it moved since the last anchor.
    pub async fn anchor(&self) -> Result<(), AuditUnavailable> {
        let Some(options) = self.inner.options.anchors.clone() else {
            return Ok(());
        };
        let writers = self.writers();
        let head = if writers.is_empty() {
            self.lock().head.clone()
        } else {
            writers
                .iter()
                .map(|w| w.recorded.borrow().clone())
                .min_by_key(|h| h.as_ref().map(|(seq, _)| *seq))
                .flatten()
        };
        let Some((seq, hash)) = head else {
            return Ok(());
        };
        {
            let mut anchored = self
                .inner
                .anchored
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if *anchored == Some(seq) {
                return Ok(());
            }
            *anchored = Some(seq);
        }
        let line = {
            let state = self.lock();
            let chain = &state.chain;
            let mut timestamp = String::new();
            let _ = json_log::write_timestamp(&mut timestamp);
            let anchor = super::anchor::Anchor {
                instance: chain.instance().to_owned(),
                seq,
                hash,
                at: timestamp,
                key_id: chain.key_id().to_owned(),
                mac: String::new(),
            };
            anchor.sealed_line(chain.key())
        };
        let path = options.path.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(line.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_data()
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AuditUnavailable(format!(
                "anchor file {}: {e}",
                options.path.display()
            ))),
            Err(e) => Err(AuditUnavailable(format!(
                "anchor file {}: {e}",
                options.path.display()
            ))),
        }
    }
}

/// A random instance id: `i-` and 32 hex digits.
fn new_instance_id() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness, a time-and-pid id still keeps instances apart.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ (u128::from(std::process::id()) << 96)).to_be_bytes();
    }
    format!("i-{}", super::chain::hex(&bytes))
}

/// The longest a sink's writer waits for events before telling the sink it is idle.
const IDLE: Duration = Duration::from_millis(50);
/// The most events handed to a sink in one batch.
const MAX_BATCH: usize = 1024;

fn spawn_writer(mut sink: Box<dyn AuditSink>) -> Writer {
    let (tx, mut rx) = mpsc::unbounded_channel::<SealedEvent>();
    let (recorded_tx, recorded) = watch::channel(None);
    let pending = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(Mutex::new(None));
    let description = sink.describe();
    let (task_pending, task_failing) = (Arc::clone(&pending), Arc::clone(&failing));
    tokio::spawn(async move {
        let mut batch: Vec<SealedEvent> = Vec::new();
        let mut backoff = Duration::from_millis(50);
        loop {
            if batch.is_empty() {
                match tokio::time::timeout(IDLE, rx.recv()).await {
                    Ok(Some(event)) => batch.push(event),
                    Ok(None) => break,
                    Err(_idle) => {
                        if let Err(e) = sink.idle().await {
                            tracing::error!(error = %e, "audit sink failed to sync");
                        }
                        continue;
                    }
                }
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            match sink.write(&batch).await {
                Ok(()) => {
                    if let Some(last) = batch.last() {
                        let _ = recorded_tx.send(Some((last.seq, last.hash.clone())));
                    }
                    task_pending.fetch_sub(batch.len(), Ordering::Relaxed);
                    batch.clear();
                    backoff = Duration::from_millis(50);
                    let recovered = task_failing.lock().map(|mut f| f.take()).ok().flatten();
                    if let Some(reason) = recovered {
                        tracing::warn!(
                            sink = sink.describe(),
                            was = reason,
                            "audit sink recovered"
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        waiting = batch.len(),
                        "audit sink failed; its events are kept and retried"
                    );
                    if let Ok(mut failing) = task_failing.lock() {
                        *failing = Some(e.0);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    });
    Writer {
        description,
        tx,
        recorded,
        pending,
        failing,
    }
}

static TRAIL: OnceLock<AuditTrail> = OnceLock::new();

/// Make `trail` the process's trail, before the first event. `Err` gives it back when a trail
/// is already in place (installed, or the default one taken by an earlier event).
pub fn install(trail: AuditTrail) -> Result<(), AuditTrail> {
    TRAIL.set(trail)
}

/// The process's trail: the installed one, or an unkeyed trail on stderr.
pub fn trail() -> &'static AuditTrail {
    TRAIL.get_or_init(|| AuditTrail::start(TrailOptions::default(), Vec::new()))
}
