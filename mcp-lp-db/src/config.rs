//! The `[db.<name>]` tables: one per capability, read from mcp-lp's configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use mcp_lp::secret_refresh::RefreshingSecret;
use mcp_lp::{Config, SecretRef};

use crate::kind::DbAccess;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::error::StartupError;

/// The pool size when `max_connections` is not configured.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10;

/// How long a call waits for a free connection when `checkout_timeout` is not configured.
pub const DEFAULT_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long opening a connection may take when `connect_timeout` is not configured.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The server-side limit on one statement when `statement_timeout` is not configured.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The setting that holds the principal's MAC, for `mcp_lp.principal()` to verify: hex of
/// HMAC-SHA256 under the key this connection registered with `mcp_lp.register_connection_key`.
pub const PRINCIPAL_MAC_SETTING: &str = "mcp_lp.principal_mac";

/// Whether a capability's calls send the principal: `principal = "auto"` (the default),
/// `"always"` or `"never"` in `[db.<name>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PrincipalMode {
    /// Send it when, at startup, a row-level policy or a column default on a table the role
    /// can reach reads `mcp_lp.principal` (in its expression or in a function it calls).
    #[default]
    Auto,
    /// Send it with every statement or transaction.
    Always,
    /// Never send it.
    Never,
}

/// The setting that holds the calling principal's id in every transaction, for row-level
/// security policies: `current_setting('mcp_lp.principal', true)`.
pub const PRINCIPAL_SETTING: &str = "mcp_lp.principal";

/// What the startup privilege check does with a role that holds more than its capability
/// allows: `privilege_check = "enforce"` (the default) or `"warn-only"` in `[db.<name>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PrivilegeCheck {
    /// Refuse to start.
    #[default]
    Enforce,
    /// Log each offending privilege at WARN and start anyway. For migrating an existing
    /// database; never the default.
    WarnOnly,
}

/// The whole `[db]` table: one capability per key.
#[derive(Deserialize)]
#[serde(transparent)]
pub(crate) struct DbSection(pub(crate) BTreeMap<String, CapabilitySection>);

/// One `[db.<name>]` table as written. Holds a reference to the URL, never the URL.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CapabilitySection {
    url: SecretRef,
    #[serde(default)]
    max_connections: Option<NonZeroUsize>,
    #[serde(default, deserialize_with = "de_duration")]
    checkout_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    connect_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    statement_timeout: Option<Duration>,
    #[serde(default)]
    schemas: Option<Vec<String>>,
    #[serde(default)]
    privilege_check: PrivilegeCheck,
    #[serde(default)]
    principal: PrincipalMode,
    #[serde(default)]
    tls: Option<TlsSection>,
}

/// `[db.<name>.tls]`: connect over TLS and verify the server against this CA.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSection {
    /// PEM file of the certificate authorities to trust; relative to the configuration's
    /// directory.
    ca_file: PathBuf,
}

/// One capability's settings, resolved: the URL parsed into a connection configuration whose
/// `Debug` redacts the password.
pub(crate) struct CapabilitySettings {
    pub(crate) name: String,
    /// The connection configuration of the URL resolved at startup.
    pub(crate) pg: tokio_postgres::Config,
    /// The URL, refreshed under the running server; [`Self::connection_config`] turns a new
    /// value into a connection configuration.
    pub(crate) url: RefreshingSecret,
    pub(crate) max_connections: usize,
    pub(crate) checkout_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) statement_timeout: Duration,
    pub(crate) schemas: Vec<String>,
    pub(crate) privilege_check: PrivilegeCheck,
    pub(crate) principal: PrincipalMode,
    /// The CA file, resolved against the configuration's directory.
    pub(crate) tls_ca_file: Option<PathBuf>,
    shape: UrlShape,
}

impl CapabilitySettings {
    /// The connection configuration for `url`, with the capability's session settings; the
    /// problem never quotes the URL.
    pub(crate) fn connection_config(
        &self,
        url: &SecretString,
    ) -> Result<tokio_postgres::Config, String> {
        self.shape.connection_config(url)
    }
}

/// What a capability adds to its URL: the session's settings, timeouts and TLS mode.
#[derive(Clone)]
struct UrlShape {
    name: String,
    access: DbAccess,
    statement_timeout: Duration,
    connect_timeout: Duration,
    tls: bool,
}

impl UrlShape {
    fn connection_config(&self, url: &SecretString) -> Result<tokio_postgres::Config, String> {
        let mut pg = parse_url(url).map_err(str::to_owned)?;
        // Passed in the startup packet, so the values are the session's defaults: a handler's
        // `SET statement_timeout` is undone by the `RESET ALL` that cleans every connection.
        // A read capability's connections are read-only by default; whether that alone keeps
        // its readers from writing is decided at startup (see `Envelope`).
        let mut options = pg.get_options().map(str::to_owned).unwrap_or_default();
        if !options.is_empty() {
            options.push(' ');
        }
        options.push_str(&format!(
            "-c statement_timeout={}",
            self.statement_timeout.as_millis()
        ));
        if self.access == DbAccess::Read {
            options.push_str(" -c default_transaction_read_only=on");
        }
        pg.options(&options);
        pg.connect_timeout(self.connect_timeout);
        pg.application_name(format!("mcp-lp/{}", self.name));
        if self.tls {
            pg.ssl_mode(tokio_postgres::config::SslMode::Require);
        } else {
            if pg.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
                return Err(format!(
                    "the URL asks for sslmode=require; configure TLS with [db.{}.tls] ca_file = \"...\"",
                    self.name
                ));
            }
            // Without a TLS connector, `prefer` would silently mean plain text anyway.
            pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
        }
        Ok(pg)
    }
}

impl fmt::Debug for CapabilitySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapabilitySettings")
            .field("name", &self.name)
            .field("user", &self.pg.get_user())
            .field("max_connections", &self.max_connections)
            .field("checkout_timeout", &self.checkout_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("schemas", &self.schemas)
            .field("privilege_check", &self.privilege_check)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl CapabilitySection {
    /// Resolve the URL reference and apply defaults. Errors name the file and the `db.` key.
    ///
    /// `access` is what the capability's tools do with it, and `longest_tool_timeout` the
    /// longest timeout among them: a statement may not outlast every tool that could wait for
    /// it, so a longer `statement_timeout` is refused, and the default is capped at it.
    pub(crate) fn resolve(
        self,
        name: &str,
        config: &Config,
        access: DbAccess,
        longest_tool_timeout: Duration,
    ) -> Result<CapabilitySettings, StartupError> {
        let key = |k: &str| format!("db.{name}.{k}");
        let setting = |k: &str, problem: String| StartupError::Setting {
            path: config.path().to_owned(),
            key: key(k),
            problem,
        };

        let url = config.resolve_secret(&key("url"), &self.url)?;

        let schemas = self.schemas.unwrap_or_else(|| vec!["public".to_owned()]);
        if let Some(bad) = schemas.iter().find(|s| s.is_empty() || s.len() > 63) {
            return Err(setting(
                "schemas",
                format!("`{bad}` is not a schema name (1 to 63 bytes)"),
            ));
        }

        let statement_timeout = match self.statement_timeout {
            Some(configured) if configured > longest_tool_timeout => {
                return Err(setting(
                    "statement_timeout",
                    format!(
                        "{configured:?} is longer than the timeout of every tool using the capability (the longest is {longest_tool_timeout:?}): a statement would run on after its call gave up; make it at most {longest_tool_timeout:?}"
                    ),
                ));
            }
            Some(configured) => configured,
            None => DEFAULT_STATEMENT_TIMEOUT.min(longest_tool_timeout),
        };
        let connect_timeout = self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let tls_ca_file = match self.tls {
            Some(tls) => {
                if !cfg!(feature = "tls") {
                    return Err(setting(
                        "tls",
                        "this server was built without TLS support: enable the `tls` feature of mcp-lp-db".into(),
                    ));
                }
                let base = config
                    .path()
                    .parent()
                    .map(PathBuf::from)
                    .unwrap_or_default();
                Some(base.join(tls.ca_file))
            }
            None => None,
        };
        let shape = UrlShape {
            name: name.to_owned(),
            access,
            statement_timeout,
            connect_timeout,
            tls: tls_ca_file.is_some(),
        };
        let pg = shape
            .connection_config(&url)
            .map_err(|problem| setting("url", problem))?;
        // A rotated URL must make a connection configuration too, or it is refused and the
        // last good one kept.
        let validate = {
            let shape = shape.clone();
            Arc::new(move |url: &SecretString| shape.connection_config(url).map(|_| ()))
        };
        let url = config.keep_refreshed(&key("url"), &self.url, url, Some(validate));

        Ok(CapabilitySettings {
            name: name.to_owned(),
            pg,
            url,
            shape,
            max_connections: self
                .max_connections
                .map_or(DEFAULT_MAX_CONNECTIONS, NonZeroUsize::get),
            checkout_timeout: self.checkout_timeout.unwrap_or(DEFAULT_CHECKOUT_TIMEOUT),
            connect_timeout,
            statement_timeout,
            schemas,
            privilege_check: self.privilege_check,
            principal: self.principal,
            tls_ca_file,
        })
    }
}

/// Parse a connection URL, `postgres://ROLE:PASSWORD@HOST:PORT/DATABASE`, that names a role
/// and a host. The problem never quotes the URL: it holds the password.
pub fn parse_url(url: &SecretString) -> Result<tokio_postgres::Config, &'static str> {
    let text = url.expose_secret();
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Err(
            "the secret is not a PostgreSQL URL; write postgres://ROLE:PASSWORD@HOST:PORT/DATABASE",
        );
    }
    let pg = tokio_postgres::Config::from_str(text).map_err(|_| {
        "the secret is not a valid PostgreSQL URL; write postgres://ROLE:PASSWORD@HOST:PORT/DATABASE (percent-encode special characters)"
    })?;
    if pg.get_user().is_none() {
        return Err("the URL names no role; write postgres://ROLE:PASSWORD@HOST:PORT/DATABASE");
    }
    if pg.get_hosts().is_empty() {
        return Err("the URL names no host; write postgres://ROLE:PASSWORD@HOST:PORT/DATABASE");
    }
    Ok(pg)
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

    fn settings(toml: &str) -> Result<CapabilitySettings, StartupError> {
        settings_for(toml, DbAccess::Write)
    }

    fn settings_for(toml: &str, access: DbAccess) -> Result<CapabilitySettings, StartupError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("read.url"),
            "postgres://reader:hunter2-secret@127.0.0.1:5432/records\n",
        )
        .unwrap();
        let path = dir.path().join("mcp-lp.toml");
        let config = Config::from_toml(toml, &path).unwrap();
        let section: DbSection = config.provider_table("db").map_err(StartupError::from)?;
        let (name, capability) = section.0.into_iter().next().unwrap();
        capability.resolve(&name, &config, access, Duration::from_secs(120))
    }

    #[test]
    fn accepts_minimal_capability_with_defaults() {
        let s = settings("[db.read]\nurl = { file = \"read.url\" }\n").unwrap();
        assert_eq!(s.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(s.checkout_timeout, DEFAULT_CHECKOUT_TIMEOUT);
        assert_eq!(s.schemas, ["public"]);
        assert_eq!(s.privilege_check, PrivilegeCheck::Enforce);
        assert_eq!(s.pg.get_user(), Some("reader"));
        assert_eq!(s.pg.get_options(), Some("-c statement_timeout=30000"));
    }

    #[test]
    fn accepts_every_key() {
        let s = settings(
            "[db.read]\nurl = { file = \"read.url\" }\nmax_connections = 3\ncheckout_timeout = \"250ms\"\n\
             connect_timeout = \"2s\"\nstatement_timeout = \"1m\"\nschemas = [\"app\", \"public\"]\n\
             privilege_check = \"warn-only\"\n",
        )
        .unwrap();
        assert_eq!(s.max_connections, 3);
        assert_eq!(s.checkout_timeout, Duration::from_millis(250));
        assert_eq!(s.pg.get_connect_timeout(), Some(&Duration::from_secs(2)));
        assert_eq!(s.statement_timeout, Duration::from_secs(60));
        assert_eq!(s.schemas, ["app", "public"]);
        assert_eq!(s.privilege_check, PrivilegeCheck::WarnOnly);
    }

    #[test]
    fn rejects_unknown_key_naming_it() {
        let err = settings("[db.read]\nurl = { file = \"read.url\" }\nmax_conections = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("db.read.max_conections"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn rejects_inline_url_without_echoing_it() {
        let err = settings("[db.read]\nurl = \"postgres://reader:inline-pw@h/db\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("db.read.url"), "{err}");
        assert!(!err.contains("inline-pw"), "{err}");
    }

    #[test]
    fn rejects_misspelled_privilege_check() {
        let err =
            settings("[db.read]\nurl = { file = \"read.url\" }\nprivilege_check = \"warn\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("db.read.privilege_check"), "{err}");
        assert!(err.contains("warn-only"), "{err}");
    }

    #[test]
    fn accepts_read_only_default_and_principal_mode_on_a_read_capability() {
        let s = settings_for(
            "[db.read]\nurl = { file = \"read.url\" }\nprincipal = \"never\"\n",
            DbAccess::Read,
        )
        .unwrap();
        assert_eq!(
            s.pg.get_options(),
            Some("-c statement_timeout=30000 -c default_transaction_read_only=on")
        );
        assert_eq!(s.principal, PrincipalMode::Never);
        let s = settings("[db.read]\nurl = { file = \"read.url\" }\n").unwrap();
        assert_eq!(s.principal, PrincipalMode::Auto);
    }

    #[test]
    fn refuses_statement_timeout_longer_than_every_tool_timeout() {
        let err =
            settings("[db.read]\nurl = { file = \"read.url\" }\nstatement_timeout = \"3m\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("db.read.statement_timeout"), "{err}");
        assert!(err.contains("longest is 120s"), "{err}");
    }

    #[test]
    fn rejects_misspelled_principal_mode() {
        let err = settings("[db.read]\nurl = { file = \"read.url\" }\nprincipal = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("db.read.principal"), "{err}");
        assert!(err.contains("auto"), "{err}");
    }

    #[test]
    fn rejects_zero_max_connections() {
        let err = settings("[db.read]\nurl = { file = \"read.url\" }\nmax_connections = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("db.read.max_connections"), "{err}");
    }

    #[test]
    fn rejects_malformed_url_without_echoing_it() {
        for url in [
            "postgres://reader:pw-secret@host:notaport/db",
            "reader:pw-secret@host/db",
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("read.url"), url).unwrap();
            let config = Config::from_toml(
                "[db.read]\nurl = { file = \"read.url\" }\n",
                dir.path().join("mcp-lp.toml"),
            )
            .unwrap();
            let section: DbSection = config.provider_table("db").unwrap();
            let (name, capability) = section.0.into_iter().next().unwrap();
            let err = capability
                .resolve(&name, &config, DbAccess::Read, Duration::from_secs(30))
                .unwrap_err()
                .to_string();
            assert!(err.contains("db.read.url"), "{err}");
            assert!(!err.contains("pw-secret"), "{err}");
        }
    }

    #[test]
    fn debug_of_settings_redacts_password() {
        let s = settings("[db.read]\nurl = { file = \"read.url\" }\n").unwrap();
        let debug = format!("{s:?} {:?}", s.pg);
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn rejects_tls_without_the_feature() {
        let err =
            settings("[db.read]\nurl = { file = \"read.url\" }\ntls = { ca_file = \"ca.pem\" }\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("db.read.tls"), "{err}");
        assert!(err.contains("`tls` feature"), "{err}");
    }
}
