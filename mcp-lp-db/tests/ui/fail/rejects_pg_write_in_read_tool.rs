use mcp_lp::prelude::*;
use mcp_lp_db::PgWrite;

#[derive(Clone)]
struct S;

#[mcp_lp::server]
impl S {
    /// Declares read access, but asks for a read-write connection.
    #[tool(db = "records-read")]
    async fn query(&self, mut db: PgWrite) -> Result<String, ToolError> {
        db.execute("DELETE FROM records", &[]).await?;
        Ok(String::new())
    }
}

fn main() {}
