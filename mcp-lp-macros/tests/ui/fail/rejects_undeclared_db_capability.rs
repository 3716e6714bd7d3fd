use mcp_lp::__private::rmcp::handler::server::common::{AsRequestContext, FromContextPart};

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
    #[tool(role = "docs-read")]
    async fn t(&self, _capability: FakeDb) -> String {
        String::new()
    }
}

fn main() {}
