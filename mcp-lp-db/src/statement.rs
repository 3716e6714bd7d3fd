//! Recognising statements a handle refuses to run for a handler.
//!
//! This is not a security boundary (the role's grants are). It keeps the handle in charge of
//! its connection: a reader's `READ ONLY` transaction, and the principal set in it, stay in
//! force for every statement, a writer commits only through `commit()`, and the prepared
//! statements the driver caches stay intact for the next call. A multi-statement string cannot
//! slip one past it: the extended protocol the handles use runs exactly one statement per query.

/// Why a statement is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It would begin, end or split the handle's transaction.
    TransactionControl,
    /// It would create or drop prepared statements or plans, which outlive the transaction.
    PreparedStatements,
}

/// Keywords that begin, end or split a transaction when they start a statement.
const TRANSACTION_CONTROL: &[&str] = &[
    "ABORT",
    "BEGIN",
    "COMMIT",
    "END",
    "RELEASE",
    "ROLLBACK",
    "SAVEPOINT",
    "START",
];

/// Keywords that change the connection's prepared statements (`PREPARE TRANSACTION` ends the
/// transaction too).
const PREPARED_STATEMENTS: &[&str] = &["DEALLOCATE", "DISCARD", "PREPARE"];

/// The upper-cased first keyword of `sql`, and why it is refused, when the handle must not run
/// it. Comments and whitespace before it are skipped.
pub(crate) fn refused(sql: &str) -> Option<(String, Refusal)> {
    let first = Words { rest: sql }.next()?.to_ascii_uppercase();
    if TRANSACTION_CONTROL.contains(&first.as_str()) {
        Some((first, Refusal::TransactionControl))
    } else if PREPARED_STATEMENTS.contains(&first.as_str()) {
        Some((first, Refusal::PreparedStatements))
    } else {
        None
    }
}

/// The leading bare words of a statement, skipping whitespace and comments.
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.skip_blanks();
        let len = self
            .rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(self.rest.len());
        if len == 0 {
            return None;
        }
        let (word, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(word)
    }
}

impl Words<'_> {
    fn skip_blanks(&mut self) {
        loop {
            let trimmed = self.rest.trim_start();
            if let Some(after) = trimmed.strip_prefix("--") {
                self.rest = after.find('\n').map_or("", |i| &after[i + 1..]);
            } else if trimmed.starts_with("/*") {
                self.rest = skip_block_comment(trimmed);
            } else {
                self.rest = trimmed;
                return;
            }
        }
    }
}

/// The text after the block comment `text` starts with; PostgreSQL's block comments nest.
fn skip_block_comment(text: &str) -> &str {
    let mut depth = 0usize;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return &text[i..];
                }
            }
            _ => i += 1,
        }
    }
    // An unterminated comment: nothing follows it.
    ""
}

#[cfg(test)]
mod tests {
    use super::{Refusal, refused};

    #[test]
    fn rejects_transaction_control_however_written() {
        for sql in [
            "COMMIT",
            "commit",
            "  \n\tCommit;",
            "END",
            "ROLLBACK",
            "rollback to savepoint a",
            "ABORT",
            "BEGIN",
            "start transaction read write",
            "SAVEPOINT a",
            "RELEASE a",
            "-- a comment\nCOMMIT",
            "/* one */ /* two /* nested */ still */ COMMIT",
        ] {
            assert_eq!(
                refused(sql).map(|r| r.1),
                Some(Refusal::TransactionControl),
                "{sql:?}"
            );
        }
        assert_eq!(
            refused("/**/commit"),
            Some(("COMMIT".into(), Refusal::TransactionControl))
        );
    }

    #[test]
    fn rejects_prepared_statement_changes() {
        for sql in [
            "DEALLOCATE ALL",
            "deallocate s1",
            "DISCARD ALL",
            "PREPARE q AS SELECT 1",
            "prepare transaction 'x'",
        ] {
            assert_eq!(
                refused(sql).map(|r| r.1),
                Some(Refusal::PreparedStatements),
                "{sql:?}"
            );
        }
    }

    #[test]
    fn accepts_ordinary_statements() {
        for sql in [
            "SELECT 1",
            "select * from commits",
            "INSERT INTO records (title) VALUES ('COMMIT')",
            "-- COMMIT\nSELECT 1",
            "/* COMMIT */ SELECT 1",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "committed_at",
            "SET search_path = app",
            "",
            "/* unterminated COMMIT",
        ] {
            assert_eq!(refused(sql), None, "{sql:?}");
        }
    }
}
