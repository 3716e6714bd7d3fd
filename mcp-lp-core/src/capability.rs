//! Capabilities a tool can declare, and the compile-time rule that a handler receives only
//! capabilities its `#[tool(...)]` attribute declares.
//!
//! A capability extractor (an S3 client bound to the tool's role, a connection from the tool's
//! database pool) implements [`Capability`] and names the declaration it needs as its
//! [`Capability::Requirement`]. For every `#[tool]` method, `#[mcp_lp::server]` generates a
//! marker type that implements [`Declares`] for exactly what the attribute declares, and checks
//! each handler argument against it. A handler that takes a capability its attribute does not
//! declare fails to compile:
//!
//! ```text
//! error[E0277]: tool declares no `AwsRole`, but an argument of its handler needs one
//! ```

/// The declaration `role = "..."` in `#[tool(...)]`: the tool assumes its own AWS IAM role.
#[derive(Debug)]
#[non_exhaustive]
pub struct AwsRole;

/// The declaration `db = "..."` (or `db_write = "..."`) in `#[tool(...)]`: the tool reads
/// through its own database capability.
#[derive(Debug)]
#[non_exhaustive]
pub struct DbRead;

/// The declaration `db_write = "..."` in `#[tool(...)]`: the tool writes through its own
/// database capability.
#[derive(Debug)]
#[non_exhaustive]
pub struct DbWrite;

/// A handler argument that carries privilege, and the declaration it requires.
///
/// ```
/// use mcp_lp::capability::{AwsRole, Capability};
///
/// /// A client bound to the calling tool's IAM role.
/// struct RoleClient;
///
/// impl Capability for RoleClient {
///     type Requirement = AwsRole;
/// }
/// ```
pub trait Capability {
    /// The declaration a tool must make to receive this argument: [`AwsRole`], [`DbRead`] or
    /// [`DbWrite`].
    type Requirement;
}

/// Implemented by the marker `#[mcp_lp::server]` generates for each tool, once per declaration
/// its attribute makes.
#[diagnostic::on_unimplemented(
    message = "tool declares no `{R}`, but an argument of its handler needs one",
    label = "this capability is not declared in the tool's `#[tool(...)]` attribute",
    note = "declare it: `#[tool(role = \"...\")]` for an AWS role, `#[tool(db = \"...\")]` to read a database, `#[tool(db_write = \"...\")]` to write one"
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
