//! Transports the checkpoint is served over.

#[cfg(feature = "http")]
pub mod http;
pub(crate) mod line_codec;
pub(crate) mod stdio;

pub use self::stdio::{LineTransport, MAX_MESSAGE_BYTES, TransportFailure};
