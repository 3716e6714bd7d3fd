//! Errors: why the AWS provider refused to start, and why a role could not be assumed. Each
//! names the configuration key or role and, where AWS answered, its error code; none carries a
//! secret, a key or a session token.

use std::path::PathBuf;

/// Why the AWS provider refused to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwsError {
    /// The `[aws]` table does not match its schema (unknown key, wrong type, missing key).
    #[error(transparent)]
    Config(#[from] mcp_lp::ConfigError),
    /// A value in `[aws]` is of the right type but not allowed.
    #[error("{}: key `{key}`: {reason}", path.display())]
    InvalidSetting {
        /// The configuration file.
        path: PathBuf,
        /// The dotted key, such as `aws.roles.docs-read.arn`.
        key: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// The process identity is a long-term access key and `[dev] allow_static_aws_keys` is off.
    #[error(
        "{}: the process's AWS identity is a long-term access key (it has no session token); refusing to start. Give the process a short-lived identity (web identity / EKS, ECS task role, EC2 instance profile, SSO), or for development only set `[dev] allow_static_aws_keys = true`",
        path.display()
    )]
    StaticKeys {
        /// The configuration file.
        path: PathBuf,
    },
    /// The standard chain found no identity for the process.
    #[error(
        "{}: no AWS identity for the process from the standard chain (environment, web identity, ECS, SSO/profile, IMDSv2): {reason}",
        path.display()
    )]
    NoIdentity {
        /// The configuration file.
        path: PathBuf,
        /// What the chain reported.
        reason: String,
    },
    /// Neither `aws.region` nor the standard chain named a region.
    #[error("{}: key `aws.region`: no AWS region; set `aws.region` or AWS_REGION", path.display())]
    NoRegion {
        /// The configuration file.
        path: PathBuf,
    },
    /// The role that reads `[aws.secrets]` could not be assumed.
    #[error("{}: key `{key}`: {source}", path.display())]
    AssumeRole {
        /// The configuration file.
        path: PathBuf,
        /// The key of the role, `aws.secrets_role`.
        key: String,
        /// What STS said.
        #[source]
        source: Box<AssumeRoleError>,
    },
    /// A secret could not be read from AWS Secrets Manager.
    #[error(
        "{}: key `{key}`: cannot read AWS secret `{name}`: {}: {detail}",
        path.display(),
        code.as_deref().unwrap_or("no answer from Secrets Manager")
    )]
    Secret {
        /// The configuration file.
        path: PathBuf,
        /// The dotted key, such as `aws.secrets.api-key`.
        key: String,
        /// The secret's name or ARN in Secrets Manager.
        name: String,
        /// Secrets Manager's error code, such as `ResourceNotFoundException`.
        code: Option<String>,
        /// What went wrong.
        detail: String,
    },
}

/// A role could not be assumed. The call that needed it fails with this; nothing falls back to
/// the process identity or another role. It reads, for example:
///
/// ```text
/// cannot assume IAM role `docs-read` (arn:aws:iam::123456789012:role/mcp-read-only): STS AccessDenied: User: ... is not authorized to perform: sts:AssumeRole ...
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("cannot assume IAM role `{role}` ({arn}): {}: {detail}", self.answer())]
pub struct AssumeRoleError {
    /// The logical role, as in `#[tool(role = "...")]`.
    pub role: String,
    /// The role's ARN.
    pub arn: String,
    /// STS's error code (`AccessDenied`, `ExpiredToken`, `RegionDisabledException`, ...), or
    /// `None` when STS did not answer (unreachable, timed out) or its answer could not be read.
    pub code: Option<String>,
    /// The HTTP status STS answered with, or `None` when it did not answer.
    pub status: Option<u16>,
    /// STS's message, or why there was no answer.
    pub detail: String,
}

impl AssumeRoleError {
    /// What STS answered, in a few words: `STS AccessDenied`, `STS answered HTTP 403`, or
    /// `no answer from STS`.
    fn answer(&self) -> String {
        match (&self.code, self.status) {
            (Some(code), _) => format!("STS {code}"),
            (None, Some(status)) => format!("STS answered HTTP {status}"),
            (None, None) => "no answer from STS".to_owned(),
        }
    }

    /// The message for the caller of a tool: which logical role could not be assumed and what
    /// STS answered, without STS's text, which names the process's own identity and account,
    /// or the role's ARN. The whole error belongs in the server's log.
    pub fn caller_message(&self) -> String {
        format!(
            "cannot assume IAM role `{}`: {}; the server log has the details",
            self.role,
            self.answer()
        )
    }
}

/// `error` and its causes, each by its `Display`, joined with `: `. Unlike the SDK's
/// `DisplayErrorContext` it never appends a `Debug` rendering (raw responses, headers, bodies).
pub(crate) fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(err) = cause {
        let text = err.to_string();
        // Wrappers often repeat their source's message; say it once.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = err.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_role_arn_and_sts_code_in_message() {
        let err = AssumeRoleError {
            role: "docs-read".into(),
            arn: "arn:aws:iam::123456789012:role/mcp-read-only".into(),
            code: Some("AccessDenied".into()),
            status: Some(403),
            detail: "not authorized to perform sts:AssumeRole".into(),
        };
        assert_eq!(
            err.to_string(),
            "cannot assume IAM role `docs-read` (arn:aws:iam::123456789012:role/mcp-read-only): STS AccessDenied: not authorized to perform sts:AssumeRole"
        );
        let unreachable = AssumeRoleError {
            code: None,
            status: None,
            detail: "connection refused".into(),
            ..err.clone()
        };
        assert!(
            unreachable
                .to_string()
                .ends_with("no answer from STS: connection refused")
        );
    }

    #[test]
    fn rejects_sts_detail_in_the_callers_message() {
        let err = AssumeRoleError {
            role: "docs-read".into(),
            arn: "arn:aws:iam::123456789012:role/mcp-read-only".into(),
            code: Some("AccessDenied".into()),
            status: Some(403),
            detail: "User: arn:aws:sts::123456789012:assumed-role/process-role/i-0abc is not authorized to perform: sts:AssumeRole".into(),
        };
        let message = err.caller_message();
        assert_eq!(
            message,
            "cannot assume IAM role `docs-read`: STS AccessDenied; the server log has the details"
        );
        assert!(!message.contains("123456789012"), "{message}");
        let unreachable = AssumeRoleError {
            code: None,
            status: None,
            ..err
        };
        assert!(
            unreachable
                .caller_message()
                .contains("cannot assume IAM role `docs-read`: no answer from STS")
        );
    }
}
