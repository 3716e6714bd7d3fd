//! Per-call limits: how long a handler may run, how large its arguments and output may be, how
//! often a principal may call it.

use std::time::Duration;

use crate::rate::Rate;

/// A handler that runs longer than this is cancelled, unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Output larger than this (serialized JSON bytes) is withheld, unless configured otherwise.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// Arguments larger than this (canonical JSON bytes) are refused, unless configured otherwise.
pub const DEFAULT_MAX_ARGUMENT_BYTES: usize = 64 * 1024;

/// The limits that apply to one tool.
///
/// Each is resolved in this order, first found wins: the tool's `[tools.<name>]` table in
/// configuration, the tool's `#[tool(...)]` attribute, the `[limits]` table, the default
/// constant. The operator has the last word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// How long the handler may run before it is cancelled.
    pub timeout: Duration,
    /// The largest output, in serialized JSON bytes, returned to the caller.
    pub max_output_bytes: usize,
    /// The largest arguments, in canonical JSON bytes, accepted.
    pub max_argument_bytes: usize,
    /// How many calls one principal may make per period; `None` (the default) for no limit.
    pub rate: Option<Rate>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_argument_bytes: DEFAULT_MAX_ARGUMENT_BYTES,
            rate: None,
        }
    }
}

/// Parse a duration such as `30s`, `500ms`, `2m`, `1h 30m` or `90d`.
///
/// The one parser for durations (`mcp-lp-grammar`), shared by configuration and the
/// `#[tool(timeout = "...")]` attribute, which applies it at compile time. A day is 24 hours
/// and a week 7 days: these are lengths of time, not calendar spans, so months and years are
/// refused.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(mcp_lp::limits::parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(mcp_lp::limits::parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
/// assert!(mcp_lp::limits::parse_duration("0s").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    mcp_lp_grammar::duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_friendly_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(
            parse_duration("2w 1d"),
            Ok(Duration::from_secs(15 * 86_400))
        );
        assert_eq!(
            parse_duration("1d 12h"),
            Ok(Duration::from_secs(36 * 3_600))
        );
    }

    #[test]
    fn rejects_zero_negative_and_garbage_durations() {
        for text in ["0s", "-5s", "-1d", "soon", "", "30", "1y", "2mo"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }
}
