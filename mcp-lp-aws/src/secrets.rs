//! AWS Secrets Manager as a secret source: `[aws.secrets] name = { aws_secret = "...", ttl = "5m" }`,
//! read at startup with the role of `[aws.secrets_role]`, then fetched again every `ttl` (with a
//! fresh session of that role) into a [`RefreshingSecret`].

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use mcp_lp::secret_refresh::RefreshingSecret;
use secrecy::SecretString;

use crate::attribution::Attribution;
use crate::config::Settings;
use crate::error::AwsError;
use crate::quiet_signing::QuietSigV4;
use crate::sts::{RoleProvider, code_and_detail};

/// Why one read failed: Secrets Manager's code (if any) and what went wrong. Never the value.
struct ReadError {
    code: Option<String>,
    detail: String,
}

impl ReadError {
    fn text(&self) -> String {
        match &self.code {
            Some(code) => format!("{code}: {}", self.detail),
            None => self.detail.clone(),
        }
    }
}

/// A Secrets Manager client with a fresh session of the secrets role.
async fn client(
    role: &RoleProvider,
    template: &SdkConfig,
) -> Result<aws_sdk_secretsmanager::Client, crate::error::AssumeRoleError> {
    let params = Attribution {
        per_principal: false,
        source_identity: false,
        session_tags: false,
    }
    .params("secrets", "", "");
    let credentials = role.assume(&params).await?;
    let config = template
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build();
    Ok(aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&config)
            .push_auth_scheme(QuietSigV4::default())
            .build(),
    ))
}

async fn read(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
) -> Result<SecretString, ReadError> {
    let output = client
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .map_err(|e| {
            let (code, _status, detail) = code_and_detail(&e);
            ReadError { code, detail }
        })?;
    match output.secret_string {
        Some(text) if !text.is_empty() => Ok(SecretString::from(text)),
        Some(_) => Err(ReadError {
            code: None,
            detail: "the secret is empty".into(),
        }),
        None => Err(ReadError {
            code: None,
            detail: "the secret is binary; only string secrets are supported".into(),
        }),
    }
}

/// Assume the secrets role and read every configured secret with it. Any failure stops the
/// start, naming the key and Secrets Manager's error code; values are never echoed. Each secret
/// is then fetched again every `ttl` of its reference, within a Tokio runtime.
pub(crate) async fn read_all(
    settings: &Settings,
    role: RoleProvider,
    template: &SdkConfig,
    max_age: std::time::Duration,
) -> Result<BTreeMap<String, RefreshingSecret>, AwsError> {
    let startup = client(&role, template)
        .await
        .map_err(|source| AwsError::AssumeRole {
            path: settings.path.clone(),
            key: "aws.secrets_role".into(),
            source: Box::new(source),
        })?;
    let role = Arc::new(role);
    let template = Arc::new(template.clone());

    let mut secrets = BTreeMap::new();
    for (key, reference) in &settings.secrets {
        let value = read(&startup, &reference.name)
            .await
            .map_err(|e| AwsError::Secret {
                path: settings.path.clone(),
                key: format!("aws.secrets.{key}"),
                name: reference.name.clone(),
                code: e.code,
                detail: e.detail,
            })?;
        let name = format!("aws.secrets.{key}");
        let shown = reference.to_string();
        mcp_lp::audit::record(
            &mcp_lp::audit::Record::new("secret_resolved")
                .str("secret", &name)
                .str("reference", &shown),
        );
        let secret = RefreshingSecret::new(name, reference, value, max_age);
        let (role, template, name) = (role.clone(), template.clone(), reference.name.clone());
        secret.refresh_every(reference.ttl, move || {
            let (role, template, name) = (role.clone(), template.clone(), name.clone());
            async move {
                let client = client(&role, &template)
                    .await
                    .map_err(|e| format!("cannot assume the secrets role: {e}"))?;
                read(&client, &name).await.map_err(|e| e.text())
            }
        });
        secrets.insert(key.clone(), secret);
    }
    tracing::info!(
        config = %settings.path.display(),
        secrets = secrets.len(),
        role = %role.settings().arn,
        "read secrets from AWS Secrets Manager"
    );
    Ok(secrets)
}
