//! Capability extractors: a handler argument bound to the calling tool's own role.
//!
//! An extractor reads the call's [`CallScope`] (built only by the checkpoint), takes the role the
//! tool declares from its policy, and hands out a client for that role alone. rmcp's extractors
//! are synchronous, so credentials are not fetched here but on the client's first request.

use std::ops::Deref;

use aws_config::SdkConfig;
use aws_sdk_s3::error::ProvideErrorMetadata;
use mcp_lp::capability::Capability;

use crate::kind::AwsRole;
use mcp_lp::{CallScope, ToolError};
use rmcp::ErrorData;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};

use crate::error::AssumeRoleError;
use crate::roles::AwsRoles;

/// An S3 client bound to the calling tool's IAM role.
///
/// Only a tool that declares `#[tool(role = "...")]` may take one; elsewhere it does not compile.
///
/// ```no_run
/// use mcp_lp::prelude::*;
/// use mcp_lp_aws::S3;
///
/// #[derive(Clone)]
/// struct Docs;
///
/// #[mcp_lp::server]
/// impl Docs {
///     /// List the bucket's keys.
///     #[tool(role = "docs-read")]
///     async fn list(&self, s3: S3) -> Result<String, ToolError> {
///         let out = s3
///             .list_objects_v2()
///             .bucket("docs")
///             .send()
///             .await
///             .map_err(|e| s3.error("ListObjectsV2", &e))?;
///         Ok(out.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>().join("\n"))
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct S3 {
    client: aws_sdk_s3::Client,
    role: &'static str,
}

impl S3 {
    /// The client.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// The logical role the client acts as.
    pub fn role(&self) -> &'static str {
        self.role
    }

    /// A [`ToolError`] for a failed S3 `operation`, naming the role and AWS's error code (or the
    /// STS error when the role could not be assumed). Never holds credentials.
    pub fn error<E>(&self, operation: &str, error: &E) -> ToolError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        call_error(self.role, &format!("S3 {operation}"), error)
    }
}

impl Deref for S3 {
    type Target = aws_sdk_s3::Client;

    fn deref(&self) -> &aws_sdk_s3::Client {
        &self.client
    }
}

impl Capability for S3 {
    type Requirement = AwsRole;
}

impl<C: AsRequestContext> FromContextPart<C> for S3 {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        let scope = CallScope::from_context_part(context)?;
        let session = AwsRoles::session(&scope)?;
        Ok(Self {
            client: session.s3(),
            role: session.role,
        })
    }
}

/// An [`SdkConfig`] whose credentials are the calling tool's IAM role, to build any AWS SDK
/// client: `aws_sdk_dynamodb::Client::new(&aws)`.
///
/// Only a tool that declares `#[tool(role = "...")]` may take one; elsewhere it does not compile.
///
/// ```no_run
/// use mcp_lp::prelude::*;
/// use mcp_lp_aws::AwsConfig;
///
/// #[derive(Clone)]
/// struct Docs;
///
/// #[mcp_lp::server]
/// impl Docs {
///     /// Count the buckets the role can see.
///     #[tool(role = "docs-read")]
///     async fn buckets(&self, aws: AwsConfig) -> Result<String, ToolError> {
///         let s3 = aws_sdk_s3::Client::new(&aws);
///         let out = s3.list_buckets().send().await.map_err(|e| aws.error("S3 ListBuckets", &e))?;
///         Ok(out.buckets().len().to_string())
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct AwsConfig {
    config: SdkConfig,
    role: &'static str,
}

impl AwsConfig {
    /// The configuration.
    pub fn config(&self) -> &SdkConfig {
        &self.config
    }

    /// The logical role the configuration's credentials are for.
    pub fn role(&self) -> &'static str {
        self.role
    }

    /// A [`ToolError`] for a failed `operation` (such as `"DynamoDB GetItem"`), naming the role
    /// and AWS's error code (or the STS error when the role could not be assumed).
    pub fn error<E>(&self, operation: &str, error: &E) -> ToolError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        call_error(self.role, operation, error)
    }
}

impl Deref for AwsConfig {
    type Target = SdkConfig;

    fn deref(&self) -> &SdkConfig {
        &self.config
    }
}

impl Capability for AwsConfig {
    type Requirement = AwsRole;
}

impl<C: AsRequestContext> FromContextPart<C> for AwsConfig {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        let scope = CallScope::from_context_part(context)?;
        let session = AwsRoles::session(&scope)?;
        Ok(Self {
            config: session.config(),
            role: session.role,
        })
    }
}

/// The message for a failed AWS call made with `role`'s credentials: the STS error if the role
/// could not be assumed, else the service's error code and message, else the cause.
fn call_error<E>(role: &str, operation: &str, error: &E) -> ToolError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = cause {
        if let Some(assume) = err.downcast_ref::<AssumeRoleError>() {
            // STS's text names the process's identity and account: the log has it, the caller
            // (and the model) get the role's logical name and STS's error code.
            tracing::warn!(role, error = %assume, "{operation} failed: the role could not be assumed");
            return ToolError::new(format!("{operation} failed: {}", assume.caller_message()));
        }
        cause = err.source();
    }
    match error.code() {
        Some(code) => ToolError::new(format!(
            "{operation} with role `{role}` failed: {code}: {}",
            error.message().unwrap_or("(no message)")
        )),
        None => ToolError::new(format!(
            "{operation} with role `{role}` failed: {}",
            crate::error::causes(error)
        )),
    }
}
