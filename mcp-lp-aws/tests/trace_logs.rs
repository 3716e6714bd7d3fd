//! Secret values, secret access keys and session tokens never reach the logs, even with every
//! target at TRACE (the SDK's own signing and HTTP logs included).
//!
//! Needs the AWS emulator, like tests/emulator.rs. Its own test binary so that the capturing
//! subscriber is installed before anything logs.

mod support;

use std::sync::{Arc, Mutex, OnceLock};

use aws_credential_types::provider::ProvideCredentials as _;
use mcp_lp::Principal;
use mcp_lp::prelude::*;
use mcp_lp_aws::{AwsConfig, S3};
use serde::Deserialize;
use support::{connect, seed};

/// Everything every subscriber event wrote, as JSON lines.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture() -> Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            let writer = capture.clone();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
            capture
        })
        .clone()
}

/// The credentials a tool held, seen from inside the tool as a handler would see them.
static HELD: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

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
        Ok(format!("{} bytes", out.content_length().unwrap_or(0)))
    }

    /// Note the role credentials this tool holds, then use them.
    #[tool(role = "docs-read")]
    async fn hold(&self, aws: AwsConfig) -> Result<String, ToolError> {
        let provider = aws.credentials_provider().expect("role credentials");
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| ToolError::new(e.to_string()))?;
        HELD.lock().expect("held lock").push((
            credentials.secret_access_key().to_owned(),
            credentials.session_token().unwrap_or_default().to_owned(),
        ));
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(aws.config())
                .force_path_style(true)
                .push_auth_scheme(mcp_lp_aws::QuietSigV4::default())
                .build(),
        );
        s3.list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| aws.error("S3 ListObjectsV2", &e))?;
        Ok("held".into())
    }
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn rejects_secrets_and_session_tokens_in_trace_logs() {
    let capture = capture();
    let seed = seed();
    let config = format!(
        "{}\n[aws.roles.docs-read]\narn = \"{}\"\nsource_identity = true\nsession_tags = true\n\n[aws.secrets_role]\narn = \"{}\"\n\n[aws.secrets]\napi-key = {{ aws_secret = \"{}\" }}\n",
        seed.aws_header(),
        seed.role("mcp-read-only"),
        seed.role("mcp-secrets-reader"),
        seed.secret_name,
    );
    let docs = Docs {
        bucket: seed.bucket.clone(),
    };
    let (conn, _roles) = connect(docs, &config, Principal::new("trace@example.com")).await;
    for tool in ["read", "hold", "read", "hold"] {
        let (failed, text) = conn
            .text(tool, serde_json::json!({ "key": "public/welcome.md" }))
            .await;
        assert!(!failed, "{tool}: {text}");
    }

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    // The capture works and is at TRACE: the SDK's signing step logged.
    assert!(
        logs.contains("\"level\":\"TRACE\""),
        "nothing captured at TRACE"
    );
    assert!(
        logs.contains("assumed IAM role"),
        "the AssumeRole was not logged"
    );

    let held = HELD.lock().unwrap().clone();
    assert_eq!(held.len(), 2);
    let mut secrets = vec![seed.server_secret_key(), seed.secret_value.clone()];
    for (secret_key, token) in held {
        assert!(!token.is_empty());
        secrets.push(secret_key);
        secrets.push(token);
    }
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret of {} characters appears in the TRACE logs",
            secret.len()
        );
    }
}

#[tokio::test]
#[ignore = "needs the AWS emulator: scripts/aws-emulator.sh start"]
async fn rejects_rotated_aws_secret_values_in_trace_logs() {
    let capture = capture();
    let seed = seed();
    let harness = seed.harness_secrets();
    let name = format!("mcp-lp/rotating-trace-{}", std::process::id());
    let values = [
        format!("first-{}", std::process::id() ^ 0x51ce),
        format!("second-{}", std::process::id() ^ 0x7e57),
    ];
    harness
        .create_secret()
        .name(&name)
        .secret_string(&values[0])
        .send()
        .await
        .expect("the harness creates the secret");
    let config = format!(
        "[secrets_refresh]\nmax_age = \"2s\"\n\n{}\n[aws.secrets_role]\narn = \"{}\"\n\n[aws.secrets]\napi-key = {{ aws_secret = \"{name}\", ttl = \"1s\" }}\n",
        seed.aws_header(),
        seed.role("mcp-secrets-reader"),
    );
    let config = mcp_lp::Config::from_toml(&config, "trace-rotation.toml").unwrap();
    let aws = mcp_lp_aws::Aws::from_config(&config).await.unwrap();
    let secret = aws.secret("api-key").unwrap().clone();
    let mut changes = secret.subscribe();

    // Rotated, then deleted: every step of the lifecycle logs, none of it with a value.
    harness
        .put_secret_value()
        .secret_id(&name)
        .secret_string(&values[1])
        .send()
        .await
        .expect("the harness rotates the secret");
    let patience = std::time::Duration::from_secs(30);
    tokio::time::timeout(patience, changes.changed())
        .await
        .expect("the rotation is fetched")
        .expect("the secret is alive");
    harness
        .delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("the harness deletes the secret");
    let deadline = tokio::time::Instant::now() + patience;
    while secret.current().is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    for event in [
        "secret_resolved",
        "secret_rotated",
        "secret_refresh_failed",
        "secret_expired",
    ] {
        assert!(logs.contains(event), "no {event} event");
    }
    for value in &values {
        assert!(
            !logs.contains(value.as_str()),
            "a secret value is in the TRACE logs"
        );
    }
}
