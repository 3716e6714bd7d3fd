//! The `[aws]` table: settings, one `[aws.roles.<name>]` per role a tool declares, and secrets
//! read from AWS Secrets Manager. Everything is checked at startup, naming the key.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::arn::RoleArn;
use crate::attribution::Attribution;
use crate::error::AwsError;
use crate::session_policy::SessionPolicy;

/// A role's session lasts this long unless its table says otherwise (STS's minimum).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(15 * 60);
/// STS refuses DurationSeconds below this.
pub const MIN_DURATION: Duration = Duration::from_secs(15 * 60);
/// STS refuses DurationSeconds above this (and a role's own maximum may be lower).
pub const MAX_DURATION: Duration = Duration::from_secs(12 * 60 * 60);
/// How many sessions (role × tool × principal) the credential cache holds by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AwsSection {
    region: Option<String>,
    endpoint_url: Option<String>,
    #[serde(default)]
    s3_force_path_style: bool,
    #[serde(default)]
    allow_short_sessions: bool,
    cache_capacity: Option<NonZeroUsize>,
    #[serde(default)]
    roles: BTreeMap<String, RoleSection>,
    secrets_role: Option<RoleSection>,
    #[serde(default)]
    secrets: BTreeMap<String, AwsSecretRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleSection {
    arn: String,
    duration: Option<String>,
    external_id: Option<String>,
    session_policy: Option<PathBuf>,
    #[serde(default)]
    attribution: AttributionMode,
    #[serde(default)]
    source_identity: bool,
    #[serde(default)]
    session_tags: bool,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum AttributionMode {
    /// One session per tool and principal, named after both.
    #[default]
    Principal,
    /// One session per role, named after the role.
    Role,
}

/// How often an `{ aws_secret = ... }` reference is fetched again when it names no `ttl`.
pub const DEFAULT_SECRET_TTL: Duration = Duration::from_secs(5 * 60);

/// `{ aws_secret = "name", ttl = "5m" }`: a secret read from AWS Secrets Manager at startup and
/// again every `ttl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AwsSecretRef {
    pub(crate) name: String,
    pub(crate) ttl: Duration,
}

impl fmt::Display for AwsSecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{ aws_secret = {:?} }}", self.name)
    }
}

/// The checked `[aws]` table.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) path: PathBuf,
    pub(crate) region: Option<String>,
    pub(crate) endpoint_url: Option<String>,
    pub(crate) s3_force_path_style: bool,
    pub(crate) cache_capacity: usize,
    pub(crate) roles: Vec<RoleSettings>,
    pub(crate) secrets_role: Option<RoleSettings>,
    pub(crate) secrets: BTreeMap<String, AwsSecretRef>,
}

/// One checked role table.
#[derive(Debug, Clone)]
pub(crate) struct RoleSettings {
    /// The logical name, as in `#[tool(role = "...")]`.
    pub(crate) name: String,
    pub(crate) arn: RoleArn,
    pub(crate) duration: Duration,
    pub(crate) external_id: Option<String>,
    pub(crate) session_policy: Option<SessionPolicy>,
    pub(crate) attribution: Attribution,
}

impl Settings {
    /// Read and check the `[aws]` table of `config`.
    pub(crate) fn from_config(config: &mcp_lp::Config) -> Result<Self, AwsError> {
        let section: AwsSection = config.provider_table("aws")?;
        let path = config.path().to_owned();
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();
        let invalid = |key: String, reason: String| AwsError::InvalidSetting {
            path: path.clone(),
            key,
            reason,
        };

        if let Some(region) = &section.region
            && (region.is_empty()
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
        {
            return Err(invalid(
                "aws.region".into(),
                format!("`{region}` is not a region name like us-east-1"),
            ));
        }
        if let Some(url) = &section.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "aws.endpoint_url".into(),
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }

        let min_duration = if section.allow_short_sessions {
            Duration::from_secs(1)
        } else {
            MIN_DURATION
        };
        let check_role = |key: String, name: String, table: RoleSection, per_call: bool| {
            let at = |field: &str, reason: String| invalid(format!("{key}.{field}"), reason);
            let arn: RoleArn = table
                .arn
                .parse()
                .map_err(|e: crate::RoleArnError| at("arn", e.to_string()))?;
            let duration = match &table.duration {
                None => DEFAULT_DURATION,
                Some(text) => {
                    mcp_lp::limits::parse_duration(text).map_err(|e| at("duration", e))?
                }
            };
            if duration < min_duration || duration > MAX_DURATION {
                let floor = if section.allow_short_sessions {
                    "1s (allow_short_sessions is on)"
                } else {
                    "15m"
                };
                return Err(at(
                    "duration",
                    format!(
                        "{duration:?} is outside what STS accepts: from {floor} to 12h, whole seconds"
                    ),
                ));
            }
            if duration.subsec_nanos() != 0 {
                return Err(at(
                    "duration",
                    format!("{duration:?} is not a whole number of seconds"),
                ));
            }
            if let Some(id) = &table.external_id {
                let ok = (2..=1224).contains(&id.len())
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
                if !ok {
                    return Err(at(
                        "external_id",
                        "an external ID is 2 to 1224 characters of letters, digits and _+=,.@:/-"
                            .into(),
                    ));
                }
            }
            let session_policy = match &table.session_policy {
                None => None,
                Some(file) => Some(
                    SessionPolicy::load(&base.join(file)).map_err(|e| at("session_policy", e))?,
                ),
            };
            let per_principal = matches!(table.attribution, AttributionMode::Principal);
            if !per_call && (table.source_identity || table.session_tags) {
                return Err(at(
                    "source_identity",
                    "this role is assumed at startup, for no caller; source_identity and session_tags do not apply".into(),
                ));
            }
            if !per_principal && (table.source_identity || table.session_tags) {
                return Err(at(
                    "attribution",
                    "source_identity and session_tags name the caller, but attribution = \"role\" shares one session among callers; use attribution = \"principal\"".into(),
                ));
            }
            Ok(RoleSettings {
                name,
                arn,
                duration,
                external_id: table.external_id,
                session_policy,
                attribution: Attribution {
                    per_principal: per_principal && per_call,
                    source_identity: table.source_identity,
                    session_tags: table.session_tags,
                },
            })
        };

        let mut roles = Vec::with_capacity(section.roles.len());
        for (name, table) in section.roles {
            roles.push(check_role(
                format!("aws.roles.{name}"),
                name.clone(),
                table,
                true,
            )?);
        }
        let secrets_role = match section.secrets_role {
            Some(table) => Some(check_role(
                "aws.secrets_role".into(),
                "secrets".into(),
                table,
                false,
            )?),
            None => None,
        };
        if secrets_role.is_none() && !section.secrets.is_empty() {
            return Err(invalid(
                "aws.secrets_role".into(),
                "[aws.secrets] is read with a role of its own; add [aws.secrets_role] with its arn"
                    .into(),
            ));
        }
        if secrets_role.is_some() && section.secrets.is_empty() {
            return Err(invalid(
                "aws.secrets_role".into(),
                "no [aws.secrets] to read; remove [aws.secrets_role]".into(),
            ));
        }

        Ok(Self {
            path,
            region: section.region,
            endpoint_url: section.endpoint_url,
            s3_force_path_style: section.s3_force_path_style,
            cache_capacity: section
                .cache_capacity
                .map_or(DEFAULT_CACHE_CAPACITY, NonZeroUsize::get),
            roles,
            secrets_role,
            secrets: section.secrets,
        })
    }

    /// Whether anything needs AWS at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.secrets_role.is_none()
    }
}

impl<'de> Deserialize<'de> for AwsSecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AwsSecretRefVisitor)
    }
}

struct AwsSecretRefVisitor;

const INLINE_REFUSED: &str = "an AWS secret is configured by reference, { aws_secret = \"name\" }; inline values are refused so that configuration never holds a secret";

impl<'de> Visitor<'de> for AwsSecretRefVisitor {
    type Value = AwsSecretRef;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{ aws_secret = \"name\" }")
    }

    // Scalars are refused without echoing them: they may be the secret itself.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<AwsSecretRef, E> {
        Err(E::custom(INLINE_REFUSED))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<AwsSecretRef, E> {
        Err(E::custom(INLINE_REFUSED))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<AwsSecretRef, E> {
        Err(E::custom(INLINE_REFUSED))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<AwsSecretRef, E> {
        Err(E::custom(INLINE_REFUSED))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<AwsSecretRef, E> {
        Err(E::custom(INLINE_REFUSED))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AwsSecretRef, A::Error> {
        let mut name: Option<String> = None;
        let mut ttl = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "aws_secret" if name.is_none() => name = Some(map.next_value()?),
                "ttl" if ttl.is_none() => {
                    let text: String = map.next_value()?;
                    let parsed =
                        mcp_lp::limits::parse_duration(&text).map_err(de::Error::custom)?;
                    if parsed.is_zero() {
                        return Err(de::Error::custom("`ttl` must be longer than zero"));
                    }
                    ttl = Some(parsed);
                }
                "aws_secret" | "ttl" => {
                    return Err(de::Error::custom(format!("`{key}` is given twice")));
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown secret source `{other}` in [aws.secrets]; expected {{ aws_secret = \"name\", ttl = \"5m\" }} (file and env secrets belong in [secrets])"
                    )));
                }
            }
        }
        let Some(name) = name else {
            return Err(de::Error::custom(
                "empty secret reference; expected { aws_secret = \"name\" }",
            ));
        };
        if name.is_empty() || name.len() > 2048 {
            return Err(de::Error::custom(
                "an AWS secret name or ARN is 1 to 2048 characters",
            ));
        }
        Ok(AwsSecretRef {
            name,
            ttl: ttl.unwrap_or(DEFAULT_SECRET_TTL),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> Result<Settings, AwsError> {
        let config = mcp_lp::Config::from_toml(toml, "/etc/mcp/test.toml").unwrap();
        Settings::from_config(&config)
    }

    fn refusal(toml: &str) -> String {
        settings(toml).unwrap_err().to_string()
    }

    #[test]
    fn accepts_role_with_defaults() {
        let s = settings(
            "[aws.roles.docs-read]\narn = \"arn:aws:iam::123456789012:role/mcp-read-only\"\n",
        )
        .unwrap();
        let role = &s.roles[0];
        assert_eq!(role.name, "docs-read");
        assert_eq!(role.duration, DEFAULT_DURATION);
        assert!(role.attribution.per_principal);
        assert!(!role.attribution.source_identity && !role.attribution.session_tags);
        assert_eq!(s.cache_capacity, DEFAULT_CACHE_CAPACITY);
    }

    #[test]
    fn rejects_wildcard_arn_naming_the_key() {
        let err = refusal("[aws.roles.docs-read]\narn = \"arn:aws:iam::123456789012:role/*\"\n");
        assert!(
            err.starts_with("/etc/mcp/test.toml: key `aws.roles.docs-read.arn`: "),
            "{err}"
        );
        assert!(err.contains("wildcard"), "{err}");
    }

    #[test]
    fn rejects_malformed_arn_naming_the_key() {
        let err = refusal("[aws.roles.docs-read]\narn = \"arn:aws:iam::1234:role/x\"\n");
        assert!(err.contains("key `aws.roles.docs-read.arn`"), "{err}");
        assert!(err.contains("12 digits"), "{err}");
    }

    #[test]
    fn rejects_durations_sts_would_refuse() {
        for duration in ["10m", "13h", "900500ms"] {
            let err = refusal(&format!(
                "[aws.roles.r]\narn = \"arn:aws:iam::123456789012:role/x\"\nduration = \"{duration}\"\n"
            ));
            assert!(err.contains("key `aws.roles.r.duration`"), "{err}");
        }
    }

    #[test]
    fn accepts_short_durations_only_with_allow_short_sessions() {
        let s = settings(
            "[aws]\nallow_short_sessions = true\n[aws.roles.r]\narn = \"arn:aws:iam::123456789012:role/x\"\nduration = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(s.roles[0].duration, Duration::from_secs(5));
    }

    #[test]
    fn rejects_unknown_key_naming_it() {
        let err = refusal(
            "[aws.roles.r]\narn = \"arn:aws:iam::123456789012:role/x\"\nsession_polcy = \"p.json\"\n",
        );
        assert!(err.contains("aws.roles.r"), "{err}");
        assert!(err.contains("unknown field `session_polcy`"), "{err}");
    }

    #[test]
    fn rejects_invalid_session_policy_file_naming_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.json"), "{\"Version\": \"2012-10-17\"").unwrap();
        let path = dir.path().join("mcp.toml");
        let config = mcp_lp::Config::from_toml(
            "[aws.roles.r]\narn = \"arn:aws:iam::123456789012:role/x\"\nsession_policy = \"p.json\"\n",
            &path,
        )
        .unwrap();
        let err = Settings::from_config(&config).unwrap_err().to_string();
        assert!(err.contains("key `aws.roles.r.session_policy`"), "{err}");
        assert!(err.contains("p.json: not valid JSON"), "{err}");
    }

    #[test]
    fn rejects_tags_with_role_attribution() {
        let err = refusal(
            "[aws.roles.r]\narn = \"arn:aws:iam::123456789012:role/x\"\nattribution = \"role\"\nsession_tags = true\n",
        );
        assert!(err.contains("key `aws.roles.r.attribution`"), "{err}");
    }

    #[test]
    fn rejects_inline_aws_secret_without_echoing_it() {
        let err = refusal(
            "[aws.secrets_role]\narn = \"arn:aws:iam::123456789012:role/s\"\n[aws.secrets]\napi = \"hunter2\"\n",
        );
        assert!(err.contains("aws.secrets.api"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn rejects_aws_secrets_without_a_role_of_their_own() {
        let err = refusal("[aws.secrets]\napi = { aws_secret = \"prod/api\" }\n");
        assert!(err.contains("key `aws.secrets_role`"), "{err}");
    }

    #[test]
    fn rejects_file_secret_in_aws_secrets() {
        let err = refusal(
            "[aws.secrets_role]\narn = \"arn:aws:iam::123456789012:role/s\"\n[aws.secrets]\napi = { file = \"k\" }\n",
        );
        assert!(err.contains("unknown secret source `file`"), "{err}");
    }
}
