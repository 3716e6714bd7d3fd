//! # mcp-lp: MCP servers in which every tool runs with only the privileges it declares
//!
//! An LLM chooses which tool to call, and a prompt injection can steer it. If every tool shares
//! one broad credential, one steered call can use every permission the process holds. With
//! mcp-lp a tool declares what it needs and the runtime hands it exactly that:
//!
//! ```no_run
//! use mcp_lp::prelude::*;
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct NoteName {
//!     /// The note's name.
//!     name: String,
//! }
//!
//! #[derive(Clone)]
//! struct Notes;
//!
//! #[mcp_lp::server]
//! impl Notes {
//!     /// Read one note.
//!     #[tool]
//!     async fn read_note(&self, Parameters(n): Parameters<NoteName>) -> Result<String, ToolError> {
//!         Ok(format!("contents of {}", n.name))
//!     }
//!
//!     /// Delete one note. Runs only for a caller holding the `notes:delete` grant.
//!     #[tool(requires = "notes:delete", timeout = "5s")]
//!     async fn delete_note(&self, Parameters(n): Parameters<NoteName>) -> Result<String, ToolError> {
//!         Ok(format!("deleted {}", n.name))
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     mcp_lp::cli::run(|_config| async { Ok(Notes.into()) }).await
//! }
//! ```
//!
//! Every call passes one [`Checkpoint`]: the caller's grants are checked against the tool's
//! [`ToolPolicy`] before the handler runs, the handler runs under its [`Limits`], and one audit
//! event is emitted on [`audit::AUDIT_TARGET`]. `tools/list` shows a caller only the tools it
//! may call, by the same rule.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `http` | off | `serve --http`: streamable HTTP as an OAuth 2.1 resource server ([`transport`]'s HTTP side, [`HttpSection`], [`AuthSection`]) |
//!
//! # Public API
//!
//! Everything reachable from this page is public API and follows semver. The `__private` module
//! (hidden from these docs) is what `#[mcp_lp::server]` expands to: it may change in any release
//! and must not be used directly.

pub mod approval;
pub mod audit;
mod authorize;
pub mod capability;
mod checkpoint;
pub mod cli;
mod config;
pub mod governance_key;
mod grant;
pub mod json_log;
pub mod last_used;
pub mod limits;
pub mod manifest;
mod parameters;
mod policy;
mod principal;
mod rate;
pub mod revocation;
pub mod sealed_state;
pub mod secret_refresh;
pub mod stores;
pub mod text_log;
mod tool_error;
pub mod transport;
mod url_policy;
pub mod visible;

/// Entry points for the fuzz targets in `fuzz/`: the crate's own parsers, not copies.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[path = "fuzzing.rs"]
pub mod __fuzz;

pub use mcp_lp_macros::{server, tool};
pub use rmcp::handler::server::wrapper::Json;
pub use schemars;

pub use crate::authorize::{Authorized, Denial, authorize};
pub use crate::checkpoint::{
    CallScope, Checkpoint, FORBIDDEN, ParkedAnswer, Provide, RATE_LIMITED, Refusal, ServeError,
    Server, URL_ELICITATION_REQUIRED,
};
pub use crate::config::{
    ALLOWED_ALGORITHMS, ANONYMOUS, ApprovalPageSection, AuditSettings, AuthSection, CONFIG_ENV,
    Config, ConfigError, ConfigErrorKind, DEFAULT_MAX_GRANT_LIFETIME, HttpSection, ReviewOverdue,
    SecretError, SecretRef,
};
pub use crate::grant::{Grant, GrantError, MAX_GRANT_LEN, grant_syntax_error};
pub use crate::limits::Limits;
pub use crate::parameters::Parameters;
pub use crate::policy::{NoExtras, ToolPolicy, ToolSet, capability_name_error};
pub use crate::principal::Principal;
pub use crate::rate::{Rate, RateLimited};
pub use crate::tool_error::ToolError;

/// The names a server module needs: `use mcp_lp::prelude::*;`.
pub mod prelude {
    pub use crate::{CallScope, Json, Parameters, ToolError, tool};
}

/// What `#[mcp_lp::server]` expands to. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use rmcp;

    pub use crate::capability::probe::{NotACapability, Probe};

    /// Fail compilation when a `requires` literal is not a well-formed grant.
    pub const fn assert_grant(name: &str) {
        if let Some(reason) = crate::grant::grant_syntax_error(name) {
            panic!("{}", reason);
        }
    }

    /// The rate `#[tool(rate = "...")]` declares, already checked by the macro.
    pub const fn rate(calls: u32, per_nanos: u64) -> crate::Rate {
        match crate::Rate::new(calls, core::time::Duration::from_nanos(per_nanos)) {
            Some(rate) => rate,
            None => panic!("a rate allows at least one call per non-zero period"),
        }
    }

    /// Fail compilation when a `role` or `db` literal is not a well-formed capability name.
    pub const fn assert_capability_name(name: &str) {
        if let Some(reason) = crate::policy::capability_name_error(name) {
            panic!("{}", reason);
        }
    }
}
