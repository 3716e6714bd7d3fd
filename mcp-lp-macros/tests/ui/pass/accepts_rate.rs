use std::time::Duration;

struct S;

#[mcp_lp::server]
impl S {
    /// Search.
    #[tool(rate = "60/min")]
    async fn search(&self) -> String {
        String::new()
    }

    /// Export.
    #[tool(rate = "5/30s")]
    async fn export(&self) -> String {
        String::new()
    }
}

fn main() {
    let [search, export] = <S as mcp_lp::ToolSet>::policies() else { panic!("two tools") };
    let search = search.rate.expect("a rate");
    assert_eq!((search.calls(), search.per()), (60, Duration::from_secs(60)));
    let export = export.rate.expect("a rate");
    assert_eq!((export.calls(), export.per()), (5, Duration::from_secs(30)));
}
