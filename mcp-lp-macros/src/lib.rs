//! Attribute macros of mcp-lp. Use them through `mcp-lp-core` (`mcp_lp::server`,
//! `mcp_lp::prelude::tool`), which holds the API they expand to.
//!
//! The macros are thin: they parse and check the attribute, then emit calls to public
//! `mcp_lp` API and rmcp's own `#[tool_router]` and `#[tool]`.
//!
//! ```
//! use mcp_lp::prelude::*;
//!
//! #[derive(Clone)]
//! struct Clock;
//!
//! #[mcp_lp::server]
//! impl Clock {
//!     /// The server's time zone. Runs only for a caller holding the `clock:read` grant.
//!     #[tool(requires = "clock:read", timeout = "1s")]
//!     async fn time_zone(&self) -> Result<String, ToolError> {
//!         Ok("UTC".into())
//!     }
//! }
//! ```
//!
//! This crate has no feature flags.

use proc_macro::TokenStream;

mod server;
mod tool_attr;

/// Turn an impl block's `#[tool(...)]` methods into an mcp-lp server.
///
/// Generates rmcp's tool router, one `mcp_lp::ToolPolicy` per tool (keyed by tool name), an
/// implementation of `mcp_lp::ToolSet`, and a compile-time check that each handler argument
/// that carries privilege is declared by its tool's attribute.
///
/// `#[tool(...)]` accepts mcp-lp's keys — `role = "..."`, `db = "..."` (read) or
/// `db_write = "..."`,
/// `requires = "grant"` or `requires = ["a", "b"]`, `timeout = "30s"`,
/// `max_output_bytes = 65536`, `rate = "60/min"`, `approval = "docs:approve"` (a person holding
/// that grant approves each call) — and passes rmcp's own keys (`name`, `description`,
/// `annotations`, ...) through to rmcp. The server attribute itself accepts
/// `instructions = "..."` and `handler`: the type implements `rmcp::ServerHandler` itself to
/// serve resources, prompts, completion and logging, while its tools stay behind the
/// checkpoint.
#[proc_macro_attribute]
pub fn server(attr: TokenStream, item: TokenStream) -> TokenStream {
    server::expand(attr.into(), item.into()).into()
}

/// Marks a tool method inside an `#[mcp_lp::server]` impl block, where the server attribute
/// reads it. Anywhere else it is an error.
#[proc_macro_attribute]
pub fn tool(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let error = syn::Error::new(
        proc_macro2::Span::call_site(),
        "`#[tool]` marks a method of an `#[mcp_lp::server]` impl block; add `#[mcp_lp::server]` to the impl",
    )
    .to_compile_error();
    quote::quote!(#error #item).into()
}
