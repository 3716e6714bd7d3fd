//! The authorization server's signing keys: fetched once at startup, cached, and refetched when
//! a token names a key the cache lacks — at most once per `jwks_min_refresh`, so forged key ids
//! cannot turn the server into a request amplifier against the authorization server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};

use crate::config::AuthSection;
use crate::url_policy::https_or_loopback;

/// How long one fetch of metadata or keys may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A verification key and the one algorithm it verifies.
#[derive(Clone)]
pub(crate) struct VerificationKey {
    pub(crate) key: DecodingKey,
    pub(crate) algorithm: Algorithm,
}

/// Why the key set could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The HTTP request failed or returned an error status.
    #[error("cannot fetch {uri}: {reason}")]
    Fetch {
        /// What was fetched.
        uri: String,
        /// Why it failed.
        reason: String,
    },
    /// The document is not what was expected.
    #[error("{uri} is not a valid {what}: {reason}")]
    Invalid {
        /// What was fetched.
        uri: String,
        /// What it should have been.
        what: &'static str,
        /// Why it is not.
        reason: String,
    },
}

pub(crate) struct Jwks {
    uri: String,
    client: reqwest::Client,
    keys: RwLock<Arc<HashMap<String, VerificationKey>>>,
    last_fetch: Mutex<Instant>,
    min_refresh: Duration,
}

impl Jwks {
    /// Find the key set (configured or discovered from the issuer) and load it.
    pub(crate) async fn start(auth: &AuthSection) -> Result<Self, JwksError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| JwksError::Fetch {
                uri: auth.issuer.clone(),
                reason: e.to_string(),
            })?;
        let uri = match &auth.jwks_uri {
            Some(uri) => uri.clone(),
            None => discover(&client, &auth.issuer).await?,
        };
        let keys = fetch(&client, &uri).await?;
        Ok(Self {
            uri,
            client,
            keys: RwLock::new(Arc::new(keys)),
            last_fetch: Mutex::new(Instant::now()),
            min_refresh: auth.jwks_min_refresh,
        })
    }

    /// The key with id `kid`, refetching the set once if it is unknown and the last fetch is
    /// older than the minimum interval.
    pub(crate) async fn key(&self, kid: &str) -> Option<VerificationKey> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Some(key.clone());
        }
        let mut last = self.last_fetch.lock().await;
        // Another request may have refreshed while this one waited for the lock.
        if let Some(key) = self.keys.read().await.get(kid) {
            return Some(key.clone());
        }
        if last.elapsed() < self.min_refresh {
            return None;
        }
        *last = Instant::now();
        match fetch(&self.client, &self.uri).await {
            Ok(keys) => {
                let found = keys.get(kid).cloned();
                *self.keys.write().await = Arc::new(keys);
                found
            }
            Err(error) => {
                tracing::warn!(%error, "refetching the signing keys failed; keeping the cached set");
                None
            }
        }
    }

    /// Whether the set holds exactly one key, and which: for tokens without a `kid`.
    pub(crate) async fn only_key(&self) -> Option<VerificationKey> {
        let keys = self.keys.read().await;
        (keys.len() == 1)
            .then(|| keys.values().next().cloned())
            .flatten()
    }
}

/// RFC 8414 metadata, then OpenID Connect discovery, for the issuer's `jwks_uri`. The metadata
/// must name exactly the configured issuer (which tokens' `iss` must equal too), and its
/// `jwks_uri` must pass the same URL rule as a configured one.
async fn discover(client: &reqwest::Client, issuer: &str) -> Result<String, JwksError> {
    // Both well-known locations are built from the issuer without its terminating slash.
    let base = issuer.strip_suffix('/').unwrap_or(issuer);
    let (origin, path) = split_origin(base);
    let candidates = [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{base}/.well-known/openid-configuration"),
    ];
    let mut last_error = None;
    for uri in candidates {
        match get_json(client, &uri).await {
            Ok(metadata) => {
                if metadata.get("issuer").and_then(|v| v.as_str()) != Some(issuer) {
                    last_error = Some(JwksError::Invalid {
                        uri,
                        what: "authorization server metadata",
                        reason: format!("its `issuer` is not `{issuer}`"),
                    });
                    continue;
                }
                return match metadata.get("jwks_uri").and_then(|v| v.as_str()) {
                    Some(jwks) => match https_or_loopback(jwks) {
                        Ok(_) => Ok(jwks.to_owned()),
                        Err(refused) => Err(JwksError::Invalid {
                            uri,
                            what: "authorization server metadata",
                            reason: format!("its `jwks_uri` {refused}"),
                        }),
                    },
                    None => Err(JwksError::Invalid {
                        uri,
                        what: "authorization server metadata",
                        reason: "it has no `jwks_uri`".into(),
                    }),
                };
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or(JwksError::Fetch {
        uri: issuer.into(),
        reason: "no metadata".into(),
    }))
}

fn split_origin(uri: &str) -> (&str, &str) {
    let after_scheme = uri.find("://").map_or(0, |i| i + 3);
    match uri[after_scheme..].find('/') {
        Some(i) => uri.split_at(after_scheme + i),
        None => (uri, ""),
    }
}

async fn get_json(client: &reqwest::Client, uri: &str) -> Result<serde_json::Value, JwksError> {
    let fetch_error = |e: reqwest::Error| JwksError::Fetch {
        uri: uri.to_owned(),
        reason: e.to_string(),
    };
    let response = client.get(uri).send().await.map_err(fetch_error)?;
    // Redirects are never followed: the target would escape the URL rule the URI passed.
    if response.status().is_redirection() {
        let target = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nowhere");
        return Err(JwksError::Fetch {
            uri: uri.to_owned(),
            reason: format!(
                "answered {} redirecting to `{target}`; redirects are not followed, configure the final URL",
                response.status()
            ),
        });
    }
    response
        .error_for_status()
        .map_err(fetch_error)?
        .json()
        .await
        .map_err(fetch_error)
}

/// Fetch the key set and keep the keys usable with the accepted algorithms, by key id.
async fn fetch(
    client: &reqwest::Client,
    uri: &str,
) -> Result<HashMap<String, VerificationKey>, JwksError> {
    let document = get_json(client, uri).await?;
    let set: JwkSet = serde_json::from_value(document).map_err(|e| JwksError::Invalid {
        uri: uri.to_owned(),
        what: "JSON Web Key Set",
        reason: e.to_string(),
    })?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        // The algorithm follows from the key type; a key that names another is skipped.
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            // Symmetric and unknown keys are never verification keys here.
            _ => continue,
        };
        let named = jwk.common.key_algorithm;
        let consistent = matches!(
            (named, algorithm),
            (None, _)
                | (Some(KeyAlgorithm::RS256), Algorithm::RS256)
                | (Some(KeyAlgorithm::ES256), Algorithm::ES256)
                | (Some(KeyAlgorithm::EdDSA), Algorithm::EdDSA)
        );
        if !consistent {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        keys.insert(kid, VerificationKey { key, algorithm });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::response::IntoResponse as _;
    use axum::routing::get;
    use serde_json::{Value, json};

    use super::*;

    /// Serve `documents` (path → JSON) on loopback; `/moved` redirects to `/jwks.json`. Returns
    /// the base URL.
    async fn authorization_server(documents: impl Fn(&str) -> Vec<(String, Value)>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut app = Router::new().route(
            "/moved",
            get(|| async {
                (StatusCode::FOUND, [(http::header::LOCATION, "/jwks.json")]).into_response()
            }),
        );
        for (path, body) in documents(&base) {
            app = app.route(&path, get(move || async move { axum::Json(body) }));
        }
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    fn auth(toml: &str) -> AuthSection {
        toml::from_str(toml).unwrap()
    }

    #[tokio::test]
    async fn accepts_discovery_for_issuer_with_trailing_slash() {
        let base = authorization_server(|base| {
            vec![
                (
                    "/.well-known/oauth-authorization-server".into(),
                    json!({"issuer": format!("{base}/"), "jwks_uri": format!("{base}/jwks.json")}),
                ),
                ("/jwks.json".into(), json!({"keys": []})),
            ]
        })
        .await;
        let jwks = Jwks::start(&auth(&format!("issuer = \"{base}/\"")))
            .await
            .unwrap();
        assert_eq!(jwks.uri, format!("{base}/jwks.json"));
    }

    #[tokio::test]
    async fn refuses_discovered_jwks_uri_that_only_looks_like_loopback() {
        let base = authorization_server(|base| {
            vec![(
                "/.well-known/oauth-authorization-server".into(),
                json!({"issuer": base, "jwks_uri": "http://127.0.0.1:1@evil.example/jwks.json"}),
            )]
        })
        .await;
        let error = Jwks::start(&auth(&format!("issuer = \"{base}\"")))
            .await
            .err()
            .expect("refused");
        let text = error.to_string();
        assert!(text.contains("jwks_uri"), "{text}");
        assert!(text.contains("evil.example"), "{text}");
    }

    #[tokio::test]
    async fn refuses_discovered_plain_http_jwks_uri() {
        let base = authorization_server(|base| {
            vec![(
                "/.well-known/oauth-authorization-server".into(),
                json!({"issuer": base, "jwks_uri": "http://keys.example/jwks.json"}),
            )]
        })
        .await;
        let error = Jwks::start(&auth(&format!("issuer = \"{base}\"")))
            .await
            .err()
            .expect("refused");
        assert!(error.to_string().contains("https"), "{error}");
    }

    #[tokio::test]
    async fn refuses_to_follow_a_redirect_for_keys() {
        let base = authorization_server(|_| vec![("/jwks.json".into(), json!({"keys": []}))]).await;
        let config = format!("issuer = \"{base}\"\njwks_uri = \"{base}/moved\"");
        let error = Jwks::start(&auth(&config)).await.err().expect("refused");
        let text = error.to_string();
        assert!(text.contains("redirects are not followed"), "{text}");
        assert!(text.contains("/jwks.json"), "{text}");
    }

    #[test]
    fn splits_issuer_into_origin_and_path() {
        assert_eq!(
            split_origin("https://a.example.com"),
            ("https://a.example.com", "")
        );
        assert_eq!(
            split_origin("https://a.example.com/tenant/1"),
            ("https://a.example.com", "/tenant/1")
        );
    }
}
