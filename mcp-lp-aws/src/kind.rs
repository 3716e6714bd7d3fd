//! The kind of capability this crate serves: an AWS IAM role a tool assumes.

use mcp_lp::capability::{Access, Kind};

/// The declaration `role = "..."` in `#[tool(...)]` (sugar for
/// `capability(kind = mcp_lp_aws::AwsRole, name = "...")`): the tool assumes its own IAM role,
/// configured by `[aws.roles.<name>]`.
#[derive(Debug)]
#[non_exhaustive]
pub struct AwsRole;

impl Kind for AwsRole {
    const NAME: &'static str = "aws.role";
    const TABLE: &'static str = "aws.roles";
    const ACCESS: Access = Access::Use;
    // The request signer logs the canonical request and the orchestrator the signed one,
    // session token included.
    const SECRET_TRACE_TARGETS: &'static [&'static str] =
        &["aws_sigv4", "aws_smithy_runtime::client::orchestrator"];
}
