use mcp_lp::__private::rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use mcp_lp::capability::Access;

/// Stands in for a read-only connection.
struct FakeReader;

impl mcp_lp::capability::Capability for FakeReader {
    type Requirement = mcp_lp_db::DbRead;
}

impl<C: AsRequestContext> FromContextPart<C> for FakeReader {
    fn from_context_part(_: &mut C) -> Result<Self, mcp_lp::__private::rmcp::ErrorData> {
        Ok(FakeReader)
    }
}

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
    /// A write capability also allows reads.
    #[tool(db_write = "records-write")]
    async fn insert(&self, _w: FakeWriter, _r: FakeReader) -> String {
        String::new()
    }

    /// A read capability.
    #[tool(db = "records-read")]
    async fn query(&self, _r: FakeReader) -> String {
        String::new()
    }
}

fn main() {
    let [insert, query] = <S as mcp_lp::ToolSet>::policies() else { panic!("two tools") };
    assert_eq!(insert.capability("db").map(|c| (c.name, c.access)), Some(("records-write", Access::Write)));
    assert_eq!(query.capability("db").map(|c| (c.name, c.access)), Some(("records-read", Access::Read)));
}
