use mcp_lp::prelude::*;
use mcp_lp_aws::{AwsConfig, S3};

#[derive(Clone)]
struct Docs;

#[mcp_lp::server]
impl Docs {
    /// Read with the tool's role.
    #[tool(role = "docs-read")]
    async fn read(&self, s3: S3) -> String {
        s3.role().to_owned()
    }

    /// Build any client with the tool's role.
    #[tool(role = "docs-read")]
    async fn other(&self, aws: AwsConfig, scope: CallScope) -> String {
        format!("{} {}", aws.role(), scope.tool().name)
    }
}

fn main() {
    let policies = <Docs as mcp_lp::ToolSet>::policies();
    assert!(
        policies
            .iter()
            .all(|p| p.capability("aws.role").map(|c| c.name) == Some("docs-read"))
    );
}
