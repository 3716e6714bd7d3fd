use mcp_lp::prelude::*;
use mcp_lp_db::PgWrite;

#[derive(Clone)]
struct S;

#[mcp_lp::server]
impl S {
    /// Declares an AWS role, not a database.
    #[tool(role = "docs-read")]
    async fn query(&self, db: PgWrite) -> Result<String, ToolError> {
        db.commit().await?;
        Ok(String::new())
    }
}

fn main() {}
