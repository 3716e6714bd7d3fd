//! Transports the checkpoint is served over.

#[cfg(feature = "http")]
pub mod http;
mod line_codec;
mod stdio;

pub use self::stdio::{LineTransport, MAX_MESSAGE_BYTES, TransportFailure};
