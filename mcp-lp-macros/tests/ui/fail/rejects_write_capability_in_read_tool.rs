use mcp_lp::__private::rmcp::handler::server::common::{AsRequestContext, FromContextPart};

/// Stands in for a read-write connection.
struct FakeWriter;

impl mcp_lp::capability::Capability for FakeWriter {
    type Requirement = mcp_lp_db::DbWrite;
}

impl<C: AsRequestContext> FromContextPart<C> for FakeWriter {
    fn from_context_part(_: &mut C) -> Result<Self, mcp_lp::__private::rmcp::ErrorData> {
        Ok(FakeWriter)
    }
}

struct S;

#[mcp_lp::server]
impl S {
    /// Declares read access but asks for a writer.
    #[tool(db = "records")]
    async fn query(&self, _w: FakeWriter) -> String {
        String::new()
    }
}

fn main() {}
