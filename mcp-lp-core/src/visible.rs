//! Text a person reads and decides on: characters nobody sees (bidi overrides, zero-width
//! spaces, controls) found and escaped, and names compared as a person reads them.
//!
//! An approver decides on what the page and `approvals show` display, and the rule "someone
//! other than the requester" compares names. `ALICE@example.com`, ` alice@example.com` and
//! `alice@exam\u{200b}ple.com` read as alice's own name, so they count as alice.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_normalization::UnicodeNormalization as _;

/// Whether `c` shows nothing, or changes how the text around it reads: controls, line and
/// paragraph separators, and Unicode's default-ignorable code points (the bidi embeddings,
/// overrides and isolates, zero-width spaces and joiners, variation selectors, tags).
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{034f}'
                | '\u{061c}'
                | '\u{115f}'..='\u{1160}'
                | '\u{17b4}'..='\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fff8}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0000}'..='\u{e0fff}'
        )
}

/// `text` with every invisible character written as its escape (`\u{202e}`), so that what a
/// person reads is what is there. Text without one is borrowed as it is.
///
/// ```
/// use mcp_lp::visible::escape_invisible;
///
/// assert_eq!(escape_invisible("report-7"), "report-7");
/// assert_eq!(escape_invisible("txt.\u{202e}fdp"), "txt.\\u{202e}fdp");
/// ```
pub fn escape_invisible(text: &str) -> Cow<'_, str> {
    escape_where(text, is_invisible)
}

/// [`escape_invisible`] for text laid out on several lines (pretty-printed JSON, a tool's
/// description): line feeds and tabs stay as they are, everything else nobody sees is escaped.
///
/// ```
/// use mcp_lp::visible::escape_invisible_keeping_lines;
///
/// assert_eq!(
///     escape_invisible_keeping_lines("{\n  \"name\": \"txt.\u{202e}fdp\"\n}"),
///     "{\n  \"name\": \"txt.\\u{202e}fdp\"\n}"
/// );
/// ```
pub fn escape_invisible_keeping_lines(text: &str) -> Cow<'_, str> {
    escape_where(text, |c| c != '\n' && c != '\t' && is_invisible(c))
}

fn escape_where(text: &str, hidden: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hidden(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Why `id` cannot name a person who decides (an approver), or `None`: empty, longer than 256
/// bytes, space at either end, or a character nobody sees.
pub fn id_problem(id: &str) -> Option<&'static str> {
    if id.trim().is_empty() {
        return Some("it is empty");
    }
    if id.len() > 256 {
        return Some("it is longer than 256 bytes");
    }
    if id.trim() != id {
        return Some("it begins or ends with a space");
    }
    if id.chars().any(is_invisible) {
        return Some(
            "it holds a character that does not show (a control, bidi or zero-width character)",
        );
    }
    None
}

/// `id` as a person reads it: compatibility-normalised (NFKC), invisible characters dropped,
/// surrounding space trimmed, lower case.
pub fn comparable(id: &str) -> String {
    let shown: String = id.nfkc().filter(|c| !is_invisible(*c)).collect();
    shown.trim().to_lowercase()
}

/// Whether `a` and `b` read as the same name.
///
/// ```
/// use mcp_lp::visible::same_person;
///
/// assert!(same_person("alice@example.com", "ALICE@example.com"));
/// assert!(same_person("alice@example.com", " alice@exam\u{200b}ple.com"));
/// assert!(!same_person("alice@example.com", "bob@example.com"));
/// ```
pub fn same_person(a: &str, b: &str) -> bool {
    comparable(a) == comparable(b)
}

/// Whether the operating-system account `os_user` reads as `principal`: the same name, or the
/// principal's part before `@` (the account `alice` is `alice@example.com`).
pub fn os_user_is(os_user: &str, principal: &str) -> bool {
    let user = comparable(os_user);
    let principal = comparable(principal);
    let local = principal.split('@').next().unwrap_or_default();
    !user.is_empty() && (user == principal || user == local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_lookalike_names_as_other_people() {
        for lookalike in [
            "ALICE@example.com",
            "alice@example.com ",
            "\u{200b}alice@example.com",
            "alice@exa\u{202e}mple.com",
            "ａｌｉｃｅ@example.com",
        ] {
            assert!(same_person("alice@example.com", lookalike), "{lookalike:?}");
        }
        assert!(!same_person("alice@example.com", "alice@example.org"));
        assert!(os_user_is("alice", "Alice@example.com"));
        assert!(!os_user_is("bob", "alice@example.com"));
    }

    #[test]
    fn keeps_line_breaks_of_multi_line_text_and_escapes_the_rest() {
        let pretty = "{\n\t\"a\": \"x\u{202e}y\u{2028}\r\"\n}";
        assert_eq!(
            escape_invisible_keeping_lines(pretty),
            "{\n\t\"a\": \"x\\u{202e}y\\u{2028}\\u{d}\"\n}"
        );
        assert_eq!(escape_invisible("a\nb"), "a\\u{a}b");
    }

    #[test]
    fn refuses_ids_with_invisible_characters() {
        assert_eq!(id_problem("bob@example.com"), None);
        for bad in ["", " bob", "bob ", "b\u{200d}ob", "bob\u{202e}", "bo\nb"] {
            assert!(id_problem(bad).is_some(), "{bad:?}");
        }
    }
}
