use mcp_lp::prelude::*;
use mcp_lp_db::PgRead;

#[derive(Clone)]
struct S;

#[mcp_lp::server]
impl S {
    /// Declares no database, but asks for a connection.
    #[tool]
    async fn query(&self, mut db: PgRead) -> Result<String, ToolError> {
        db.query("SELECT 1", &[]).await?;
        Ok(String::new())
    }
}

fn main() {}
