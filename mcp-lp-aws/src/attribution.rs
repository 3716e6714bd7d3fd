//! Attribution: what the AssumeRole call says about who the credentials are for, so that the
//! cloud's own audit trail (CloudTrail) names the person and the tool, not only the server.
//!
//! Every value is made to fit STS's rules. A value that had to be changed (a character STS does
//! not allow, or too long) gets 64 bits of a hash of the original appended, so two principals
//! never end up with the same session name: finding a principal id (an email claim, say) whose
//! value collides with another's takes about 2^64 tries, not the 2^32 of a 32-bit hash.

use sha2::{Digest as _, Sha256};

/// The session tag naming the tool.
pub const TOOL_TAG: &str = "mcp-tool";
/// The session tag naming the principal.
pub const PRINCIPAL_TAG: &str = "mcp-principal";

/// STS: RoleSessionName and SourceIdentity are 2 to 64 characters of `[\w+=,.@-]`.
const SESSION_NAME_MAX: usize = 64;
/// STS: a session tag value is at most 256 characters.
const TAG_VALUE_MAX: usize = 256;

/// Bytes of the SHA-256 of a changed value kept in it: 64 bits, as 16 hex digits.
const HASH_BYTES: usize = 8;

/// The parameters of one AssumeRole call that depend on the call: everything else is fixed per
/// role at startup. Also the credential cache's key (with the role), so calls that would send
/// the same request share credentials and calls that would not, never do.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct SessionParams {
    pub(crate) session_name: String,
    pub(crate) source_identity: Option<String>,
    pub(crate) tags: Vec<(&'static str, String)>,
}

/// How a role's sessions are attributed, from `[aws.roles.<name>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attribution {
    /// Name the tool and principal in RoleSessionName (one session per tool and principal), or
    /// one session per role named after the role.
    pub(crate) per_principal: bool,
    /// Send SourceIdentity = the principal.
    pub(crate) source_identity: bool,
    /// Send session tags naming the tool and the principal.
    pub(crate) session_tags: bool,
}

impl Attribution {
    /// The call-dependent AssumeRole parameters for `role`, called by `tool` for `principal`.
    pub(crate) fn params(&self, role: &str, tool: &str, principal: &str) -> SessionParams {
        let session_name = if self.per_principal {
            session_name(tool, principal)
        } else {
            fit(&format!("mcp-lp.{role}"), SESSION_NAME_MAX, is_session_char)
        };
        SessionParams {
            session_name,
            source_identity: self.source_identity.then(|| source_identity(principal)),
            tags: if self.session_tags {
                vec![
                    (TOOL_TAG, fit(tool, TAG_VALUE_MAX, is_tag_char)),
                    (PRINCIPAL_TAG, fit(principal, TAG_VALUE_MAX, is_tag_char)),
                ]
            } else {
                Vec::new()
            },
        }
    }
}

/// RoleSessionName for `tool` called by `principal`: `<tool>.<principal>`, fitted to STS's rules.
pub(crate) fn session_name(tool: &str, principal: &str) -> String {
    fit(
        &format!("{tool}.{principal}"),
        SESSION_NAME_MAX,
        is_session_char,
    )
}

/// SourceIdentity for `principal`, fitted to STS's rules (which also forbid an `aws:` prefix,
/// impossible here since `:` is replaced).
pub(crate) fn source_identity(principal: &str) -> String {
    fit(principal, SESSION_NAME_MAX, is_session_char)
}

fn is_session_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)
}

/// `raw` if it is 2 to `max` allowed characters; else the allowed prefix, with disallowed
/// characters replaced by `_`, followed by `-` and 16 hex digits of the original's SHA-256.
fn fit(raw: &str, max: usize, allowed: fn(char) -> bool) -> String {
    let count = raw.chars().count();
    if (2..=max).contains(&count) && raw.chars().all(allowed) {
        return raw.to_owned();
    }
    let digest = Sha256::digest(raw.as_bytes());
    let mut out: String = raw
        .chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .take(max - 1 - 2 * HASH_BYTES)
        .collect();
    out.push('-');
    for byte in &digest[..HASH_BYTES] {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_session_value(s: &str) -> bool {
        (2..=64).contains(&s.len()) && s.chars().all(is_session_char)
    }

    #[test]
    fn accepts_plain_tool_and_principal_unchanged() {
        assert_eq!(
            session_name("readDocument", "alice@example.com"),
            "readDocument.alice@example.com"
        );
        assert_eq!(source_identity("alice@example.com"), "alice@example.com");
    }

    #[test]
    fn rejects_disallowed_characters_by_replacing_and_hashing() {
        let name = session_name("readDocument", "Alice Smith <alice@example.com>");
        assert!(valid_session_value(&name), "{name}");
        assert!(name.starts_with("readDocument.Alice_Smith__alice@example.com_-"));
        // Two principals that differ only in a replaced character stay apart.
        assert_ne!(
            session_name("t", "alice smith"),
            session_name("t", "alice/smith")
        );
        let id = source_identity("aws:evil");
        assert!(valid_session_value(&id) && !id.starts_with("aws:"), "{id}");
    }

    #[test]
    fn rejects_overlong_values_by_truncating_and_hashing() {
        let long = "p".repeat(300);
        let name = session_name("deleteDocument", &long);
        assert_eq!(name.len(), 64);
        assert!(valid_session_value(&name));
        assert_ne!(name, session_name("deleteDocument", &"p".repeat(301)));
        let id = source_identity("x");
        assert!(valid_session_value(&id), "{id}");
    }

    #[test]
    fn rejects_short_hashes_by_keeping_64_bits_of_a_changed_value() {
        let long = format!("{}@example.com", "a".repeat(80));
        for value in [
            session_name("deleteDocument", &long),
            source_identity(&long),
            source_identity("Alice Smith"),
            fit(&"t".repeat(300), TAG_VALUE_MAX, is_tag_char),
        ] {
            let (_, hash) = value.rsplit_once('-').expect("a hash suffix");
            assert_eq!(hash.len(), 16, "{value}");
            assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{value}");
        }
        let name = session_name("deleteDocument", &long);
        assert!(valid_session_value(&name), "{name}");
        let digest = Sha256::digest(format!("deleteDocument.{long}").as_bytes());
        let expected: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert!(name.ends_with(&expected), "{name}");
    }

    #[test]
    fn accepts_tags_and_source_identity_only_when_enabled() {
        let none = Attribution {
            per_principal: true,
            source_identity: false,
            session_tags: false,
        };
        let params = none.params("docs-read", "readDocument", "alice");
        assert_eq!(params.source_identity, None);
        assert!(params.tags.is_empty());

        let all = Attribution {
            per_principal: true,
            source_identity: true,
            session_tags: true,
        };
        let params = all.params("docs-read", "readDocument", "alice");
        assert_eq!(params.source_identity.as_deref(), Some("alice"));
        assert_eq!(
            params.tags,
            vec![
                (TOOL_TAG, "readDocument".to_owned()),
                (PRINCIPAL_TAG, "alice".to_owned())
            ]
        );
    }

    #[test]
    fn accepts_one_session_per_role_without_per_principal_attribution() {
        let shared = Attribution {
            per_principal: false,
            source_identity: false,
            session_tags: false,
        };
        let a = shared.params("docs-read", "readDocument", "alice");
        let b = shared.params("docs-read", "listDocuments", "bob");
        assert!(a == b);
        assert_eq!(a.session_name, "mcp-lp.docs-read");
    }
}
