//! How the command line logs: JSON lines (or text) on stderr, filtered by `RUST_LOG`, with the
//! log targets that print credentials capped whatever `RUST_LOG` asks.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use super::LogFormat;
use crate::policy::ToolSet;

/// The log filter when `RUST_LOG` is not set. rmcp's own protocol chatter stays at warn: at
/// debug it logs whole messages, tool arguments included.
pub const DEFAULT_LOG_FILTER: &str = "info,rmcp=warn";

/// Install the subscriber `format` names, unless the embedding program installed one.
pub(super) fn init<S: ToolSet>(format: LogFormat) {
    // A subscriber may already be installed by the embedding program; keep it.
    match format {
        LogFormat::Json => {
            let _ =
                tracing::subscriber::set_global_default(json_subscriber::<S, _>(std::io::stderr));
        }
        LogFormat::Text => {
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(requested(std::env::var("RUST_LOG").ok().as_deref()))
                .with_writer(std::io::stderr)
                .event_format(crate::text_log::TextLines)
                .finish()
                .with(credential_cap(secret_trace_targets::<S>()));
            let _ = subscriber.try_init();
        }
    }
}

/// The log targets `S`'s kinds of capability name as printing credentials at TRACE.
fn secret_trace_targets<S: ToolSet>() -> impl Iterator<Item = &'static str> {
    S::policies()
        .iter()
        .flat_map(|p| p.capabilities)
        .flat_map(|c| c.secret_trace_targets.iter().copied())
}

/// The filter `rust_log` (or [`DEFAULT_LOG_FILTER`]) asks for.
fn requested(rust_log: Option<&str>) -> EnvFilter {
    rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_LOG_FILTER))
}

/// A second filter over whatever `RUST_LOG` asks, holding `targets` at DEBUG at most: the log
/// targets the tools' kinds of capability name as printing credentials at TRACE
/// ([`Kind::SECRET_TRACE_TARGETS`](crate::capability::Kind), such as the AWS SDK's request
/// signer, which logs the canonical request with its session token). A filter of its own, not
/// a directive added to `RUST_LOG`'s, so that it only ever lowers a target's level.
fn credential_cap<'t>(targets: impl IntoIterator<Item = &'t str>) -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(
            targets
                .into_iter()
                .map(|t| (t.to_owned(), LevelFilter::DEBUG)),
        )
}

/// The subscriber `serve` installs by default for the server `S`: JSON lines, one event each
/// with its fields at the top level, filtered by `RUST_LOG` or [`DEFAULT_LOG_FILTER`], with the
/// credential-printing targets of `S`'s kinds of capability capped at DEBUG. Public so
/// benchmarks and embedding programs log exactly as the CLI does.
pub fn json_subscriber<S, W>(writer: W) -> impl tracing::Subscriber + Send + Sync + 'static
where
    S: ToolSet,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(requested(std::env::var("RUST_LOG").ok().as_deref()))
        .with_writer(writer)
        .event_format(crate::json_log::JsonLines)
        .finish()
        .with(credential_cap(secret_trace_targets::<S>()))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0
                .lock()
                .unwrap()
                .push(event.metadata().target().to_owned());
        }
    }

    #[test]
    fn rejects_trace_from_credential_printing_targets_even_when_asked() {
        for asked in [
            "trace",
            "aws_sigv4=trace,mcp_lp=trace",
            "info,aws_smithy_runtime=trace,mcp_lp=trace",
        ] {
            let seen = Seen::default();
            let subscriber = tracing_subscriber::registry()
                .with(requested(Some(asked)))
                .with(credential_cap([
                    "aws_sigv4",
                    "aws_smithy_runtime::client::orchestrator",
                ]))
                .with(seen.clone());
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(target: "aws_sigv4", "canonical request with x-amz-security-token");
                tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "signed request");
                tracing::debug!(target: "aws_sigv4", "signing");
                tracing::trace!(target: "mcp_lp::anything", "other trace");
            });
            let seen = seen.0.lock().unwrap().clone();
            assert!(
                !seen.iter().any(|t| t.starts_with("aws_smithy")),
                "{asked}: {seen:?}"
            );
            assert!(
                seen.contains(&"mcp_lp::anything".to_owned()),
                "{asked}: {seen:?}"
            );
            assert_eq!(
                seen.iter().filter(|t| *t == "aws_sigv4").count(),
                usize::from(asked.contains("aws_sigv4") || asked == "trace"),
                "{asked}: {seen:?}"
            );
        }
    }
}
