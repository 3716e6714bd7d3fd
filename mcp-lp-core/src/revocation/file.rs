//! The revocation list of one process: a JSON file next to the configuration, watched.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Revocation, RevocationError, RevocationFeed, RevocationStore, Target};

/// How often the file is read even when no change is reported, for file systems that report
/// none.
const POLL: Duration = Duration::from_secs(2);

/// A revocation list kept in a JSON file (`[governance] revocations`, by default
/// `mcp-lp.revocations.json` next to the configuration). `revoke` and `unrevoke` read, change
/// and replace the file under an exclusive `flock` of `.<name>.lock` beside it, so that two
/// commands at once both land; the replacement is a new file (mode 0600) renamed over the old,
/// so a reader never sees half of it. The server watches the directory. A list file that is a
/// symbolic link is refused, not followed.
///
/// A missing file is an empty list. A file that cannot be read or parsed is an unreachable
/// store: the last list read stays in force.
#[derive(Debug, Clone)]
pub struct FileRevocations {
    path: PathBuf,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListFile {
    revocations: Vec<Revocation>,
}

/// The revocations of a list file's text, or why it is not a list.
pub(crate) fn parse_list(text: &str) -> Result<Vec<Revocation>, String> {
    serde_json::from_str::<ListFile>(text)
        .map(|file| file.revocations)
        .map_err(|e| format!("not a revocation list: {e}"))
}

impl FileRevocations {
    /// The list kept at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where the list is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn unavailable(&self, reason: impl Into<String>) -> RevocationError {
        RevocationError::Unavailable {
            store: self.describe(),
            reason: reason.into(),
        }
    }

    /// The list as the file holds it now.
    pub(crate) fn read_now(&self) -> Result<Vec<Revocation>, RevocationError> {
        self.read()
    }

    fn read(&self) -> Result<Vec<Revocation>, RevocationError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&self.path);
        let text = match opened.and_then(std::io::read_to_string) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(self.unavailable(
                    "it is a symbolic link; whoever can change the link can change the list: name the file itself",
                ));
            }
            Err(e) => return Err(self.unavailable(e.to_string())),
        };
        parse_list(&text).map_err(|e| self.unavailable(e))
    }

    fn dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."))
    }

    fn name(&self) -> String {
        self.path.file_name().map_or_else(
            || "revocations".into(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// Read, change with `change` and write the list holding the exclusive lock beside it.
    fn change<T>(
        &self,
        change: impl FnOnce(&mut Vec<Revocation>) -> T,
    ) -> Result<T, RevocationError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(self.dir().join(format!(".{}.lock", self.name())))
            .map_err(|e| self.unavailable(format!("cannot open its lock: {e}")))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| self.unavailable(format!("cannot lock it: {e}")))?;
        let mut list = self.read()?;
        let result = change(&mut list);
        self.write(list)?;
        Ok(result)
    }

    fn write(&self, revocations: Vec<Revocation>) -> Result<(), RevocationError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut text = serde_json::to_string_pretty(&ListFile { revocations })
            .map_err(|e| self.unavailable(e.to_string()))?;
        text.push('\n');
        let temporary = self
            .dir()
            .join(format!(".{}.{}", self.name(), std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&temporary)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temporary);
                self.unavailable(format!("cannot write it: {e}"))
            })
    }
}

impl RevocationStore for FileRevocations {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Revocation>, RevocationError>> {
        Box::pin(async move { self.read() })
    }

    fn revoke(&self, revocation: Revocation) -> BoxFuture<'_, Result<(), RevocationError>> {
        Box::pin(async move {
            self.change(|list| {
                list.retain(|r| r.target != revocation.target);
                list.push(revocation);
            })
        })
    }

    fn unrevoke(&self, target: Target) -> BoxFuture<'_, Result<bool, RevocationError>> {
        Box::pin(async move {
            self.change(|list| {
                let before = list.len();
                list.retain(|r| r.target != target);
                list.len() != before
            })
        })
    }

    fn follow(self: Arc<Self>, feed: RevocationFeed) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let (tx, mut changed) = mpsc::channel(1);
            let dir = self
                .path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            // The directory, not the file: a rename replaces the file's inode.
            let _watcher = crate::secret_refresh::watch_directory(&dir, tx)
                .map_err(|e| {
                    tracing::warn!(directory = %dir.display(), error = %e, poll = ?POLL, "cannot watch the revocation list's directory; reading it on the polling interval only");
                })
                .ok();
            let mut ticks = tokio::time::interval(POLL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    Some(()) = changed.recv() => {
                        tokio::time::sleep(crate::secret_refresh::SETTLE).await;
                        while changed.try_recv().is_ok() {}
                    }
                    _ = ticks.tick() => {}
                }
                let open = match self.read() {
                    Ok(list) => feed.publish(list),
                    Err(e) => feed.unreachable(e.to_string()),
                };
                if !open {
                    return;
                }
            }
        })
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

    #[tokio::test]
    async fn refuses_symlinked_revocation_list() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("elsewhere.json");
        std::fs::write(&real, "{\"revocations\": []}").unwrap();
        let link = dir.path().join("revocations.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let store = FileRevocations::new(&link);
        let err = store.list().await.unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(store.revoke(revocation(Target::All)).await.is_err());
        assert_eq!(
            std::fs::read_to_string(&real).unwrap(),
            "{\"revocations\": []}"
        );
    }

    #[test]
    fn keeps_both_of_two_concurrent_revocations() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.json");
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    runtime
                        .block_on(
                            FileRevocations::new(path)
                                .revoke(revocation(Target::Principal(format!("p{i}")))),
                        )
                        .unwrap();
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let list = runtime
            .block_on(FileRevocations::new(&path).list())
            .unwrap();
        assert_eq!(list.len(), 8, "{list:?}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn accepts_missing_file_as_empty_list_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileRevocations::new(dir.path().join("revocations.json"));
        assert!(store.list().await.unwrap().is_empty());
        store
            .revoke(revocation(Target::Tool("delete_note".into())))
            .await
            .unwrap();
        store.revoke(revocation(Target::All)).await.unwrap();
        store
            .revoke(revocation(Target::Tool("delete_note".into())))
            .await
            .unwrap();
        assert_eq!(store.list().await.unwrap().len(), 2);
        assert!(store.unrevoke(Target::All).await.unwrap());
        assert!(!store.unrevoke(Target::All).await.unwrap());
        assert_eq!(
            store.list().await.unwrap(),
            vec![revocation(Target::Tool("delete_note".into()))]
        );
    }

    #[tokio::test]
    async fn rejects_malformed_file_as_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.json");
        std::fs::write(&path, "{\"revocations\": [ {\"kind\": \"al").unwrap();
        let err = FileRevocations::new(&path).list().await.unwrap_err();
        assert!(err.to_string().contains("not a revocation list"), "{err}");
        assert!(err.to_string().contains("revocations.json"), "{err}");
    }
}
