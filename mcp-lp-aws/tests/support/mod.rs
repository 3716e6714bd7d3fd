//! Shared by the tests that run against the local AWS emulator (`scripts/aws-emulator.sh
//! start`): its seed, configurations pointing at it, a fixtures client for the non-root test
//! harness user, and an in-process MCP client connected to a server through the checkpoint.
//!
//! The server side authenticates as the seed's non-root user `mcp-lp-server` through the
//! standard chain, so the environment must name it: `eval "$(scripts/aws-emulator.sh env)"`
//! (scripts/test.sh does). Root keys are never used here.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_credential_types::Credentials;
use mcp_lp::{Config, Principal, Server, ToolSet};
use serde::Deserialize;

/// What scripts/aws-emulator/seed.py wrote.
#[derive(Debug, Deserialize)]
pub struct Seed {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub roles: std::collections::BTreeMap<String, String>,
    pub credentials_file: PathBuf,
    pub secret_name: String,
    pub secret_value: String,
}

/// The seed, or a panic saying how to start the emulator.
pub fn seed() -> Seed {
    let path = std::env::var_os("MCP_LP_AWS_SEED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.aws-emulator/seed.json")
        });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; start the emulator with `scripts/aws-emulator.sh start` and run `eval \"$(scripts/aws-emulator.sh env)\"`",
            path.display()
        )
    });
    assert_eq!(
        std::env::var("AWS_PROFILE").as_deref(),
        Ok("mcp-lp-server"),
        "the server's identity must be the seed's non-root user: eval \"$(scripts/aws-emulator.sh env)\""
    );
    serde_json::from_str(&text).expect("seed.json")
}

impl Seed {
    /// `[aws]` pointing at the emulator, allowing the seed user's long-term key.
    pub fn aws_header(&self) -> String {
        format!(
            "[dev]\nallow_static_aws_keys = true\n\n[aws]\nregion = \"{}\"\nendpoint_url = \"{}\"\ns3_force_path_style = true\nallow_short_sessions = true\n",
            self.region, self.endpoint
        )
    }

    pub fn role(&self, name: &str) -> &str {
        &self.roles[name]
    }

    /// The long-term keys of `profile` in the seed's credentials file.
    fn keys(&self, profile: &str) -> (String, String) {
        let text = std::fs::read_to_string(&self.credentials_file).expect("credentials file");
        let mut section = "";
        let (mut id, mut secret) = (None, None);
        for line in text.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name;
            } else if section == profile
                && let Some((k, v)) = line.split_once('=')
            {
                match k.trim() {
                    "aws_access_key_id" => id = Some(v.trim().to_owned()),
                    "aws_secret_access_key" => secret = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
        }
        (id.expect("key id"), secret.expect("secret key"))
    }

    /// The server user's secret access key, to prove it never reaches a log.
    pub fn server_secret_key(&self) -> String {
        self.keys("mcp-lp-server").1
    }

    /// An S3 client for the non-root harness user, who may put and get objects and list the
    /// bucket, and do nothing else.
    pub fn harness_s3(&self) -> aws_sdk_s3::Client {
        let (id, secret) = self.keys("mcp-lp-test-harness");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(id, secret, None, None, "harness"))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// A Secrets Manager client for the non-root harness user, who may create, rotate and
    /// delete the `mcp-lp/rotating-*` secrets and nothing else there.
    pub fn harness_secrets(&self) -> aws_sdk_secretsmanager::Client {
        let (id, secret) = self.keys("mcp-lp-test-harness");
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new(
                self.region.clone(),
            ))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new(id, secret, None, None, "harness"))
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    /// Put a fresh object under `prefix` and return its key.
    pub async fn put_fixture(&self, prefix: &str, body: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let key = format!(
            "{prefix}rust-{}-{}.md",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        self.harness_s3()
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("harness puts a fixture");
        key
    }

    /// Whether `key` exists, asked as the harness user.
    pub async fn exists(&self, key: &str) -> bool {
        match self
            .harness_s3()
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e) if aws_sdk_s3::error::ProvideErrorMetadata::code(&e) == Some("NoSuchKey") => {
                false
            }
            Err(e) => panic!("harness GetObject {key}: {e:?}"),
        }
    }
}

pub use mcp_lp_tests::Connection;

/// Load `config_toml`, build the AWS roles from it and serve `service` with them for
/// `principal`.
pub async fn connect<S: ToolSet>(
    service: S,
    config_toml: &str,
    principal: Principal,
) -> (Connection, mcp_lp_aws::AwsRoles) {
    let config = Config::from_toml(config_toml, "emulator-test.toml").expect("test configuration");
    let aws = mcp_lp_aws::Aws::from_config(&config)
        .await
        .expect("AWS provider starts");
    let roles = aws.roles();
    let server = Server::new(service).provide(aws.roles());
    (
        mcp_lp_tests::connect(server, config_toml, principal).await,
        roles,
    )
}
