use mcp_lp::prelude::*;
use mcp_lp_db::{PgRead, PgWrite};

#[derive(Clone)]
struct S;

#[mcp_lp::server]
impl S {
    /// Writes, and reads through the same capability.
    #[tool(db_write = "records-write", requires = "records:write")]
    async fn insert(&self, mut w: PgWrite, mut r: PgRead) -> Result<String, ToolError> {
        r.query("SELECT 1", &[]).await?;
        w.execute("INSERT INTO records (title) VALUES ($1)", &[&"t"]).await?;
        w.commit().await?;
        Ok(String::new())
    }
}

fn main() {
    let [insert] = <S as mcp_lp::ToolSet>::policies() else { panic!("one tool") };
    assert_eq!(
        insert.capability("db").map(|c| (c.name, c.access)),
        Some(("records-write", mcp_lp::capability::Access::Write))
    );
}
