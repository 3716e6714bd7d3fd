//! Approvers on the command line: a person signs their verdict with their SSH key, as git
//! signs commits (`ssh-keygen -Y sign`, namespace [`NAMESPACE`]); the signature is checked
//! against an allowed-signers file the configuration names (`[approvers] allowed_signers`,
//! ssh-keygen's format: `principal key-type key`), and the approver grants come from the
//! configuration (`[approvers] grants`), expiring like every configured grant.
//!
//! The verdict records the signature and the operating-system account that gave it. Both are
//! checked again when the approval is used: a key removed from the file, or a grant lapsed or
//! revoked since, stops the approval from counting; one account counts once, whatever keys
//! it holds; and an account that reads as the requester (`alice` for `alice@example.com`) may
//! not approve the requester's call.
//!
//! ```toml
//! [approvers]
//! allowed_signers = "approvers.allowed_signers"
//! grants = { "bob@example.com" = [{ name = "docs:approve", expires = 2027-01-31T00:00:00Z }] }
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use ssh_key::{PublicKey, SshSig};

use super::{ApprovalError, Approver, Door, PendingCall, Verdict};
use crate::grant::Grant;
use crate::principal::Principal;

/// The SSHSIG namespace of a verdict: a signature made for anything else does not verify.
pub const NAMESPACE: &str = "mcp-lp-approval";

/// One line of the allowed-signers file.
#[derive(Debug, Clone)]
struct AllowedSigner {
    principals: Vec<String>,
    key: PublicKey,
    namespaces: Option<Vec<String>>,
    line: usize,
}

/// Who may approve from the command line, with which key, holding which grants.
#[derive(Debug, Clone)]
pub struct CliApprovers {
    source: PathBuf,
    signers: Vec<AllowedSigner>,
    grants: Vec<(String, Vec<Grant>)>,
}

impl CliApprovers {
    /// The approvers of the allowed-signers text `text` (read from `source`), holding
    /// `grants`. Refuses, naming the line, a line that is not `principals [options] key`, a
    /// principal pattern (only exact names are allowed), and an option other than
    /// `namespaces="..."`.
    pub fn parse(
        source: &Path,
        text: &str,
        grants: Vec<(String, Vec<Grant>)>,
    ) -> Result<Self, String> {
        let mut signers = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |problem: String| format!("{}:{line_no}: {problem}", source.display());
            let (principals, rest) = split_token(line);
            let principals: Vec<String> = principals
                .trim_matches('"')
                .split(',')
                .map(str::to_owned)
                .collect();
            if let Some(p) = principals
                .iter()
                .find(|p| p.is_empty() || p.contains(['*', '?', '!']))
            {
                return Err(at(format!(
                    "principal `{p}`: name each approver exactly; patterns are not accepted"
                )));
            }
            let mut rest = rest.trim_start();
            let mut namespaces = None;
            let key = loop {
                if let Ok(key) = PublicKey::from_openssh(rest) {
                    break key;
                }
                let (options, after) = split_token(rest);
                if options.is_empty() {
                    return Err(at("no public key on the line".into()));
                }
                for option in split_options(options) {
                    match option.split_once('=') {
                        Some((name, value)) if name.eq_ignore_ascii_case("namespaces") => {
                            namespaces = Some(
                                value
                                    .trim_matches('"')
                                    .split(',')
                                    .map(str::to_owned)
                                    .collect(),
                            );
                        }
                        _ => {
                            return Err(at(format!(
                                "option `{option}` is not accepted (only namespaces=\"...\"); or the key does not parse"
                            )));
                        }
                    }
                }
                rest = after.trim_start();
            };
            signers.push(AllowedSigner {
                principals,
                key,
                namespaces,
                line: line_no,
            });
        }
        Ok(Self {
            source: source.to_owned(),
            signers,
            grants,
        })
    }

    /// The allowed-signers file at `path`, read now.
    pub fn load(path: &Path, grants: Vec<(String, Vec<Grant>)>) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(path, &text, grants)
    }

    /// Where the allowed signers were read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The principals the key `public_key` may sign for.
    pub fn principals_of(&self, public_key: &PublicKey) -> Vec<&str> {
        self.signers
            .iter()
            .filter(|s| s.key.key_data() == public_key.key_data())
            .flat_map(|s| s.principals.iter().map(String::as_str))
            .collect()
    }

    /// `by` with the grants the configuration gives it.
    pub fn principal(&self, by: &str) -> Principal {
        self.grants
            .iter()
            .filter(|(name, _)| name == by)
            .flat_map(|(_, grants)| grants.iter().cloned())
            .fold(Principal::new(by), Principal::with_grant)
    }

    /// The approver `by` deciding `approve` on `call` from the command line, on this
    /// process's account, for `reason`: the verdict signed with the SSH key at `key`.
    pub fn approver(
        &self,
        by: &str,
        call: &PendingCall,
        approve: bool,
        reason: String,
        key: &Path,
    ) -> Result<Approver, String> {
        let mut verdict = Verdict {
            by: by.to_owned(),
            at: super::now_string(),
            reason,
            door: Door::Cli,
            os_user: Some(os_user()),
            signature: None,
        };
        verdict.signature = Some(sign(key, &verdict_message(call, &verdict, approve))?);
        Ok(Approver {
            principal: self.principal(by),
            verdict,
        })
    }

    /// Whether `verdict` on `call` carries a signature of an allowed key of `verdict.by`, over
    /// what [`verdict_message`] says, and `verdict.by` holds the call's approver grant now.
    pub fn check(
        &self,
        call: &PendingCall,
        verdict: &Verdict,
        approve: bool,
    ) -> Result<(), ApprovalError> {
        let refuse = |why: String| Err(ApprovalError::Signature(why));
        let Some(armored) = &verdict.signature else {
            return refuse("the verdict carries no signature".into());
        };
        let Ok(signature) = SshSig::from_pem(armored) else {
            return refuse("the signature is not an SSH signature (ssh-keygen -Y sign)".into());
        };
        if signature.namespace() != NAMESPACE {
            return refuse(format!(
                "the signature is for namespace `{}`, not `{NAMESPACE}`",
                signature.namespace()
            ));
        }
        let message = verdict_message(call, verdict, approve);
        let allowed = self.signers.iter().any(|signer| {
            signer.principals.iter().any(|p| p == &verdict.by)
                && signer.key.key_data() == signature.public_key()
                && signer
                    .namespaces
                    .as_ref()
                    .is_none_or(|ns| ns.iter().any(|n| n == NAMESPACE))
                && signer.key.verify(NAMESPACE, &message, &signature).is_ok()
        });
        if !allowed {
            return refuse(format!(
                "no key that {} lists for {} made it",
                self.source.display(),
                verdict.by
            ));
        }
        if !self
            .principal(&verdict.by)
            .holds(&call.grant, SystemTime::now())
        {
            return Err(ApprovalError::LacksGrant(call.grant.clone()));
        }
        Ok(())
    }

    /// The line of the allowed-signers file that lists `principal`, for messages.
    pub fn line_of(&self, principal: &str) -> Option<usize> {
        self.signers
            .iter()
            .find(|s| s.principals.iter().any(|p| p == principal))
            .map(|s| s.line)
    }
}

/// What a command-line verdict signs: the call it decides (id, requester, tool, arguments and
/// definition digests, expiry), the verdict, who, when, from which account and why, as RFC
/// 8785 canonical JSON.
pub fn verdict_message(call: &PendingCall, verdict: &Verdict, approve: bool) -> Vec<u8> {
    let message = serde_json::json!({
        "namespace": NAMESPACE,
        "approval": call.id,
        "requester": call.principal,
        "tool": call.tool,
        "arguments_sha256": call.arguments_sha256,
        "definition_sha256": call.definition_sha256,
        "expires_at": call.expires_at,
        "verdict": if approve { "approve" } else { "deny" },
        "by": verdict.by,
        "at": verdict.at,
        "os_user": verdict.os_user,
        "reason": verdict.reason,
    });
    serde_json_canonicalizer::to_vec(&message).unwrap_or_default()
}

/// Sign `message` with the SSH key at `key` (or its agent), as `ssh-keygen -Y sign` does.
pub fn sign(key: &Path, message: &[u8]) -> Result<String, String> {
    let mut child = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(message)
            .map_err(|e| format!("ssh-keygen: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("ssh-keygen: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ssh-keygen could not sign with {}: {}",
            key.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| "ssh-keygen wrote no text".into())
}

/// The public half of the SSH key at `key`: `<key>.pub` when it is there, else what
/// `ssh-keygen -y` derives.
pub fn public_key_of(key: &Path) -> Result<PublicKey, String> {
    let mut public = key.as_os_str().to_owned();
    public.push(".pub");
    let text = match std::fs::read_to_string(&public) {
        Ok(text) => text,
        Err(_) => {
            let out = Command::new("ssh-keygen")
                .arg("-y")
                .arg("-f")
                .arg(key)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "cannot read the public key of {}: {}",
                    key.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    PublicKey::from_openssh(text.trim())
        .map_err(|e| format!("{}: not an SSH public key: {e}", key.display()))
}

/// The operating-system account running this process, by name from `/etc/passwd`, else
/// `uid:N`. Not the `USER` variable, which anyone sets.
pub fn os_user() -> String {
    let uid = rustix::process::geteuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id: u32 = fields.nth(1)?.parse().ok()?;
                (id == uid).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| format!("uid:{uid}"))
}

/// The first token of `text` (a quoted one whole) and the rest.
fn split_token(text: &str) -> (&str, &str) {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (&text[..i], &text[i..]),
            _ => {}
        }
    }
    (text, "")
}

/// The comma-separated options of `text`, commas inside quotes kept.
fn split_options(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOkGAGz05AI0+FBZoK3cGmgx+dkxS3K8LghkSLxgFvNp bob";

    #[test]
    fn accepts_allowed_signers_lines_and_refuses_patterns_and_options() {
        let text = format!(
            "# approvers\nbob@example.com {BOB}\n\"carol@example.com,dave@example.com\" namespaces=\"mcp-lp-approval,git\" {BOB}\n"
        );
        let signers = CliApprovers::parse(Path::new("a"), &text, Vec::new()).unwrap();
        let key = PublicKey::from_openssh(BOB).unwrap();
        assert_eq!(
            signers.principals_of(&key),
            ["bob@example.com", "carol@example.com", "dave@example.com"]
        );
        assert_eq!(signers.line_of("carol@example.com"), Some(3));
        let err = CliApprovers::parse(Path::new("a"), &format!("*@example.com {BOB}"), Vec::new())
            .unwrap_err();
        assert!(err.contains("a:1") && err.contains("patterns"), "{err}");
        let err = CliApprovers::parse(
            Path::new("a"),
            &format!("bob cert-authority {BOB}"),
            Vec::new(),
        )
        .unwrap_err();
        assert!(err.contains("cert-authority"), "{err}");
    }
}
