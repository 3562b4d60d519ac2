//! What the CA checks: HTTP-01 key authorizations served under
//! `/.well-known/acme-challenge/` (RFC 8555 §8.3), and TLS-ALPN-01 certificates presented to a
//! ClientHello that offers `acme-tls/1` (RFC 8737).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::crypto::aws_lc_rs;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The key authorizations the HTTP-01 responder answers, by token, while their challenge is
/// in progress. Key authorizations are not secret (anyone may fetch them), but they are only
/// served while a challenge needs them.
#[derive(Debug, Default)]
pub struct Http01Tokens {
    tokens: Mutex<HashMap<String, String>>,
}

impl Http01Tokens {
    pub fn new() -> Arc<Http01Tokens> {
        Arc::new(Http01Tokens::default())
    }

    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.lock().insert(token.to_string(), key_authorization.to_string());
    }

    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    /// The key authorization for `token`, if a challenge is waiting for it.
    pub fn get(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where TLS-ALPN-01 challenge certificates go while their challenge is in progress: in
/// production the SNI resolver that the console's HTTPS listener uses.
pub trait AlpnChallenges: Send + Sync {
    /// From now on, a ClientHello for `name` offering ALPN `acme-tls/1` gets `key`.
    fn set(&self, name: &str, key: Arc<CertifiedKey>);
    fn clear(&self, name: &str);
}

/// Nowhere to put TLS-ALPN-01 certificates (no HTTPS listener): orders for that challenge
/// fail with a clear message instead of waiting for a validation that cannot succeed.
#[derive(Debug, Default)]
pub struct NoAlpn;

impl AlpnChallenges for NoAlpn {
    fn set(&self, _: &str, _: Arc<CertifiedKey>) {}
    fn clear(&self, _: &str) {}
}

pub use crate::tls::ACME_TLS_ALPN;

/// The resolver every TLS listener shares answers `acme-tls/1` with these.
impl AlpnChallenges for crate::tls::CertResolver {
    fn set(&self, name: &str, key: Arc<CertifiedKey>) {
        self.set_alpn_challenge(name, key);
    }
    fn clear(&self, name: &str) {
        self.clear_alpn_challenge(name);
    }
}

/// A self-signed certificate for `name` carrying the critical acmeIdentifier extension with
/// the SHA-256 digest of the key authorization (RFC 8737 §3).
pub fn tls_alpn01_certificate(name: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    if digest.len() != 32 {
        return Err(format!("a key authorization digest is 32 bytes, not {}", digest.len()));
    }
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])
        .map_err(|e| format!("{name}: not a name for a certificate: {e}"))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| e.to_string())?;
    // `CertifiedKey::from_der` checks the certificate against the key the way a server
    // certificate is checked, and refuses the critical acmeIdentifier extension: build it
    // directly.
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_served_only_while_set() {
        let tokens = Http01Tokens::new();
        assert_eq!(tokens.get("abc"), None);
        tokens.insert("abc", "abc.thumbprint");
        assert_eq!(tokens.get("abc").as_deref(), Some("abc.thumbprint"));
        tokens.remove("abc");
        assert_eq!(tokens.get("abc"), None);
    }

    #[test]
    fn the_challenge_certificate_carries_the_digest_in_a_critical_extension() {
        let digest = [7u8; 32];
        let key = tls_alpn01_certificate("mail.example.test", &digest).unwrap();
        let der = key.cert[0].as_ref();
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        // id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("the acmeIdentifier extension");
        assert!(ext.critical);
        // An OCTET STRING of the 32-byte digest.
        assert_eq!(&ext.value[..2], &[0x04, 32]);
        assert_eq!(&ext.value[2..], &digest);
        let names: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["DNSName(mail.example.test)"]);
        assert!(tls_alpn01_certificate("mail.example.test", &[1, 2]).is_err());
    }
}
