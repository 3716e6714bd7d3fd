//! AWS Secrets Manager as a secret source: `[aws.secrets] name = { aws_secret = "..." }`, read
//! once at startup with the role of `[aws.secrets_role]`, held as `SecretString`s.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use secrecy::SecretString;

use crate::attribution::Attribution;
use crate::config::Settings;
use crate::error::AwsError;
use crate::quiet_signing::QuietSigV4;
use crate::sts::{RoleProvider, code_and_detail};

/// Assume the secrets role once and read every configured secret with it. Any failure stops
/// the start, naming the key and Secrets Manager's error code; values are never echoed.
pub(crate) async fn read_all(
    settings: &Settings,
    role: &RoleProvider,
    template: &SdkConfig,
) -> Result<BTreeMap<String, SecretString>, AwsError> {
    let params = Attribution {
        per_principal: false,
        source_identity: false,
        session_tags: false,
    }
    .params("secrets", "", "");
    let credentials = role
        .assume(&params)
        .await
        .map_err(|source| AwsError::AssumeRole {
            path: settings.path.clone(),
            key: "aws.secrets_role".into(),
            source: Box::new(source),
        })?;
    let config = template
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&config)
            .push_auth_scheme(QuietSigV4::default())
            .build(),
    );

    let mut secrets = BTreeMap::new();
    for (key, reference) in &settings.secrets {
        let failed = |code: Option<String>, detail: String| AwsError::Secret {
            path: settings.path.clone(),
            key: format!("aws.secrets.{key}"),
            name: reference.0.clone(),
            code,
            detail,
        };
        let output = client
            .get_secret_value()
            .secret_id(&reference.0)
            .send()
            .await
            .map_err(|e| {
                let (code, _status, detail) = code_and_detail(&e);
                failed(code, detail)
            })?;
        let value = match output.secret_string {
            Some(text) if !text.is_empty() => SecretString::from(text),
            Some(_) => return Err(failed(None, "the secret is empty".into())),
            None => {
                return Err(failed(
                    None,
                    "the secret is binary; only string secrets are supported".into(),
                ));
            }
        };
        secrets.insert(key.clone(), value);
    }
    tracing::info!(
        config = %settings.path.display(),
        secrets = secrets.len(),
        role = %role.settings().arn,
        "read secrets from AWS Secrets Manager"
    );
    Ok(secrets)
}
