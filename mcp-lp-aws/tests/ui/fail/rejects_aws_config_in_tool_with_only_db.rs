use mcp_lp_aws::AwsConfig;

#[derive(Clone)]
struct Records;

#[mcp_lp::server]
impl Records {
    /// Declares a database capability, not a role.
    #[tool(db = "records")]
    async fn query(&self, aws: AwsConfig) -> String {
        aws.role().to_owned()
    }
}

fn main() {}
