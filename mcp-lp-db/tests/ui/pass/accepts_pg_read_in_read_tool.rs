use mcp_lp::prelude::*;
use mcp_lp_db::PgRead;

#[derive(Clone)]
struct S;

#[mcp_lp::server]
impl S {
    /// Reads.
    #[tool(db = "records-read")]
    async fn query(&self, mut db: PgRead) -> Result<String, ToolError> {
        let row = db.query_one("SELECT 1::text", &[]).await?;
        Ok(row.get(0))
    }
}

fn main() {
    let [query] = <S as mcp_lp::ToolSet>::policies() else { panic!("one tool") };
    assert_eq!(
        query.capability("db").map(|c| (c.name, c.access)),
        Some(("records-read", mcp_lp::capability::Access::Read))
    );
}
