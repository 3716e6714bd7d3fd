//! Sealed request state: what a tool hands a client to bring back in a multi-round-trip call
//! (`requestState`, MCP 2026-07-28), sealed by the checkpoint so that it cannot be forged,
//! altered, kept past its expiry, or replayed by another principal, for another tool or with
//! other arguments.
//!
//! A tool returns its own state in plain text in an `InputRequiredResult`; the checkpoint seals
//! it before it leaves the server and opens it again when the client retries, so the tool only
//! ever sees state it issued itself, for this very call. The seal is an HMAC-SHA256 (rmcp's
//! [`RequestStateCodec`], `rs2` format) over the state and its binding: the server (its
//! resource), principal, tool, the digest of the call's arguments and an expiry. The same
//! sealer makes the approval page's cookies and form tokens, each under a key of its own
//! derived from the configured one (HKDF-SHA256, one [`Purpose`] each), so that a cookie never
//! opens as request state, nor one server's state at another. Keys carry an id, so rotation is a list: the
//! first configured key seals, every configured key opens. Configured keys are secret files
//! watched under the running server ([`StateSealer::rotating`]): a rewritten key file takes
//! effect for the next seal and open, and a key whose refreshes failed for longer than
//! `[secrets_refresh] max_age` stops opening and sealing.
//!
//! The state is signed, not encrypted: a client can read it. Tools must not put secrets in it.
//!
//! ```
//! use std::time::Duration;
//! use mcp_lp::audit::ArgumentDigest;
//! use mcp_lp::sealed_state::{Binding, StateRejected, StateSealer};
//!
//! let sealer = StateSealer::ephemeral(Duration::from_secs(600));
//! let arguments = ArgumentDigest::of(None);
//! let alice = Binding::request_state("https://mcp.example.com/mcp", "alice", "confirm", &arguments);
//! let sealed = sealer.seal(&alice, "step=2");
//! assert_eq!(sealer.open(&alice, &sealed).unwrap(), "step=2");
//!
//! let bob = Binding { principal: "bob", ..alice };
//! assert_eq!(sealer.open(&bob, &sealed), Err(StateRejected::OtherPrincipal));
//! ```

use std::fmt;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use hkdf::Hkdf;
use rmcp::model::{RequestStateCodec, RequestStateError, SealOptions};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::audit::ArgumentDigest;
use crate::secret_refresh::RefreshingSecret;

/// How long a sealed state stays good when the configuration does not say.
pub const DEFAULT_STATE_TTL: Duration = Duration::from_secs(10 * 60);

/// The longest sealed state opened at all; anything longer is refused before any work is done.
pub const MAX_SEALED_STATE_BYTES: usize = 64 * 1024;

/// The shortest key accepted, in bytes (HMAC-SHA256 wants at least its output size).
pub const MIN_KEY_BYTES: usize = RequestStateCodec::MIN_KEY_LENGTH;

/// The envelope's version; a change of layout gets a new one, and old ones are refused.
const ENVELOPE_VERSION: u8 = 2;

/// What sealed text is for. Each purpose seals under its own key, derived from the configured
/// one with HKDF-SHA256, so text sealed for one purpose never opens as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `requestState` a client brings back in a multi-round-trip call.
    RequestState,
    /// The approval page's sign-in in progress (PKCE verifier, OAuth state).
    LoginCookie,
    /// The approval page's signed-in approver.
    SessionCookie,
    /// The approval page's form token, bound to the approver and the approval.
    FormToken,
}

impl Purpose {
    const ALL: [Self; 4] = [
        Self::RequestState,
        Self::LoginCookie,
        Self::SessionCookie,
        Self::FormToken,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn info(self) -> &'static [u8] {
        match self {
            Self::RequestState => b"mcp-lp sealed state: request state",
            Self::LoginCookie => b"mcp-lp sealed state: login cookie",
            Self::SessionCookie => b"mcp-lp sealed state: session cookie",
            Self::FormToken => b"mcp-lp sealed state: form token",
        }
    }
}

/// The key of `purpose` derived from the configured `secret`.
fn derive(secret: &[u8], purpose: Purpose) -> zeroize::Zeroizing<[u8; 32]> {
    let mut okm = zeroize::Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit of 8160: expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(b"mcp-lp sealed state v2"), secret)
        .expand(purpose.info(), okm.as_mut());
    okm
}

/// The key id prefix of a key made at startup for this process alone; a random suffix tells
/// one process's key from another's, so state from another process is refused as sealed with
/// an unknown key rather than as altered.
const EPHEMERAL_KEY_PREFIX: &str = "process-";

/// What a sealed state is bound to: the call it was issued for, by which server, for what.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// What the sealed text is for: it opens only for the same purpose.
    pub purpose: Purpose,
    /// The server that issued it: its resource URI over HTTP, `mcp-lp:<server name>` over
    /// stdio. Servers sharing keys do not accept each other's state.
    pub resource: &'a str,
    /// The principal the state was issued to.
    pub principal: &'a str,
    /// The tool that issued it.
    pub tool: &'a str,
    /// The digest of the arguments of the call it was issued for.
    pub arguments: &'a ArgumentDigest,
}

impl<'a> Binding<'a> {
    /// The binding of `requestState` issued by `resource` to `principal` for `tool` called
    /// with `arguments`.
    pub fn request_state(
        resource: &'a str,
        principal: &'a str,
        tool: &'a str,
        arguments: &'a ArgumentDigest,
    ) -> Self {
        Self {
            purpose: Purpose::RequestState,
            resource,
            principal,
            tool,
            arguments,
        }
    }
}

/// Why a sealed state was refused. Each names one check; none says more about the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateRejected {
    /// Longer than [`MAX_SEALED_STATE_BYTES`].
    #[error("it is longer than {MAX_SEALED_STATE_BYTES} bytes")]
    TooLong,
    /// Not a sealed state of this server, or altered since it was sealed.
    #[error("it was altered or was not issued by this server")]
    Tampered,
    /// Sealed with a key this server no longer holds (or never held).
    #[error("it was sealed with a key this server does not hold")]
    UnknownKey,
    /// Past its expiry.
    #[error("it has expired")]
    Expired,
    /// Issued to another principal.
    #[error("it was issued to another principal")]
    OtherPrincipal,
    /// Issued by another tool.
    #[error("it was issued by another tool")]
    OtherTool,
    /// Issued for a call with other arguments.
    #[error("it was issued for other arguments")]
    OtherArguments,
    /// Issued by another server sharing the keys.
    #[error("it was issued by another server")]
    OtherResource,
}

impl StateRejected {
    /// A short stable name, for audit events and error data.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooLong => "too_long",
            Self::Tampered => "tampered",
            Self::UnknownKey => "unknown_key",
            Self::Expired => "expired",
            Self::OtherPrincipal => "other_principal",
            Self::OtherTool => "other_tool",
            Self::OtherArguments => "other_arguments",
            Self::OtherResource => "other_resource",
        }
    }
}

/// A sealing key as configured: its id and secret.
pub struct SealingKey {
    /// The key id, written into every state it seals.
    pub id: String,
    /// The key itself, at least [`MIN_KEY_BYTES`] bytes.
    pub secret: SecretString,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("id", &self.id)
            .field("secret", &"** redacted **")
            .finish()
    }
}

/// Why sealing keys were refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyringError(String);

/// Seals and opens request state for the checkpoint. Cloning shares its keys, which rotate
/// under a running server when it was made by [`StateSealer::rotating`].
#[derive(Clone)]
pub struct StateSealer {
    ring: Arc<RwLock<Arc<Ring>>>,
    ttl: Duration,
}

/// The keys in use: per purpose, the codec holding every key that opens; and the id of the
/// one that seals.
struct Ring {
    codecs: Vec<RequestStateCodec>,
    sealing_key: String,
}

impl fmt::Debug for StateSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateSealer")
            .field("sealing_key", &self.ring().sealing_key)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// What is sealed: the tool's state and what it is bound to. Field names are short because the
/// envelope travels in every round of a call. Every string is a `Cow`: one that JSON writes with
/// escapes (a principal with a `"` or `\`) cannot be borrowed when it is read back.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    v: u8,
    #[serde(borrow)]
    r: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    p: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    t: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    a: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    s: std::borrow::Cow<'a, str>,
}

impl StateSealer {
    /// A sealer whose first key seals and every key opens. Refuses an empty list, a duplicate or
    /// malformed id, and a key shorter than [`MIN_KEY_BYTES`], naming the key.
    pub fn new(keys: &[SealingKey], ttl: Duration) -> Result<Self, KeyringError> {
        Ok(Self::with_ring(Ring::of(keys)?, ttl))
    }

    fn with_ring(ring: Ring, ttl: Duration) -> Self {
        Self {
            ring: Arc::new(RwLock::new(Arc::new(ring))),
            ttl,
        }
    }

    fn ring(&self) -> Arc<Ring> {
        match self.ring.read() {
            Ok(ring) => Arc::clone(&ring),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// A sealer over keys that refresh under the running server: `keys` are (id, secret), the
    /// first seals and every one opens. Each time a secret rotates, and every `check` in any
    /// case, the ring is rebuilt from the keys whose secrets are still good: a key past its max
    /// age stops opening, and the first good key seals. With no good key left, state is sealed
    /// with a random key of this process (as [`StateSealer::ephemeral`]), so nothing is sealed
    /// with a key nobody vouches for. Refuses what [`StateSealer::new`] refuses.
    pub fn rotating(
        keys: Vec<(String, RefreshingSecret)>,
        ttl: Duration,
        check: Duration,
    ) -> Result<Self, KeyringError> {
        let sealer = Self::of_keys(&keys, ttl)?;
        sealer.follow(keys, check);
        Ok(sealer)
    }

    /// A sealer over the keys' values now, following nothing yet ([`StateSealer::follow`]).
    pub(crate) fn of_keys(
        keys: &[(String, RefreshingSecret)],
        ttl: Duration,
    ) -> Result<Self, KeyringError> {
        Ok(Self::with_ring(Ring::of_good(keys)?, ttl))
    }

    /// Rebuild the ring from `keys` whenever one rotates, and every `check`, from a task of
    /// the running Tokio runtime (none outside one).
    pub(crate) fn follow(&self, keys: Vec<(String, RefreshingSecret)>, check: Duration) {
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(follow_keys(Arc::downgrade(&self.ring), keys, check));
        }
    }
}

/// Rebuild the ring of `ring` from `keys` whenever one rotates, and every `check`, until the
/// sealer is dropped.
async fn follow_keys(
    ring: Weak<RwLock<Arc<Ring>>>,
    keys: Vec<(String, RefreshingSecret)>,
    check: Duration,
) {
    let mut changes: Vec<_> = keys.iter().map(|(_, secret)| secret.subscribe()).collect();
    loop {
        let any_change =
            futures::future::select_all(changes.iter_mut().map(|c| Box::pin(c.changed())));
        // A timeout is the periodic check; a change is acted on at once.
        let _ = tokio::time::timeout(check, any_change).await;
        let Some(ring) = ring.upgrade() else { return };
        let rebuilt = match Ring::of_good(&keys) {
            Ok(rebuilt) => rebuilt,
            Err(error) => {
                tracing::error!(%error, "the rotated sealing keys are refused; sealing with a key of this process only");
                Ring::ephemeral()
            }
        };
        let mut current = match ring.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        if current.sealing_key != rebuilt.sealing_key {
            tracing::info!(sealing_key = %rebuilt.sealing_key, "request state is now sealed with another key");
        }
        *current = Arc::new(rebuilt);
    }
}

impl Ring {
    /// The ring of the keys whose secrets are good now; an ephemeral one if none is.
    fn of_good(keys: &[(String, RefreshingSecret)]) -> Result<Self, KeyringError> {
        let good: Vec<SealingKey> = keys
            .iter()
            .filter_map(|(id, secret)| {
                secret.current().ok().map(|secret| SealingKey {
                    id: id.clone(),
                    secret,
                })
            })
            .collect();
        if good.is_empty() && !keys.is_empty() {
            tracing::error!(
                "every configured sealing key is past its max age; sealing with a key of this process only"
            );
            return Ok(Self::ephemeral());
        }
        Self::of(&good)
    }

    fn of(keys: &[SealingKey]) -> Result<Self, KeyringError> {
        let first = keys
            .first()
            .ok_or_else(|| KeyringError("at least one key is needed".into()))?;
        for key in keys {
            let bytes = key.secret.expose_secret().len();
            if bytes < MIN_KEY_BYTES {
                return Err(KeyringError(format!(
                    "key `{}` is {bytes} bytes; a sealing key is at least {MIN_KEY_BYTES} bytes of random data",
                    key.id
                )));
            }
        }
        let codecs = Purpose::ALL
            .iter()
            .map(|purpose| {
                let ring = keys.iter().map(|key| {
                    let derived = derive(key.secret.expose_secret().as_bytes(), *purpose);
                    (key.id.clone(), derived.to_vec())
                });
                RequestStateCodec::new_with_keyring(first.id.clone(), ring)
                    .map_err(|e| KeyringError(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            codecs,
            sealing_key: first.id.clone(),
        })
    }

    fn ephemeral() -> Self {
        let mut key = zeroize::Zeroizing::new([0u8; 32 + 8]);
        // Without the operating system's randomness there is nothing safe to seal with.
        getrandom::fill(key.as_mut()).expect("the operating system's random source failed");
        let (secret, suffix) = key.split_at(32);
        let id: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let id = format!("{EPHEMERAL_KEY_PREFIX}{id}");
        let codecs = Purpose::ALL
            .iter()
            .map(|purpose| {
                let derived = derive(secret, *purpose);
                RequestStateCodec::new_with_keyring(id.clone(), [(id.clone(), derived.to_vec())])
                    .expect("a 32-byte key with a valid id is accepted")
            })
            .collect();
        Self {
            codecs,
            sealing_key: id,
        }
    }
}

impl StateSealer {
    /// A sealer with a random key made for this process alone: state it seals is refused by any
    /// other process, including another replica and this server after a restart.
    pub fn ephemeral(ttl: Duration) -> Self {
        Self::with_ring(Ring::ephemeral(), ttl)
    }

    /// The id of the key that seals now.
    pub fn sealing_key(&self) -> String {
        self.ring().sealing_key.clone()
    }

    /// How long a sealed state stays good.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Seal `state` for the call `binding` describes.
    pub fn seal(&self, binding: &Binding<'_>, state: &str) -> String {
        let arguments = binding.arguments.sha256_hex();
        let envelope = Envelope {
            v: ENVELOPE_VERSION,
            r: binding.resource.into(),
            p: binding.principal.into(),
            t: binding.tool.into(),
            a: arguments.as_str().into(),
            s: state.into(),
        };
        // Serializing plain strings and a number cannot fail.
        let payload = serde_json::to_vec(&envelope).unwrap_or_default();
        self.ring().codecs[binding.purpose.index()]
            .seal_with(&payload, &SealOptions::new().ttl(self.ttl))
    }

    /// Open `sealed` for the call `binding` describes, returning the tool's state. Size, seal,
    /// key and expiry are checked before anything inside is read.
    pub fn open(&self, binding: &Binding<'_>, sealed: &str) -> Result<String, StateRejected> {
        if sealed.len() > MAX_SEALED_STATE_BYTES {
            return Err(StateRejected::TooLong);
        }
        let payload = self.ring().codecs[binding.purpose.index()]
            .open(sealed)
            .map_err(|error| match error {
                RequestStateError::Expired => StateRejected::Expired,
                RequestStateError::UnknownKeyId => StateRejected::UnknownKey,
                _ => StateRejected::Tampered,
            })?;
        // A payload under a valid seal was written by `seal`; anything else is treated as
        // tampering all the same.
        let envelope: Envelope<'_> =
            serde_json::from_slice(&payload).map_err(|_| StateRejected::Tampered)?;
        if envelope.v != ENVELOPE_VERSION {
            return Err(StateRejected::Tampered);
        }
        if envelope.r != binding.resource {
            return Err(StateRejected::OtherResource);
        }
        if envelope.p != binding.principal {
            return Err(StateRejected::OtherPrincipal);
        }
        if envelope.t != binding.tool {
            return Err(StateRejected::OtherTool);
        }
        if envelope.a != binding.arguments.sha256_hex() {
            return Err(StateRejected::OtherArguments);
        }
        Ok(envelope.s.into_owned())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(id: &str, secret: &str) -> SealingKey {
        SealingKey {
            id: id.into(),
            secret: SecretString::from(secret.to_owned()),
        }
    }

    const OLD: &str = "an-old-sealing-key-of-at-least-32-bytes";
    const NEW: &str = "a-new-sealing-key-of-at-least-32-bytes!";

    fn digest(value: serde_json::Value) -> ArgumentDigest {
        ArgumentDigest::of(value.as_object())
    }

    fn sealer(keys: &[SealingKey]) -> StateSealer {
        StateSealer::new(keys, DEFAULT_STATE_TTL).unwrap()
    }

    #[test]
    fn accepts_state_it_sealed_for_the_same_call() {
        let sealer = sealer(&[key("k1", NEW)]);
        let args = digest(json!({"key": "q3.md"}));
        let call = Binding {
            purpose: Purpose::RequestState,
            resource: "mcp-lp:test",
            principal: "alice",
            tool: "delete",
            arguments: &args,
        };
        let sealed = sealer.seal(&call, "round=1");
        assert_eq!(sealer.open(&call, &sealed), Ok("round=1".into()));
    }

    /// Found by the `sealed_state` fuzz target: a principal that JSON writes with escapes could
    /// never open its own state.
    #[test]
    fn accepts_state_for_principal_that_json_escapes() {
        let sealer = sealer(&[key("k1", NEW)]);
        let args = digest(json!({"key": "q3.md"}));
        for principal in [r#"o"brien"#, r"dom\user", "tab\there", "\u{202e}evil"] {
            let call = Binding {
                purpose: Purpose::RequestState,
                resource: "mcp-lp:test",
                principal,
                tool: "delete",
                arguments: &args,
            };
            let sealed = sealer.seal(&call, "round=1");
            assert_eq!(
                sealer.open(&call, &sealed),
                Ok("round=1".into()),
                "{principal}"
            );
            let other = Binding {
                purpose: Purpose::RequestState,
                resource: "mcp-lp:test",
                principal: "o",
                ..call
            };
            assert_eq!(
                sealer.open(&other, &sealed),
                Err(StateRejected::OtherPrincipal),
                "{principal}"
            );
        }
    }

    #[test]
    fn rejects_state_of_another_principal_tool_or_arguments() {
        let sealer = sealer(&[key("k1", NEW)]);
        let args = digest(json!({"key": "q3.md"}));
        let other_args = digest(json!({"key": "q4.md"}));
        let call = Binding {
            purpose: Purpose::RequestState,
            resource: "mcp-lp:test",
            principal: "alice",
            tool: "delete",
            arguments: &args,
        };
        let sealed = sealer.seal(&call, "x");
        let bob = Binding {
            purpose: Purpose::RequestState,
            resource: "mcp-lp:test",
            principal: "bob",
            ..call
        };
        let other_tool = Binding {
            tool: "read",
            ..call
        };
        let changed = Binding {
            arguments: &other_args,
            ..call
        };
        assert_eq!(
            sealer.open(&bob, &sealed),
            Err(StateRejected::OtherPrincipal)
        );
        assert_eq!(
            sealer.open(&other_tool, &sealed),
            Err(StateRejected::OtherTool)
        );
        assert_eq!(
            sealer.open(&changed, &sealed),
            Err(StateRejected::OtherArguments)
        );
    }

    #[test]
    fn rejects_state_of_another_resource_or_purpose() {
        let sealer = sealer(&[key("k1", NEW)]);
        let args = digest(json!({}));
        let call = Binding::request_state("https://a.example/mcp", "alice", "t", &args);
        let sealed = sealer.seal(&call, "x");
        let other_server = Binding {
            resource: "https://b.example/mcp",
            ..call
        };
        assert_eq!(
            sealer.open(&other_server, &sealed),
            Err(StateRejected::OtherResource)
        );
        for purpose in [
            Purpose::LoginCookie,
            Purpose::SessionCookie,
            Purpose::FormToken,
        ] {
            let cookie = Binding { purpose, ..call };
            assert_eq!(
                sealer.open(&cookie, &sealed),
                Err(StateRejected::Tampered),
                "{purpose:?}"
            );
            assert_eq!(
                sealer.open(&call, &sealer.seal(&cookie, "x")),
                Err(StateRejected::Tampered),
                "{purpose:?}"
            );
        }
    }

    #[test]
    fn rejects_every_single_character_change() {
        let sealer = sealer(&[key("k1", NEW)]);
        let args = digest(json!({}));
        let call = Binding {
            purpose: Purpose::RequestState,
            resource: "mcp-lp:test",
            principal: "alice",
            tool: "t",
            arguments: &args,
        };
        let sealed = sealer.seal(&call, "state");
        for i in 0..sealed.len() {
            let mut bytes = sealed.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let Ok(tampered) = String::from_utf8(bytes) else {
                continue;
            };
            if tampered == sealed {
                continue;
            }
            assert!(
                sealer.open(&call, &tampered).is_err(),
                "byte {i} changed and the state still opened"
            );
        }
    }

    #[test]
    fn rejects_oversized_and_foreign_state_before_reading_it() {
        let sealer = sealer(&[key("k1", NEW)]);
        let args = digest(json!({}));
        let call = Binding {
            purpose: Purpose::RequestState,
            resource: "mcp-lp:test",
            principal: "alice",
            tool: "t",
            arguments: &args,
        };
        let huge = "a".repeat(MAX_SEALED_STATE_BYTES + 1);
        assert_eq!(sealer.open(&call, &huge), Err(StateRejected::TooLong));
        assert_eq!(
            sealer.open(&call, "plain text"),
            Err(StateRejected::Tampered)
        );
        let stranger = StateSealer::ephemeral(DEFAULT_STATE_TTL);
        let foreign = stranger.seal(&call, "x");
        assert_eq!(sealer.open(&call, &foreign), Err(StateRejected::UnknownKey));
        let same_id = self::sealer(&[key("k1", OLD)]);
        assert_eq!(
            same_id.open(&call, &sealer.seal(&call, "x")),
            Err(StateRejected::Tampered)
        );
    }

    #[test]
    fn accepts_state_sealed_by_a_retired_key_still_configured() {
        let before = sealer(&[key("old", OLD)]);
        let after = sealer(&[key("new", NEW), key("old", OLD)]);
        let args = digest(json!({}));
        let call = Binding {
            purpose: Purpose::RequestState,
            resource: "mcp-lp:test",
            principal: "alice",
            tool: "t",
            arguments: &args,
        };
        let in_flight = before.seal(&call, "x");
        assert_eq!(after.open(&call, &in_flight), Ok("x".into()));
        let withdrawn = sealer(&[key("new", NEW)]);
        assert_eq!(
            withdrawn.open(&call, &in_flight),
            Err(StateRejected::UnknownKey)
        );
    }

    #[test]
    fn rejects_expired_state() {
        let sealer = StateSealer::new(&[key("k1", NEW)], Duration::from_millis(1)).unwrap();
        let args = digest(json!({}));
        let call = Binding {
            purpose: Purpose::RequestState,
            resource: "mcp-lp:test",
            principal: "alice",
            tool: "t",
            arguments: &args,
        };
        let sealed = sealer.seal(&call, "x");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(sealer.open(&call, &sealed), Err(StateRejected::Expired));
    }

    #[test]
    fn refuses_short_or_missing_keys() {
        let short = StateSealer::new(&[key("k1", "short")], DEFAULT_STATE_TTL).unwrap_err();
        assert!(short.to_string().contains("key `k1` is 5 bytes"), "{short}");
        assert!(StateSealer::new(&[], DEFAULT_STATE_TTL).is_err());
        assert!(StateSealer::new(&[key("a", NEW), key("a", OLD)], DEFAULT_STATE_TTL).is_err());
    }

    const CHECK: Duration = Duration::from_secs(5);
    const MAX_AGE: Duration = Duration::from_secs(600);

    fn refreshing(id: &str, value: &str) -> (String, RefreshingSecret) {
        let secret = RefreshingSecret::new(
            format!("request_state.keys.{id}"),
            "{ file = \"state-key\" }",
            SecretString::from(value),
            MAX_AGE,
        );
        (id.to_owned(), secret)
    }

    /// Let the sealer's task see what happened: with time paused, this advances past a check.
    async fn settle() {
        tokio::time::sleep(CHECK * 2).await;
    }

    #[tokio::test(start_paused = true)]
    async fn rejects_state_sealed_with_a_key_whose_file_was_rotated() {
        let (current, previous) = (refreshing("k1", NEW), refreshing("k0", OLD));
        let secret = current.1.clone();
        let sealer =
            StateSealer::rotating(vec![current, previous], DEFAULT_STATE_TTL, CHECK).unwrap();
        let args = digest(json!({}));
        let call = Binding {
            purpose: Purpose::RequestState,
            resource: "mcp-lp:test",
            principal: "alice",
            tool: "t",
            arguments: &args,
        };
        let before = sealer.seal(&call, "x");
        let by_previous = self::sealer(&[key("k0", OLD)]).seal(&call, "y");

        // The key file under id k1 now holds another key: what the old one sealed is forged
        // as far as the new one can tell; the new one seals and opens.
        secret.refresh_with(Ok(SecretString::from(
            "a-completely-different-key-of-32-bytes!",
        )));
        settle().await;
        assert_eq!(sealer.open(&call, &before), Err(StateRejected::Tampered));
        let after = sealer.seal(&call, "z");
        assert_eq!(sealer.open(&call, &after), Ok("z".into()));
        assert_eq!(sealer.sealing_key(), "k1");
        // The other configured key still opens.
        assert_eq!(sealer.open(&call, &by_previous), Ok("y".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn rejects_state_of_a_key_past_its_max_age() {
        let (current, previous) = (refreshing("k1", NEW), refreshing("k0", OLD));
        let (first, second) = (current.1.clone(), previous.1.clone());
        let sealer =
            StateSealer::rotating(vec![current, previous], DEFAULT_STATE_TTL, CHECK).unwrap();
        let args = digest(json!({}));
        let call = Binding {
            purpose: Purpose::RequestState,
            resource: "mcp-lp:test",
            principal: "alice",
            tool: "t",
            arguments: &args,
        };
        let by_first = sealer.seal(&call, "x");
        let by_second = self::sealer(&[key("k0", OLD)]).seal(&call, "y");

        // k0's file cannot be read: it still opens within the max age, then no more.
        second.refresh_with(Err("cannot read state-key-old: not found".into()));
        settle().await;
        assert_eq!(sealer.open(&call, &by_second), Ok("y".into()));
        tokio::time::sleep(MAX_AGE).await;
        settle().await;
        assert_eq!(
            sealer.open(&call, &by_second),
            Err(StateRejected::UnknownKey)
        );
        assert_eq!(sealer.open(&call, &by_first), Ok("x".into()));

        // With no good key left, nothing opens and state is sealed with a key of this process.
        first.refresh_with(Err("cannot read state-key: not found".into()));
        tokio::time::sleep(MAX_AGE).await;
        settle().await;
        assert_eq!(
            sealer.open(&call, &by_first),
            Err(StateRejected::UnknownKey)
        );
        assert!(sealer.sealing_key().starts_with(EPHEMERAL_KEY_PREFIX));
    }

    #[test]
    fn debug_output_names_no_key_material() {
        let sealer = sealer(&[key("k1", NEW)]);
        let printed = format!("{sealer:?} {:?}", key("k1", NEW));
        assert!(!printed.contains(NEW), "{printed}");
    }
}
