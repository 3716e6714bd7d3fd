//! Approvals of one process in a directory, shared with its command line.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use sha2::{Digest as _, Sha256};

use super::{ApprovalError, ApprovalStore, CallKey, PendingCall, is_id};
use crate::audit::chain::hex;

/// Pending approvals of one process, one JSON file per call in a directory
/// (`[governance] approvals`, by default `mcp-lp.approvals` next to the configuration), so that
/// `approvals approve ID` from the command line reaches the server a stdio client talks to.
///
/// Every change runs under an exclusive `flock` of `<dir>/.lock` and replaces the call's file
/// by rename, so a verdict and the single use never interleave and a reader never sees half a
/// file. The directory is made with mode 0700 and its files with 0600; a directory that is a
/// symbolic link, belongs to another user, or that others may write is refused, and no file in
/// it is followed through a symbolic link. A retry without state finds its call through an
/// index (`by-call/`), spent nonces are files in `nonces/`.
#[derive(Debug, Clone)]
pub struct FileApprovals {
    dir: PathBuf,
}

/// `O_NOFOLLOW`: a file of the store that is a symbolic link is refused, not followed.
fn no_follow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

impl FileApprovals {
    /// The store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Where the calls are kept.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn fail(&self, reason: impl std::fmt::Display) -> ApprovalError {
        ApprovalError::Store {
            store: self.describe(),
            reason: reason.to_string(),
        }
    }

    /// Make `dir` (mode 0700) or check the one there: a directory, not a link, the running
    /// user's, and not writable by others.
    fn own_directory(&self, dir: &Path) -> Result<(), ApprovalError> {
        use std::os::unix::fs::DirBuilderExt as _;
        match std::fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| self.fail(format!("cannot make {}: {e}", dir.display()))),
            Err(e) => Err(self.fail(format!("{}: {e}", dir.display()))),
            Ok(meta) if meta.file_type().is_symlink() => Err(self.fail(format!(
                "{} is a symbolic link; name the directory itself",
                dir.display()
            ))),
            Ok(meta) if !meta.is_dir() => {
                Err(self.fail(format!("{} is not a directory", dir.display())))
            }
            Ok(meta) if meta.uid() != rustix::process::geteuid().as_raw() => {
                Err(self.fail(format!(
                    "{} belongs to user {}, not to the user running the server; whoever owns it can change what is approved",
                    dir.display(),
                    meta.uid()
                )))
            }
            Ok(meta) if meta.mode() & 0o022 != 0 => Err(self.fail(format!(
                "{} may be written by others (mode {:o}); chmod 700",
                dir.display(),
                meta.mode() & 0o777
            ))),
            Ok(_) => Ok(()),
        }
    }

    /// Run `f` holding the directory's lock.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T, ApprovalError>) -> Result<T, ApprovalError> {
        self.own_directory(&self.dir)?;
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(no_follow())
            .open(self.dir.join(".lock"))
            .map_err(|e| self.fail(format!("cannot open the lock: {e}")))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| self.fail(format!("cannot lock: {e}")))?;
        // The lock is released when `lock` is closed.
        f()
    }

    fn path_of(&self, id: &str) -> Result<PathBuf, ApprovalError> {
        if !is_id(id) {
            return Err(ApprovalError::Unknown(id.chars().take(40).collect()));
        }
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// The text of `path`, `None` when it does not exist; never through a symbolic link.
    fn read_file(&self, path: &Path) -> Result<Option<String>, ApprovalError> {
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(no_follow())
            .open(path)
        {
            Ok(file) => std::io::read_to_string(file)
                .map(Some)
                .map_err(|e| self.fail(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.fail(format!("{}: {e}", path.display()))),
        }
    }

    /// Write `text` to `path` whole: a new file (0600) renamed over the old one.
    fn write_file(&self, path: &Path, text: &[u8]) -> Result<(), ApprovalError> {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(no_follow())
            .open(&temporary)
            .and_then(|mut file| {
                file.write_all(text)?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&temporary, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temporary);
                self.fail(format!("cannot write {}: {e}", path.display()))
            })
    }

    fn read(&self, id: &str) -> Result<PendingCall, ApprovalError> {
        let path = self.path_of(id)?;
        let text = self
            .read_file(&path)?
            .ok_or_else(|| ApprovalError::Unknown(id.to_owned()))?;
        serde_json::from_str(&text).map_err(|e| self.fail(format!("{}: {e}", path.display())))
    }

    fn write(&self, call: &PendingCall) -> Result<(), ApprovalError> {
        let path = self.path_of(&call.id)?;
        let text = serde_json::to_vec_pretty(call).map_err(|e| self.fail(e))?;
        self.write_file(&path, &text)
    }

    /// The index file of the calls of `principal`, `tool` and arguments: it names the newest.
    fn index_of(&self, principal: &str, tool: &str, arguments_sha256: &str) -> PathBuf {
        let mut digest = Sha256::new();
        for part in [principal, tool, arguments_sha256] {
            digest.update(part.as_bytes());
            digest.update([0]);
        }
        self.dir.join("by-call").join(hex(&digest.finalize()))
    }

    fn all(&self) -> Result<Vec<PendingCall>, ApprovalError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.fail(e)),
        };
        let mut calls = Vec::new();
        for entry in entries {
            let name = entry.map_err(|e| self.fail(e))?.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if is_id(id) {
                calls.push(self.read(id)?);
            }
        }
        Ok(calls)
    }

    fn nonce_path(&self, nonce: &str) -> Result<PathBuf, ApprovalError> {
        if nonce.len() < 32 || nonce.len() > 64 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.fail("a nonce is 32 to 64 hex digits"));
        }
        Ok(self.dir.join("nonces").join(nonce))
    }
}

impl ApprovalStore for FileApprovals {
    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }

    fn insert(&self, call: PendingCall) -> BoxFuture<'_, Result<(), ApprovalError>> {
        Box::pin(async move {
            self.locked(|| {
                if self.read_file(&self.path_of(&call.id)?)?.is_some() {
                    return Err(self.fail(format!("approval `{}` exists already", call.id)));
                }
                self.write(&call)?;
                let index = self.index_of(&call.principal, &call.tool, &call.arguments_sha256);
                self.own_directory(&self.dir.join("by-call"))?;
                self.write_file(&index, call.id.as_bytes())
            })
        })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<PendingCall, ApprovalError>> {
        let id = id.to_owned();
        Box::pin(async move { self.read(&id) })
    }

    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<PendingCall>, ApprovalError>> {
        Box::pin(async move {
            let mut open: Vec<_> = self
                .all()?
                .into_iter()
                .filter(|c| c.used_at.is_none())
                .collect();
            open.sort_by(|a, b| b.requested_at.cmp(&a.requested_at));
            open.truncate(limit);
            Ok(open)
        })
    }

    fn replace(
        &self,
        revision: u64,
        call: PendingCall,
    ) -> BoxFuture<'_, Result<bool, ApprovalError>> {
        Box::pin(async move {
            self.locked(|| {
                if self.read(&call.id)?.revision != revision {
                    return Ok(false);
                }
                self.write(&call)?;
                Ok(true)
            })
        })
    }

    fn find(&self, key: CallKey<'_>) -> BoxFuture<'_, Result<Option<String>, ApprovalError>> {
        let index = self.index_of(key.principal, key.tool, key.arguments_sha256);
        Box::pin(async move {
            let Some(id) = self.read_file(&index)? else {
                return Ok(None);
            };
            let id = id.trim();
            match self.read(id) {
                Ok(call) if call.used_at.is_none() => Ok(Some(id.to_owned())),
                Ok(_) | Err(ApprovalError::Unknown(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn open_count(
        &self,
        principal: &str,
        tool: &str,
        now: jiff::Timestamp,
    ) -> BoxFuture<'_, Result<u32, ApprovalError>> {
        let (principal, tool) = (principal.to_owned(), tool.to_owned());
        Box::pin(async move {
            let open = self
                .all()?
                .iter()
                .filter(|c| {
                    c.principal == principal
                        && c.tool == tool
                        && c.used_at.is_none()
                        && c.denial.is_none()
                        && !c.expired(now)
                })
                .count();
            Ok(u32::try_from(open).unwrap_or(u32::MAX))
        })
    }

    fn forget_expired(&self, before: jiff::Timestamp) -> BoxFuture<'_, Result<u64, ApprovalError>> {
        Box::pin(async move {
            self.locked(|| {
                let mut forgotten = 0;
                for call in self.all()? {
                    if call.expired(before) {
                        let _ = std::fs::remove_file(self.path_of(&call.id)?);
                        let index =
                            self.index_of(&call.principal, &call.tool, &call.arguments_sha256);
                        if self.read_file(&index)?.as_deref().map(str::trim) == Some(&call.id) {
                            let _ = std::fs::remove_file(index);
                        }
                        forgotten += 1;
                    }
                }
                let nonces = self.dir.join("nonces");
                if let Ok(entries) = std::fs::read_dir(&nonces) {
                    for entry in entries.flatten() {
                        let path = entry.path();
                        let expired = self
                            .read_file(&path)?
                            .and_then(|t| t.trim().parse::<jiff::Timestamp>().ok())
                            .is_none_or(|at| at < before);
                        if expired {
                            let _ = std::fs::remove_file(path);
                        }
                    }
                }
                Ok(forgotten)
            })
        })
    }

    fn spend_nonce(
        &self,
        nonce: &str,
        expires: jiff::Timestamp,
    ) -> BoxFuture<'_, Result<bool, ApprovalError>> {
        let path = self.nonce_path(nonce);
        Box::pin(async move {
            let path = path?;
            self.locked(|| {
                self.own_directory(&self.dir.join("nonces"))?;
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(no_follow())
                    .open(&path)
                {
                    Ok(mut file) => {
                        file.write_all(expires.to_string().as_bytes())
                            .and_then(|()| file.sync_all())
                            .map_err(|e| self.fail(format!("{}: {e}", path.display())))?;
                        Ok(true)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(self.fail(format!("{}: {e}", path.display()))),
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_approvals_directory_owned_by_another_user() {
        use std::os::unix::fs::PermissionsExt as _;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("approvals");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let store = FileApprovals::new(&dir);
        assert_eq!(
            store.open_count("a", "t", jiff::Timestamp::now()).await,
            Ok(0)
        );
        // Another user's directory: root can hand it over; anyone else checks the mode rule.
        let nobody = rustix::fs::Uid::from_raw(65534);
        let err = if rustix::fs::chown(&dir, Some(nobody), None).is_ok() {
            store
                .spend_nonce(&"a".repeat(32), jiff::Timestamp::now())
                .await
                .unwrap_err()
        } else {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            store
                .spend_nonce(&"a".repeat(32), jiff::Timestamp::now())
                .await
                .unwrap_err()
        };
        let text = err.to_string();
        assert!(
            text.contains("belongs to user 65534") || text.contains("may be written by others"),
            "{text}"
        );
        let link = parent.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = FileApprovals::new(&link)
            .spend_nonce(&"b".repeat(32), jiff::Timestamp::now())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[tokio::test]
    async fn accepts_each_nonce_once() {
        let parent = tempfile::tempdir().unwrap();
        let store = FileApprovals::new(parent.path().join("approvals"));
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
        let nonce = "0123456789abcdef0123456789abcdef";
        assert_eq!(store.spend_nonce(nonce, later).await, Ok(true));
        assert_eq!(store.spend_nonce(nonce, later).await, Ok(false));
        let mode = std::fs::metadata(parent.path().join("approvals"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
