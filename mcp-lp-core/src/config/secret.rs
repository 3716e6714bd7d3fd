//! Secret references: where a secret comes from, resolved once at startup.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// Where a secret is read from. Configuration holds references, never values.
///
/// ```toml
/// [secrets]
/// api-key = { file = "/vault/secrets/api-key" }   # a mounted secret or a Vault agent file
/// dev-key = { env = "DEV_API_KEY" }               # only with [dev] allow_env_secrets = true
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretRef {
    /// A file whose whole content, less one trailing newline, is the secret. A relative path is
    /// relative to the configuration file's directory.
    File(PathBuf),
    /// An environment variable: a development option, refused unless
    /// `[dev] allow_env_secrets = true`.
    Env(String),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{{ file = {:?} }}", path.display().to_string()),
            Self::Env(var) => write!(f, "{{ env = {var:?} }}"),
        }
    }
}

/// Why a secret reference could not be resolved. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The file is missing or unreadable.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file as resolved.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The file or variable is not UTF-8.
    #[error("is not valid UTF-8")]
    NotUtf8,
    /// The file or variable is empty.
    #[error("is empty")]
    Empty,
    /// The environment variable is not set.
    #[error("environment variable `{0}` is not set")]
    EnvUnset(String),
    /// Environment secrets are a development option that was not enabled.
    #[error(
        "environment-variable secrets are a development option; set `[dev] allow_env_secrets = true` to use them, or use {{ file = \"...\" }}"
    )]
    EnvNotAllowed,
}

impl SecretRef {
    /// Read the secret. `base` is the directory relative file paths are taken from.
    pub fn resolve(&self, base: &Path, allow_env: bool) -> Result<SecretString, SecretError> {
        let value = match self {
            Self::File(path) => {
                let path = base.join(path);
                let bytes = std::fs::read(&path).map_err(|e| SecretError::Unreadable {
                    path: path.clone(),
                    reason: e.kind().to_string(),
                })?;
                String::from_utf8(bytes).map_err(|_| SecretError::NotUtf8)?
            }
            Self::Env(var) => {
                if !allow_env {
                    return Err(SecretError::EnvNotAllowed);
                }
                match std::env::var(var) {
                    Ok(value) => value,
                    Err(std::env::VarError::NotPresent) => {
                        return Err(SecretError::EnvUnset(var.clone()));
                    }
                    Err(std::env::VarError::NotUnicode(_)) => return Err(SecretError::NotUtf8),
                }
            }
        };
        let trimmed = value
            .strip_suffix("\r\n")
            .or_else(|| value.strip_suffix('\n'))
            .unwrap_or(&value);
        if trimmed.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(SecretString::from(trimmed))
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretRefVisitor)
    }
}

struct SecretRefVisitor;

const INLINE_REFUSED: &str = "a secret is configured by reference, { file = \"...\" } or { env = \"...\" }; inline values are refused so that configuration never holds a secret";

impl<'de> Visitor<'de> for SecretRefVisitor {
    type Value = SecretRef;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a secret reference: { file = \"...\" } or { env = \"...\" }")
    }

    // Scalars are refused without echoing them: they may be the secret itself.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretRef, E> {
        Err(E::custom(INLINE_REFUSED))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretRef, E> {
        Err(E::custom(INLINE_REFUSED))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretRef, E> {
        Err(E::custom(INLINE_REFUSED))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretRef, E> {
        Err(E::custom(INLINE_REFUSED))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretRef, E> {
        Err(E::custom(INLINE_REFUSED))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
        let Some(source) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "empty secret reference; expected { file = \"...\" } or { env = \"...\" }",
            ));
        };
        let reference = match source.as_str() {
            "file" => SecretRef::File(PathBuf::from(map.next_value::<String>()?)),
            "env" => SecretRef::Env(map.next_value::<String>()?),
            other => {
                return Err(de::Error::custom(format!(
                    "unknown secret source `{other}`; expected `file` or `env`"
                )));
            }
        };
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom(
                "a secret reference names exactly one source: { file = \"...\" } or { env = \"...\" }",
            ));
        }
        match &reference {
            SecretRef::File(p) if p.as_os_str().is_empty() => {
                Err(de::Error::custom("the secret file path is empty"))
            }
            SecretRef::Env(v) if v.is_empty() => Err(de::Error::custom(
                "the secret environment variable name is empty",
            )),
            _ => Ok(reference),
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn accepts_file_secret_and_strips_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), "s3cr3t\n").unwrap();
        let secret = SecretRef::File("k".into())
            .resolve(dir.path(), false)
            .unwrap();
        assert_eq!(secret.expose_secret(), "s3cr3t");
    }

    #[test]
    fn rejects_empty_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), "\n").unwrap();
        let err = SecretRef::File("k".into())
            .resolve(dir.path(), false)
            .unwrap_err();
        assert_eq!(err, SecretError::Empty);
    }

    #[test]
    fn rejects_env_secret_without_dev_flag() {
        let err = SecretRef::Env("PATH".into())
            .resolve(Path::new("."), false)
            .unwrap_err();
        assert_eq!(err, SecretError::EnvNotAllowed);
    }

    #[test]
    fn debug_of_resolved_secret_is_redacted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), "hunter2").unwrap();
        let secret = SecretRef::File("k".into())
            .resolve(dir.path(), false)
            .unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
