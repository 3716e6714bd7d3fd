//! Configuration errors: each names the file, the key and what was expected, never a secret.

use std::fmt;
use std::path::PathBuf;

/// What kind of problem a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Unreadable,
    /// The file is not valid TOML.
    Syntax,
    /// A key that mcp-lp does not know.
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A value of the wrong type.
    WrongType,
    /// A value of the right type that is not allowed.
    InvalidValue,
    /// A secret reference that could not be resolved.
    Secret,
    /// The configuration disagrees with the server's tools.
    Mismatch,
}

/// A configuration problem that stops the server from starting.
///
/// Its message reads `FILE:LINE: KEY: PROBLEM`, for example
/// `mcp-lp.toml:4: stdio.grants[1]: malformed grant `docs delete`: ...`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub struct ConfigError {
    /// The configuration file.
    pub path: PathBuf,
    /// The dotted key the problem is at, if it is at one.
    pub key: Option<String>,
    /// The 1-based line of the file, when known.
    pub line: Option<usize>,
    /// The kind of problem.
    pub kind: ConfigErrorKind,
    /// What is wrong and what is expected.
    pub message: String,
}

impl ConfigError {
    /// A problem at `key` of the file at `path`: how a capability provider reports one in
    /// the table it claims (`vault.secrets.billing.file`).
    pub fn new(
        path: impl Into<PathBuf>,
        key: Option<String>,
        kind: ConfigErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            key,
            line: None,
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}
