//! IAM role ARNs, checked exactly: a configured role is one role, never a pattern.

use std::fmt;

/// The ARN of one IAM role, `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
///
/// Parsing refuses wildcards (`*`, `?`) anywhere, a service other than `iam`, a region, an
/// account that is not 12 digits, a resource that is not a role, and names or paths with
/// characters IAM does not allow.
///
/// ```
/// use mcp_lp_aws::RoleArn;
///
/// let arn: RoleArn = "arn:aws:iam::123456789012:role/mcp-read-only".parse()?;
/// assert_eq!(arn.name(), "mcp-read-only");
/// assert_eq!(arn.account(), "123456789012");
/// assert!("arn:aws:iam::123456789012:role/*".parse::<RoleArn>().is_err());
/// # Ok::<(), mcp_lp_aws::RoleArnError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoleArn {
    text: String,
    account: std::ops::Range<usize>,
    name: std::ops::Range<usize>,
}

/// Why a string is not the ARN of one IAM role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleArnError {
    /// The ARN holds `*` or `?`: a pattern could match roles the operator did not mean.
    #[error(
        "`{0}` holds a wildcard; name exactly one role, like arn:aws:iam::123456789012:role/mcp-read-only"
    )]
    Wildcard(String),
    /// The ARN is not of the form `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
    #[error(
        "`{arn}` is not an IAM role ARN ({reason}); expected arn:aws:iam::123456789012:role/NAME"
    )]
    Malformed {
        /// The text as configured.
        arn: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl RoleArn {
    /// The whole ARN.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The 12-digit account the role is in.
    pub fn account(&self) -> &str {
        &self.text[self.account.clone()]
    }

    /// The role's name, without its path.
    pub fn name(&self) -> &str {
        &self.text[self.name.clone()]
    }
}

impl fmt::Debug for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for RoleArn {
    type Err = RoleArnError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = |reason| RoleArnError::Malformed {
            arn: text.to_owned(),
            reason,
        };
        if text.contains(['*', '?']) {
            return Err(RoleArnError::Wildcard(text.to_owned()));
        }
        if text.len() > 2048 {
            return Err(malformed("longer than 2048 characters"));
        }
        let mut parts = text.splitn(6, ':');
        let (Some(prefix), Some(partition), Some(service), Some(region), Some(account)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed("too few `:`-separated fields"));
        };
        let Some(resource) = parts.next() else {
            return Err(malformed("too few `:`-separated fields"));
        };
        if prefix != "arn" {
            return Err(malformed("it does not start with `arn:`"));
        }
        let partition_ok = partition == "aws"
            || partition.strip_prefix("aws-").is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
            });
        if !partition_ok {
            return Err(malformed("unknown partition"));
        }
        if service != "iam" {
            return Err(malformed("the service is not `iam`"));
        }
        if !region.is_empty() {
            return Err(malformed("IAM ARNs have no region"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("the account is not 12 digits"));
        }
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return Err(malformed("the resource is not `role/NAME`"));
        };
        let (path, name) = match path_and_name.rfind('/') {
            Some(i) => (&path_and_name[..=i], &path_and_name[i + 1..]),
            None => ("", path_and_name),
        };
        if name.is_empty() || name.len() > 64 || !name.chars().all(is_role_name_char) {
            return Err(malformed(
                "the role name is not 1 to 64 characters of letters, digits and +=,.@_-",
            ));
        }
        // An IAM path is `/segment/.../` of printable ASCII; `role/a//b` has an empty segment.
        if !path.is_empty()
            && (path.len() > 512
                || path.contains("//")
                || !path.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        {
            return Err(malformed(
                "the role path is not /segment/.../ of printable ASCII",
            ));
        }
        let account_start = prefix.len() + partition.len() + service.len() + region.len() + 4;
        let name_start = text.len() - name.len();
        Ok(Self {
            text: text.to_owned(),
            account: account_start..account_start + 12,
            name: name_start..text.len(),
        })
    }
}

fn is_role_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_role_arn_with_and_without_path() {
        let arn: RoleArn = "arn:aws:iam::123456789012:role/mcp-read-only"
            .parse()
            .unwrap();
        assert_eq!(
            (arn.account(), arn.name()),
            ("123456789012", "mcp-read-only")
        );
        let arn: RoleArn = "arn:aws-us-gov:iam::000000000000:role/service/team/docs.reader"
            .parse()
            .unwrap();
        assert_eq!((arn.account(), arn.name()), ("000000000000", "docs.reader"));
    }

    #[test]
    fn rejects_wildcards_anywhere() {
        for text in [
            "arn:aws:iam::123456789012:role/*",
            "arn:aws:iam::123456789012:role/mcp-*",
            "arn:aws:iam::*:role/mcp-read-only",
            "arn:aws:iam::123456789012:role/mcp-rea?-only",
            "*",
        ] {
            assert_eq!(
                text.parse::<RoleArn>(),
                Err(RoleArnError::Wildcard(text.into())),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_malformed_arns() {
        for text in [
            "",
            "mcp-read-only",
            "arn:aws:iam::123456789012",
            "arn:aws:s3:::bucket",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam::12345678901a:role/x",
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/has space",
            "arn:aws:iam::123456789012:role/a//b",
            "arn:aws:sts::123456789012:assumed-role/x/y",
            "arn:azure:iam::123456789012:role/x",
            "arn:aws:iam::123456789012:role/name-that-is-far-too-long-for-iam-because-iam-caps-names-at-64-chars",
        ] {
            assert!(
                matches!(text.parse::<RoleArn>(), Err(RoleArnError::Malformed { .. })),
                "{text}"
            );
        }
    }
}
