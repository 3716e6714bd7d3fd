use mcp_lp::capability::{Access, Kind};
use mcp_lp::prelude::*;
use mcp_lp_db::PgWrite;

/// An IAM role kind, as mcp-lp-aws defines one.
struct AwsRole;

impl Kind for AwsRole {
    const NAME: &'static str = "aws.role";
    const TABLE: &'static str = "aws.roles";
    const ACCESS: Access = Access::Use;
}

#[derive(Clone)]
struct S;

#[mcp_lp::server]
impl S {
    /// Declares an AWS role, not a database.
    #[tool(capability(kind = AwsRole, name = "docs-read"))]
    async fn query(&self, db: PgWrite) -> Result<String, ToolError> {
        db.commit().await?;
        Ok(String::new())
    }
}

fn main() {}
