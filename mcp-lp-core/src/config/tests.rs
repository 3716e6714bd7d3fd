use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret;

use super::*;
use crate::capability::Declaration;
use crate::policy::ToolPolicy;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, "/etc/mcp-lp/test.toml")
}

#[test]
fn accepts_empty_file_as_anonymous_without_grants() {
    let config = load("").unwrap();
    assert_eq!(config.stdio_principal().id(), ANONYMOUS);
    assert!(config.stdio_principal().grants().is_empty());
}

/// The instant the governance tests load their configuration at.
const LOADED: &str = "2026-11-26T12:00:00Z";

fn at(text: &str) -> SystemTime {
    SystemTime::from(text.parse::<jiff::Timestamp>().unwrap())
}

fn load_at(text: &str, now: &str) -> Result<Config, ConfigError> {
    Config::from_toml_at(text, Path::new("/etc/mcp-lp/test.toml"), at(now))
}

#[test]
fn accepts_expiring_grants_that_count_until_they_expire() {
    let config = load_at(
        r#"
        [stdio]
        principal = "alice@example.com"
        grants = [
            { name = "notes:read", expires = 2027-01-01T00:00:00Z },
            { name = "notes:delete", expires = 2026-12-01T00:00:00Z },
        ]
        "#,
        LOADED,
    )
    .unwrap();
    let alice = config.stdio_principal();
    assert_eq!(alice.id(), "alice@example.com");
    assert!(alice.holds("notes:delete", at("2026-11-30T23:59:59Z")));
    assert!(!alice.holds("notes:delete", at("2026-12-01T00:00:00Z")));
    assert!(alice.holds("notes:read", at("2026-12-01T00:00:00Z")));
}

#[test]
fn refuses_grant_without_expiry() {
    let err = load_at(
        "[stdio]\ngrants = [\n  { name = \"notes:read\", expires = 2026-12-01T00:00:00Z },\n  \"notes:delete\",\n]\n",
        LOADED,
    )
    .unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::MissingKey);
    assert_eq!(err.key.as_deref(), Some("stdio.grants[1]"));
    assert_eq!(err.line, Some(4));
    let text = err.to_string();
    assert!(
        text.starts_with(
            "/etc/mcp-lp/test.toml:4: key `stdio.grants[1]`: grant `notes:delete` has no expiry"
        ),
        "{text}"
    );
    assert!(
        text.contains("[governance] max_grant_lifetime (90d)"),
        "{text}"
    );
    // The fix the message suggests is itself accepted.
    let fix = "{ name = \"notes:delete\", expires = 2027-02-24T00:00:00Z }";
    assert!(text.ends_with(&format!("write {fix}")), "{text}");
    let config = load_at(&format!("[stdio]\ngrants = [{fix}]\n"), LOADED).unwrap();
    assert!(
        config
            .stdio_principal()
            .holds("notes:delete", at("2027-02-23T23:59:59Z"))
    );
}

#[test]
fn refuses_grant_beyond_max_lifetime() {
    // 90 days and one second after the load.
    let err = load_at(
        "[stdio]\ngrants = [{ name = \"notes:delete\", expires = 2027-02-24T12:00:01Z }]\n",
        LOADED,
    )
    .unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::InvalidValue);
    assert_eq!(err.key.as_deref(), Some("stdio.grants[0]"));
    assert_eq!(err.line, Some(2));
    let text = err.to_string();
    assert!(
        text.contains(
            "grant `notes:delete` expires 2027-02-24T12:00:01Z, later than [governance] max_grant_lifetime (90d) allows (at the latest 2027-02-24T12:00:00Z)"
        ),
        "{text}"
    );
    assert!(
        text.contains("write { name = \"notes:delete\", expires = 2027-02-24T00:00:00Z }"),
        "{text}"
    );
    // A grant for good, in all but name.
    let err = load_at(
        "[stdio]\ngrants = [{ name = \"notes:delete\", expires = 2099-01-01T00:00:00Z }]\n",
        LOADED,
    )
    .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("stdio.grants[0]"));
}

#[test]
fn accepts_grant_within_max_lifetime() {
    // Exactly 90 days after the load is the latest allowed.
    let config = load_at(
        "[stdio]\ngrants = [{ name = \"notes:delete\", expires = 2027-02-24T12:00:00Z }]\n",
        LOADED,
    )
    .unwrap();
    assert_eq!(config.max_grant_lifetime(), DEFAULT_MAX_GRANT_LIFETIME);
    let alice = config.stdio_principal();
    assert!(alice.holds("notes:delete", at("2027-02-24T11:59:59Z")));
    assert!(!alice.holds("notes:delete", at("2027-02-24T12:00:00Z")));
}

#[test]
fn accepts_expired_grant_that_never_counts() {
    let config = load_at(
        "[stdio]\ngrants = [{ name = \"notes:delete\", expires = 2020-01-01T00:00:00Z }]\n",
        LOADED,
    )
    .unwrap();
    assert_eq!(config.stdio_principal().grants().len(), 1);
    assert!(!config.stdio_principal().holds("notes:delete", at(LOADED)));
}

#[test]
fn refuses_grant_beyond_configured_shorter_lifetime() {
    let text = |expires: &str| {
        format!(
            "[governance]\nmax_grant_lifetime = \"7d\"\n\n[stdio]\ngrants = [{{ name = \"notes:delete\", expires = {expires} }}]\n"
        )
    };
    // Within the default 90 days, but not within the configured week.
    let err = load_at(&text("2026-12-04T12:00:00Z"), LOADED).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("stdio.grants[0]"));
    let message = err.to_string();
    assert!(
        message.contains("max_grant_lifetime (7d) allows (at the latest 2026-12-03T12:00:00Z)"),
        "{message}"
    );
    assert!(
        message.contains("expires = 2026-12-03T00:00:00Z }"),
        "{message}"
    );
    let config = load_at(&text("2026-12-03T12:00:00Z"), LOADED).unwrap();
    assert_eq!(config.max_grant_lifetime(), Duration::from_secs(7 * 86_400));
}

#[test]
fn accepts_grant_within_configured_longer_lifetime() {
    let grant = "[stdio]\ngrants = [{ name = \"notes:delete\", expires = 2027-06-01T00:00:00Z }]\n";
    // Past the default 90 days ...
    let err = load_at(grant, LOADED).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("stdio.grants[0]"));
    // ... within a year the operator allows.
    let config = load_at(
        &format!("[governance]\nmax_grant_lifetime = \"365d\"\n\n{grant}"),
        LOADED,
    )
    .unwrap();
    assert_eq!(
        config.max_grant_lifetime(),
        Duration::from_secs(365 * 86_400)
    );
    assert!(
        config
            .stdio_principal()
            .holds("notes:delete", at("2027-05-31T00:00:00Z"))
    );
}

#[test]
fn refuses_grant_without_expiry_suggesting_an_expiry_within_a_short_lifetime() {
    let err = load_at(
        "[governance]\nmax_grant_lifetime = \"30h\"\n\n[stdio]\ngrants = [\"notes:delete\"]\n",
        LOADED,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("max_grant_lifetime (30h)"), "{message}");
    // The last midnight before the limit, 30 hours after the load.
    assert!(
        message.contains("expires = 2026-11-27T00:00:00Z }"),
        "{message}"
    );
    // Under a day: the limit itself, to the second.
    let err = load_at(
        "[governance]\nmax_grant_lifetime = \"90m\"\n\n[stdio]\ngrants = [\"notes:delete\"]\n",
        LOADED,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("expires = 2026-11-26T13:30:00Z }"),
        "{message}"
    );
}

#[test]
fn rejects_max_grant_lifetime_that_is_not_positive() {
    for (value, expected) in [
        ("0s", "must be greater than zero"),
        ("-7d", "must be greater than zero"),
        ("soon", "is not a duration"),
        ("1y", "is not a duration"),
    ] {
        let err = load(&format!("[governance]\nmax_grant_lifetime = \"{value}\"\n")).unwrap_err();
        assert_eq!(
            err.key.as_deref(),
            Some("governance.max_grant_lifetime"),
            "{value}"
        );
        assert!(err.to_string().contains(expected), "{value}: {err}");
    }
    let err = load("[governance]\nmax_grant_lifetime = 90\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("governance.max_grant_lifetime"));
}

#[test]
fn rejects_max_grant_lifetime_too_long_to_count() {
    let err = load("[governance]\nmax_grant_lifetime = \"2562047788015215h\"\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("governance.max_grant_lifetime"));
    assert!(err.to_string().contains("too long"), "{err}");
}

#[test]
fn rejects_unknown_key_naming_table_and_key() {
    let err = load("[stdio]\nprincipal = \"a\"\ngrant = [\"x\"]\n").unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::UnknownKey);
    assert_eq!(err.key.as_deref(), Some("stdio.grant"));
    assert_eq!(err.line, Some(3));
    let text = err.to_string();
    assert!(
        text.starts_with("/etc/mcp-lp/test.toml:3: key `stdio.grant`"),
        "{text}"
    );
    assert!(text.contains("unknown field `grant`"), "{text}");
    assert!(text.contains("`grants`"), "{text}");
}

#[test]
fn rejects_unknown_top_level_table() {
    let err = load("[stido]\nprincipal = \"a\"\n").unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::UnknownKey);
    assert!(err.to_string().contains("unknown field `stido`"), "{err}");
}

#[test]
fn rejects_wrong_type_naming_the_key() {
    let err = load("[limits]\nmax_output_bytes = \"lots\"\n").unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::WrongType);
    assert_eq!(err.key.as_deref(), Some("limits.max_output_bytes"));
    assert!(err.to_string().contains("invalid type"), "{err}");
}

#[test]
fn rejects_zero_limit() {
    let err = load("[limits]\nmax_output_bytes = 0\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("limits.max_output_bytes"));
}

#[test]
fn rejects_bad_duration_naming_the_key() {
    let err = load("[tools.read_note]\ntimeout = \"soon\"\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("tools.read_note.timeout"));
    assert!(err.to_string().contains("\"30s\""), "{err}");
}

#[test]
fn rejects_malformed_grant_naming_its_index() {
    let err = load("[stdio]\ngrants = [\"ok\", \"docs delete\"]\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("stdio.grants[1]"));
    assert!(
        err.to_string().contains("malformed grant `docs delete`"),
        "{err}"
    );
}

#[test]
fn rejects_grant_expiry_without_offset() {
    let err = load("[stdio]\ngrants = [{ name = \"a:b\", expires = 2030-01-01T00:00:00 }]\n")
        .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("stdio.grants[0]"));
    assert!(err.to_string().contains("UTC offset"), "{err}");
}

#[test]
fn rejects_missing_secret_file_naming_key_and_reference() {
    let err =
        load("[secrets]\napi-key = { file = \"/nonexistent/mcp-lp/api-key\" }\n").unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::Secret);
    assert_eq!(err.key.as_deref(), Some("secrets.api-key"));
    let text = err.to_string();
    assert!(text.contains("/nonexistent/mcp-lp/api-key"), "{text}");
    assert!(text.contains("not found"), "{text}");
}

#[test]
fn rejects_env_secret_without_dev_flag_and_never_reads_it() {
    // `set_var` is unsafe under edition 2024, so use a variable that is always set.
    let err = load("[secrets]\ntoken = { env = \"PATH\" }\n").unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::Secret);
    assert_eq!(err.key.as_deref(), Some("secrets.token"));
    let text = err.to_string();
    assert!(text.contains("allow_env_secrets"), "{text}");
    let path = std::env::var("PATH").unwrap();
    assert!(!text.contains(&path), "{text}");
}

#[test]
fn accepts_env_secret_with_dev_flag() {
    let config =
        load("[dev]\nallow_env_secrets = true\n[secrets]\ntoken = { env = \"PATH\" }\n").unwrap();
    let path = std::env::var("PATH").unwrap();
    assert_eq!(config.secret("token").unwrap().expose_secret(), path);
    assert!(!format!("{config:?}").contains(&path));
}

#[test]
fn rejects_inline_secret_without_echoing_it() {
    let err = load("[secrets]\ndb = \"postgres://admin:hunter2@db/prod\"\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("secrets.db"));
    let text = err.to_string();
    assert!(text.contains("inline values are refused"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn rejects_unknown_secret_source() {
    let err = load("[secrets]\ndb = { vault = \"x\" }\n").unwrap_err();
    assert!(
        err.to_string().contains("unknown secret source `vault`"),
        "{err}"
    );
}

#[test]
fn resolves_relative_secret_file_next_to_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.txt"), "s3cr3t\n").unwrap();
    let path = dir.path().join("mcp-lp.toml");
    std::fs::write(&path, "[secrets]\nkey = { file = \"key.txt\" }\n").unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.secret("key").unwrap().expose_secret(), "s3cr3t");
}

#[tokio::test]
async fn accepts_secret_file_rewritten_under_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.txt"), "first\n").unwrap();
    let path = dir.path().join("mcp-lp.toml");
    std::fs::write(
        &path,
        "[secrets_refresh]\npoll = \"1s\"\n\n[secrets]\nkey = { file = \"key.txt\" }\n",
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    let secret = config.refreshing("key").unwrap();
    assert_eq!(secret.name(), "secrets.key");
    let mut changes = secret.subscribe();
    std::fs::write(dir.path().join("key.tmp"), "second\n").unwrap();
    std::fs::rename(dir.path().join("key.tmp"), dir.path().join("key.txt")).unwrap();
    tokio::time::timeout(Duration::from_secs(30), changes.changed())
        .await
        .expect("the new file is read")
        .expect("the secret is alive");
    assert_eq!(secret.current().unwrap().expose_secret(), "second");
    // The startup value stays what it was; the refreshing secret is the one to use.
    assert_eq!(config.secret("key").unwrap().expose_secret(), "first");
}

#[test]
fn rejects_zero_secrets_refresh_durations() {
    let err = load("[secrets_refresh]\nmax_age = \"0s\"\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("secrets_refresh.max_age"), "{err}");
}

#[test]
fn rejects_syntax_error_with_line() {
    let err = load("[stdio]\nprincipal = \n").unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::Syntax);
    assert_eq!(err.line, Some(2));
}

#[test]
fn limits_resolve_config_tool_then_attribute_then_defaults() {
    const READ: ToolPolicy = ToolPolicy::new("read").with_timeout(Duration::from_secs(3));
    const DELETE: ToolPolicy = ToolPolicy::new("delete").with_max_output_bytes(10);
    let config = load(
        "[limits]\ntimeout = \"20s\"\nmax_output_bytes = 99\n[tools.read]\ntimeout = \"1s\"\n",
    )
    .unwrap();
    assert_eq!(config.limits_for(&READ).timeout, Duration::from_secs(1));
    assert_eq!(config.limits_for(&READ).max_output_bytes, 99);
    assert_eq!(config.limits_for(&DELETE).timeout, Duration::from_secs(20));
    assert_eq!(config.limits_for(&DELETE).max_output_bytes, 10);
    assert_eq!(
        Config::defaults().limits_for(&DELETE).timeout,
        crate::limits::DEFAULT_TIMEOUT
    );
}

#[test]
fn rejects_tool_table_naming_no_tool() {
    let config = load("[tools.delet_note]\ntimeout = \"1s\"\n").unwrap();
    let err = config
        .check_tools(&[ToolPolicy::new("delete_note")])
        .unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::Mismatch);
    assert_eq!(err.key.as_deref(), Some("tools.delet_note"));
    assert!(err.to_string().contains("`delete_note`"), "{err}");
}

#[test]
fn app_settings_errors_name_the_app_key() {
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Settings {
        notes_dir: String,
    }
    let config = load("[app]\nnotes_dir = 5\n").unwrap();
    let err = config.app::<Settings>().unwrap_err();
    assert_eq!(err.key.as_deref(), Some("app.notes_dir"));
}

/// A kind of capability no crate of mcp-lp defines: the checks below hold for any kind.
struct VaultSecret;

impl crate::capability::Kind for VaultSecret {
    const NAME: &'static str = "vault.secret";
    const TABLE: &'static str = "vault.secrets";
    const ACCESS: crate::capability::Access = crate::capability::Access::Read;
}

fn declaring(tool: &'static str, names: &'static [Declaration]) -> ToolPolicy {
    ToolPolicy::new(tool).with_capabilities(names)
}

const BILLING: &[Declaration] = &[Declaration::of::<VaultSecret>("billing")];

#[test]
fn rejects_capability_without_its_table() {
    let config = load("").unwrap();
    let err = config
        .check_tools(&[declaring("charge", BILLING)])
        .unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::Mismatch);
    assert_eq!(err.key.as_deref(), Some("vault.secrets.billing"));
    assert!(
        err.to_string().contains(
            "tool `charge` declares vault.secret `billing`, but the configuration has no [vault.secrets.billing] table"
        ),
        "{err}"
    );
}

#[test]
fn rejects_capability_table_no_tool_declares() {
    let config = load("[vault.secrets.billing]\n[vault.secrets.payroll]\n").unwrap();
    let err = config
        .check_tools(&[declaring("charge", BILLING)])
        .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("vault.secrets.payroll"));
    assert!(
        err.to_string()
            .contains("no tool declares vault.secret `payroll`"),
        "{err}"
    );
}

#[test]
fn rejects_provider_table_no_tool_needs() {
    let config = load("[vault]\ndir = \"secrets\"\n").unwrap();
    let err = config
        .check_tools(&[ToolPolicy::new("charge")])
        .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("vault"));
    assert!(
        err.to_string()
            .contains("no tool declares a capability configured there"),
        "{err}"
    );
    // Declared, the same table is the provider's to read.
    let config = load("[vault]\ndir = \"secrets\"\n[vault.secrets.billing]\n").unwrap();
    config.check_tools(&[declaring("charge", BILLING)]).unwrap();
}

#[test]
fn resolves_provider_secret_naming_its_key() {
    let config = load("").unwrap();
    let err = config
        .resolve_secret(
            "db.read.url",
            &SecretRef::File("/nonexistent/db-url".into()),
        )
        .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("db.read.url"));
    assert_eq!(err.kind, ConfigErrorKind::Secret);
}

#[test]
fn reads_provider_dev_switches_off_unless_set() {
    assert!(!load("").unwrap().dev_switch("allow_static_aws_keys"));
    assert!(
        load("[dev]\nallow_static_aws_keys = true\n")
            .unwrap()
            .dev_switch("allow_static_aws_keys")
    );
}

#[test]
fn rejects_hmac_algorithm_for_bearer_tokens() {
    let err = load(
        "[http.auth]\nissuer = \"https://auth.example.com\"\nalgorithms = [\"RS256\", \"HS256\"]\n",
    )
    .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("http.auth.algorithms[1]"));
    assert!(err.to_string().contains("`HS256` is not accepted"), "{err}");
}

#[test]
fn rejects_plain_http_issuer_off_loopback() {
    let err = load("[http.auth]\nissuer = \"http://auth.example.com\"\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("http.auth.issuer"));
}

#[test]
fn accepts_http_section_with_defaults() {
    let config = load("[http]\n[http.auth]\nissuer = \"https://auth.example.com\"\n").unwrap();
    let http = config.http().unwrap();
    assert_eq!(http.resource_uri(), "http://127.0.0.1:8080/mcp");
    assert_eq!(
        http.auth.as_ref().unwrap().algorithms,
        ["RS256", "ES256", "EdDSA"]
    );
}

#[test]
fn serves_every_known_protocol_revision_by_default() {
    let config = load("").unwrap();
    let served: Vec<&str> = config
        .protocol_versions()
        .iter()
        .map(|v| v.as_str())
        .collect();
    assert!(served.contains(&"2025-11-25"), "{served:?}");
    assert!(served.contains(&"2026-07-28"), "{served:?}");
}

#[test]
fn accepts_a_chosen_protocol_revision() {
    let config = load("[protocol]\nversions = [\"2026-07-28\"]\n").unwrap();
    let served: Vec<&str> = config
        .protocol_versions()
        .iter()
        .map(|v| v.as_str())
        .collect();
    assert_eq!(served, ["2026-07-28"]);
}

#[test]
fn rejects_unknown_protocol_revision_naming_the_known_ones() {
    let err = load("[protocol]\nversions = [\"2027-01-01\"]\n").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("protocol.versions"));
    let text = err.to_string();
    assert!(text.contains("\"2027-01-01\""), "{text}");
    assert!(text.contains("\"2026-07-28\""), "{text}");
    assert!(load("[protocol]\nversions = []\n").is_err());
}

#[test]
fn rejects_short_sealing_key_naming_it_without_its_value() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.key"), "too-short-a-key").unwrap();
    let text =
        "[request_state]\nkeys = [{ id = \"2026-11\", secret = { file = \"state.key\" } }]\n";
    let err = Config::from_toml(text, dir.path().join("c.toml")).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("request_state.keys"));
    let message = err.to_string();
    assert!(message.contains("key `2026-11` is 15 bytes"), "{message}");
    assert!(!message.contains("too-short-a-key"), "{message}");
}

#[test]
fn rejects_missing_sealing_key_file_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[request_state]\nkeys = [{ id = \"a\", secret = { file = \"missing.key\" } }]\n";
    let err = Config::from_toml(text, dir.path().join("c.toml")).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("request_state.keys[0].secret"));
    assert_eq!(err.kind, ConfigErrorKind::Secret);
}

#[test]
fn rejects_inline_sealing_key() {
    let text = "[request_state]\nkeys = [{ id = \"a\", secret = \"an-inline-secret-of-more-than-32-bytes\" }]\n";
    let err = load(text).unwrap_err();
    assert!(!err.to_string().contains("an-inline-secret"), "{err}");
}

#[test]
fn accepts_rotating_sealing_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("new.key"), "n".repeat(32)).unwrap();
    std::fs::write(dir.path().join("old.key"), "o".repeat(40)).unwrap();
    let text = "[request_state]\nttl = \"2m\"\nkeys = [\n  { id = \"new\", secret = { file = \"new.key\" } },\n  { id = \"old\", secret = { file = \"old.key\" } },\n]\n";
    let config = Config::from_toml(text, dir.path().join("c.toml")).unwrap();
    let sealer = config.request_state_sealer().unwrap();
    assert_eq!(sealer.sealing_key(), "new");
    assert_eq!(sealer.ttl(), Duration::from_secs(120));
}

#[tokio::test]
async fn starts_no_task_while_loading_and_follows_keys_once_the_sealer_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.key"), "k".repeat(32)).unwrap();
    let text = "[request_state]\nkeys = [{ id = \"k\", secret = { file = \"k.key\" } }]\n";
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before = tasks();
    let config = Config::from_toml(text, dir.path().join("c.toml")).unwrap();
    assert_eq!(tasks(), before, "loading the configuration spawned a task");
    config.request_state_sealer().unwrap();
    let following = tasks();
    assert!(following > before, "the sealer follows no key");
    config.request_state_sealer().unwrap();
    assert_eq!(tasks(), following, "asking again started more");
}
