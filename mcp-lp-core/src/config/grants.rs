//! `[stdio] grants`: each entry a grant with an expiry, which configuration may not leave out
//! or set beyond `[governance] max_grant_lifetime`.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::ConfigErrorKind;
use crate::grant::Grant;

/// Refuse a configured grant without an expiry, or one expiring after `latest` (`now` plus
/// `lifetime`): a grant nobody set an end to outlives the reason it was given. A grant that has
/// already expired is kept; it never counts, and `check` reports it.
pub(super) fn check_grant_lifetime(
    grant: &Grant,
    now: SystemTime,
    latest: SystemTime,
    lifetime: Duration,
) -> Result<(), (ConfigErrorKind, String)> {
    let limit = format!(
        "[governance] max_grant_lifetime ({})",
        lifetime_text(lifetime)
    );
    let example = format!(
        "{{ name = \"{}\", expires = {} }}",
        grant.name(),
        example_expiry(now, latest, lifetime)
    );
    match grant.expires_at() {
        None => Err((
            ConfigErrorKind::MissingKey,
            format!(
                "grant `{}` has no expiry; every configured grant must expire within {limit}: write {example}",
                grant.name()
            ),
        )),
        Some(at) if at > latest => Err((
            ConfigErrorKind::InvalidValue,
            format!(
                "grant `{}` expires {}, later than {limit} allows (at the latest {}): write {example}, or raise the limit",
                grant.name(),
                timestamp_text(at),
                timestamp_text(latest)
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// An expiry within the limit for messages: the last midnight (UTC) before `latest` when the
/// lifetime spans a day, else `latest` itself to the second.
fn example_expiry(now: SystemTime, latest: SystemTime, lifetime: Duration) -> String {
    let Ok(at) = jiff::Timestamp::try_from(latest) else {
        return "<date>".to_owned();
    };
    let midnight = at
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp());
    match midnight {
        Ok(day) if lifetime >= Duration::from_secs(86_400) && SystemTime::from(day) > now => {
            day.to_string()
        }
        _ => timestamp_text(latest),
    }
}

/// `at` in RFC 3339, UTC, truncated to the second (never later than `at`).
fn timestamp_text(at: SystemTime) -> String {
    let second = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Second)
        .mode(jiff::RoundMode::Trunc);
    jiff::Timestamp::try_from(at)
        .and_then(|t| t.round(second))
        .map_or_else(|_| "?".to_owned(), |t| t.to_string())
}

/// A lifetime as configuration writes it: `90d` when it is whole days, else like `36h`.
pub(crate) fn lifetime_text(lifetime: Duration) -> String {
    let secs = lifetime.as_secs();
    if secs.is_multiple_of(86_400) && lifetime.subsec_nanos() == 0 {
        format!("{}d", secs / 86_400)
    } else {
        jiff::SignedDuration::try_from(lifetime)
            .map_or_else(|_| format!("{lifetime:?}"), |d| format!("{d:#}"))
    }
}

/// One entry of `[stdio] grants`: `"name"` or `{ name = "...", expires = <datetime> }`.
#[derive(Debug)]
pub(super) struct GrantSpec(pub(super) Grant);

impl<'de> Deserialize<'de> for GrantSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(GrantSpecVisitor)
    }
}

pub(super) struct GrantSpecVisitor;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExpiringGrant {
    name: String,
    expires: toml::value::Datetime,
}

impl<'de> Visitor<'de> for GrantSpecVisitor {
    type Value = GrantSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a grant: \"name\" or { name = \"...\", expires = 2026-12-01T00:00:00Z }")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<GrantSpec, E> {
        Grant::new(name).map(GrantSpec).map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<GrantSpec, A::Error> {
        let spec = ExpiringGrant::deserialize(de::value::MapAccessDeserializer::new(map))?;
        let expires: jiff::Timestamp = spec.expires.to_string().parse().map_err(|_| {
            de::Error::custom(format!(
                "`expires = {}` needs a date, a time and a UTC offset, like 2026-12-01T00:00:00Z",
                spec.expires
            ))
        })?;
        let grant = Grant::new(spec.name).map_err(de::Error::custom)?;
        Ok(GrantSpec(grant.expiring_at(SystemTime::from(expires))))
    }
}
