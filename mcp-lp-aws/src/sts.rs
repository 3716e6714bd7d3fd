//! The per-role provider: one AssumeRole call from the process identity, no caching (the cache
//! does that), no fallback.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::types::Tag;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

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
            let (code, status, detail) = code_and_detail(&e);
            AssumeRoleError {
                status,
                ..self.error(code, detail)
            }
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
            status: None,
            detail,
        }
    }
}

/// The service's error code, the HTTP status it answered with, and its message; when it
/// answered in a shape the SDK could not read (moto's `<ErrorResponse><Errors>` form of a 403,
/// say), the status and that; when it did not answer, the whole chain of causes (unreachable,
/// timed out). None of it holds credentials.
pub(crate) fn code_and_detail<E>(
    error: &SdkError<E, HttpResponse>,
) -> (Option<String>, Option<u16>, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let status = service.raw().status().as_u16();
            match err.code() {
                Some(code) => (
                    Some(code.to_owned()),
                    Some(status),
                    err.message().unwrap_or("(no message)").to_owned(),
                ),
                None => (
                    None,
                    Some(status),
                    format!("its HTTP {status} answer could not be read as an AWS error"),
                ),
            }
        }
        SdkError::ResponseError(response) => {
            let status = response.raw().status().as_u16();
            (
                None,
                Some(status),
                format!("its HTTP {status} answer could not be read as an AWS response"),
            )
        }
        other => (None, None, crate::error::causes(other)),
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    #[test]
    fn rejects_sts_error_without_a_code_naming_its_status() {
        use aws_sdk_sts::operation::assume_role::AssumeRoleError as StsError;
        use aws_smithy_types::error::ErrorMetadata;
        let body = "<ErrorResponse><Errors><Error><Code>AccessDenied</Code></Error></Errors></ErrorResponse>";
        let raw = HttpResponse::new(StatusCode::try_from(403).unwrap(), SdkBody::from(body));
        let error =
            SdkError::service_error(StsError::generic(ErrorMetadata::builder().build()), raw);
        let (code, status, detail) = code_and_detail(&error);
        assert_eq!((code, status), (None, Some(403)));
        assert!(detail.contains("could not be read"), "{detail}");
    }

    #[test]
    fn rejects_unreadable_sts_answer_naming_its_status() {
        let body = "<ErrorResponse><Errors><Error><Code>AccessDenied</Code></Error></Errors></ErrorResponse>";
        let raw = HttpResponse::new(StatusCode::try_from(403).unwrap(), SdkBody::from(body));
        let error: SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError, _> =
            SdkError::response_error("unexpected document shape", raw);
        let (code, status, detail) = code_and_detail(&error);
        assert_eq!((code, status), (None, Some(403)));
        let error = AssumeRoleError {
            role: "docs-read".into(),
            arn: "arn:aws:iam::000000000000:role/r".into(),
            code: None,
            status,
            detail,
        };
        let text = error.to_string();
        assert!(text.contains("STS answered HTTP 403"), "{text}");
        assert!(text.contains("could not be read"), "{text}");
        assert!(!text.contains("no answer from STS"), "{text}");
    }
}
