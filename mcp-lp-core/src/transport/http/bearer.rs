//! Bearer-token validation: a JWT access token becomes a [`Principal`] with grants.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde_json::{Map, Value};

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

/// Validates bearer tokens for one resource.
pub(crate) struct BearerValidator {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    principal_claim: String,
    scope_claim: String,
    leeway_secs: u64,
    jwks: Jwks,
}

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
        })
    }

    /// The issuer tokens must come from.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Validate `token` and turn its claims into a principal whose grants are its scopes.
    pub(crate) async fn validate(&self, token: &str) -> Result<Principal, TokenError> {
        // `alg: none` and unknown algorithms fail to parse here.
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !self.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let key = match &header.kid {
            Some(kid) => self.jwks.key(kid).await,
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
        let scopes: Vec<&str> = match claims.get(&self.scope_claim) {
            Some(Value::String(list)) => list.split_whitespace().collect(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        // A scope outside the grant grammar can match no tool's requirement; it is dropped.
        Ok(scopes
            .into_iter()
            .filter_map(|scope| Grant::new(scope).ok())
            .fold(Principal::new(id), Principal::with_grant))
    }
}
