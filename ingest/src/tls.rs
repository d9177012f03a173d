//! RTMPS: TLS configuration from PEM files, and a self-signed certificate for local testing.
//!
//! The TLS layer is rustls with the ring provider, chosen explicitly so that the process-wide
//! default provider (which other crates may set, or leave ambiguous) does not matter.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("{0}: no certificate in the file")]
    NoCertificate(PathBuf),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A TLS server configuration for RTMPS from a PEM certificate chain (leaf first) and a PEM
/// private key (PKCS#8, PKCS#1 or SEC1). Fails if the key does not match the leaf certificate.
/// TLS 1.2 and 1.3, no client certificates.
pub fn load_tls_config(
    cert_pem_path: impl AsRef<Path>,
    key_pem_path: impl AsRef<Path>,
) -> Result<ServerConfig, TlsError> {
    let (cert_path, key_path) = (cert_pem_path.as_ref(), key_pem_path.as_ref());
    let pem_error = |path: &Path| {
        let path = path.to_owned();
        move |e: rustls::pki_types::pem::Error| TlsError::Pem { path, message: e.to_string() }
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(pem_error(cert_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(cert_path))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(pem_error(key_path))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(config)
}

/// Writes a new self-signed certificate (PEM) for `hostnames` (DNS names or IP addresses; empty
/// means `localhost` and `127.0.0.1`) to `cert_path`, and its private key (PEM, PKCS#8, ECDSA
/// P-256) to `key_path`, readable by the owner only on Unix. Creates missing parent folders and
/// overwrites existing files. For local testing: clients must be told not to verify it.
pub fn generate_self_signed(
    cert_path: impl AsRef<Path>,
    key_path: impl AsRef<Path>,
    hostnames: &[String],
) -> Result<(), TlsError> {
    let names =
        if hostnames.is_empty() { vec!["localhost".to_owned(), "127.0.0.1".to_owned()] } else { hostnames.to_vec() };
    let certified = rcgen::generate_simple_self_signed(names)?;
    write_file(key_path.as_ref(), &certified.signing_key.serialize_pem(), true)?;
    write_file(cert_path.as_ref(), &certified.cert.pem(), false)?;
    Ok(())
}

fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), TlsError> {
    let write = || -> std::io::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut file = options.open(path)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    };
    write().map_err(|source| TlsError::Write { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = (dir.path().join("tls/cert.pem"), dir.path().join("tls/key.pem"));
        generate_self_signed(&cert, &key, &["example.test".to_owned()]).expect("generate");
        load_tls_config(&cert, &key).expect("load");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).expect("key").permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is private");
        }
    }

    #[test]
    fn mismatched_or_missing_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |name: &str| dir.path().join(name);
        generate_self_signed(p("a.crt"), p("a.key"), &[]).expect("a");
        generate_self_signed(p("b.crt"), p("b.key"), &[]).expect("b");
        assert!(matches!(load_tls_config(p("a.crt"), p("b.key")), Err(TlsError::Rustls(_))));
        assert!(matches!(load_tls_config(p("none.crt"), p("a.key")), Err(TlsError::Pem { .. })));
        assert!(matches!(load_tls_config(p("a.key"), p("a.key")), Err(TlsError::NoCertificate(_))));
        assert!(matches!(load_tls_config(p("a.crt"), p("a.crt")), Err(TlsError::Pem { .. })));
    }
}
