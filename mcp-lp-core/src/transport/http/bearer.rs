//! Bearer-token validation: a JWT access token becomes a [`Principal`] with grants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::jwks::{Jwks, JwksError};
use crate::config::AuthSection;
use crate::grant::Grant;
use crate::principal::Principal;

/// Why a bearer token was refused. The message is sent to the client as the
/// `error_description` of a `401`, so it names the failed check and nothing of the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts with a JSON header.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// Signed with an algorithm outside the allow-list, or not the algorithm of its key.
    #[error("the token's algorithm `{0}` is not accepted")]
    Algorithm(String),
    /// Names a key the authorization server does not publish.
    #[error("the token names no signing key of the authorization server")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    Signature,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `aud` does not name this server.
    #[error("the token's audience is not this server")]
    Audience,
    /// `iss` is not the configured issuer.
    #[error("the token's issuer is not the configured authorization server")]
    Issuer,
    /// A required claim is absent or of the wrong type.
    #[error("the token lacks a valid `{0}` claim")]
    Claim(String),
}

/// Validated tokens remembered; when full, the cache is emptied and refilled.
const MAX_CACHED_TOKENS: usize = 10_000;

/// Validates bearer tokens for one resource.
///
/// A client presents the same token on every request, so a validated token is remembered, by
/// its SHA-256, until its own `exp` (plus leeway): the signature is checked once per token, not
/// once per call. Each remembered token keeps the id of the key that verified it: once the key
/// set no longer holds that key, the token is forgotten and refused, however long before its
/// expiry.
pub(crate) struct BearerValidator {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    principal_claim: String,
    scope_claim: String,
    leeway_secs: u64,
    jwks: Arc<Jwks>,
    validated: Mutex<HashMap<TokenDigest, Validated>>,
}

/// A token verified earlier.
struct Validated {
    principal: Arc<Principal>,
    exp: u64,
    /// The key that verified it.
    kid: String,
    /// The key set it was last seen in, by [`Jwks::generation`].
    generation: u64,
}

/// The SHA-256 of a token: how a validated token is remembered without keeping the token.
type TokenDigest = [u8; 32];

impl BearerValidator {
    /// A validator for tokens whose audience is `audience`, with the issuer's keys loaded.
    pub(crate) async fn start(auth: &AuthSection, audience: String) -> Result<Self, JwksError> {
        let algorithms = auth
            .algorithms
            .iter()
            .filter_map(|name| match name.as_str() {
                "RS256" => Some(Algorithm::RS256),
                "ES256" => Some(Algorithm::ES256),
                "EdDSA" => Some(Algorithm::EdDSA),
                _ => None,
            })
            .collect();
        Ok(Self {
            issuer: auth.issuer.clone(),
            audience,
            algorithms,
            principal_claim: auth.principal_claim.clone(),
            scope_claim: auth.scope_claim.clone(),
            leeway_secs: auth.leeway.as_secs(),
            jwks: Jwks::start(auth).await?,
            validated: Mutex::new(HashMap::new()),
        })
    }

    /// The issuer tokens must come from.
    /// Forget every remembered token of a principal `revoked` names: its next request is
    /// validated again, and refused by the checkpoint while the revocation stands.
    pub(crate) fn forget(&self, revoked: impl Fn(&str) -> bool) -> usize {
        let Ok(mut cache) = self.validated.lock() else {
            return 0;
        };
        let before = cache.len();
        cache.retain(|_, v| !revoked(v.principal.id()));
        before - cache.len()
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Validate `token` and turn its claims into a principal whose grants are its scopes.
    pub(crate) async fn validate(&self, token: &str) -> Result<Arc<Principal>, TokenError> {
        let digest: TokenDigest = Sha256::digest(token.as_bytes()).into();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let generation = self.jwks.generation();
        let remembered = self.validated.lock().ok().and_then(|cache| {
            cache
                .get(&digest)
                .map(|v| (Arc::clone(&v.principal), v.exp, v.kid.clone(), v.generation))
        });
        if let Some((principal, exp, kid, seen)) = remembered {
            if now > exp.saturating_add(self.leeway_secs) {
                return Err(TokenError::Expired);
            }
            if seen == generation {
                return Ok(principal);
            }
            // The key set changed since: the token stands only if its key is still in it.
            if self.jwks.holds(&kid).await {
                if let Ok(mut cache) = self.validated.lock()
                    && let Some(entry) = cache.get_mut(&digest)
                {
                    entry.generation = generation;
                }
                return Ok(principal);
            }
            if let Ok(mut cache) = self.validated.lock() {
                // Purge every token of the withdrawn key, not only this one.
                cache.retain(|_, v| v.kid != kid);
            }
            return Err(TokenError::UnknownKey);
        }
        let (principal, exp, kid) = self.verify(token).await?;
        let principal = Arc::new(principal);
        if let Ok(mut cache) = self.validated.lock() {
            if cache.len() >= MAX_CACHED_TOKENS {
                cache.clear();
            }
            cache.insert(
                digest,
                Validated {
                    principal: Arc::clone(&principal),
                    exp,
                    kid,
                    generation,
                },
            );
        }
        Ok(principal)
    }

    /// Validate `token` as [`BearerValidator::validate`] does, and give its `exp` too (seconds
    /// since the epoch): what a session opened with it must not outlive.
    pub(crate) async fn validate_with_expiry(
        &self,
        token: &str,
    ) -> Result<(Principal, u64), TokenError> {
        let (principal, exp, _) = self.verify(token).await?;
        Ok((principal, exp))
    }

    /// Check the token's signature and claims; the principal, the token's `exp` and the id of
    /// the key that verified it.
    async fn verify(&self, token: &str) -> Result<(Principal, u64, String), TokenError> {
        // `alg: none` and unknown algorithms fail to parse here.
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !self.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let (kid, key) = match &header.kid {
            Some(kid) => self.jwks.key(kid).await.map(|key| (kid.clone(), key)),
            None => self.jwks.only_key().await,
        }
        .ok_or(TokenError::UnknownKey)?;
        if key.algorithm != header.alg {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }

        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway_secs;
        let claims = decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidAudience => TokenError::Audience,
                ErrorKind::InvalidIssuer => TokenError::Issuer,
                ErrorKind::InvalidAlgorithm => TokenError::Algorithm(format!("{:?}", header.alg)),
                ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
                    TokenError::Claim(claim.clone())
                }
                ErrorKind::InvalidSignature => TokenError::Signature,
                _ => TokenError::Malformed,
            })?
            .claims;

        let id = claims
            .get(&self.principal_claim)
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.len() <= 256 && !id.chars().any(char::is_control))
            .ok_or_else(|| TokenError::Claim(self.principal_claim.clone()))?;
        let scopes = scopes(claims.get(&self.scope_claim));
        // NumericDate may carry a fraction; validation above already checked it is a number.
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .filter(|exp| *exp >= 0.0)
            .ok_or_else(|| TokenError::Claim("exp".into()))? as u64;
        // A scope outside the grant grammar can match no tool's requirement; it is dropped.
        let principal = scopes
            .into_iter()
            .filter_map(|scope| Grant::new(scope).ok())
            .fold(Principal::new(id), Principal::with_grant);
        Ok((principal, exp, kid))
    }
}

/// Remove the caller's credentials from a request that passed the gate: rmcp hands the whole
/// request to every handler, and tools never see the caller's token (nor cookies or proxy
/// credentials, which are no business of theirs either).
pub(crate) fn strip_credentials(headers: &mut http::HeaderMap) {
    for name in [
        http::header::AUTHORIZATION,
        http::header::COOKIE,
        http::header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(name);
    }
}

/// The scopes of a scope claim: a string of scopes separated by spaces (RFC 6749 §3.3: U+0020
/// only, so no other whitespace splits one scope into two grants), or an array of strings.
fn scopes(claim: Option<&Value>) -> Vec<&str> {
    match claim {
        Some(Value::String(list)) => list.split(' ').filter(|s| !s.is_empty()).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn accepts_scopes_separated_by_spaces() {
        let claim = json!(" docs:read  docs:list ");
        assert_eq!(scopes(Some(&claim)), ["docs:read", "docs:list"]);
        let claim = json!(["docs:read", "docs:list"]);
        assert_eq!(scopes(Some(&claim)), ["docs:read", "docs:list"]);
    }

    #[test]
    fn rejects_scope_split_on_other_whitespace() {
        for separator in ["\u{a0}", "\t", "\n", "\u{2003}", "\u{3000}", "\u{85}"] {
            let claim = json!(format!("docs:read{separator}docs:delete"));
            let found = scopes(Some(&claim));
            assert_eq!(found.len(), 1, "{separator:?}: {found:?}");
            // And the one scope it is is no grant at all.
            assert!(Grant::new(found[0]).is_err(), "{separator:?}");
        }
    }
}
