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

    /// Archive: a period in days, as configuration writes it (one grammar for both).
    #[tool(rate = "5/2d", timeout = "1h 30m")]
    async fn archive(&self) -> String {
        String::new()
    }
}

fn main() {
    let [search, export, archive] = <S as mcp_lp::ToolSet>::policies() else {
        panic!("three tools")
    };
    let search = search.rate.expect("a rate");
    assert_eq!((search.calls(), search.per()), (60, Duration::from_secs(60)));
    let export = export.rate.expect("a rate");
    assert_eq!((export.calls(), export.per()), (5, Duration::from_secs(30)));
    let configured: mcp_lp::Rate = "5/2d".parse().expect("configuration accepts it");
    assert_eq!(archive.rate, Some(configured));
    assert_eq!(archive.timeout, Some(Duration::from_secs(5400)));
}
