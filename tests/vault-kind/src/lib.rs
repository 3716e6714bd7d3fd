//! A made-up kind of capability, served only through mcp-lp's public API: a secret read from a
//! directory, one file per declared name.
//!
//! It exists to prove the seam. A tool declares
//! `#[tool(capability(kind = vault_kind::VaultSecret, name = "billing"))]` and takes a
//! [`Secret`]; the configuration maps the name to a file:
//!
//! ```toml
//! [vault]
//! dir = "secrets"                 # relative to the configuration file
//!
//! [vault.secrets.billing]
//! file = "billing-api-key"
//! ```
//!
//! Nothing in mcp-lp's core names this kind, yet the tool's capability is in the approved
//! manifest (a changed `file` is drift), in every audit event of the tool, and in `inventory`
//! and `review`; a handler that takes a [`Secret`] without declaring one does not compile; and a
//! revocation drops the secrets the vault holds for the tools it covers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mcp_lp::capability::{Access, Capability, Kind};
use mcp_lp::revocation::{Evict, RevocationList};
use mcp_lp::{CallScope, Config, ConfigError, ConfigErrorKind, Provide, ToolPolicy};
use rmcp::ErrorData;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use secrecy::SecretString;
use serde::Deserialize;

/// The kind: a secret of the vault, configured by `[vault.secrets.<name>]`.
#[derive(Debug)]
pub struct VaultSecret;

impl Kind for VaultSecret {
    const NAME: &'static str = "vault.secret";
    const TABLE: &'static str = "vault.secrets";
    const ACCESS: Access = Access::Read;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultSection {
    dir: Option<PathBuf>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretEntry {
    file: String,
}

/// The provider: where each declared secret is read from, and the secrets read so far.
#[derive(Debug, Clone)]
pub struct Vault {
    files: Arc<BTreeMap<String, PathBuf>>,
    read: Arc<Mutex<HashMap<String, SecretString>>>,
}

impl Vault {
    /// The vault `config`'s `[vault]` table describes. Refuses, naming the key, a missing
    /// `dir` and a `file` that is not a plain name inside it.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let section: VaultSection = config.provider_table("vault")?;
        let problem = |key: &str, kind, message: String| {
            ConfigError::new(config.path(), Some(key.to_owned()), kind, message)
        };
        let base = config.path().parent().unwrap_or(Path::new("."));
        let dir = match (&section.dir, section.secrets.is_empty()) {
            (Some(dir), _) => base.join(dir),
            (None, true) => base.to_owned(),
            (None, false) => {
                return Err(problem(
                    "vault.dir",
                    ConfigErrorKind::MissingKey,
                    "the directory the secrets are read from".into(),
                ));
            }
        };
        let mut files = BTreeMap::new();
        for (name, entry) in section.secrets {
            let plain = !entry.file.is_empty()
                && !entry.file.contains(['/', '\\'])
                && entry.file != "."
                && entry.file != "..";
            if !plain {
                return Err(problem(
                    &format!("vault.secrets.{name}.file"),
                    ConfigErrorKind::InvalidValue,
                    format!(
                        "`{}` is not a file name inside [vault] dir: no `/`, no `..`",
                        entry.file
                    ),
                ));
            }
            files.insert(name, dir.join(&entry.file));
        }
        Ok(Self {
            files: Arc::new(files),
            read: Arc::default(),
        })
    }

    fn secret(&self, name: &str) -> Result<SecretString, String> {
        if let Some(secret) = self.read.lock().ok().and_then(|r| r.get(name).cloned()) {
            return Ok(secret);
        }
        let path = self
            .files
            .get(name)
            .ok_or_else(|| format!("the configuration has no [vault.secrets.{name}]"))?;
        // The error names the file, never its content.
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "secret `{name}` could not be read from {}: {e}",
                path.display()
            )
        })?;
        let secret = SecretString::from(text.trim_end().to_owned());
        if let Ok(mut read) = self.read.lock() {
            read.insert(name.to_owned(), secret.clone());
        }
        Ok(secret)
    }

    /// How many secrets the vault holds read.
    pub fn held(&self) -> usize {
        self.read.lock().map_or(0, |r| r.len())
    }
}

impl Provide for Vault {
    fn evictor(&self) -> Option<Arc<dyn Evict>> {
        Some(Arc::new(self.clone()))
    }
}

impl Evict for Vault {
    /// Drop each secret held for a tool the list now refuses.
    fn evict(&self, list: &RevocationList, tools: &[ToolPolicy]) {
        let Ok(mut read) = self.read.lock() else {
            return;
        };
        for tool in tools {
            if list.refusing_tool(tool).is_some()
                && let Some(declared) = tool.capability(VaultSecret::NAME)
            {
                read.remove(declared.name);
            }
        }
    }
}

/// The calling tool's declared secret. Only a tool that declares a `vault.secret` capability
/// may take one; elsewhere it does not compile.
pub struct Secret {
    name: &'static str,
    value: SecretString,
}

impl Secret {
    /// The declared name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The secret.
    pub fn value(&self) -> &SecretString {
        &self.value
    }
}

impl Capability for Secret {
    type Requirement = VaultSecret;
}

impl<C: AsRequestContext> FromContextPart<C> for Secret {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        let scope = CallScope::from_context_part(context)?;
        let tool = scope.tool();
        let Some(declared) = tool.capability(VaultSecret::NAME) else {
            return Err(ErrorData::internal_error(
                format!("tool `{}` declares no vault secret", tool.name),
                None,
            ));
        };
        let Some(vault) = scope.provider::<Vault>() else {
            return Err(ErrorData::internal_error(
                "this server was not given its vault: `Server::new(service).provide(vault)`",
                None,
            ));
        };
        let value = vault
            .secret(declared.name)
            .map_err(|e| ErrorData::internal_error(e, None))?;
        Ok(Self {
            name: declared.name,
            value,
        })
    }
}
