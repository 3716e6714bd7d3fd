//! Which URLs the server may name as its resource or fetch keys and metadata from: `https://`,
//! or `http://` to a loopback host (local development and tests). Judged on the URL as a URL
//! parser reads it, so `http://127.0.0.1:1@evil.example/` is a URL to `evil.example`, and
//! refused.

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Why a URL is refused, as a sentence naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{url}` {reason}")]
pub(crate) struct UrlRefused {
    url: String,
    reason: &'static str,
}

/// `url` parsed, if it is `https://` to any host or `http://` to a loopback host, and carries
/// no user name or password.
pub(crate) fn https_or_loopback(url: &str) -> Result<Url, UrlRefused> {
    let refuse = |reason| UrlRefused {
        url: url.to_owned(),
        reason,
    };
    let parsed = Url::parse(url).map_err(|_| refuse("is not a valid URL"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse(
            "carries a user name or password; give the host alone",
        ));
    }
    let host = parsed.host().ok_or_else(|| refuse("names no host"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback(&host) => Ok(parsed),
        "http" => Err(refuse(
            "must be an https URL (http only on a loopback host)",
        )),
        _ => Err(refuse("must be an https URL")),
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => *name == "localhost",
        Host::Ipv4(ip) => Ipv4Addr::is_loopback(ip),
        Host::Ipv6(ip) => Ipv6Addr::is_loopback(ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_and_loopback_http() {
        for url in [
            "https://auth.example.com",
            "https://auth.example.com:8443/tenant/.well-known/jwks.json",
            "http://127.0.0.1:9000/jwks",
            "http://127.0.0.2/jwks",
            "http://localhost/x",
            "http://LOCALHOST:80/x",
            "http://[::1]:80/",
        ] {
            assert!(https_or_loopback(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn refuses_loopback_lookalike_that_connects_elsewhere() {
        let refused = https_or_loopback("http://127.0.0.1:1@evil.example/jwks.json").unwrap_err();
        assert!(
            refused.to_string().contains("user name or password"),
            "{refused}"
        );
        for url in [
            "http://localhost@evil.example/",
            "http://localhost:80@evil.example/",
            "https://user:pass@auth.example.com/",
        ] {
            assert!(https_or_loopback(url).is_err(), "{url}");
        }
    }

    #[test]
    fn refuses_http_to_other_hosts_and_other_schemes() {
        for url in [
            "http://auth.example.com",
            "http://localhost.evil.com",
            "http://127.0.0.1.evil.com/",
            "http://[::ffff:8.8.8.8]/",
            "http://0.0.0.0/",
            "ftp://localhost",
            "file:///etc/passwd",
            "localhost:80",
            "not a url",
            "",
        ] {
            assert!(https_or_loopback(url).is_err(), "{url}");
        }
    }
}
