//! The kinds of capability this crate serves: a database read through its own role, or
//! written through another.

use mcp_lp::capability::{Access, Kind};

/// The declaration `db = "..."` (or `db_write = "..."`) in `#[tool(...)]`: the tool reads
/// through its own database capability, configured by `[db.<name>]`.
#[derive(Debug)]
#[non_exhaustive]
pub struct DbRead;

impl Kind for DbRead {
    const NAME: &'static str = "db";
    const TABLE: &'static str = "db";
    const ACCESS: Access = Access::Read;
}

/// The declaration `db_write = "..."` in `#[tool(...)]`: the tool writes through its own
/// database capability, configured by `[db.<name>]`.
#[derive(Debug)]
#[non_exhaustive]
pub struct DbWrite;

impl Kind for DbWrite {
    const NAME: &'static str = "db";
    const TABLE: &'static str = "db";
    const ACCESS: Access = Access::Write;
}

/// How a tool uses its database capability: `db = "..."` reads, `db_write = "..."` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DbAccess {
    /// Queries only, in `READ ONLY` transactions, through a role that cannot write.
    #[default]
    Read,
    /// Queries and writes.
    Write,
}

impl DbAccess {
    /// `"read"` or `"write"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    /// The access a tool's declared capability of kind `db` gives.
    pub(crate) fn of(access: Access) -> Self {
        match access {
            Access::Write => Self::Write,
            Access::Read | Access::Use => Self::Read,
        }
    }
}
