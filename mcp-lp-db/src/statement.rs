//! Recognising statements a handle refuses to run for a handler.
//!
//! This keeps the handle in charge of its connection: a writer commits only through
//! `commit()`, a reader's statements stay read-only, and the prepared statements the driver
//! caches stay intact for the next call. A multi-statement string cannot slip one past it: the
//! extended protocol the handles use runs exactly one statement per query.
//!
//! Where a reader's `READ ONLY` is the connection's default (`default_transaction_read_only`,
//! sent at login) rather than a `BEGIN READ ONLY` around each statement, the filter also
//! refuses what could switch that default off: naming either read-only setting anywhere in the
//! statement (in a word or a string), `SET SESSION CHARACTERISTICS`, a `set_config` whose
//! setting name is not a plain string literal, SQL run from a string (`query_to_xml` and its
//! siblings), and `DO` and `CALL`, which can commit and begin a new transaction inside one
//! statement. What is left is SQL text built inside a function the database already has; the
//! role's grants, checked at startup, are the boundary there, and the reset after every call
//! restores the login default (see `extract`).
//!
//! The lexer follows PostgreSQL's: `--` comments end at a newline or a carriage return, block
//! comments nest, strings are `'...'` (`''` inside), `E'...'` (backslash escapes), or
//! `$tag$...$tag$`, and `"..."` is an identifier.

/// Why a statement is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It would begin, end or split the handle's transaction.
    TransactionControl,
    /// It would create or drop prepared statements or plans, which outlive the transaction.
    PreparedStatements,
    /// It could switch off the read-only default of a reader's connection.
    ReadOnlySwitch,
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

/// Statements that can commit and start a new transaction from inside themselves.
const INNER_TRANSACTIONS: &[&str] = &["CALL", "DO"];

/// Statements that change settings by name.
const SETTING_STATEMENTS: &[&str] = &["ALTER", "RESET", "SET"];

/// Built-in functions that run SQL given as text.
const SQL_FROM_TEXT: &[&str] = &[
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "query_to_xmlschema",
];

/// What the filter must protect in a handle's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Guard {
    /// The reader's `READ ONLY` is the connection's default, not a transaction of its own.
    pub(crate) read_only_on_connection: bool,
}

/// The upper-cased keyword that makes `sql` refused, and why, when the handle must not run it.
pub(crate) fn refused(sql: &str, guard: Guard) -> Option<(String, Refusal)> {
    let tokens: Vec<Token<'_>> = Lexer { rest: sql }.collect();
    let first = match tokens.first() {
        Some(Token::Word(word)) => word.to_ascii_uppercase(),
        _ => String::new(),
    };
    if TRANSACTION_CONTROL.contains(&first.as_str()) {
        return Some((first, Refusal::TransactionControl));
    }
    if PREPARED_STATEMENTS.contains(&first.as_str()) {
        return Some((first, Refusal::PreparedStatements));
    }
    if guard.read_only_on_connection {
        return switches_read_only(&first, &tokens).map(|k| (k, Refusal::ReadOnlySwitch));
    }
    None
}

/// Keywords that may stand before `(` in a query without calling a function.
const SYNTAX_BEFORE_PAREN: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "between",
    "by",
    "else",
    "except",
    "exists",
    "from",
    "in",
    "intersect",
    "is",
    "join",
    "lateral",
    "like",
    "limit",
    "not",
    "offset",
    "on",
    "or",
    "over",
    "row",
    "select",
    "some",
    "then",
    "union",
    "using",
    "values",
    "when",
    "where",
    "with",
];

/// Statements that only read or compute, when nothing in them calls a function.
const PLAIN_QUERIES: &[&str] = &["SELECT", "TABLE", "VALUES", "WITH"];

/// Whether a handler's statement may leave something in the session that outlives its
/// transaction: a setting, a role, a cursor, a listener, a session advisory lock, a temporary
/// object, a sequence's `currval`. Only a plain query cannot: `SELECT`, `WITH`, `TABLE` or
/// `VALUES` that writes nothing (`INSERT`, `UPDATE`, `DELETE`, `MERGE` anywhere advance
/// sequences through defaults; `INTO` creates a table), calls no function by name (a word or a
/// quoted name before `(`, other than SQL's own syntax), casts nothing (`::`), and uses no
/// operator beyond comparison and arithmetic. What the database's own objects do when such a
/// query reads them (a view, a policy, an operator on a column's type) is the database
/// administrator's, not the handler's: the handle resets after any other statement.
pub(crate) fn may_leave_session_state(sql: &str) -> bool {
    let tokens: Vec<Token<'_>> = Lexer { rest: sql }.collect();
    let plain_start = matches!(
        tokens.first(),
        Some(Token::Word(w)) if PLAIN_QUERIES.iter().any(|k| w.eq_ignore_ascii_case(k))
    );
    if !plain_start {
        return true;
    }
    tokens.iter().enumerate().any(|(i, token)| match token {
        Token::Word(word) => {
            let lower = word.to_ascii_lowercase();
            matches!(
                lower.as_str(),
                "insert" | "update" | "delete" | "merge" | "into"
            ) || (matches!(tokens.get(i + 1), Some(Token::Other('(')))
                && !SYNTAX_BEFORE_PAREN.contains(&lower.as_str()))
        }
        Token::Quoted(_) => matches!(tokens.get(i + 1), Some(Token::Other('('))),
        Token::Other(':') => matches!(tokens.get(i + 1), Some(Token::Other(':'))),
        Token::Other(c) => !(c.is_ascii_digit() || "=<>!+-*/%,.();$[]".contains(*c)),
        Token::String(_) | Token::Escaped(_) => false,
    })
}

/// Whether a statement could switch off the connection's read-only default, and the word that
/// shows it. Reading the settings (`current_setting`, `SHOW`) is fine.
fn switches_read_only(first: &str, tokens: &[Token<'_>]) -> Option<String> {
    if INNER_TRANSACTIONS.contains(&first) {
        return Some(first.to_owned());
    }
    let names_read_only = |token: &Token<'_>| match token {
        Token::Word(w) | Token::Quoted(w) | Token::String(w) | Token::Escaped(w) => {
            w.to_ascii_lowercase().contains("transaction_read_only")
        }
        Token::Other(_) => false,
    };
    // `SET`, `RESET` and `ALTER ... SET` change settings by name.
    if SETTING_STATEMENTS.contains(&first) && tokens.iter().any(names_read_only) {
        return Some("TRANSACTION_READ_ONLY".to_owned());
    }
    for (i, token) in tokens.iter().enumerate() {
        let (Token::Word(word) | Token::Quoted(word)) = token else {
            continue;
        };
        let lower = word.to_ascii_lowercase();
        let next_is = |word: &str| matches!(tokens.get(i + 1), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word));
        if lower == "session" && next_is("characteristics") {
            return Some("SESSION CHARACTERISTICS".to_owned());
        }
        if SQL_FROM_TEXT.contains(&lower.as_str()) {
            return Some(lower.to_ascii_uppercase());
        }
        // `set_config(<name>, ...)` is allowed only with a plain literal name that is not a
        // read-only setting; a computed name could be anything.
        if lower == "set_config" {
            let name = match (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3)) {
                (
                    Some(Token::Other('(')),
                    Some(name @ Token::String(_)),
                    Some(Token::Other(',')),
                ) => Some(name),
                _ => None,
            };
            match name {
                Some(name) if names_read_only(name) => {
                    return Some("TRANSACTION_READ_ONLY".to_owned());
                }
                Some(_) => {}
                None => return Some("SET_CONFIG".to_owned()),
            }
        }
    }
    None
}

/// One token of SQL, comments and whitespace left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A keyword or unquoted identifier.
    Word(&'a str),
    /// A `"quoted"` identifier, without its quotes (a doubled quote stays doubled).
    Quoted(&'a str),
    /// A string constant's body.
    String(&'a str),
    /// An `E'...'` string constant's body holding a backslash escape, not decoded: what it
    /// spells is not known to the filter.
    Escaped(&'a str),
    /// Any other character: punctuation, operators, digits, parameters.
    Other(char),
}

/// PostgreSQL's lexical structure, as much as the filter needs.
struct Lexer<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        self.skip_blanks();
        let mut chars = self.rest.chars();
        let c = chars.next()?;
        let after = chars.as_str();
        // E'...' and e'...': backslash escapes.
        if (c == 'e' || c == 'E') && after.starts_with('\'') {
            let (body, rest) = quoted(&after[1..], '\'', true);
            self.rest = rest;
            return Some(if body.contains('\\') {
                Token::Escaped(body)
            } else {
                Token::String(body)
            });
        }
        if c == '\'' {
            let (body, rest) = quoted(after, '\'', false);
            self.rest = rest;
            return Some(Token::String(body));
        }
        if c == '"' {
            let (body, rest) = quoted(after, '"', false);
            self.rest = rest;
            return Some(Token::Quoted(body));
        }
        if c == '$'
            && let Some(tag_len) = dollar_tag(self.rest)
        {
            let tag = &self.rest[..tag_len];
            let body_and_rest = &self.rest[tag_len..];
            let (body, rest) = match body_and_rest.find(tag) {
                Some(end) => (&body_and_rest[..end], &body_and_rest[end + tag_len..]),
                None => (body_and_rest, ""),
            };
            self.rest = rest;
            return Some(Token::String(body));
        }
        if c.is_alphabetic() || c == '_' {
            let len = self
                .rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                .unwrap_or(self.rest.len());
            let (word, rest) = self.rest.split_at(len);
            self.rest = rest;
            return Some(Token::Word(word));
        }
        self.rest = after;
        Some(Token::Other(c))
    }
}

impl Lexer<'_> {
    fn skip_blanks(&mut self) {
        loop {
            let trimmed = self.rest.trim_start();
            if let Some(after) = trimmed.strip_prefix("--") {
                // PostgreSQL ends a `--` comment at either newline character.
                self.rest = after.find(['\n', '\r']).map_or("", |i| &after[i + 1..]);
            } else if trimmed.starts_with("/*") {
                self.rest = skip_block_comment(trimmed);
            } else {
                self.rest = trimmed;
                return;
            }
        }
    }
}

/// The body of a quoted token whose opening `quote` is already consumed, and the text after
/// it. A doubled quote stays inside; with `backslashes`, so does the character after `\`.
fn quoted(text: &str, quote: char, backslashes: bool) -> (&str, &str) {
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if backslashes && c == '\\' {
            chars.next();
        } else if c == quote {
            if text[i + 1..].starts_with(quote) {
                chars.next();
            } else {
                return (&text[..i], &text[i + 1..]);
            }
        }
    }
    // Unterminated: the rest is the body.
    (text, "")
}

/// The length of the `$tag$` that `text` starts with, if it starts one (`$1` does not).
fn dollar_tag(text: &str) -> Option<usize> {
    let inner = &text[1..];
    let len = inner
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let tag = &inner[..len];
    if tag.starts_with(|c: char| c.is_ascii_digit()) || !inner[len..].starts_with('$') {
        return None;
    }
    Some(len + 2)
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
    use super::{Guard, Refusal, refused};

    const TRANSACTION: Guard = Guard {
        read_only_on_connection: false,
    };
    const CONNECTION: Guard = Guard {
        read_only_on_connection: true,
    };

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
                refused(sql, TRANSACTION).map(|r| r.1),
                Some(Refusal::TransactionControl),
                "{sql:?}"
            );
        }
        assert_eq!(
            refused("/**/commit", TRANSACTION),
            Some(("COMMIT".into(), Refusal::TransactionControl))
        );
    }

    #[test]
    fn rejects_statement_after_comment_ended_by_carriage_return() {
        assert_eq!(
            refused("--x\rCOMMIT", TRANSACTION),
            Some(("COMMIT".into(), Refusal::TransactionControl))
        );
        assert_eq!(
            refused("--x\rDEALLOCATE ALL", TRANSACTION),
            Some(("DEALLOCATE".into(), Refusal::PreparedStatements))
        );
        assert_eq!(
            refused("-- a\r\n-- b\rrollback", CONNECTION).map(|r| r.1),
            Some(Refusal::TransactionControl)
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
                refused(sql, TRANSACTION).map(|r| r.1),
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
            "SELECT set_config('app.note', 'x', false)",
            "SELECT $1::text, $$dollar$$, E'it''s \\' here', \"Quoted\"\"Name\"",
            "SELECT 'transaction_read_only' -- in a string, fine in a transaction",
        ] {
            assert_eq!(refused(sql, TRANSACTION), None, "{sql:?}");
        }
        for sql in [
            "SELECT 1",
            "SELECT set_config('app.note', $1, false)",
            "SET search_path = app",
            "SELECT title FROM records WHERE owner = current_setting('mcp_lp.principal', true)",
            "-- transaction_read_only in a comment\nSELECT 1",
            "SELECT current_setting('transaction_read_only')",
            "SHOW default_transaction_read_only",
        ] {
            assert_eq!(refused(sql, CONNECTION), None, "{sql:?}");
        }
    }

    #[test]
    fn accepts_plain_queries_as_leaving_nothing_in_the_session() {
        for sql in [
            "SELECT name FROM items WHERE id = $1",
            "SELECT id, name FROM items WHERE id >= $1 ORDER BY id LIMIT 20",
            "select * from t where a in (1, 2) and exists (select 1 from u where u.x = t.x)",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "TABLE items",
            "VALUES (1, 'a')",
            "SELECT title FROM records WHERE title <> 'pg_advisory_lock(1)' -- set_config(\n",
        ] {
            assert!(!super::may_leave_session_state(sql), "{sql:?}");
        }
    }

    #[test]
    fn rejects_as_plain_what_may_leave_session_state() {
        for sql in [
            "SELECT pg_advisory_lock(1)",
            "SELECT pg_catalog.pg_advisory_lock(1)",
            "SELECT \"pg_advisory_lock\"(1)",
            "SELECT set_config('a.b', 'c', false)",
            "SELECT 1::text",
            "SELECT * INTO TEMP t FROM items",
            "WITH n AS (INSERT INTO t DEFAULT VALUES RETURNING id) SELECT * FROM n",
            "SELECT 1 OPERATOR(pg_catalog.+) 1",
            "SELECT a @> b FROM t",
            "SET search_path = x",
            "LISTEN x",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "INSERT INTO log (name) VALUES ($1)",
            "UPDATE t SET a = 1",
            "SHOW search_path",
            "",
        ] {
            assert!(super::may_leave_session_state(sql), "{sql:?}");
        }
    }

    #[test]
    fn rejects_switching_read_only_off_on_a_read_only_connection() {
        for (sql, keyword) in [
            (
                "SET default_transaction_read_only = off",
                "TRANSACTION_READ_ONLY",
            ),
            (
                "set \"default_transaction_read_only\" to false",
                "TRANSACTION_READ_ONLY",
            ),
            (
                "RESET default_transaction_read_only",
                "TRANSACTION_READ_ONLY",
            ),
            ("SET transaction_read_only = off", "TRANSACTION_READ_ONLY"),
            (
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
                "SESSION CHARACTERISTICS",
            ),
            (
                "SELECT set_config('default_transaction_read_only', 'off', false)",
                "TRANSACTION_READ_ONLY",
            ),
            (
                "SELECT set_config('default_' || 'transaction_read_only', 'off', false)",
                "SET_CONFIG",
            ),
            (
                "SELECT set_config('default_transaction_' || 'read_only', 'off', false)",
                "SET_CONFIG",
            ),
            ("SELECT set_config($1, 'off', false)", "SET_CONFIG"),
            (
                "SELECT pg_catalog.set_config(E'default\\x5ftransaction\\x5fread\\x5fonly', 'off', false)",
                "SET_CONFIG",
            ),
            (
                "SELECT query_to_xml('select 1', true, false, '')",
                "QUERY_TO_XML",
            ),
            ("DO $$ BEGIN COMMIT; END $$", "DO"),
            ("call p()", "CALL"),
        ] {
            assert_eq!(
                refused(sql, CONNECTION),
                Some((keyword.to_owned(), Refusal::ReadOnlySwitch)),
                "{sql:?}"
            );
        }
    }
}
