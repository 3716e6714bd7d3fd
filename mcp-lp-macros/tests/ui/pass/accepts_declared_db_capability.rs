use mcp_lp::__private::rmcp::handler::server::common::{AsRequestContext, FromContextPart};

/// Stands in for a connection from the tool's database pool.
struct FakeDb;

impl mcp_lp::capability::Capability for FakeDb {
    type Requirement = mcp_lp_db::DbRead;
}

impl<C: AsRequestContext> FromContextPart<C> for FakeDb {
    fn from_context_part(_: &mut C) -> Result<Self, mcp_lp::__private::rmcp::ErrorData> {
        Ok(FakeDb)
    }
}

struct S;

#[mcp_lp::server]
impl S {
    /// Query with the tool's database capability.
    #[tool(db = "read")]
    async fn query(&self, _db: FakeDb) -> String {
        String::new()
    }
}

fn main() {
    let [policy] = <S as mcp_lp::ToolSet>::policies() else { panic!("one tool") };
    assert_eq!(policy.capability("db").map(|c| c.name), Some("read"));
}
