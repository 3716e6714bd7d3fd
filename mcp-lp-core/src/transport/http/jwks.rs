//! The authorization server's signing keys: fetched at startup, then again on a timer (the key
//! set's `Cache-Control: max-age`, bounded by `jwks_min_refresh` and `jwks_max_refresh`) and
//! when a token names a key the cache lacks — at most once per `jwks_min_refresh`, so forged key
//! ids cannot turn the server into a request amplifier against the authorization server. A key
//! the set no longer holds stops verifying at once; the bearer validator forgets the tokens it
//! verified with it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

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
    /// Counts key sets: one more each time a fetched set replaces the cached one.
    generation: AtomicU64,
    last_fetch: Mutex<Instant>,
    min_refresh: Duration,
    max_refresh: Duration,
}

/// A fetched key set and how long its server says it stays fresh.
struct Fetched {
    keys: HashMap<String, VerificationKey>,
    max_age: Option<Duration>,
}

impl Jwks {
    /// Find the key set (configured or discovered from the issuer), load it, and keep it
    /// refreshed on a timer for as long as the returned handle lives.
    pub(crate) async fn start(auth: &AuthSection) -> Result<Arc<Self>, JwksError> {
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
        let fetched = fetch(&client, &uri).await?;
        let jwks = Arc::new(Self {
            uri,
            client,
            keys: RwLock::new(Arc::new(fetched.keys)),
            generation: AtomicU64::new(0),
            last_fetch: Mutex::new(Instant::now()),
            min_refresh: auth.jwks_min_refresh,
            max_refresh: auth.jwks_max_refresh,
        });
        let first = jwks.next_refresh(fetched.max_age);
        tokio::spawn(refresh_on_timer(Arc::downgrade(&jwks), first));
        Ok(jwks)
    }

    /// The number of the cached key set; it changes whenever a fetched set replaces it.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the cached set still holds the key with id `kid`.
    pub(crate) async fn holds(&self, kid: &str) -> bool {
        self.keys.read().await.contains_key(kid)
    }

    /// When to fetch again: the set's own max age, within the configured bounds.
    fn next_refresh(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.max_refresh)
            .clamp(self.min_refresh, self.max_refresh)
    }

    /// Fetch the set now and cache it; how long until the next scheduled fetch.
    async fn refresh(&self) -> Duration {
        let mut last = self.last_fetch.lock().await;
        *last = Instant::now();
        match fetch(&self.client, &self.uri).await {
            Ok(fetched) => {
                self.replace(fetched.keys).await;
                self.next_refresh(fetched.max_age)
            }
            Err(error) => {
                tracing::warn!(%error, retry = ?self.min_refresh, "refetching the signing keys failed; keeping the cached set");
                self.min_refresh
            }
        }
    }

    /// Cache `keys` in place of the current set. An empty set is refused (kept as a failed
    /// fetch): it would refuse every token, which is what the issuer's outage, not its
    /// rotation, looks like.
    async fn replace(&self, keys: HashMap<String, VerificationKey>) {
        if keys.is_empty() {
            tracing::warn!(uri = %self.uri, "the signing key set fetched is empty; keeping the cached set");
            return;
        }
        let mut current = self.keys.write().await;
        let removed: Vec<&str> = current
            .keys()
            .filter(|kid| !keys.contains_key(*kid))
            .map(String::as_str)
            .collect();
        let added: Vec<&str> = keys
            .keys()
            .filter(|kid| !current.contains_key(*kid))
            .map(String::as_str)
            .collect();
        if !removed.is_empty() || !added.is_empty() {
            tracing::info!(
                uri = %self.uri,
                added = ?added,
                removed = ?removed,
                "the signing keys changed; tokens signed by a removed key are refused from now on"
            );
        }
        *current = Arc::new(keys);
        self.generation.fetch_add(1, Ordering::AcqRel);
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
            Ok(fetched) => {
                let found = fetched.keys.get(kid).cloned();
                self.replace(fetched.keys).await;
                found
            }
            Err(error) => {
                tracing::warn!(%error, "refetching the signing keys failed; keeping the cached set");
                None
            }
        }
    }

    /// Whether the set holds exactly one key, and which (with its id): for tokens without a
    /// `kid`.
    pub(crate) async fn only_key(&self) -> Option<(String, VerificationKey)> {
        let keys = self.keys.read().await;
        (keys.len() == 1)
            .then(|| {
                keys.iter()
                    .next()
                    .map(|(kid, key)| (kid.clone(), key.clone()))
            })
            .flatten()
    }
}

/// Refetch the key set of `jwks` on its schedule until it is dropped.
async fn refresh_on_timer(jwks: Weak<Jwks>, mut delay: Duration) {
    loop {
        tokio::time::sleep(delay).await;
        let Some(jwks) = jwks.upgrade() else { return };
        delay = jwks.refresh().await;
    }
}

/// `max-age` of a `Cache-Control` header; `no-cache` and `no-store` count as zero.
fn cache_max_age(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::CACHE_CONTROL)?.to_str().ok()?;
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            max_age = seconds
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

/// RFC 8414 metadata, then OpenID Connect discovery, for the issuer's `jwks_uri`. The metadata
/// must name exactly the configured issuer (which tokens' `iss` must equal too), and its
/// `jwks_uri` must pass the same URL rule as a configured one.
async fn discover(client: &reqwest::Client, issuer: &str) -> Result<String, JwksError> {
    let (uri, metadata) = issuer_metadata(client, issuer).await?;
    match metadata.get("jwks_uri").and_then(|v| v.as_str()) {
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
    }
}

/// The issuer's metadata (RFC 8414, then OpenID Connect discovery) and where it was read; it
/// must name exactly `issuer`.
pub(crate) async fn issuer_metadata(
    client: &reqwest::Client,
    issuer: &str,
) -> Result<(String, serde_json::Value), JwksError> {
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
                return Ok((uri, metadata));
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
    get_json_with_headers(client, uri)
        .await
        .map(|(json, _)| json)
}

async fn get_json_with_headers(
    client: &reqwest::Client,
    uri: &str,
) -> Result<(serde_json::Value, http::HeaderMap), JwksError> {
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
    let response = response.error_for_status().map_err(fetch_error)?;
    let headers = response.headers().clone();
    let json = response.json().await.map_err(fetch_error)?;
    Ok((json, headers))
}

/// Fetch the key set and keep the keys usable with the accepted algorithms, by key id.
async fn fetch(client: &reqwest::Client, uri: &str) -> Result<Fetched, JwksError> {
    let (document, headers) = get_json_with_headers(client, uri).await?;
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
    Ok(Fetched {
        keys,
        max_age: cache_max_age(&headers),
    })
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
    fn reads_max_age_from_cache_control() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(cache_max_age(&headers), None);
        headers.insert(
            http::header::CACHE_CONTROL,
            "public, max-age=300".parse().unwrap(),
        );
        assert_eq!(cache_max_age(&headers), Some(Duration::from_secs(300)));
        headers.insert(
            http::header::CACHE_CONTROL,
            "max-age=300, no-cache".parse().unwrap(),
        );
        assert_eq!(cache_max_age(&headers), Some(Duration::ZERO));
        headers.insert(http::header::CACHE_CONTROL, "max-age=lots".parse().unwrap());
        assert_eq!(cache_max_age(&headers), None);
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
