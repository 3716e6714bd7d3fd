//! The `[protocol]` table (which MCP revisions are served) and the `[request_state]` table (how
//! state handed to clients is sealed).

use rmcp::model::ProtocolVersion;
use serde::Deserialize;
use std::time::Duration;

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::SecretRef;
use crate::sealed_state::StateSealer;
use crate::secret_refresh::{RefreshSettings, RefreshingSecret, Validator};

/// `[protocol]`: the MCP revisions the server speaks. By default every revision rmcp knows,
/// 2026-07-28 and 2025-11-25 among them; a client's `initialize` or per-request version picks
/// one. Naming fewer refuses the others with the revisions that are served.
///
/// ```toml
/// [protocol]
/// versions = ["2026-07-28"]      # stateless only: no sessions, no initialize
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProtocolSection {
    #[serde(default)]
    pub(crate) versions: Option<Vec<String>>,
}

impl ProtocolSection {
    /// The revisions to serve, or the problem with the `versions` list.
    pub(crate) fn versions(&self) -> Result<Vec<ProtocolVersion>, String> {
        let Some(names) = &self.versions else {
            return Ok(ProtocolVersion::KNOWN_VERSIONS.to_vec());
        };
        if names.is_empty() {
            return Err("name at least one protocol revision".into());
        }
        names
            .iter()
            .map(|name| {
                ProtocolVersion::KNOWN_VERSIONS
                    .iter()
                    .find(|known| known.as_str() == name)
                    .cloned()
                    .ok_or_else(|| {
                        let known: Vec<_> = ProtocolVersion::KNOWN_VERSIONS
                            .iter()
                            .map(|v| format!("\"{}\"", v.as_str()))
                            .collect();
                        format!(
                            "unknown protocol revision \"{name}\"; known revisions are {}",
                            known.join(", ")
                        )
                    })
            })
            .collect()
    }
}

/// `[request_state]`: the keys that seal state a client brings back in a multi-round-trip call
/// (`requestState`), and how long such state stays good.
///
/// ```toml
/// [request_state]
/// ttl = "10m"
/// keys = [
///     { id = "2026-11", secret = { file = "/vault/secrets/state-key" } },      # seals
///     { id = "2026-08", secret = { file = "/vault/secrets/state-key-old" } },  # still opens
/// ]
/// ```
///
/// Without this table each process seals with a random key of its own: replicas then cannot
/// open each other's state, so a deployment of several replicas configures the same keys on
/// each.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestStateSection {
    #[serde(default, deserialize_with = "super::de_duration")]
    pub(crate) ttl: Option<Duration>,
    pub(crate) keys: Vec<KeySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeySpec {
    pub(crate) id: String,
    pub(crate) secret: SecretRef,
}

/// A refreshing secret for `reference`, resolved to `value`, not watched yet.
pub(super) fn refreshing_secret(
    refresh: RefreshSettings,
    key: String,
    reference: &SecretRef,
    value: SecretString,
    validate: Option<Validator>,
) -> RefreshingSecret {
    match validate {
        Some(validate) => {
            RefreshingSecret::with_validator(key, reference, value, refresh.max_age, validate)
        }
        None => RefreshingSecret::new(key, reference, value, refresh.max_age),
    }
}

/// A refreshing secret for `reference`, resolved to `value`, watched when a Tokio runtime runs.
pub(super) fn start_refreshing(
    path: &Path,
    refresh: RefreshSettings,
    key: String,
    reference: &SecretRef,
    value: SecretString,
    validate: Option<Validator>,
) -> RefreshingSecret {
    let secret = refreshing_secret(refresh, key, reference, value, validate);
    if tokio::runtime::Handle::try_current().is_ok() {
        let base = path.parent().unwrap_or(Path::new("."));
        secret.watch_file(reference, base, refresh.poll);
    }
    secret
}

/// `[request_state]` as loaded: its keys resolved and checked, and the sealer over their
/// values now. Watching the key files and following their rotation waits for the server to
/// ask for the sealer, so that loading a configuration spawns nothing.
pub(super) struct RequestStateKeys {
    pub(super) sealer: StateSealer,
    pub(super) keys: Vec<(String, RefreshingSecret, SecretRef)>,
    pub(super) poll: Duration,
    pub(super) base: PathBuf,
    pub(super) following: std::sync::Once,
}

impl RequestStateKeys {
    /// Watch the key files and follow their rotation, once, from the running runtime.
    pub(super) fn follow(&self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        self.following.call_once(|| {
            for (_, secret, reference) in &self.keys {
                secret.watch_file(reference, &self.base, self.poll);
            }
            let ring = self
                .keys
                .iter()
                .map(|(id, secret, _)| (id.clone(), secret.clone()))
                .collect();
            self.sealer.follow(ring, self.poll);
        });
    }
}

impl std::fmt::Debug for RequestStateKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestStateKeys")
            .field("sealer", &self.sealer)
            .field("following", &self.following.is_completed())
            .finish_non_exhaustive()
    }
}
