//! Capabilities a tool declares, the kinds provider crates define, and the compile-time rule
//! that a handler receives only capabilities its `#[tool(...)]` attribute declares.
//!
//! A kind of capability (an AWS role, a database, a directory, a downstream token) is named by
//! the crate that serves it, as smithy-rs names an auth scheme: a marker type implementing
//! [`Kind`], with the kind's id, the configuration table that maps each declared name to a
//! real identity, and the access it grants. The core knows no kind by name. A tool declares
//! capabilities as a list of [`Declaration`] `{kind, name, access}`; the manifest, the audit event,
//! `inventory`, `check` and `review` walk that list, so a new kind is covered everywhere
//! without a change here.
//!
//! A capability extractor (an S3 client bound to the tool's role, a connection from the tool's
//! database pool) implements [`Capability`] and names the kind it needs as its
//! [`Capability::Requirement`]. For every `#[tool]` method, `#[mcp_lp::server]` generates a
//! marker type that implements [`Declares`] for exactly the kinds its attribute declares, and
//! checks each handler argument against it. A handler that takes a capability its attribute
//! does not declare fails to compile:
//!
//! ```text
//! error[E0277]: tool declares no `AwsRole`, but an argument of its handler needs one
//! ```
//!
//! `role = "..."` (mcp-lp-aws's `AwsRole`), `db = "..."` and `db_write = "..."` (mcp-lp-db's
//! `DbRead` and `DbWrite`) are sugar for `capability(kind = ..., name = "...")`.

/// How a tool uses what a capability gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    /// Reads only.
    Read,
    /// Reads and writes.
    Write,
    /// Uses a credential whose own policy says what it may do (an IAM role).
    Use,
}

impl Access {
    /// `"read"`, `"write"` or `"use"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Use => "use",
        }
    }
}

/// A kind of capability, defined by the provider crate that serves it.
///
/// ```
/// use mcp_lp::capability::{Access, Kind};
///
/// /// A secret from a vault, one per `[vault.secrets.<name>]` table.
/// pub struct VaultSecret;
///
/// impl Kind for VaultSecret {
///     const NAME: &'static str = "vault.secret";
///     const TABLE: &'static str = "vault.secrets";
///     const ACCESS: Access = Access::Read;
/// }
/// ```
pub trait Kind {
    /// The kind's id, as the manifest, the audit trail and `inventory` name it: `aws.role`,
    /// `db`.
    const NAME: &'static str;
    /// The configuration table of the kind: `[<TABLE>.<name>]` maps each declared name to a
    /// real identity (`aws.roles` for `[aws.roles.docs-read]`). A declared name without its
    /// table, or a table no tool declares, refuses the start.
    const TABLE: &'static str;
    /// The access a declaration of this kind grants.
    const ACCESS: Access;
    /// Log targets of the libraries serving this kind that print credentials at TRACE (the
    /// AWS SDK's request signer logs the canonical request, session token included): a server
    /// with a tool of this kind logs them at DEBUG at most, whatever `RUST_LOG` asks.
    const SECRET_TRACE_TARGETS: &'static [&'static str] = &[];
}

/// One capability a tool declares: a kind, the logical name configuration maps to a real
/// identity, and the access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Declaration {
    /// The kind's id ([`Kind::NAME`]).
    pub kind: &'static str,
    /// The kind's configuration table ([`Kind::TABLE`]).
    pub table: &'static str,
    /// The logical name: `docs-read`.
    pub name: &'static str,
    /// What the tool does with it.
    pub access: Access,
    /// Log targets capped at DEBUG ([`Kind::SECRET_TRACE_TARGETS`]).
    pub secret_trace_targets: &'static [&'static str],
}

impl Declaration {
    /// A declaration of `name` of the kind `K`.
    pub const fn of<K: Kind>(name: &'static str) -> Self {
        Self {
            kind: K::NAME,
            table: K::TABLE,
            name,
            access: K::ACCESS,
            secret_trace_targets: K::SECRET_TRACE_TARGETS,
        }
    }

    /// `kind:access:name`, as the audit event lists it: `aws.role:use:docs-read`.
    pub fn label(&self) -> String {
        format!("{}:{}:{}", self.kind, self.access.as_str(), self.name)
    }
}

/// A handler argument that carries privilege, and the kind of capability it requires.
///
/// ```
/// use mcp_lp::capability::{Access, Capability, Kind};
///
/// pub struct VaultSecret;
/// impl Kind for VaultSecret {
///     const NAME: &'static str = "vault.secret";
///     const TABLE: &'static str = "vault.secrets";
///     const ACCESS: Access = Access::Read;
/// }
///
/// /// The secret of the calling tool's declared name.
/// struct Secret;
///
/// impl Capability for Secret {
///     type Requirement = VaultSecret;
/// }
/// ```
pub trait Capability {
    /// The kind a tool must declare to receive this argument.
    type Requirement;
}

/// Implemented by the marker `#[mcp_lp::server]` generates for each tool, once per kind its
/// attribute declares.
#[diagnostic::on_unimplemented(
    message = "tool declares no `{R}`, but an argument of its handler needs one",
    label = "this capability is not declared in the tool's `#[tool(...)]` attribute",
    note = "declare it: `#[tool(role = \"...\")]` for an AWS role, `#[tool(db = \"...\")]` to read a database, `#[tool(db_write = \"...\")]` to write one, or `#[tool(capability(kind = {R}, name = \"...\"))]`"
)]
pub trait Declares<R> {}

#[doc(hidden)]
pub mod probe {
    //! The check the macro emits per handler argument. An inherent method applies when the
    //! argument is a [`Capability`]; otherwise method resolution falls back to the trait method,
    //! which accepts anything.

    use std::marker::PhantomData;

    use super::{Capability, Declares};

    pub struct Probe<D, T>(PhantomData<fn() -> (D, T)>);

    impl<D, T> Probe<D, T> {
        #[allow(clippy::new_without_default)]
        pub const fn new() -> Self {
            Self(PhantomData)
        }
    }

    impl<D, T: Capability> Probe<D, T> {
        pub fn check(&self)
        where
            D: Declares<T::Requirement>,
        {
        }
    }

    pub trait NotACapability {
        fn check(&self) {}
    }

    impl<D, T> NotACapability for Probe<D, T> {}
}
