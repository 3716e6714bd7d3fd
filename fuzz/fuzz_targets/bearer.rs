//! Bearer-token and JWT header handling: the HTTP transport's validator, with its issuer's key
//! set served on loopback by this process.
//!
//! The first byte chooses the input's kind: `c` makes the rest a claims object that is signed
//! with the issuer's real key (the second byte picks the header's key id; an `iss` of
//! `"ISSUER"` becomes the issuer's URL), so the claim checks are reached; anything else makes the rest the token itself (headers of any shape, `alg`
//! values, key ids, segments). Properties: no panic; a token accepted has a signature that
//! verifies under the issuer's key, names the configured issuer and this audience, is within
//! `exp`/`nbf` (with the leeway), and its principal is its `sub` with no grant that is not one
//! of its space-separated scopes.
#![no_main]

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use libfuzzer_sys::fuzz_target;
use mcp_lp::__fuzz::BearerCheck;
use mcp_lp::Config;
use serde_json::{Value, json};

/// The issuer's Ed25519 signing key (PKCS#8, base64), made for these tests alone.
const PRIVATE_KEY: &str = "MC4CAQAwBQYDK2VwBCIEIJw7YLCL7Ay90sM5YO7Y2XvE/O3MYTcBDrCLkJzh5NkI";
const PUBLIC_X: &str = "N_pOu0L5bOSJiGORdRaMEcqJk9ASF-Os6BT93UOX-8c";
const AUDIENCE: &str = "http://127.0.0.1:8080/mcp";
const LEEWAY: u64 = 60;

struct Setup {
    runtime: tokio::runtime::Runtime,
    check: BearerCheck,
    issuer: String,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (issuer, check) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let issuer = format!("http://{}", listener.local_addr().unwrap());
            let keys = json!({"keys": [
                {"kty": "OKP", "crv": "Ed25519", "x": PUBLIC_X, "kid": "k1", "alg": "EdDSA", "use": "sig"}
            ]});
            let app = axum::Router::new().route(
                "/jwks.json",
                axum::routing::get(move || {
                    let keys = keys.clone();
                    async move { axum::Json(keys) }
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            let toml = format!(
                "[http]\nresource = \"{AUDIENCE}\"\n[http.auth]\nissuer = \"{issuer}\"\n\
                 jwks_uri = \"{issuer}/jwks.json\"\nalgorithms = [\"EdDSA\", \"ES256\"]\n\
                 leeway = \"{LEEWAY}s\"\njwks_min_refresh = \"3600s\"\njwks_max_refresh = \"3600s\"\n"
            );
            let config = Config::from_toml(&toml, "fuzz.toml").unwrap();
            let auth = config.http().unwrap().auth.clone().unwrap();
            let check = BearerCheck::start(&auth, AUDIENCE.to_owned()).await.unwrap();
            (issuer, check)
        });
        Setup { runtime, check, issuer }
    })
}

fn verifies(token: &str) -> bool {
    let key = DecodingKey::from_ed_components(PUBLIC_X).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok()
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let [kind, rest @ ..] = data else {
        return;
    };
    let token = if *kind == b'c' {
        let [kid, claims @ ..] = rest else {
            return;
        };
        let Ok(mut claims) = serde_json::from_slice::<Value>(claims) else {
            return;
        };
        // The issuer's port is chosen at startup; seeds name it `ISSUER`.
        if claims["iss"] == "ISSUER" {
            claims["iss"] = setup.issuer.as_str().into();
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = match kid % 3 {
            0 => Some("k1".into()),
            1 => None,
            _ => Some("unknown".into()),
        };
        let der = base64::engine::general_purpose::STANDARD
            .decode(PRIVATE_KEY)
            .unwrap();
        let key = EncodingKey::from_ed_der(&der);
        let Ok(token) = jsonwebtoken::encode(&header, &claims, &key) else {
            return;
        };
        token
    } else {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        token.to_owned()
    };

    let outcome = setup.runtime.block_on(setup.check.validate(&token));
    let Ok(principal) = outcome else {
        return;
    };
    assert!(
        verifies(&token),
        "accepted a token whose signature does not verify: {token}"
    );
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], setup.issuer.as_str(), "{claims}");
    let aud_ok = match &claims["aud"] {
        Value::String(aud) => aud == AUDIENCE,
        Value::Array(auds) => auds.iter().any(|a| a == AUDIENCE),
        _ => false,
    };
    assert!(aud_ok, "{claims}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    let exp = claims["exp"].as_f64().expect("an exp");
    assert!(exp + LEEWAY as f64 >= now - 1.0, "{claims}");
    if let Some(nbf) = claims.get("nbf") {
        assert!(
            nbf.as_f64().expect("a numeric nbf") <= now + LEEWAY as f64 + 1.0,
            "{claims}"
        );
    }
    assert_eq!(Some(principal.id()), claims["sub"].as_str(), "{claims}");
    let scopes: Vec<&str> = match &claims["scope"] {
        Value::String(list) => list.split(' ').collect(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for grant in principal.grants() {
        assert!(
            scopes.contains(&grant.name()),
            "grant {} not among {scopes:?}",
            grant.name()
        );
    }
});
