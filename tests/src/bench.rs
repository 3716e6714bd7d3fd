//! What every benchmark binary reads from its environment and how it summarises its rounds.

use std::str::FromStr;

/// The environment variable `name` parsed as a `T`, or `default` when it is unset or does not
/// parse.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The contender `ONLY=N` picks out of `count`, if any: for measuring one alone, e.g. under
/// `valgrind --tool=callgrind`.
///
/// # Panics
///
/// When `ONLY` is set to anything but a number below `count`.
pub fn only(count: usize) -> Option<usize> {
    let only = std::env::var("ONLY").ok()?;
    match only.parse() {
        Ok(n) if n < count => Some(n),
        _ => panic!("ONLY={only}: expected a number below {count}"),
    }
}

/// The median, sorting `values` in place.
///
/// # Panics
///
/// When `values` is empty.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
