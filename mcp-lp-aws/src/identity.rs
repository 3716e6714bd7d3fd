//! The process identity: found by aws-config's standard chain and used only to call STS.
//!
//! The chain is, in order: environment variables, web identity (EKS IRSA), the shared profile
//! (including SSO), the ECS task role, and the EC2 instance profile through IMDS. aws-config's
//! IMDS client only speaks IMDSv2 (it fetches a session token first and has no v1 fallback).

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials as _;

use crate::config::Settings;
use crate::error::AwsError;

/// How long startup waits for the chain to produce the process identity.
pub const IDENTITY_TIMEOUT: Duration = Duration::from_secs(30);

/// The process's SDK configuration, credentials included. Never handed to a tool: only the STS
/// client is built from it.
pub(crate) async fn load(
    settings: &Settings,
    allow_static_keys: bool,
) -> Result<SdkConfig, AwsError> {
    let path = || settings.path.clone();
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(AwsError::NoRegion { path: path() });
    }
    let no_identity = |reason: String| AwsError::NoIdentity {
        path: path(),
        reason,
    };
    let provider = sdk
        .credentials_provider()
        .ok_or_else(|| no_identity("the chain is empty".into()))?;
    let credentials = tokio::time::timeout(IDENTITY_TIMEOUT, provider.provide_credentials())
        .await
        .map_err(|_| no_identity(format!("no answer within {IDENTITY_TIMEOUT:?}")))?
        .map_err(|e| no_identity(crate::error::causes(&e)))?;
    // Temporary credentials always carry a session token; long-term access keys never do.
    if credentials.session_token().is_none() {
        if !allow_static_keys {
            return Err(AwsError::StaticKeys { path: path() });
        }
        tracing::warn!(
            config = %settings.path.display(),
            "the process's AWS identity is a long-term access key, allowed only because [dev] allow_static_aws_keys = true; outside development give the process a short-lived identity"
        );
    }
    Ok(sdk)
}

/// `sdk` without its credentials: the template every tool's client is built from, so that no
/// tool client can fall back to the process identity.
pub(crate) fn without_credentials(sdk: &SdkConfig) -> SdkConfig {
    let mut builder = sdk.to_builder();
    builder.set_credentials_provider(None);
    builder.set_token_provider(None);
    builder.set_identity_cache(Some(aws_config::identity::IdentityCache::no_cache()));
    builder.build()
}
