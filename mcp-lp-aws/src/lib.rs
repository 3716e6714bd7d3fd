//! # mcp-lp-aws: each tool assumes its own IAM role
//!
//! A tool declares a logical role, `#[tool(role = "docs-read")]`; configuration maps it to an
//! exact role ARN; the tool's handler receives an [`S3`] client (or an [`AwsConfig`] for any
//! SDK client) holding short-lived credentials for that role and no other. A prompt injection
//! that steers the read tool cannot delete anything, because the read tool's credentials cannot.
//!
//! ```toml
//! [aws]
//! region = "eu-west-1"
//!
//! [aws.roles.docs-read]
//! arn = "arn:aws:iam::123456789012:role/mcp-read-only"   # exact; wildcards are refused
//! duration = "15m"                                        # DurationSeconds, 15m to 12h
//! session_policy = "policies/docs-read.json"              # optional: narrows, never widens
//! source_identity = true                                  # CloudTrail names the caller
//! session_tags = true                                     # tags mcp-tool, mcp-principal
//!
//! [aws.roles.docs-delete]
//! arn = "arn:aws:iam::123456789012:role/mcp-delete"
//! external_id = "mcp-lp-docs"
//! ```
//!
//! - The **process identity** comes from aws-config's standard chain and is used only to call
//!   STS. A long-term access key is refused unless `[dev] allow_static_aws_keys = true`.
//! - Each role is assumed with **AssumeRole** on first use, with a RoleSessionName naming the
//!   tool and the principal, and cached: one STS call however many calls arrive together,
//!   refreshed ahead of expiry so that no call waits for STS after warm-up.
//! - If the role cannot be assumed the call **fails**, naming the role and STS's error code.
//!   Nothing falls back to the process identity or another role.
//! - `[aws.secrets]` reads secrets from **AWS Secrets Manager** at startup, with a role of its
//!   own (`[aws.secrets_role]`).
//!
//! Build the roles in the server's `build` step and give them to the checkpoint, never to the
//! service, so that a handler reaches a role only through an extractor:
//!
//! ```no_run
//! use mcp_lp::prelude::*;
//! use mcp_lp_aws::S3;
//!
//! #[derive(Clone)]
//! struct Docs {
//!     bucket: String,
//! }
//!
//! #[mcp_lp::server]
//! impl Docs {
//!     /// Count the documents.
//!     #[tool(role = "docs-read")]
//!     async fn count_documents(&self, s3: S3) -> Result<String, ToolError> {
//!         let out = s3
//!             .list_objects_v2()
//!             .bucket(&self.bucket)
//!             .send()
//!             .await
//!             .map_err(|e| s3.error("ListObjectsV2", &e))?;
//!         Ok(out.key_count().unwrap_or(0).to_string())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     mcp_lp::cli::run(|config| async move {
//!         let aws = mcp_lp_aws::Aws::from_config(&config).await?;
//!         let docs = Docs { bucket: "mcp-docs".into() };
//!         Ok(mcp_lp::Server::new(docs).provide(aws.roles()))
//!     })
//!     .await
//! }
//! ```
//!
//! # Feature flags
//!
//! None: the crate always uses the AWS SDK's default HTTPS client (rustls) on tokio.

mod arn;
mod attribution;
mod cache;
mod config;
mod error;
mod extract;
mod identity;
mod kind;
mod quiet_signing;
mod roles;
mod secrets;
mod session_policy;
mod sts;

pub use crate::arn::{RoleArn, RoleArnError};
pub use crate::attribution::{PRINCIPAL_TAG, TOOL_TAG};
pub use crate::cache::{CacheStats, EXPIRY_MARGIN, REFRESH_BUFFER, REFRESH_RETRY_DELAY};
pub use crate::config::{
    DEFAULT_CACHE_CAPACITY, DEFAULT_DURATION, DEFAULT_SECRET_TTL, MAX_DURATION, MIN_DURATION,
};
pub use crate::error::{AssumeRoleError, AwsError};
pub use crate::extract::{AwsConfig, S3};
pub use crate::identity::IDENTITY_TIMEOUT;
pub use crate::kind::AwsRole;
pub use crate::quiet_signing::QuietSigV4;
pub use crate::roles::{Aws, AwsRoles};
pub use crate::session_policy::MAX_SESSION_POLICY_CHARS;
