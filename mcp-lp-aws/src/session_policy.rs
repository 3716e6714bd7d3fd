//! Session policies: an IAM policy document passed with AssumeRole that narrows the role's
//! permissions for that session. It can only narrow: the session may do what both the role's
//! policies and the session policy allow.

use std::path::Path;

use serde_json::Value;

/// STS caps an inline session policy at 2,048 characters (after removing whitespace).
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;

/// A session policy read from its file and checked at startup, held in compact form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SessionPolicy(String);

impl SessionPolicy {
    /// The compact JSON sent as AssumeRole's `Policy`.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Read and check the policy document at `path`. The error says what is wrong and where.
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
        Self::parse(&text).map_err(|reason| format!("{}: {reason}", path.display()))
    }

    fn parse(text: &str) -> Result<Self, String> {
        let document: Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let Value::Object(fields) = &document else {
            return Err("a policy document is a JSON object".into());
        };
        for key in fields.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(format!(
                    "unknown top-level key `{key}`; expected `Version`, `Id` and `Statement`"
                ));
            }
        }
        match fields.get("Version").and_then(Value::as_str) {
            Some("2012-10-17") => {}
            _ => return Err("`Version` must be \"2012-10-17\"".into()),
        }
        let statements = match fields.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect::<Vec<_>>(),
            Some(single @ Value::Object(_)) => vec![single],
            _ => return Err("`Statement` must be a statement or a non-empty list of them".into()),
        };
        for (i, statement) in statements.into_iter().enumerate() {
            check_statement(statement).map_err(|reason| format!("Statement[{i}]: {reason}"))?;
        }
        let compact = document.to_string();
        let chars = compact.chars().count();
        if chars > MAX_SESSION_POLICY_CHARS {
            return Err(format!(
                "{chars} characters in compact form; STS accepts at most {MAX_SESSION_POLICY_CHARS}"
            ));
        }
        Ok(Self(compact))
    }
}

fn check_statement(statement: &Value) -> Result<(), String> {
    let Value::Object(fields) = statement else {
        return Err("a statement is a JSON object".into());
    };
    for key in fields.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Action" | "NotAction" | "Resource" | "NotResource"
            | "Condition" => {}
            "Principal" | "NotPrincipal" => {
                return Err(format!(
                    "`{key}` has no meaning in a session policy (the session is the principal)"
                ));
            }
            other => return Err(format!("unknown key `{other}`")),
        }
    }
    match fields.get("Effect").and_then(Value::as_str) {
        Some("Allow" | "Deny") => {}
        _ => return Err("`Effect` must be \"Allow\" or \"Deny\"".into()),
    }
    let one_of = |a: &str, b: &str| -> Result<(), String> {
        match (fields.get(a), fields.get(b)) {
            (Some(v), None) | (None, Some(v)) if is_string_or_strings(v) => Ok(()),
            (Some(_), Some(_)) => Err(format!("has both `{a}` and `{b}`; use one")),
            (None, None) => Err(format!("needs `{a}` (or `{b}`)")),
            _ => Err(format!(
                "`{a}`/`{b}` must be a string or a non-empty list of strings"
            )),
        }
    };
    one_of("Action", "NotAction")?;
    one_of("Resource", "NotResource")?;
    if let Some(condition) = fields.get("Condition")
        && !condition.is_object()
    {
        return Err("`Condition` must be an object".into());
    }
    Ok(())
}

fn is_string_or_strings(value: &Value) -> bool {
    match value {
        Value::String(s) => !s.is_empty(),
        Value::Array(list) => {
            !list.is_empty()
                && list
                    .iter()
                    .all(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC_ONLY: &str = r#"{
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": ["arn:aws:s3:::mcp-docs", "arn:aws:s3:::mcp-docs/public/*"]
        }]
    }"#;

    #[test]
    fn accepts_policy_and_compacts_it() {
        let policy = SessionPolicy::parse(PUBLIC_ONLY).unwrap();
        assert!(
            !policy.as_str().contains(['\n', ' ']),
            "{}",
            policy.as_str()
        );
        assert!(policy.as_str().contains("mcp-docs/public/*"));
    }

    #[test]
    fn rejects_malformed_policies_with_the_reason() {
        let cases = [
            ("{", "not valid JSON"),
            ("[]", "JSON object"),
            (r#"{"Statement":[]}"#, "Version"),
            (
                r#"{"Version":"2012-10-17","Statement":[]}"#,
                "non-empty list",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"s3:*","Resource":"*"}]}"#,
                "Statement[0]: `Effect`",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
                "needs `Action`",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Principal":"*"}}"#,
                "`Principal` has no meaning",
            ),
            (
                r#"{"Version":"2012-10-17","Statment":[]}"#,
                "unknown top-level key `Statment`",
            ),
        ];
        for (text, expected) in cases {
            let err = SessionPolicy::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn rejects_policy_over_sts_size_limit() {
        let resources: Vec<String> = (0..200)
            .map(|i| format!("\"arn:aws:s3:::mcp-docs/p{i}/*\""))
            .collect();
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":[{}]}}]}}"#,
            resources.join(",")
        );
        let err = SessionPolicy::parse(&text).unwrap_err();
        assert!(err.contains("at most 2048"), "{err}");
    }

    #[test]
    fn rejects_missing_file_naming_it() {
        let err = SessionPolicy::load(Path::new("/nonexistent/policy.json")).unwrap_err();
        assert!(err.contains("/nonexistent/policy.json"), "{err}");
    }
}
