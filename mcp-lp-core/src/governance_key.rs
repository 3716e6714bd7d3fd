//! The governance key: a MAC over every record the governance stores keep (approval records,
//! revocation entries), under a key the store does not hold.
//!
//! Whoever can write the approvals directory, or INSERT and UPDATE the `[state]` tables, can
//! write any JSON there. Each record therefore carries `key_id` and `mac`, an HMAC-SHA256 of
//! its canonical JSON (RFC 8785) and of what it is (its purpose), and is checked on every read:
//! a record edited, made up, or copied to another id does not verify.
//!
//! The keys come from `[governance] keys` (the first seals, every one verifies, so rotation is
//! a list). A deployment of several replicas configures them, since every replica and the
//! command line must hold the same key. A single process without them uses a key file made
//! for it next to the configuration (`mcp-lp.governance.key`, mode 0600), which its command
//! line reads too.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use sha2::Sha256;

use crate::audit::anchor::constant_time_eq;
use crate::audit::chain::hex;

/// The shortest governance key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// The key file made next to the configuration when `[governance] keys` names none.
pub const DEFAULT_KEY_FILE: &str = "mcp-lp.governance.key";

/// What a MAC is over: the same bytes under another purpose give another MAC, so a record of
/// one kind never verifies as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A call waiting for approval, its verdicts and its use.
    ApprovalRecord,
    /// One entry of the revocation list.
    Revocation,
}

impl Purpose {
    fn tag(self) -> &'static [u8] {
        match self {
            Self::ApprovalRecord => b"mcp-lp approval record v1\0",
            Self::Revocation => b"mcp-lp revocation v1\0",
        }
    }
}

/// One key: its id, written into each record it seals, and its HMAC.
#[derive(Clone)]
pub struct GovernanceKey {
    id: String,
    mac: Hmac<Sha256>,
}

impl fmt::Debug for GovernanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GovernanceKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a governance key was refused, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GovernanceKeyError {
    /// Shorter than [`MIN_KEY_BYTES`].
    #[error(
        "governance key `{id}` is {bytes} bytes; at least {MIN_KEY_BYTES} bytes of random data are needed"
    )]
    TooShort {
        /// The key's id.
        id: String,
        /// Its length.
        bytes: usize,
    },
    /// The id is empty, too long, or not made of letters, digits, `-`, `_` and `.`.
    #[error("governance key id `{0}` must be 1 to 64 letters, digits, `-`, `_` or `.`")]
    BadId(String),
    /// No key was given.
    #[error("at least one governance key is needed")]
    NoKey,
    /// Two keys share an id.
    #[error("governance key id `{0}` is given twice")]
    DuplicateId(String),
    /// The default key file cannot be read, made, or trusted.
    #[error("governance key file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl GovernanceKey {
    /// A key from its id and secret.
    pub fn new(id: &str, secret: &SecretString) -> Result<Self, GovernanceKeyError> {
        let valid_id = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid_id {
            return Err(GovernanceKeyError::BadId(id.to_owned()));
        }
        let bytes = secret
            .expose_secret()
            .trim_end_matches(['\n', '\r'])
            .as_bytes();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(GovernanceKeyError::TooShort {
                id: id.to_owned(),
                bytes: bytes.len(),
            });
        }
        let mac = Hmac::new_from_slice(bytes).map_err(|_| GovernanceKeyError::BadId(id.into()))?;
        Ok(Self {
            id: id.to_owned(),
            mac,
        })
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac_hex(&self, purpose: Purpose, canonical: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(purpose.tag());
        mac.update(canonical);
        hex(&mac.finalize().into_bytes())
    }
}

/// The keys in use: the first seals, every one verifies.
#[derive(Debug, Clone)]
pub struct GovernanceKeys {
    keys: Vec<GovernanceKey>,
}

/// A seal: the id of the key that made it, and the MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// The key's id.
    pub key_id: String,
    /// HMAC-SHA256, 64 hex digits.
    pub mac: String,
}

impl GovernanceKeys {
    /// The keys, the first of which seals. Refuses an empty list and a repeated id.
    pub fn new(keys: Vec<GovernanceKey>) -> Result<Self, GovernanceKeyError> {
        if keys.is_empty() {
            return Err(GovernanceKeyError::NoKey);
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.id == key.id) {
                return Err(GovernanceKeyError::DuplicateId(key.id.clone()));
            }
        }
        Ok(Self { keys })
    }

    /// The key file of a single process at `path`: read when it exists, made (mode 0600, 32
    /// random bytes, hex) when it does not. Refuses a file that is a symbolic link, is not
    /// the running user's, or that others may read.
    pub fn from_file(path: &Path) -> Result<Self, GovernanceKeyError> {
        if let Some(keys) = Self::read_file(path)? {
            return Ok(keys);
        }
        let fail = |reason: String| GovernanceKeyError::File {
            path: path.to_owned(),
            reason,
        };
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| {
            fail(format!(
                "the operating system's random source failed ({e}); no key is made without it"
            ))
        })?;
        // Written whole under a name of its own, then linked into place: of two processes
        // making the key at once, one links it and the other reads it.
        let temporary = path.with_file_name(format!(
            ".{}.{}.tmp",
            path.file_name().unwrap_or_default().to_string_lossy(),
            hex(&bytes[..8])
        ));
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&temporary)
            .and_then(|mut file| {
                file.write_all(format!("{}\n", hex(&bytes)).as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| match std::fs::hard_link(&temporary, path) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                linked => linked,
            });
        let _ = std::fs::remove_file(&temporary);
        made.map_err(|e| fail(format!("cannot make it: {e}")))?;
        Self::read_file(path)?.ok_or_else(|| fail("it vanished as it was made".into()))
    }

    /// The key file at `path` when it exists (`None` when not), without making one. Refuses
    /// what [`GovernanceKeys::from_file`] refuses.
    pub fn read_file(path: &Path) -> Result<Option<Self>, GovernanceKeyError> {
        let fail = |reason: String| GovernanceKeyError::File {
            path: path.to_owned(),
            reason,
        };
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(fail(
                    "it is a symbolic link; give the key file itself".into(),
                ));
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(fail(format!(
                "it belongs to user {}, not to the user running the server",
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(fail(format!(
                "its mode is {:o}; others must not read it: chmod 600",
                meta.mode() & 0o777
            )));
        }
        let text = std::io::read_to_string(file).map_err(|e| fail(e.to_string()))?;
        let key = GovernanceKey::new("local", &SecretString::from(text))
            .map_err(|e| fail(e.to_string()))?;
        Self::new(vec![key]).map(Some)
    }

    /// The key that seals.
    pub fn sealing_key(&self) -> &str {
        &self.keys[0].id
    }

    /// Seal `record` (serialized as RFC 8785 canonical JSON) for `purpose`.
    pub fn seal(&self, purpose: Purpose, record: &impl Serialize) -> Seal {
        let key = &self.keys[0];
        Seal {
            key_id: key.id.clone(),
            mac: key.mac_hex(purpose, &canonical(record)),
        }
    }

    /// Whether `seal` is a seal of `record` for `purpose` by one of these keys. Compared in
    /// constant time.
    pub fn verifies(&self, purpose: Purpose, record: &impl Serialize, seal: &Seal) -> bool {
        self.keys.iter().any(|key| {
            key.id == seal.key_id
                && constant_time_eq(
                    key.mac_hex(purpose, &canonical(record)).as_bytes(),
                    seal.mac.as_bytes(),
                )
        })
    }
}

fn canonical(record: &impl Serialize) -> Vec<u8> {
    // Serializing a record of strings, numbers and lists cannot fail; an empty body would not
    // verify against a real seal.
    serde_json_canonicalizer::to_vec(record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(id: &str, secret: &str) -> GovernanceKeys {
        GovernanceKeys::new(vec![
            GovernanceKey::new(id, &SecretString::from(secret.to_owned())).unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn rejects_record_of_another_purpose_key_or_content() {
        let k = keys("g1", "0123456789abcdef0123456789abcdef");
        let record = serde_json::json!({ "id": "a", "by": "bob" });
        let seal = k.seal(Purpose::ApprovalRecord, &record);
        assert!(k.verifies(Purpose::ApprovalRecord, &record, &seal));
        assert!(!k.verifies(Purpose::Revocation, &record, &seal));
        let edited = serde_json::json!({ "id": "a", "by": "mallory" });
        assert!(!k.verifies(Purpose::ApprovalRecord, &edited, &seal));
        let other = keys("g1", "another-key-of-at-least-32-bytes-long");
        assert!(!other.verifies(Purpose::ApprovalRecord, &record, &seal));
    }

    #[test]
    fn accepts_key_file_it_made_and_refuses_one_others_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEFAULT_KEY_FILE);
        let made = GovernanceKeys::from_file(&path).unwrap();
        let record = serde_json::json!({ "x": 1 });
        let seal = made.seal(Purpose::Revocation, &record);
        let read = GovernanceKeys::from_file(&path).unwrap();
        assert!(read.verifies(Purpose::Revocation, &record, &seal));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = GovernanceKeys::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = GovernanceKeys::from_file(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
}
