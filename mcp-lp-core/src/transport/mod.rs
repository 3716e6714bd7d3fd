//! Transports the checkpoint is served over.

#[cfg(feature = "http")]
pub mod http;
pub(crate) mod line_codec;
pub(crate) mod stdio;

pub use self::stdio::{LineTransport, MAX_MESSAGE_BYTES, ThreadStdin, TransportFailure};

/// SIGINT, or SIGTERM (what container runtimes send): either stops a server gracefully, so that
/// the audit trail records its shutdown and anchors its head. The name of the signal.
pub(crate) async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    if let Ok(mut terminate) = signal(SignalKind::terminate()) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    } else {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
