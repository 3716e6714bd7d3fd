//! The append-only file sink: JSON lines, rotated by size or age, synced on every batch or on
//! an interval.
//!
//! The active file is the configured path. Rotation renames it to `<path>.<n>` (six digits,
//! counting up), so `audit verify <path>.* <path>` reads the files in order. A new file opens
//! with a header line naming the previous file's last event (`seq` and `hash`); the chain itself
//! continues across files.
//!
//! One file has one writer: the sink holds an exclusive `flock` on its active file, and a
//! second process opening the same path is refused, since two writers would rotate each
//! other's files away. A governance command run beside a serving process writes a file of its
//! own, named for its instance (`<path>.<instance>`, see [`FileSink::open_for_instance`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::chain::SealedEvent;
use super::sink::{AuditSink, AuditSinkError};

/// When the file sink syncs what it wrote to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every batch, before its events count as recorded: a call is answered only once its
    /// event is on disk. Concurrent calls share one sync.
    EveryEvent,
    /// At most this long after a write. An event counts as recorded once written: it survives
    /// the process being killed, and reaches the disk within the interval.
    Every(Duration),
}

/// How the file sink writes and rotates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSinkOptions {
    /// The active file.
    pub path: PathBuf,
    /// Rotate once the active file is this large.
    pub rotate_bytes: Option<u64>,
    /// Rotate once the active file has been written to for this long.
    pub rotate_every: Option<Duration>,
    /// When to sync.
    pub fsync: FsyncPolicy,
}

/// The append-only file sink.
#[derive(Debug)]
pub struct FileSink {
    state: Arc<Mutex<FileState>>,
    description: String,
}

#[derive(Debug)]
struct FileState {
    options: FileSinkOptions,
    file: File,
    len: u64,
    opened: Instant,
    synced: bool,
    last_sync: Instant,
    /// The last event written to the active file: `(instance, seq, hash)`.
    last: Option<(String, u64, String)>,
}

impl FileSink {
    /// Open (or create) the active file for appending, and lock it. Its directory must exist;
    /// a file another process writes is refused.
    pub fn open(options: FileSinkOptions) -> io::Result<Self> {
        let file = open_append(&options.path)?;
        lock_as_only_writer(&file, &options.path)?;
        let len = file.metadata()?.len();
        let description = format!("file {}", options.path.display());
        let now = Instant::now();
        Ok(Self {
            state: Arc::new(Mutex::new(FileState {
                options,
                file,
                len,
                opened: now,
                synced: true,
                last_sync: now,
                last: None,
            })),
            description,
        })
    }
}

impl FileSink {
    /// The sink of a short-lived process beside a serving one (a governance command): its own
    /// file `<path>.<instance>` in the same directory, which `audit verify <path>.* <path>`
    /// reads with the others, never rotated.
    pub fn open_for_instance(options: FileSinkOptions, instance: &str) -> io::Result<Self> {
        let mut name = options.path.file_name().unwrap_or_default().to_owned();
        name.push(format!(".{instance}"));
        Self::open(FileSinkOptions {
            path: options.path.with_file_name(name),
            rotate_bytes: None,
            rotate_every: None,
            ..options
        })
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Hold an exclusive lock on `file` for as long as it is open, or refuse: another process
/// writes it.
fn lock_as_only_writer(file: &File, path: &Path) -> io::Result<()> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "another process writes to {}: one trail file has one writer (two would rotate each other's files away); give each process its own [audit] file",
                path.display()
            ),
        )),
        Err(e) => Err(io::Error::from(e)),
    }
}

impl FileState {
    fn append(&mut self, batch: &[SealedEvent]) -> io::Result<()> {
        if self.due_for_rotation() {
            self.rotate()?;
        }
        let mut bytes = Vec::with_capacity(batch.iter().map(|e| e.line.len() + 1).sum());
        for event in batch {
            bytes.extend_from_slice(event.line.as_bytes());
            bytes.push(b'\n');
        }
        if let Err(e) = self.file.write_all(&bytes) {
            // Leave no partial batch behind: the retry writes it whole.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += bytes.len() as u64;
        self.synced = false;
        if let Some(last) = batch.last() {
            self.last = Some((last.instance.clone(), last.seq, last.hash.clone()));
        }
        match self.options.fsync {
            FsyncPolicy::EveryEvent => self.sync(),
            FsyncPolicy::Every(interval) if self.last_sync.elapsed() >= interval => self.sync(),
            FsyncPolicy::Every(_) => Ok(()),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        if !self.synced {
            self.file.sync_data()?;
            self.synced = true;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    fn due_for_rotation(&self) -> bool {
        self.len > 0
            && (self.options.rotate_bytes.is_some_and(|max| self.len >= max)
                || self
                    .options
                    .rotate_every
                    .is_some_and(|age| self.opened.elapsed() >= age))
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.sync()?;
        let path = self.options.path.clone();
        let next = next_rotated(&path)?;
        fs::rename(&path, &next)?;
        let file = open_append(&path)?;
        lock_as_only_writer(&file, &path)?;
        self.file = file;
        self.len = 0;
        self.opened = Instant::now();
        let previous_file = next
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let header = match &self.last {
            Some((instance, seq, hash)) => serde_json::json!({
                "file_start": {
                    "previous_file": previous_file,
                    "instance": instance,
                    "previous_seq": seq,
                    "previous_hash": hash,
                }
            }),
            None => serde_json::json!({ "file_start": { "previous_file": previous_file } }),
        };
        let mut line = header.to_string();
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.len = line.len() as u64;
        self.synced = false;
        self.sync()?;
        // The rename is durable only once the directory is synced.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// `<path>.<n>` for the next free `n`.
fn next_rotated(path: &Path) -> io::Result<PathBuf> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!("{name}.");
    let mut highest = 0u64;
    for entry in fs::read_dir(&dir)? {
        let entry = entry?;
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = entry_name
            .strip_prefix(&prefix)
            .and_then(|n| n.parse::<u64>().ok())
        {
            highest = highest.max(n);
        }
    }
    Ok(dir.join(format!("{name}.{:06}", highest + 1)))
}

impl FileSink {
    /// Run `work` on the file off the async threads; its error names the file.
    fn blocking(
        &self,
        work: impl FnOnce(&mut FileState) -> io::Result<()> + Send + 'static,
    ) -> BoxFuture<'static, Result<(), AuditSinkError>> {
        let state = Arc::clone(&self.state);
        let description = self.description.clone();
        Box::pin(async move {
            let done = tokio::task::spawn_blocking(move || {
                let mut state = state.lock().map_err(|_| io::Error::other("poisoned"))?;
                work(&mut state)
            })
            .await;
            match done {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(AuditSinkError(format!("{description}: {e}"))),
                Err(e) => Err(AuditSinkError(format!("{description}: {e}"))),
            }
        })
    }
}

impl AuditSink for FileSink {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn write<'a>(
        &'a mut self,
        batch: &'a [SealedEvent],
    ) -> BoxFuture<'a, Result<(), AuditSinkError>> {
        let batch = batch.to_vec();
        self.blocking(move |state| state.append(&batch))
    }

    fn idle(&mut self) -> BoxFuture<'_, Result<(), AuditSinkError>> {
        self.blocking(FileState::sync)
    }
}
