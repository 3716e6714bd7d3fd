//! SigV4 signing that keeps the session token out of logs. At TRACE the SDK logs every
//! canonical request it signs and every request it sends, headers included, and both hold the
//! session token (`x-amz-security-token`). The clients this crate builds (the tools' S3 clients,
//! STS, Secrets Manager) sign through this scheme instead, so no log level reveals their tokens;
//! a client built from an [`AwsConfig`](crate::AwsConfig) should register it too.

use std::sync::OnceLock;

use aws_runtime::auth::sigv4::{SigV4AuthScheme, SigV4Signer};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::auth::{
    AuthScheme, AuthSchemeEndpointConfig, AuthSchemeId, Sign,
};
use aws_smithy_runtime_api::client::identity::{Identity, SharedIdentityResolver};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::{GetIdentityResolver, RuntimeComponents};
use aws_smithy_runtime_api::http::Headers;
use aws_smithy_types::config_bag::ConfigBag;
use tracing::Dispatch;

/// The SDK's SigV4 auth scheme (same ID, same identity resolver) with a signer that runs with
/// logging off and marks the session-token and authorization headers sensitive, so that logging
/// a request prints `Sensitive` in their place. Registered on a client's configuration it
/// replaces the default SigV4 scheme:
///
/// ```no_run
/// # async fn build(aws: mcp_lp_aws::AwsConfig) {
/// let config = aws_sdk_s3::config::Builder::from(aws.config())
///     .push_auth_scheme(mcp_lp_aws::QuietSigV4::default())
///     .build();
/// let s3 = aws_sdk_s3::Client::from_conf(config);
/// # }
/// ```
#[derive(Debug, Default)]
pub struct QuietSigV4 {
    scheme: SigV4AuthScheme,
    signer: QuietSigner,
}

#[derive(Debug, Default)]
struct QuietSigner(SigV4Signer);

impl AuthScheme for QuietSigV4 {
    fn scheme_id(&self) -> AuthSchemeId {
        self.scheme.scheme_id()
    }

    fn identity_resolver(
        &self,
        identity_resolvers: &dyn GetIdentityResolver,
    ) -> Option<SharedIdentityResolver> {
        self.scheme.identity_resolver(identity_resolvers)
    }

    fn signer(&self) -> &dyn Sign {
        &self.signer
    }
}

impl Sign for QuietSigner {
    fn sign_http_request(
        &self,
        request: &mut HttpRequest,
        identity: &Identity,
        auth_scheme_endpoint_config: AuthSchemeEndpointConfig<'_>,
        runtime_components: &RuntimeComponents,
        config_bag: &ConfigBag,
    ) -> Result<(), BoxError> {
        // One dispatcher for the process: creating one per call would make tracing rebuild
        // every callsite's interest. Signing is synchronous, so the scope covers all of it.
        static SILENT: OnceLock<Dispatch> = OnceLock::new();
        let silent = SILENT.get_or_init(Dispatch::none);
        tracing::dispatcher::with_default(silent, || {
            self.0.sign_http_request(
                request,
                identity,
                auth_scheme_endpoint_config,
                runtime_components,
                config_bag,
            )
        })?;
        mark_sensitive(request)
    }
}

/// Headers whose values must never be logged: the session token, and the signature (which
/// replays the request until it expires).
const SENSITIVE_HEADERS: [&str; 2] = ["x-amz-security-token", "authorization"];

/// Rebuild the request's headers with [`SENSITIVE_HEADERS`] marked sensitive. The SDK's header
/// map only takes strings, so the marked map goes in whole.
fn mark_sensitive(request: &mut HttpRequest) -> Result<(), BoxError> {
    let headers = request.headers();
    if !SENSITIVE_HEADERS
        .iter()
        .any(|name| headers.contains_key(name))
    {
        return Ok(());
    }
    let mut marked = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        let mut value = http::HeaderValue::from_str(value)?;
        if SENSITIVE_HEADERS
            .iter()
            .any(|s| name.eq_ignore_ascii_case(s))
        {
            value.set_sensitive(true);
        }
        marked.append(http::HeaderName::from_bytes(name.as_bytes())?, value);
    }
    *request.headers_mut() = Headers::try_from(marked)?;
    Ok(())
}
