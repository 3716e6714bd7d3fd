//! The per-role provider: one AssumeRole call from the process identity, no caching (the cache
//! does that), no fallback.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::types::Tag;

use crate::attribution::SessionParams;
use crate::config::RoleSettings;
use crate::error::AssumeRoleError;

/// The provider name the SDK records on credentials from an assumed role.
const PROVIDER_NAME: &str = "mcp-lp-aws";

/// Assumes one configured role with the process identity's STS client.
#[derive(Debug)]
pub(crate) struct RoleProvider {
    settings: RoleSettings,
    sts: aws_sdk_sts::Client,
}

impl RoleProvider {
    pub(crate) fn new(settings: RoleSettings, sts: aws_sdk_sts::Client) -> Self {
        Self { settings, sts }
    }

    pub(crate) fn settings(&self) -> &RoleSettings {
        &self.settings
    }

    /// One AssumeRole call with the role's fixed parameters and the call's `params`.
    pub(crate) async fn assume(
        &self,
        params: &SessionParams,
    ) -> Result<Credentials, AssumeRoleError> {
        let role = &self.settings;
        let mut request = self
            .sts
            .assume_role()
            .role_arn(role.arn.as_str())
            .role_session_name(&params.session_name)
            .duration_seconds(i32::try_from(role.duration.as_secs()).unwrap_or(i32::MAX));
        if let Some(external_id) = &role.external_id {
            request = request.external_id(external_id);
        }
        if let Some(policy) = &role.session_policy {
            request = request.policy(policy.as_str());
        }
        if let Some(source_identity) = &params.source_identity {
            request = request.source_identity(source_identity);
        }
        for (key, value) in &params.tags {
            let tag = Tag::builder()
                .key(*key)
                .value(value)
                .build()
                .map_err(|e| self.error(None, e.to_string()))?;
            request = request.tags(tag);
        }
        let output = request.send().await.map_err(|e| {
            let (code, detail) = code_and_detail(&e);
            self.error(code, detail)
        })?;
        let Some(issued) = output.credentials else {
            return Err(self.error(None, "STS answered without credentials".into()));
        };
        let expiry = SystemTime::try_from(*issued.expiration())
            .map_err(|_| self.error(None, "STS answered with an unusable expiration".into()))?;
        tracing::debug!(
            role = %role.name,
            arn = %role.arn,
            session = %params.session_name,
            "assumed IAM role"
        );
        Ok(Credentials::new(
            issued.access_key_id(),
            issued.secret_access_key(),
            Some(issued.session_token().to_owned()),
            Some(expiry),
            PROVIDER_NAME,
        ))
    }

    fn error(&self, code: Option<String>, detail: String) -> AssumeRoleError {
        AssumeRoleError {
            role: self.settings.name.clone(),
            arn: self.settings.arn.to_string(),
            code,
            detail,
        }
    }
}

/// The service's error code and message, or, when the service did not answer, the whole chain
/// of causes (unreachable, timed out). Neither holds credentials.
pub(crate) fn code_and_detail<E, R>(error: &SdkError<E, R>) -> (Option<String>, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            (
                err.code().map(str::to_owned),
                err.message().unwrap_or("(no message)").to_owned(),
            )
        }
        other => (None, crate::error::causes(other)),
    }
}
