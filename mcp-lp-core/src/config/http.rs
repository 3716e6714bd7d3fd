//! The `[http]` table: serving over streamable HTTP as an OAuth 2.1 resource server.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use serde::Deserialize;

use crate::url_policy::https_or_loopback;

/// Algorithms a bearer token may be signed with. Symmetric (HMAC) algorithms and `none` are
/// never accepted: a resource server must not share a signing secret.
pub const ALLOWED_ALGORITHMS: &[&str] = &["RS256", "ES256", "EdDSA"];

/// `[http]`: where and how to serve over streamable HTTP (`serve --http`).
///
/// ```toml
/// [http]
/// listen = "127.0.0.1:8080"
/// path = "/mcp"
/// resource = "https://mcp.example.com/mcp"    # this server's canonical URI: the token audience
/// allowed_hosts = ["mcp.example.com"]         # Host header allow-list (DNS-rebinding defence)
/// allowed_origins = ["https://app.example.com"]
/// max_request_bytes = 1048576
///
/// [http.auth]
/// issuer = "https://auth.example.com"
/// jwks_uri = "https://auth.example.com/.well-known/jwks.json"   # else discovered from the issuer
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpSection {
    /// The socket address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The path of the MCP endpoint.
    #[serde(default = "default_path")]
    pub path: String,
    /// The server's canonical resource URI (RFC 8707): tokens must name it as their audience.
    /// Defaults to `http://<listen><path>`.
    pub resource: Option<String>,
    /// `Host` header values accepted. Defaults to loopback names only.
    #[serde(default = "default_allowed_hosts")]
    pub allowed_hosts: Vec<String>,
    /// `Origin` header values accepted from browsers (with scheme, and port or `:*`). Empty (the
    /// default) accepts only the resource's own origin: a cross-origin browser request is
    /// refused with `403`. A request without `Origin` (not from a browser) is never refused for
    /// it.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The largest request body accepted.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: NonZeroUsize,
    /// How bearer tokens are validated. Required unless `[dev] allow_unauthenticated_http`.
    pub auth: Option<AuthSection>,
    /// The approval page's sign-in: the server as an OAuth client of the `[http.auth]` issuer.
    /// Without it, approvers use the JSON API with their own bearer tokens.
    pub approvals: Option<ApprovalPageSection>,
}

/// `[http.approvals]`: how approvers sign in to the approval page, with the authorization code
/// flow and PKCE (S256) at the `[http.auth]` issuer: a confidential client with
/// `client_secret` (sent with HTTP Basic), or a public one without. The access token the page
/// obtains names this server as its resource and is validated like any bearer token; its
/// scopes are the approver's grants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApprovalPageSection {
    /// The client id registered at the issuer for the approval page, whose redirect URI is
    /// `<resource origin>/approvals/callback`.
    pub client_id: String,
    /// The client's secret, as a secret reference; none for a public client.
    #[serde(default)]
    pub client_secret: Option<crate::config::SecretRef>,
    /// Scopes asked for besides `openid` and the tool's approver grant.
    #[serde(default)]
    pub scope: Option<String>,
}

/// `[http.auth]`: validation of bearer tokens (JWT access tokens).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthSection {
    /// The authorization server's issuer identifier; tokens must carry it as `iss`.
    pub issuer: String,
    /// Where the signing keys are published. Discovered from the issuer's metadata
    /// (RFC 8414, then OpenID Connect discovery) when absent.
    pub jwks_uri: Option<String>,
    /// Accepted signature algorithms, a subset of [`ALLOWED_ALGORITHMS`].
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// The claim naming the principal.
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// The claim carrying the granted scopes: a space-separated string or an array.
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(
        default = "default_leeway",
        deserialize_with = "super::de_duration_value"
    )]
    pub leeway: Duration,
    /// The least time between two fetches of the key set when a token names an unknown key.
    #[serde(
        default = "default_jwks_refresh",
        deserialize_with = "super::de_duration_value"
    )]
    pub jwks_min_refresh: Duration,
    /// The most time between two scheduled fetches of the key set. Between the two bounds, the
    /// key set's own `Cache-Control: max-age` decides.
    #[serde(
        default = "default_jwks_max_refresh",
        deserialize_with = "super::de_duration_value"
    )]
    pub jwks_max_refresh: Duration,
}

impl HttpSection {
    /// The canonical resource URI: `resource`, or `http://<listen><path>`.
    pub fn resource_uri(&self) -> String {
        self.resource
            .clone()
            .unwrap_or_else(|| format!("http://{}{}", self.listen, self.path))
    }

    /// The `Origin`s browser requests may come from: `allowed_origins`, or when that is empty
    /// the resource's own origin, with its port written out.
    pub fn origins_accepted(&self) -> Vec<String> {
        if !self.allowed_origins.is_empty() {
            return self.allowed_origins.clone();
        }
        let resource = self.resource_uri();
        match url::Url::parse(&resource) {
            Ok(url) => match (url.host_str(), url.port_or_known_default()) {
                (Some(host), Some(port)) => vec![format!("{}://{host}:{port}", url.scheme())],
                _ => Vec::new(),
            },
            Err(_) => Vec::new(),
        }
    }

    /// Problems a well-typed section can still have, as `(key, message)`.
    pub(crate) fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !self.path.starts_with('/') {
            problems.push((
                "http.path".into(),
                "the path starts with `/`, like \"/mcp\"".into(),
            ));
        }
        if let Some(resource) = &self.resource
            && let Err(refused) = https_or_loopback(resource)
        {
            problems.push(("http.resource".into(), refused.to_string()));
        }
        if let Some(auth) = &self.auth {
            for (i, alg) in auth.algorithms.iter().enumerate() {
                if !ALLOWED_ALGORITHMS.contains(&alg.as_str()) {
                    problems.push((
                        format!("http.auth.algorithms[{i}]"),
                        format!("`{alg}` is not accepted; use any of RS256, ES256, EdDSA (HMAC and `none` never are)"),
                    ));
                }
            }
            if auth.jwks_max_refresh < auth.jwks_min_refresh || auth.jwks_min_refresh.is_zero() {
                problems.push((
                    "http.auth.jwks_max_refresh".into(),
                    "jwks_min_refresh must be longer than zero and jwks_max_refresh at least as long".into(),
                ));
            }
            if auth.algorithms.is_empty() {
                problems.push((
                    "http.auth.algorithms".into(),
                    "list at least one of RS256, ES256, EdDSA".into(),
                ));
            }
            for (key, uri) in [
                ("http.auth.issuer", Some(&auth.issuer)),
                ("http.auth.jwks_uri", auth.jwks_uri.as_ref()),
            ] {
                if let Some(uri) = uri
                    && let Err(refused) = https_or_loopback(uri)
                {
                    problems.push((key.into(), refused.to_string()));
                }
            }
        }
        problems
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_path() -> String {
    "/mcp".into()
}

fn default_allowed_hosts() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
}

fn default_max_request_bytes() -> NonZeroUsize {
    NonZeroUsize::new(1024 * 1024).unwrap_or(NonZeroUsize::MIN)
}

fn default_algorithms() -> Vec<String> {
    ALLOWED_ALGORITHMS.iter().map(|a| (*a).to_owned()).collect()
}

fn default_principal_claim() -> String {
    "sub".into()
}

fn default_scope_claim() -> String {
    "scope".into()
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(30)
}

fn default_jwks_max_refresh() -> Duration {
    Duration::from_secs(15 * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(auth: &str) -> Vec<(String, String)> {
        let section: HttpSection = toml::from_str(&format!("[auth]\n{auth}")).unwrap();
        section.problems()
    }

    #[test]
    fn accepts_only_the_resources_own_origin_by_default() {
        let section: HttpSection =
            toml::from_str("resource = \"https://mcp.example.com/mcp\"").unwrap();
        assert_eq!(section.origins_accepted(), ["https://mcp.example.com:443"]);
        let section: HttpSection = toml::from_str("listen = \"127.0.0.1:9000\"").unwrap();
        assert_eq!(section.origins_accepted(), ["http://127.0.0.1:9000"]);
        let section: HttpSection =
            toml::from_str("allowed_origins = [\"https://app.example.com:443\"]").unwrap();
        assert_eq!(section.origins_accepted(), ["https://app.example.com:443"]);
    }

    #[test]
    fn refuses_configured_jwks_uri_that_only_looks_like_loopback() {
        let found = problems(
            "issuer = \"https://auth.example.com\"\njwks_uri = \"http://127.0.0.1:1@evil.example/jwks.json\"",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "http.auth.jwks_uri");
        assert!(found[0].1.contains("evil.example"), "{found:?}");
    }

    #[test]
    fn accepts_https_issuer_and_loopback_jwks_uri() {
        let found = problems(
            "issuer = \"https://auth.example.com/\"\njwks_uri = \"http://127.0.0.1:9000/jwks.json\"",
        );
        assert!(found.is_empty(), "{found:?}");
    }
}
