//! # mcp-lp-grammar: durations and rates as mcp-lp writes them
//!
//! One grammar for the configuration file and the `#[tool(...)]` attributes: `mcp-lp-core`
//! parses `[tools.X] timeout` and `rate` with it at startup, `mcp-lp-macros` parses
//! `#[tool(timeout = "...", rate = "...")]` with it at compile time. A text one accepts, the
//! other accepts, with the same meaning.
//!
//! - A **duration** is `jiff`'s friendly format: `30s`, `500ms`, `2m`, `1h 30m`, `90d`, `2w`.
//!   A day is 24 hours and a week 7 days (lengths of time, not calendar spans), so months and
//!   years are refused, and so is zero.
//! - A **rate** is calls per period: `60/min`, `10/s`, `1000/h`, `500/day`, or calls per any
//!   duration, `5/30s` or `5/2d`. At least one call, in a period longer than zero.
//!
//! ```
//! use std::time::Duration;
//! assert_eq!(mcp_lp_grammar::duration("1m 30s"), Ok(Duration::from_secs(90)));
//! assert_eq!(mcp_lp_grammar::rate("5/2d"), Ok((5, Duration::from_secs(2 * 86_400))));
//! assert!(mcp_lp_grammar::rate("0/min").is_err());
//! ```

use std::time::Duration;

/// How to write a duration, for error messages.
pub const DURATION_USAGE: &str = "write one like \"30s\", \"500ms\", \"2m\" or \"90d\"";

/// How to write a rate, for error messages.
pub const RATE_USAGE: &str =
    "write calls per period, like \"60/min\", \"10/s\", \"1000/h\" or \"5/30s\"";

/// A duration such as `30s`, `500ms`, `2m`, `1h 30m` or `90d`, greater than zero. The error
/// says what was wrong with `text`.
pub fn duration(text: &str) -> Result<Duration, String> {
    let signed = match text.parse::<jiff::SignedDuration>() {
        Ok(signed) => signed,
        // SignedDuration takes units up to hours; days and weeks go through a span.
        Err(_) => text
            .parse::<jiff::Span>()
            .ok()
            .and_then(|span| {
                span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                    .ok()
            })
            .ok_or_else(|| format!("`{text}` is not a duration; {DURATION_USAGE}"))?,
    };
    match Duration::try_from(signed) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("duration `{text}` must be greater than zero")),
    }
}

/// A rate such as `60/min`, `10/s` or `5/2d`: how many calls, per what period. The error says
/// what was wrong with `text`.
pub fn rate(text: &str) -> Result<(u32, Duration), String> {
    let usage = || format!("`{text}` is not a rate; {RATE_USAGE}");
    let (calls, per) = text.split_once('/').ok_or_else(usage)?;
    let calls: u32 = calls.trim().parse().map_err(|_| usage())?;
    let per = match per.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        other => duration(other).map_err(|_| usage())?,
    };
    if calls == 0 {
        return Err(format!("rate `{text}` must allow at least one call"));
    }
    Ok((calls, per))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_friendly_durations() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(duration("2w 1d"), Ok(Duration::from_secs(15 * 86_400)));
        assert_eq!(duration("1d 12h"), Ok(Duration::from_secs(36 * 3_600)));
    }

    #[test]
    fn rejects_zero_negative_calendar_and_garbage_durations() {
        for bad in ["0s", "-5s", "1 month", "1y", "soon", "", "30"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn accepts_rates_in_every_unit_and_any_duration() {
        assert_eq!(rate("60/min"), Ok((60, Duration::from_secs(60))));
        assert_eq!(rate("10/s"), Ok((10, Duration::from_secs(1))));
        assert_eq!(rate("1000/h"), Ok((1000, Duration::from_secs(3600))));
        assert_eq!(rate("500/day"), Ok((500, Duration::from_secs(86_400))));
        assert_eq!(rate("5/30s"), Ok((5, Duration::from_secs(30))));
        assert_eq!(rate("5/2d"), Ok((5, Duration::from_secs(2 * 86_400))));
        assert_eq!(rate(" 3 / 1h 30m "), Ok((3, Duration::from_secs(5400))));
    }

    #[test]
    fn rejects_malformed_rates() {
        for bad in [
            "60",
            "0/min",
            "-1/min",
            "x/min",
            "10/0s",
            "10/fortnight",
            "/min",
            "10/",
        ] {
            assert!(rate(bad).is_err(), "{bad}");
        }
    }
}
