//! The rustls server configuration for STARTTLS and port 465, from PEM certificate and key.
//! One certificate for now (the host name's); the SNI resolver for several comes with ACME.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::ServerError;

/// Builds an acceptor from PEM text: the certificate chain, leaf first, and its private key.
pub fn acceptor_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("bad private key PEM: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not fit together: {e}"))?;
    // Our cipher suite order, not the client's, as in `resolver::server_config`.
    config.ignore_client_order = true;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Builds an acceptor from a certificate file and a key file.
pub fn acceptor_from_files(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServerError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| ServerError::Certificate {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    };
    acceptor_from_pem(&read(cert)?, &read(key)?)
        .map_err(|message| ServerError::Certificate { path: cert.display().to_string(), message })
}
