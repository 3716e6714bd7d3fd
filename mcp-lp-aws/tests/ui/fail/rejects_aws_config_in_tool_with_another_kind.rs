use mcp_lp::capability::{Access, Kind};
use mcp_lp_aws::AwsConfig;

/// A database kind, as mcp-lp-db defines one.
struct Database;

impl Kind for Database {
    const NAME: &'static str = "db";
    const TABLE: &'static str = "db";
    const ACCESS: Access = Access::Read;
}

#[derive(Clone)]
struct Records;

#[mcp_lp::server]
impl Records {
    /// Declares a database capability, not a role.
    #[tool(capability(kind = Database, name = "records"))]
    async fn query(&self, aws: AwsConfig) -> String {
        aws.role().to_owned()
    }
}

fn main() {}
