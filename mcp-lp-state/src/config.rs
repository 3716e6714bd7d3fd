//! The `[state]` table: where the store is and how many connections it keeps.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use mcp_lp::{Config, SecretRef};
use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::error::StateError;

/// The pool size when `max_connections` is not configured: the audit writer holds one, `audit
/// verify --db` another.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4;

/// How long opening a connection may take when `connect_timeout` is not configured.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The server-side limit on one statement when `statement_timeout` is not configured.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// `[state]` as written. Holds references to the URLs, never the URLs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateSection {
    url: SecretRef,
    /// The operator role's URL, which the governance commands that change revocations log in
    /// with; the replicas' role cannot.
    #[serde(default)]
    operator_url: Option<SecretRef>,
    /// Connect over TLS, verifying the server against this CA.
    #[serde(default)]
    tls: Option<TlsSection>,
    #[serde(default)]
    max_connections: Option<NonZeroUsize>,
    #[serde(default, deserialize_with = "de_duration")]
    connect_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    statement_timeout: Option<Duration>,
}

/// `[state.tls]`: the PEM file of the certificate authorities to trust, relative to the
/// configuration's directory.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    ca_file: std::path::PathBuf,
}

/// Which role the store logs in as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRole {
    /// The replicas' role (`[state] url`): follows revocations, cannot change them.
    Replica,
    /// The operator role (`[state] operator_url`): the governance commands that change
    /// revocations log in as it; a serving replica never does.
    Operator,
}

/// `[state]`, resolved: the URL parsed into a connection configuration whose `Debug` redacts
/// the password.
pub(crate) struct StateSettings {
    pub(crate) pg: tokio_postgres::Config,
    pub(crate) max_connections: usize,
    pub(crate) connect_timeout: Duration,
    /// The CA file to verify the server with, when the store connects over TLS.
    pub(crate) tls_ca_file: Option<std::path::PathBuf>,
    /// Which role's URL this is.
    pub(crate) role: StateRole,
}

impl fmt::Debug for StateSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateSettings")
            .field("user", &self.pg.get_user())
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl StateSettings {
    /// The `[state]` table of `config`, resolved; `Ok(None)` when there is none. A governance
    /// command that changes revocations (`config.running_command()`) logs in with
    /// `operator_url` when it is configured; everything else with `url`.
    pub(crate) fn from_config(config: &Config) -> Result<Option<Self>, StateError> {
        let Some(section) = config.state::<StateSection>()? else {
            return Ok(None);
        };
        let setting = |key: &str, problem: String| StateError::Setting {
            path: config.path().to_owned(),
            key: format!("state.{key}"),
            problem,
        };
        let operator = matches!(config.running_command(), Some("revoke" | "unrevoke"));
        let (key, reference, role) = match (&section.operator_url, operator) {
            (Some(reference), true) => ("operator_url", reference, StateRole::Operator),
            _ => ("url", &section.url, StateRole::Replica),
        };
        let url = config.resolve_secret(&format!("state.{key}"), reference)?;
        let mut pg = mcp_lp_db::parse_url(&url).map_err(|p| setting(key, p.to_owned()))?;
        let tls_ca_file = match &section.tls {
            Some(tls) => {
                if !cfg!(feature = "tls") {
                    return Err(setting(
                        "tls",
                        "this server was built without TLS support: enable the `tls` feature of mcp-lp-state".into(),
                    ));
                }
                let base = config.path().parent().unwrap_or(std::path::Path::new("."));
                Some(base.join(&tls.ca_file))
            }
            None => None,
        };
        if tls_ca_file.is_some() {
            pg.ssl_mode(tokio_postgres::config::SslMode::Require);
        } else {
            if pg.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
                return Err(setting(
                    key,
                    "the URL asks for sslmode=require; configure TLS with [state.tls] ca_file = \"...\"".into(),
                ));
            }
            // The store carries approvals, revocations and the audit trail: in plain text it
            // goes no further than this machine.
            if let Some(host) = remote_host(&pg) {
                return Err(setting(
                    key,
                    format!(
                        "the store is at {host}, another machine, and [state] has no TLS: approvals, revocations and the audit trail would cross the network in plain text; configure [state.tls] ca_file = \"...\""
                    ),
                ));
            }
            // Without a TLS connector, `prefer` would silently mean plain text anyway.
            pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
        }
        let statement_timeout = section
            .statement_timeout
            .unwrap_or(DEFAULT_STATEMENT_TIMEOUT);
        let mut options = pg.get_options().map(str::to_owned).unwrap_or_default();
        if !options.is_empty() {
            options.push(' ');
        }
        options.push_str(&format!(
            "-c statement_timeout={}",
            statement_timeout.as_millis()
        ));
        pg.options(&options);
        let connect_timeout = section.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        pg.connect_timeout(connect_timeout);
        pg.application_name("mcp-lp/state");
        Ok(Some(Self {
            pg,
            max_connections: section
                .max_connections
                .map_or(DEFAULT_MAX_CONNECTIONS, NonZeroUsize::get),
            connect_timeout,
            tls_ca_file,
            role,
        }))
    }
}

/// The first host of `pg` that is not this machine (a loopback address, `localhost` or a
/// Unix socket directory), if any.
fn remote_host(pg: &tokio_postgres::Config) -> Option<String> {
    use tokio_postgres::config::Host;
    pg.get_hosts().iter().find_map(|host| match host {
        Host::Unix(_) => None,
        Host::Tcp(name) => {
            let local = name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            (!local).then(|| name.clone())
        }
    })
}

fn de_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    mcp_lp::limits::parse_duration(&text)
        .map(Some)
        .map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> Result<Option<StateSettings>, StateError> {
        let dir = tempfile::tempdir().map_err(|e| StateError::Setting {
            path: "tmp".into(),
            key: "tmp".into(),
            problem: e.to_string(),
        })?;
        std::fs::write(
            dir.path().join("state.url"),
            "postgres://mcp_lp_state:hunter2-secret@127.0.0.1:5432/records\n",
        )
        .expect("write the URL file");
        let config =
            Config::from_toml(toml, dir.path().join("mcp-lp.toml")).expect("a valid config");
        StateSettings::from_config(&config)
    }

    #[test]
    fn accepts_missing_state_table_as_none() {
        assert!(settings("").expect("no [state]").is_none());
    }

    #[test]
    fn accepts_minimal_state_table_with_defaults() {
        let s = settings("[state]\nurl = { file = \"state.url\" }\n")
            .expect("valid")
            .expect("present");
        assert_eq!(s.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(s.pg.get_user(), Some("mcp_lp_state"));
        assert_eq!(s.pg.get_options(), Some("-c statement_timeout=10000"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn rejects_unknown_key_naming_it() {
        let err = settings("[state]\nurl = { file = \"state.url\" }\nmax_conections = 3\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("state.max_conections"), "{err}");
    }

    #[test]
    fn refuses_state_url_to_remote_host_without_tls() {
        for remote in ["10.0.0.5", "db.internal.example", "[2001:db8::1]"] {
            let err = settings_with_url(&format!(
                "postgres://mcp_lp_state:hunter2-secret@{remote}:5432/records"
            ))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(err.contains("state.url"), "{remote}: {err}");
            assert!(err.contains("[state.tls]"), "{remote}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        for local in ["127.0.0.1", "localhost", "[::1]"] {
            assert!(
                settings_with_url(&format!("postgres://mcp_lp_state:pw@{local}:5432/records"))
                    .is_ok(),
                "{local}"
            );
        }
    }

    fn settings_with_url(url: &str) -> Result<Option<StateSettings>, StateError> {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("state.url"), format!("{url}\n")).expect("write");
        let config = Config::from_toml(
            "[state]\nurl = { file = \"state.url\" }\n",
            dir.path().join("mcp-lp.toml"),
        )
        .expect("a valid config");
        StateSettings::from_config(&config)
    }

    #[test]
    fn rejects_inline_url_without_echoing_it() {
        let err = settings("[state]\nurl = \"postgres://w:inline-pw@h/db\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("state.url"), "{err}");
        assert!(!err.contains("inline-pw"), "{err}");
    }
}
