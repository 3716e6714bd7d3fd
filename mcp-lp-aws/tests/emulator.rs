//! mcp-lp-aws against the local AWS emulator with IAM enforcement on (ministack, AUTH=true):
//! the emulator, not this crate, decides what each role's credentials may do.
//!
//! Needs `scripts/aws-emulator.sh start` and `eval "$(scripts/aws-emulator.sh env)"`, then
//! `cargo test -p mcp-lp-aws --test emulator -- --ignored` (scripts/test.sh does all three).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mcp_lp::prelude::*;
use mcp_lp::{Grant, Principal};
use mcp_lp_aws::{AwsConfig, AwsError, S3};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use support::{Seed, connect, seed};

/// How long a rotation test waits for what a few TTLs bring; a bound on a hang, not a timing
/// claim.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Docs {
    bucket: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Key {
    /// The object's key.
    key: String,
}

#[mcp_lp::server]
impl Docs {
    /// Read an object.
    #[tool(role = "docs-read")]
    async fn read(&self, s3: S3, Parameters(k): Parameters<Key>) -> Result<String, ToolError> {
        let out = s3
            .get_object()
            .bucket(&self.bucket)
            .key(&k.key)
            .send()
            .await
            .map_err(|e| s3.error("GetObject", &e))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| ToolError::new(e.to_string()))?;
        Ok(String::from_utf8_lossy(&bytes.into_bytes()).into_owned())
    }

    /// What a steered or buggy read tool could try: delete with the read role's credentials.
    #[tool(role = "docs-read")]
    async fn delete_with_read_role(
        &self,
        s3: S3,
        Parameters(k): Parameters<Key>,
    ) -> Result<String, ToolError> {
        s3.delete_object()
            .bucket(&self.bucket)
            .key(&k.key)
            .send()
            .await
            .map_err(|e| s3.error("DeleteObject", &e))?;
        Ok("deleted".into())
    }

    /// Delete an object; needs the grant.
    #[tool(role = "docs-delete", requires = "docs:delete")]
    async fn delete(&self, s3: S3, Parameters(k): Parameters<Key>) -> Result<String, ToolError> {
        s3.delete_object()
            .bucket(&self.bucket)
            .key(&k.key)
            .send()
            .await
            .map_err(|e| s3.error("DeleteObject", &e))?;
        Ok("deleted".into())
    }

    /// The ARN the read role's session has, from STS itself.
    #[tool(role = "docs-read")]
    async fn whoami(&self, aws: AwsConfig) -> Result<String, ToolError> {
        let out = aws_sdk_sts::Client::new(&aws)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| aws.error("STS GetCallerIdentity", &e))?;
        Ok(out.arn().unwrap_or_default().to_owned())
    }

    /// Needs no role.
    #[tool]
    async fn ping(&self) -> String {
        "pong".into()
    }
}

fn docs(seed: &Seed) -> Docs {
    Docs {
        bucket: seed.bucket.clone(),
    }
}

fn config(seed: &Seed, read_role: &str, read_extra: &str) -> String {
    format!(
        "{}\n[aws.roles.docs-read]\narn = \"{read_role}\"\n{read_extra}\n[aws.roles.docs-delete]\narn = \"{}\"\n",
        seed.aws_header(),
        seed.role("mcp-delete"),
    )
}

fn standard(seed: &Seed) -> String {
    config(seed, seed.role("mcp-read-only"), "")
}

fn alice() -> Principal {
    Principal::new("alice@example.com")
}

fn alice_with_delete() -> Principal {
    alice().with_grant(Grant::new("docs:delete").expect("grant"))
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn accepts_read_and_rejects_delete_with_the_read_roles_credentials() {
    let seed = seed();
    let key = seed
        .put_fixture("public/", "hello from the read test")
        .await;
    let (conn, _roles) = connect(docs(&seed), &standard(&seed), alice_with_delete()).await;

    let (failed, text) = conn.text("read", serde_json::json!({ "key": key })).await;
    assert!(!failed, "{text}");
    assert_eq!(text, "hello from the read test");

    // The read role's own credentials are refused by the emulator: the credential is the
    // boundary, not this server's code.
    let (failed, text) = conn
        .text("delete_with_read_role", serde_json::json!({ "key": key }))
        .await;
    assert!(failed, "{text}");
    assert!(
        text.contains("S3 DeleteObject with role `docs-read` failed: AccessDenied"),
        "{text}"
    );
    assert!(text.contains("assumed-role/mcp-read-only/"), "{text}");
    assert!(seed.exists(&key).await, "the read role deleted the object");
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn rejects_delete_without_grant_before_any_assume_role() {
    let seed = seed();
    let key = seed.put_fixture("private/", "keep me").await;
    let (conn, roles) = connect(docs(&seed), &standard(&seed), alice()).await;

    let refused = conn
        .call("delete", serde_json::json!({ "key": key }))
        .await
        .expect_err("refused without the grant");
    assert!(refused.to_string().contains("docs:delete"), "{refused}");
    let stats = roles.stats();
    assert_eq!(stats.assume_role_calls, 0, "a refused call assumed a role");
    assert_eq!(stats.sessions, 0);
    assert!(seed.exists(&key).await);

    // The counter does count: an allowed call assumes its role once.
    let (failed, text) = conn.text("read", serde_json::json!({ "key": key })).await;
    assert!(!failed, "{text}");
    assert_eq!(roles.stats().assume_role_calls, 1);
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn accepts_delete_with_grant() {
    let seed = seed();
    let key = seed.put_fixture("private/", "delete me").await;
    let (conn, _roles) = connect(docs(&seed), &standard(&seed), alice_with_delete()).await;
    let (failed, text) = conn.text("delete", serde_json::json!({ "key": key })).await;
    assert!(!failed, "{text}");
    assert!(
        !seed.exists(&key).await,
        "the granted delete left the object"
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn rejects_object_outside_session_policy_prefix() {
    let seed = seed();
    let public = seed.put_fixture("public/", "public text").await;
    let private = seed.put_fixture("private/", "private text").await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("public-only.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{}/public/*"}}]}}"#,
            seed.bucket
        ),
    )
    .unwrap();
    let extra = format!("session_policy = \"{}\"", policy.display());
    let cfg = config(&seed, seed.role("mcp-read-only"), &extra);
    let (conn, _roles) = connect(docs(&seed), &cfg, alice()).await;

    let (failed, text) = conn
        .text("read", serde_json::json!({ "key": public }))
        .await;
    assert!(!failed, "{text}");
    assert_eq!(text, "public text");
    // The role itself may read private/; the session policy narrows it, and the emulator
    // enforces that.
    let (failed, text) = conn
        .text("read", serde_json::json!({ "key": private }))
        .await;
    assert!(failed, "{text}");
    assert!(
        text.contains("S3 GetObject with role `docs-read` failed: AccessDenied"),
        "{text}"
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn accepts_every_call_across_credential_expiry() {
    let seed = seed();
    let key = seed.put_fixture("public/", "still readable").await;
    // 3-second sessions, which the emulator expires: a call signed with expired credentials
    // would fail with ExpiredToken.
    let cfg = config(&seed, seed.role("mcp-read-only"), "duration = \"3s\"");
    let (conn, roles) = connect(docs(&seed), &cfg, alice()).await;
    for i in 0..40 {
        let (failed, text) = conn.text("read", serde_json::json!({ "key": key })).await;
        assert!(!failed, "call {i}: {text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let stats = roles.stats();
    assert!(
        stats.assume_role_calls >= 3,
        "10 s of 3 s sessions should have rolled over at least twice: {stats:?}"
    );
    assert_eq!(stats.failed_assume_role_calls, 0, "{stats:?}");
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn rejects_role_that_cannot_be_assumed_and_keeps_serving() {
    let seed = seed();
    let key = seed.put_fixture("public/", "x").await;
    let cfg = config(&seed, seed.role("mcp-not-trusting"), "");
    let (conn, roles) = connect(docs(&seed), &cfg, alice_with_delete()).await;

    for _ in 0..2 {
        let (failed, text) = conn.text("read", serde_json::json!({ "key": key })).await;
        assert!(failed, "{text}");
        assert!(
            text.contains("cannot assume IAM role `docs-read`: STS AccessDenied"),
            "{text}"
        );
        // STS's text and the ARNs (the account) stay in the server's log.
        assert!(!text.contains("arn:aws"), "{text}");
        assert!(!text.contains("000000000000"), "{text}");
    }
    assert_eq!(
        roles.stats().failed_assume_role_calls,
        2,
        "no failure is cached"
    );
    // The server keeps serving, and other roles are unaffected.
    assert_eq!(
        conn.text("ping", serde_json::json!({})).await,
        (false, "pong".into())
    );
    let (failed, text) = conn.text("delete", serde_json::json!({ "key": key })).await;
    assert!(!failed, "{text}");
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn rejects_unreachable_sts_and_keeps_serving() {
    let seed = seed();
    // Nothing listens on port 9 (discard): STS, like everything else, is unreachable.
    let cfg = standard(&seed).replace(&seed.endpoint, "http://127.0.0.1:9");
    let (conn, _roles) = connect(docs(&seed), &cfg, alice()).await;
    let (failed, text) = conn
        .text("read", serde_json::json!({ "key": "public/welcome.md" }))
        .await;
    assert!(failed, "{text}");
    assert!(
        text.contains("cannot assume IAM role `docs-read`: no answer from STS"),
        "{text}"
    );
    assert_eq!(
        conn.text("ping", serde_json::json!({})).await,
        (false, "pong".into())
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn accepts_session_named_after_tool_and_principal() {
    let seed = seed();
    let (conn, _roles) = connect(docs(&seed), &standard(&seed), alice()).await;
    let (failed, arn) = conn.text("whoami", serde_json::json!({})).await;
    assert!(!failed, "{arn}");
    assert_eq!(
        arn,
        "arn:aws:sts::000000000000:assumed-role/mcp-read-only/whoami.alice@example.com"
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn accepts_concurrent_first_calls_with_one_assume_role() {
    let seed = seed();
    let key = seed.put_fixture("public/", "many readers").await;
    let (conn, roles) = connect(docs(&seed), &standard(&seed), alice()).await;
    let calls = (0..50).map(|_| conn.text("read", serde_json::json!({ "key": key })));
    for (failed, text) in futures::future::join_all(calls).await {
        assert!(!failed, "{text}");
    }
    assert_eq!(roles.stats().assume_role_calls, 1);
}

fn secrets_config(seed: &Seed, role: &str, secret: &str) -> String {
    format!(
        "{}\n[aws.secrets_role]\narn = \"{role}\"\n\n[aws.secrets]\napi-key = {{ aws_secret = \"{secret}\" }}\n",
        seed.aws_header()
    )
}

async fn start(toml: &str) -> Result<mcp_lp_aws::Aws, AwsError> {
    let config = mcp_lp::Config::from_toml(toml, "emulator-test.toml").expect("configuration");
    mcp_lp_aws::Aws::from_config(&config).await
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn accepts_aws_secret_read_with_its_own_role() {
    let seed = seed();
    let aws = start(&secrets_config(
        &seed,
        seed.role("mcp-secrets-reader"),
        &seed.secret_name,
    ))
    .await
    .unwrap();
    let secret = aws.secret("api-key").unwrap().current().unwrap();
    assert_eq!(secret.expose_secret(), seed.secret_value);
    assert!(!format!("{aws:?}").contains(&seed.secret_value));
}

static ROTATING: AtomicUsize = AtomicUsize::new(0);

/// A fresh `mcp-lp/rotating-*` secret holding `value`, made by the harness user, and the
/// configuration reading it with `ttl`, keeping a failing value for `max_age`.
async fn rotating_secret(seed: &Seed, value: &str, ttl: &str, max_age: &str) -> (String, String) {
    let name = format!(
        "mcp-lp/rotating-{}-{}",
        std::process::id(),
        ROTATING.fetch_add(1, Ordering::SeqCst)
    );
    seed.harness_secrets()
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .expect("the harness creates the secret");
    let toml = format!(
        "[secrets_refresh]\nmax_age = \"{max_age}\"\n\n{}\n[aws.secrets_role]\narn = \"{}\"\n\n[aws.secrets]\napi-key = {{ aws_secret = \"{name}\", ttl = \"{ttl}\" }}\n",
        seed.aws_header(),
        seed.role("mcp-secrets-reader"),
    );
    (name, toml)
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn accepts_put_secret_value_within_its_ttl() {
    let seed = seed();
    let (name, toml) = rotating_secret(&seed, "first-value-7c1e", "1s", "1h").await;
    let aws = start(&toml).await.unwrap();
    let secret = aws.secret("api-key").unwrap().clone();
    assert_eq!(
        secret.current().unwrap().expose_secret(),
        "first-value-7c1e"
    );
    let mut changes = secret.subscribe();

    seed.harness_secrets()
        .put_secret_value()
        .secret_id(&name)
        .secret_string("second-value-9d2f")
        .send()
        .await
        .expect("the harness rotates the secret");
    tokio::time::timeout(PATIENCE, changes.changed())
        .await
        .expect("the new value is fetched within a few TTLs")
        .expect("the secret is alive");
    assert_eq!(
        secret.current().unwrap().expose_secret(),
        "second-value-9d2f"
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn fails_closed_when_deleted_aws_secret_is_past_max_age() {
    let seed = seed();
    let (name, toml) = rotating_secret(&seed, "last-good-4b8a", "1s", "4s").await;
    let aws = start(&toml).await.unwrap();
    let secret = aws.secret("api-key").unwrap().clone();

    seed.harness_secrets()
        .delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("the harness deletes the secret");
    // Refreshes fail, and the last good value still serves.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while secret.failing().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no refresh failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        secret
            .failing()
            .unwrap()
            .contains("ResourceNotFoundException"),
        "{:?}",
        secret.failing()
    );
    assert_eq!(secret.current().unwrap().expose_secret(), "last-good-4b8a");

    // Past the max age, whatever uses it gets an error naming the secret, not the value.
    let expired = loop {
        match secret.current() {
            Err(expired) => break expired,
            Ok(_) => {
                assert!(tokio::time::Instant::now() < deadline, "never expired");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let text = expired.to_string();
    assert!(text.contains("aws.secrets.api-key"), "{text}");
    assert!(text.contains(&name), "{text}");
    assert!(!text.contains("last-good-4b8a"), "{text}");
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn rejects_missing_aws_secret_naming_key_and_code() {
    let seed = seed();
    let err = start(&secrets_config(
        &seed,
        seed.role("mcp-secrets-reader"),
        "mcp-lp/absent",
    ))
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, AwsError::Secret { .. }), "{err:?}");
    assert!(
        text.contains("key `aws.secrets.api-key`: cannot read AWS secret `mcp-lp/absent`: ResourceNotFoundException"),
        "{text}"
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn rejects_aws_secret_whose_role_cannot_be_assumed() {
    let seed = seed();
    let err = start(&secrets_config(
        &seed,
        seed.role("mcp-not-trusting"),
        &seed.secret_name,
    ))
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, AwsError::AssumeRole { .. }), "{err:?}");
    assert!(text.contains("key `aws.secrets_role`"), "{text}");
    assert!(text.contains("STS AccessDenied"), "{text}");
    assert!(!text.contains(&seed.secret_value));
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn rejects_static_keys_without_dev_flag() {
    let seed = seed();
    let toml = standard(&seed).replace("allow_static_aws_keys = true", "");
    let err = start(&toml).await.unwrap_err();
    assert!(matches!(err, AwsError::StaticKeys { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("long-term access key (it has no session token); refusing to start"),
        "{err}"
    );
    assert!(!err.to_string().contains(&seed.server_secret_key()));
}
