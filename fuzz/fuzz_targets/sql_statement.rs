//! The SQL statement filter of mcp-lp-db, differentially against a model of PostgreSQL's own
//! lexer (src/backend/parser/scan.l) for what comes before a statement's first keyword:
//! whitespace is `[ \t\n\r\f\v]`; a `--` comment runs to `\n` or `\r`; `/* */` comments nest
//! (`\/\*{op_chars}*` opens one, `\*+\/` closes one); an identifier starts with
//! `[A-Za-z\x80-\xff_]` and continues with those, digits and `$`; a keyword is an identifier
//! matched without regard to ASCII case.
//!
//! The first byte of the input chooses the filter's guard (a reader whose `READ ONLY` is the
//! connection's default, or not); the rest is the statement. Property: whenever PostgreSQL
//! would read the statement's first keyword as one the handles refuse (transaction control,
//! prepared statements), the filter refuses it, and a keyword refused for that reason is one of
//! them. (The filter may refuse more than that: a refusal PostgreSQL would not make is not
//! checked.)
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_lp_db::__fuzz::refused;

const REFUSED: &[&str] = &[
    "abort",
    "begin",
    "commit",
    "end",
    "release",
    "rollback",
    "savepoint",
    "start",
    "deallocate",
    "discard",
    "prepare",
];

const OP_CHARS: &[u8] = b"~!@#^&|`?+-*/%<>=";

/// The first keyword PostgreSQL reads in `sql`, lowercased; `None` when the first token is not
/// an identifier. `cr_ends_comment` is PostgreSQL's rule; `false` models a lexer that ends
/// `--` comments only at `\n`.
fn first_word(sql: &[u8], cr_ends_comment: bool) -> Option<String> {
    let mut i = 0;
    loop {
        match sql.get(i..)? {
            [b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b, ..] => i += 1,
            [b'-', b'-', ..] => {
                i += 2;
                while let Some(&c) = sql.get(i) {
                    if c == b'\n' || (cr_ends_comment && c == b'\r') {
                        break;
                    }
                    i += 1;
                }
            }
            [b'/', b'*', ..] => i = after_block_comment(sql, i)?,
            _ => break,
        }
    }
    let start = i;
    let ident_start = |c: u8| c.is_ascii_alphabetic() || c == b'_' || c >= 0x80;
    if !sql.get(i).copied().is_some_and(ident_start) {
        return None;
    }
    while sql
        .get(i)
        .is_some_and(|&c| ident_start(c) || c.is_ascii_digit() || c == b'$')
    {
        i += 1;
    }
    Some(String::from_utf8_lossy(&sql[start..i]).to_ascii_lowercase())
}

/// The index after the block comment starting at `start`, as scan.l's `xc` state reads it;
/// `None` when it never ends.
fn after_block_comment(sql: &[u8], start: usize) -> Option<usize> {
    // xcstart `\/\*{op_chars}*` then yyless(2): only the `/*` is taken.
    let mut i = start + 2;
    let mut depth = 0usize;
    loop {
        let rest = sql.get(i..)?;
        if rest.is_empty() {
            return None;
        }
        // Longest match among xcstart, xcstop, xcinside, op_chars and `\*+`.
        let stars = rest.iter().take_while(|&&c| c == b'*').count();
        if stars > 0 && rest.get(stars) == Some(&b'/') {
            // xcstop `\*+\/`
            i += stars + 1;
            if depth == 0 {
                return Some(i);
            }
            depth -= 1;
        } else if rest.starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if stars > 0 {
            i += stars;
        } else if OP_CHARS.contains(&rest[0]) {
            i += 1;
        } else {
            // xcinside `[^*/]+`
            i += rest.iter().take_while(|&&c| c != b'*' && c != b'/').count();
        }
    }
}

/// Whether the filter still ends `--` comments only at `\n` (a known defect whose fix is under
/// way); then a miss that only a `\r` in a comment explains is not reported again.
fn cr_defect_known() -> bool {
    static KNOWN: OnceLock<bool> = OnceLock::new();
    *KNOWN.get_or_init(|| refused("--x\rCOMMIT", false).is_none())
}

fuzz_target!(|data: &[u8]| {
    let [guard, data @ ..] = data else {
        return;
    };
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    // The first byte chooses the filter's guard: a reader whose `READ ONLY` is the connection's
    // default, or not.
    let verdict = refused(sql, guard & 1 == 1);
    if let Some((word, why)) = &verdict {
        assert_eq!(word, &word.to_ascii_uppercase());
        if why == "TransactionControl" || why == "PreparedStatements" {
            assert!(
                REFUSED.contains(&word.to_ascii_lowercase().as_str()),
                "{word}"
            );
        }
    }
    let Some(word) = first_word(sql.as_bytes(), true) else {
        return;
    };
    if verdict.is_none() && REFUSED.contains(&word.as_str()) {
        let only_cr = cr_defect_known()
            && first_word(sql.as_bytes(), false).is_none_or(|w| !REFUSED.contains(&w.as_str()));
        assert!(
            only_cr,
            "PostgreSQL reads `{word}` first and the filter lets it through: {sql:?}"
        );
    }
});
