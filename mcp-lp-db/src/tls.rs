//! TLS for database connections (the `tls` feature): rustls, verifying the server's certificate
//! and host name against the configured CA.

use std::path::Path;
use std::sync::Arc;

use mcp_lp::Config;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::StartupError;

/// A connector trusting the certificates in the PEM file `ca_file`; `capability` names what
/// connects with it in errors.
pub fn connector(
    capability: &str,
    ca_file: &Path,
    config: &Config,
) -> Result<MakeRustlsConnect, StartupError> {
    let problem = |problem: String| StartupError::Tls {
        path: config.path().to_owned(),
        capability: capability.to_owned(),
        problem,
    };
    let pem = std::fs::read(ca_file)
        .map_err(|e| problem(format!("cannot read {}: {}", ca_file.display(), e.kind())))?;
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|e| {
            problem(format!(
                "{} is not a PEM certificate file: {e}",
                ca_file.display()
            ))
        })?;
        roots.add(certificate).map_err(|e| {
            problem(format!(
                "{} holds an unusable certificate: {e}",
                ca_file.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(problem(format!(
            "{} holds no certificate",
            ca_file.display()
        )));
    }
    // An explicit provider: several may be compiled in when other crates enable theirs.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| problem(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(tls))
}
