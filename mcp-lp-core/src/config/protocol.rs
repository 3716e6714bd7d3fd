//! The `[protocol]` table (which MCP revisions are served) and the `[request_state]` table (how
//! state handed to clients is sealed).

use std::time::Duration;

use rmcp::model::ProtocolVersion;
use serde::Deserialize;

use super::SecretRef;

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
