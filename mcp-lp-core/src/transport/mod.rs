//! Transports the checkpoint is served over.

mod stdio;

pub use self::stdio::{LineTransport, MAX_MESSAGE_BYTES};
