//! Where in the file a problem is: the line of a `[stdio] grants` entry, and serde's errors
//! turned into a [`ConfigError`] naming the dotted key, never quoting a line that may hold a
//! secret.

use std::path::Path;

use super::{ConfigError, ConfigErrorKind};

/// The line of the `[stdio] grants` entry `key` (`stdio.grants[i]`) in `text`, for the
/// problems found after deserializing, which has no positions left.
pub(super) fn grant_line(text: &str, key: Option<&str>) -> Option<usize> {
    let index: usize = key?
        .strip_prefix("stdio.grants[")?
        .strip_suffix(']')?
        .parse()
        .ok()?;
    let document = toml::de::DeTable::parse(text).ok()?;
    let grant = document
        .get_ref()
        .get("stdio")?
        .get_ref()
        .get("grants")?
        .get_ref()
        .get(index)?;
    Some(line_of(text, grant.span().start))
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |head| head.matches('\n').count())
        + 1
}

/// Turn a deserialization error into a [`ConfigError`] naming the dotted key. Only serde's and
/// toml's message is kept: toml's rendering quotes the offending source line, which could hold
/// a secret someone pasted inline.
pub(super) fn serde_error(
    path: &Path,
    text: Option<&str>,
    prefix: &str,
    error: serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let mut key = error.path().to_string();
    if key == "." {
        key.clear();
    }
    if !prefix.is_empty() {
        key = if key.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{key}")
        };
    }
    let inner = error.into_inner();
    let message = inner.message().to_owned();
    let kind = if message.starts_with("unknown field") || message.starts_with("unknown variant") {
        ConfigErrorKind::UnknownKey
    } else if message.starts_with("missing field") {
        ConfigErrorKind::MissingKey
    } else if message.starts_with("invalid type") {
        ConfigErrorKind::WrongType
    } else {
        ConfigErrorKind::InvalidValue
    };
    let mut err = ConfigError::new(path, (!key.is_empty()).then_some(key), kind, message);
    err.line = text
        .zip(inner.span())
        .map(|(text, span)| line_of(text, span.start));
    err
}
