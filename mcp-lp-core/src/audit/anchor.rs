//! Anchors: the chain's head (`instance`, `seq`, `hash`) written to a second place at an
//! interval and at shutdown, each sealed with the chain's key. A trail whose tail was cut off
//! ends before its last anchor, which `audit verify` reports.

use serde::{Deserialize, Serialize};

use super::chain::ChainKey;

/// One anchor line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// The chain's instance.
    pub instance: String,
    /// The head's sequence number.
    pub seq: u64,
    /// The head's hash.
    pub hash: String,
    /// When the anchor was written, RFC 3339 UTC.
    pub at: String,
    /// The key that sealed the anchor.
    pub key_id: String,
    /// HMAC-SHA256 of the anchor's RFC 8785 form without `mac`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
}

impl Anchor {
    fn canonical(&self) -> Vec<u8> {
        let unsealed = Self {
            mac: String::new(),
            ..self.clone()
        };
        serde_json_canonicalizer::to_vec(&unsealed).unwrap_or_default()
    }

    /// The anchor as one JSON line (without the newline), sealed with `key`.
    pub(crate) fn sealed_line(mut self, key: &ChainKey) -> String {
        self.mac = key.mac_hex(&self.canonical());
        serde_json_canonicalizer::to_string(&self).unwrap_or_default()
    }

    /// Whether `key` sealed this anchor.
    pub(crate) fn verifies_with(&self, key: &ChainKey) -> bool {
        key.id() == self.key_id
            && constant_time_eq(
                key.mac_hex(&self.canonical()).as_bytes(),
                self.mac.as_bytes(),
            )
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
