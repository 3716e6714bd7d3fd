use mcp_lp_aws::S3;

#[derive(Clone)]
struct Docs;

#[mcp_lp::server]
impl Docs {
    /// Declares no role, so it may not hold an S3 client.
    #[tool(requires = "docs:delete")]
    async fn delete(&self, s3: S3) -> String {
        s3.role().to_owned()
    }
}

fn main() {}
