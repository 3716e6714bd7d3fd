//! Signing keys follow the identity provider: its key set is refetched on a timer (its
//! `Cache-Control: max-age`, bounded by `jwks_min_refresh` / `jwks_max_refresh`), a withdrawn
//! key stops verifying, even tokens accepted and remembered before, and a new key verifies
//! without a restart.

use std::time::Duration;

use mcp_lp_tests::http::{AuthServer, Reply, post_stateless, serve_with_auth};
use serde_json::json;

/// How long a test waits for the next scheduled refetch before it gives up; a bound on a hang,
/// not a timing claim.
const PATIENCE: Duration = Duration::from_secs(30);

/// The key set is refetched every second (`max-age=1`, within these bounds).
const REFRESH: &str = "jwks_min_refresh = \"1s\"\njwks_max_refresh = \"2s\"";

async fn list(url: &str, token: &str) -> Reply {
    post_stateless(url, "tools/list", json!({}), token).await
}

/// Call `tools/list` with `token` until it answers `status`; panics after [`PATIENCE`].
async fn until_status(url: &str, token: &str, status: u16) -> Reply {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let reply = list(url, token).await;
        if reply.status == status {
            return reply;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never answered {status}: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn challenge(reply: &Reply) -> String {
    reply
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_token_of_withdrawn_key_even_when_accepted_before() {
    let auth = AuthServer::start().await;
    let url = serve_with_auth(mcp_lp_tests::Fixture::default(), &auth, "", REFRESH).await;
    let remembered = auth.token_signed_by("test", &url, "alice@example.com", "");
    assert_eq!(list(&url, &remembered).await.status, 200);

    // The provider rotates: a new key is published, the old one withdrawn.
    auth.publish("next", 7);
    auth.withdraw("test");
    let refused = until_status(&url, &remembered, 401).await;
    assert!(
        challenge(&refused).contains("names no signing key"),
        "{}",
        challenge(&refused)
    );
    // It stays refused, and so is a token of the withdrawn key never seen before.
    assert_eq!(list(&url, &remembered).await.status, 401);
    let unseen = auth.token_signed_by("test", &url, "bob@example.com", "");
    assert_eq!(list(&url, &unseen).await.status, 401);
    // The new key's tokens are accepted.
    let fresh = auth.token_signed_by("next", &url, "alice@example.com", "");
    assert_eq!(list(&url, &fresh).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_token_of_new_key_without_restart() {
    let auth = AuthServer::start().await;
    let url = serve_with_auth(mcp_lp_tests::Fixture::default(), &auth, "", REFRESH).await;
    let old = auth.token_signed_by("test", &url, "alice@example.com", "");
    assert_eq!(list(&url, &old).await.status, 200);

    auth.publish("next", 7);
    let new = auth.token_signed_by("next", &url, "carol@example.com", "");
    until_status(&url, &new, 200).await;
    // Both keys are published: both verify.
    assert_eq!(list(&url, &old).await.status, 200);

    // Another key under the new key's id does not verify.
    let forged = {
        let other = AuthServer::start().await;
        other.publish("next", 99);
        other.token_signed_by("next", &url, "mallory@example.com", "")
    };
    let reply = list(&url, &forged).await;
    assert_eq!(reply.status, 401, "{reply:?}");
}
