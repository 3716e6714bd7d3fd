//! Helpers for tests over streamable HTTP: an authorization server's key set on loopback, tokens
//! signed with it, an mcp-lp server started by `serve_http` as `serve --http` starts it, and raw
//! JSON-RPC requests where the status line and headers are what is under test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_lp::{Config, Server, ToolSet};
use serde_json::{Value, json};

/// The protocol revision the raw requests speak.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

async fn loopback_listener() -> (tokio::net::TcpListener, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    (listener, port)
}

/// A stand-in authorization server: Ed25519 keys published as a JWKS on loopback, with
/// `Cache-Control: max-age=1`. It starts with one key, `test`; [`AuthServer::publish`] and
/// [`AuthServer::withdraw`] rotate them.
pub struct AuthServer {
    /// Its issuer identifier, `http://127.0.0.1:<port>`.
    pub issuer: String,
    /// Every key it ever made, by id: (PKCS#8 document, public JWK).
    keys: Mutex<HashMap<String, (Vec<u8>, Value)>>,
    /// The ids of the keys in the published set.
    published: Arc<Mutex<Vec<Value>>>,
}

/// An Ed25519 key from a fixed seed (the key exists only for tests): PKCS#8 v1 is a fixed
/// prefix and the seed. Its PKCS#8 document and public JWK with id `kid`.
fn ed25519_key(kid: &str, seed: u8) -> (Vec<u8>, Value) {
    let seed = [seed; 32];
    let public = Ed25519KeyPair::from_seed_unchecked(&seed)
        .expect("key")
        .public_key()
        .as_ref()
        .to_vec();
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(&seed);
    let jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(&public), "kid": kid, "alg": "EdDSA"});
    (pkcs8, jwk)
}

impl AuthServer {
    /// Publish the key set and return the server.
    pub async fn start() -> Self {
        let (pkcs8, jwk) = ed25519_key("test", 9);
        let published = Arc::new(Mutex::new(vec![jwk.clone()]));
        let (listener, port) = loopback_listener().await;
        let set = published.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let keys = set.lock().expect("key set").clone();
                async move {
                    (
                        [(http::header::CACHE_CONTROL, "max-age=1")],
                        axum::Json(json!({ "keys": keys })),
                    )
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            issuer: format!("http://127.0.0.1:{port}"),
            keys: Mutex::new(HashMap::from([("test".to_owned(), (pkcs8, jwk))])),
            published,
        }
    }

    /// Make key `kid` from `seed` (if new) and add it to the published set.
    pub fn publish(&self, kid: &str, seed: u8) {
        let mut keys = self.keys.lock().expect("keys");
        let (_, jwk) = keys
            .entry(kid.to_owned())
            .or_insert_with(|| ed25519_key(kid, seed));
        let jwk = jwk.clone();
        let mut published = self.published.lock().expect("key set");
        published.retain(|k| k["kid"] != kid);
        published.push(jwk);
    }

    /// Remove key `kid` from the published set; tokens it signs can still be made.
    pub fn withdraw(&self, kid: &str) {
        self.published
            .lock()
            .expect("key set")
            .retain(|k| k["kid"] != kid);
    }

    /// A token for `audience` naming `sub` with the space-separated `scope`, valid for an hour.
    pub fn token(&self, audience: &str, sub: &str, scope: &str) -> String {
        self.token_signed_by("test", audience, sub, scope)
    }

    /// As [`AuthServer::token`], signed by key `kid`.
    pub fn token_signed_by(&self, kid: &str, audience: &str, sub: &str, scope: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let claims = json!({"iss": self.issuer, "aud": audience, "sub": sub, "exp": now + 3600, "scope": scope});
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.into());
        let keys = self.keys.lock().expect("keys");
        let (pkcs8, _) = keys.get(kid).expect("a key made by this server");
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(pkcs8)).expect("token")
    }
}

/// Serve `server` over streamable HTTP on a free loopback port with tokens from `auth`, and
/// `extra` configuration; the endpoint's URL once it accepts connections.
pub async fn serve<S: ToolSet>(
    server: impl Into<Server<S>>,
    auth: &AuthServer,
    extra: &str,
) -> String {
    serve_with_auth(server, auth, extra, "").await
}

/// As [`serve`], with `auth_extra` keys in `[http.auth]`.
pub async fn serve_with_auth<S: ToolSet>(
    server: impl Into<Server<S>>,
    auth: &AuthServer,
    extra: &str,
    auth_extra: &str,
) -> String {
    let (probe, port) = loopback_listener().await;
    drop(probe);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let text = format!(
        "{extra}\n[http]\nlisten = \"127.0.0.1:{port}\"\nresource = \"{url}\"\n[http.auth]\nissuer = \"{issuer}\"\njwks_uri = \"{issuer}/jwks.json\"\n{auth_extra}\n",
        issuer = auth.issuer
    );
    let config = Config::from_toml(&text, "test.toml").expect("test configuration");
    let server = server.into();
    tokio::spawn(async move { mcp_lp::transport::http::serve_http(server, &config).await });
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return url;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the HTTP server did not start listening on port {port}");
}

/// One HTTP reply: status, headers, and the JSON-RPC message in its body (JSON or the last
/// server-sent event), if any.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The JSON-RPC message, if the body held one.
    pub message: Option<Value>,
}

/// POST one JSON-RPC message with `token`, `session` and `extra` headers.
pub async fn post(
    url: &str,
    message: &Value,
    token: &str,
    session: Option<&str>,
    extra: &[(&str, &str)],
) -> Reply {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("MCP-Protocol-Version", PROTOCOL_VERSION)
        .header("Authorization", format!("Bearer {token}"))
        .body(message.to_string());
    if let Some(session) = session {
        request = request.header("Mcp-Session-Id", session);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    reply(request).await
}

/// POST one MCP 2026-07-28 request with `token`: no session; the version and the client's
/// capabilities in `_meta`, the method and tool name in headers.
pub async fn post_stateless(url: &str, method: &str, mut params: Value, token: &str) -> Reply {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut request = reqwest::Client::new()
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", method)
        .header("Authorization", format!("Bearer {token}"));
    if let Some(name) = params["name"].as_str() {
        request = request.header("Mcp-Name", name);
    }
    let message = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    reply(request.body(message.to_string())).await
}

async fn reply(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("body");
    let message = body
        .lines()
        .rev()
        .filter_map(|line| line.strip_prefix("data:"))
        .find(|data| !data.trim().is_empty())
        .or(Some(body.as_str()))
        .and_then(|json| serde_json::from_str(json).ok());
    Reply {
        status,
        headers,
        message,
    }
}

/// Initialize a session with `token` (and `extra` headers) and return its id.
pub async fn open_session(url: &str, token: &str, extra: &[(&str, &str)]) -> String {
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
        "clientInfo": {"name": "mcp-lp-tests", "version": "0"}}});
    let reply = post(url, &initialize, token, None, extra).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let session = reply
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let done = post(url, &initialized, token, Some(&session), extra).await;
    assert!(done.status == 200 || done.status == 202, "{done:?}");
    session
}
