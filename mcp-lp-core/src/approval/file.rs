//! Approvals of one process in a directory, shared with its command line.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;

use super::{ApprovalError, ApprovalStore, CallKey, PendingCall, Verdict, is_id};

/// Pending approvals of one process, one JSON file per call in a directory
/// (`[governance] approvals`, by default `mcp-lp.approvals` next to the configuration), so that
/// `approvals approve ID` from the command line reaches the server a stdio client talks to.
///
/// Every change runs under an exclusive `flock` of `<dir>/.lock` and replaces the call's file
/// by rename, so a verdict and the single use never interleave and a reader never sees half a
/// file. The directory is created with mode 0700.
#[derive(Debug, Clone)]
pub struct FileApprovals {
    dir: PathBuf,
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

    /// Run `f` holding the directory's lock.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T, ApprovalError>) -> Result<T, ApprovalError> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| self.fail(format!("cannot create the directory: {e}")))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
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

    fn read(&self, id: &str) -> Result<PendingCall, ApprovalError> {
        let path = self.path_of(id)?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ApprovalError::Unknown(id.to_owned()));
            }
            Err(e) => return Err(self.fail(e)),
        };
        serde_json::from_str(&text).map_err(|e| self.fail(format!("{}: {e}", path.display())))
    }

    fn write(&self, call: &PendingCall) -> Result<(), ApprovalError> {
        let path = self.path_of(&call.id)?;
        let temporary = self.dir.join(format!(".{}.tmp", call.id));
        let text = serde_json::to_vec_pretty(call).map_err(|e| self.fail(e))?;
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::File::open(&temporary)?.sync_all())
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|e| self.fail(format!("cannot write {}: {e}", path.display())))
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
}

impl ApprovalStore for FileApprovals {
    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }

    fn request(&self, call: PendingCall) -> BoxFuture<'_, Result<(), ApprovalError>> {
        Box::pin(async move { self.locked(|| self.write(&call)) })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<PendingCall, ApprovalError>> {
        let id = id.to_owned();
        Box::pin(async move { self.read(&id) })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<PendingCall>, ApprovalError>> {
        Box::pin(async move {
            let mut open: Vec<_> = self
                .all()?
                .into_iter()
                .filter(|c| c.used_at.is_none())
                .collect();
            open.sort_by(|a, b| b.requested_at.cmp(&a.requested_at));
            Ok(open)
        })
    }

    fn decide(
        &self,
        id: &str,
        verdict: Verdict,
        approve: bool,
    ) -> BoxFuture<'_, Result<PendingCall, ApprovalError>> {
        let id = id.to_owned();
        Box::pin(async move {
            self.locked(|| {
                let mut call = self.read(&id)?;
                call.check_verdict(&verdict.by, jiff::Timestamp::now())?;
                call.record_verdict(verdict, approve);
                self.write(&call)?;
                Ok(call)
            })
        })
    }

    fn consume(
        &self,
        id: &str,
        key: CallKey<'_>,
    ) -> BoxFuture<'_, Result<PendingCall, ApprovalError>> {
        let id = id.to_owned();
        let check = (
            key.principal.to_owned(),
            key.tool.to_owned(),
            key.arguments_sha256.to_owned(),
            key.definition_sha256.to_owned(),
        );
        Box::pin(async move {
            self.locked(|| {
                let mut call = self.read(&id)?;
                let key = CallKey {
                    principal: &check.0,
                    tool: &check.1,
                    arguments_sha256: &check.2,
                    definition_sha256: &check.3,
                };
                call.check_use(key, jiff::Timestamp::now())?;
                call.used_at = Some(super::now_string());
                self.write(&call)?;
                Ok(call)
            })
        })
    }

    fn find(&self, key: CallKey<'_>) -> BoxFuture<'_, Result<Option<String>, ApprovalError>> {
        let (principal, tool, arguments) = (
            key.principal.to_owned(),
            key.tool.to_owned(),
            key.arguments_sha256.to_owned(),
        );
        Box::pin(async move {
            Ok(self
                .all()?
                .into_iter()
                .filter(|c| {
                    c.used_at.is_none()
                        && c.standing(jiff::Timestamp::now()) != super::Standing::Expired
                        && c.principal == principal
                        && c.tool == tool
                        && c.arguments_sha256 == arguments
                })
                .max_by(|a, b| a.requested_at.cmp(&b.requested_at))
                .map(|c| c.id))
        })
    }
}
