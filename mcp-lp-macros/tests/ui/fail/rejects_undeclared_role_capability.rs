use mcp_lp::__private::rmcp::handler::server::common::{AsRequestContext, FromContextPart};

struct FakeRoleClient;

impl mcp_lp::capability::Capability for FakeRoleClient {
    type Requirement = mcp_lp_aws::AwsRole;
}

impl<C: AsRequestContext> FromContextPart<C> for FakeRoleClient {
    fn from_context_part(_: &mut C) -> Result<Self, mcp_lp::__private::rmcp::ErrorData> {
        Ok(FakeRoleClient)
    }
}

struct S;

#[mcp_lp::server]
impl S {
    #[tool(requires = "docs:read")]
    async fn t(&self, _capability: FakeRoleClient) -> String {
        String::new()
    }
}

fn main() {}
