//! The one certificate resolver every TLS listener uses (SMTP STARTTLS on 25 and 587, port 465,
//! the console's HTTPS): it picks the stored certificate for the name the client asks for (SNI),
//! falls back to the self-signed one, answers TLS-ALPN-01 challenges, and takes a new set of
//! certificates at any moment — the next handshake uses it, connections in progress keep theirs.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use postern_store::Store;
use postern_store::model::{CertificateInfo, DomainName, ServingCertificate, choose_certificate};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// A stored certificate ready for handshakes.
struct Loaded {
    info: CertificateInfo,
    key: Arc<CertifiedKey>,
}

/// Chooses the certificate of each TLS handshake. See the module comment.
pub struct CertResolver {
    hostname: DomainName,
    fallback: Arc<CertifiedKey>,
    loaded: ArcSwap<Vec<Loaded>>,
    /// TLS-ALPN-01 challenge certificates by name, while an ACME validation runs.
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<i64> = self.loaded.load().iter().map(|l| l.info.id).collect();
        f.debug_struct("CertResolver")
            .field("hostname", &self.hostname)
            .field("certificates", &ids)
            .finish_non_exhaustive()
    }
}

impl CertResolver {
    /// A resolver serving `fallback` (the self-signed certificate) until certificates are
    /// installed.
    pub fn new(hostname: DomainName, fallback: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(CertResolver {
            hostname,
            fallback,
            loaded: ArcSwap::from_pointee(Vec::new()),
            challenges: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the set of stored certificates. One whose chain or key the TLS library refuses
    /// is logged and left out; the others are served.
    pub fn install(&self, certs: &[ServingCertificate]) {
        let mut loaded = Vec::new();
        for cert in certs {
            match certified_key(&cert.chain_pem, cert.key_pem.expose()) {
                Ok(key) => loaded.push(Loaded { info: cert.info.clone(), key }),
                Err(why) => tracing::warn!(
                    certificate = cert.info.id,
                    names = %cert.info.names.join(" "),
                    error = %why,
                    "cannot serve a stored certificate; left out"
                ),
            }
        }
        self.loaded.store(Arc::new(loaded));
    }

    /// The ids of the certificates installed now.
    pub fn installed(&self) -> Vec<i64> {
        self.loaded.load().iter().map(|l| l.info.id).collect()
    }

    /// TLS-ALPN-01 (RFC 8737 §3): while set, a ClientHello for `name` offering ALPN
    /// `acme-tls/1` gets `key`, the challenge certificate.
    pub fn set_alpn_challenge(&self, name: &str, key: Arc<CertifiedKey>) {
        self.challenges.lock().expect("not poisoned").insert(name.to_ascii_lowercase(), key);
    }

    pub fn clear_alpn_challenge(&self, name: &str) {
        self.challenges.lock().expect("not poisoned").remove(&name.to_ascii_lowercase());
    }

    /// The stored certificate a client asking for `sni` gets now, or `None` for the fallback.
    pub fn chosen(&self, sni: Option<&str>) -> Option<CertificateInfo> {
        let loaded = self.loaded.load();
        choose_certificate(&loaded, |l| &l.info, sni, self.hostname.as_str(), postern_store::now())
            .map(|l| l.info.clone())
    }

    fn choose(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let loaded = self.loaded.load();
        choose_certificate(&loaded, |l| &l.info, sni, self.hostname.as_str(), postern_store::now())
            .map(|l| l.key.clone())
            .unwrap_or_else(|| self.fallback.clone())
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name();
        let acme = hello.alpn().is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // Only the challenge certificate answers `acme-tls/1` (RFC 8737 §3); without one
            // the handshake fails, which the CA reads as a failed validation.
            let name = sni?.trim_end_matches('.').to_ascii_lowercase();
            return self.challenges.lock().expect("not poisoned").get(&name).cloned();
        }
        Some(self.choose(sni))
    }
}

/// A certified key from a PEM chain (leaf first) and PEM private key.
pub fn certified_key(chain_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("bad private key PEM: {e}"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let key = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| format!("certificate and key do not fit together: {e}"))?;
    Ok(Arc::new(key))
}

/// A certified key from a certificate file and a key file (the self-signed fallback).
pub fn certified_key_from_files(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<CertifiedKey>, crate::error::ServerError> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|e| crate::error::ServerError::Certificate {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    };
    certified_key(&read(cert)?, &read(key)?).map_err(|message| {
        crate::error::ServerError::Certificate { path: cert.display().to_string(), message }
    })
}

/// A rustls server configuration that takes its certificates from `resolver`, offering the
/// ALPN protocols `alpn` (none for SMTP).
pub fn server_config(resolver: Arc<CertResolver>, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Our cipher suite order, not the client's (testssl.sh's "cipher_order", bench/tls-scan.sh):
    // a client that lists a weaker suite first still gets the strongest both support.
    config.ignore_client_order = true;
    Arc::new(config)
}

/// Loads the stored certificates into `resolver` now and again after every configuration
/// revision that changed them, until `shutdown`.
pub async fn follow(store: Store, resolver: Arc<CertResolver>, shutdown: CancellationToken) {
    let mut revisions = store.subscribe();
    loop {
        revisions.borrow_and_update();
        match store.serving_certificates().await {
            Ok(certs) => {
                let ids: Vec<i64> = certs.iter().map(|c| c.info.id).collect();
                // Certificates never change under an id: the same ids, the same set.
                if ids != resolver.installed() {
                    resolver.install(&certs);
                    tracing::info!(certificates = ?resolver.installed(), "TLS certificates loaded");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot load the TLS certificates; keeping the last set")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = revisions.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use postern_store::model::{CertificateSource, PrivateKeyPem};
    use postern_store::testing::certs::TestCa;

    use super::*;

    fn serving(id: i64, ca: &TestCa, names: &[&str], not_after: i64) -> ServingCertificate {
        let now = postern_store::now();
        let (chain_pem, key) = ca.issue(names, now - 60, not_after);
        ServingCertificate {
            info: CertificateInfo {
                id,
                names: names.iter().map(|n| n.to_string()).collect(),
                issuer: "CN=Test".into(),
                not_before: now - 60,
                not_after,
                source: CertificateSource::Upload,
                acme_directory: None,
                created_at: now,
            },
            chain_pem,
            key_pem: PrivateKeyPem::new(key),
        }
    }

    fn fallback() -> Arc<CertifiedKey> {
        let now = postern_store::now();
        let (chain, key) =
            postern_store::testing::certs::leaf(&["mail.example.com"], now - 60, now + 3600);
        certified_key(&chain, &key).unwrap()
    }

    /// testssl.sh reports a server that follows the client's cipher order (bench/tls-scan.sh).
    #[test]
    fn our_cipher_order_counts() {
        let resolver = CertResolver::new("mail.example.com".parse().unwrap(), fallback());
        assert!(server_config(resolver, &[]).ignore_client_order);
    }

    #[test]
    fn chooses_by_sni_and_falls_back() {
        let now = postern_store::now();
        let ca = TestCa::new("Resolver CA");
        let resolver = CertResolver::new("mail.example.com".parse().unwrap(), fallback());
        let fallback_der = resolver.choose(None).cert[0].clone();
        assert_eq!(resolver.chosen(None), None);

        let mut bad = serving(9, &ca, &["bad.example.com"], now + 3600);
        bad.key_pem = PrivateKeyPem::new("not a key".into());
        resolver.install(&[
            serving(1, &ca, &["*.example.org"], now + 3600),
            serving(2, &ca, &["mta-sts.example.org"], now + 3600),
            serving(3, &ca, &["mail.example.com"], now + 3600),
            bad,
        ]);
        assert_eq!(resolver.installed(), vec![1, 2, 3], "the bad one is left out");
        let id = |sni: Option<&str>| resolver.chosen(sni).map(|c| c.id);
        assert_eq!(id(Some("mta-sts.example.org")), Some(2));
        assert_eq!(id(Some("www.example.org")), Some(1));
        assert_eq!(id(Some("unknown.example.net")), Some(3));
        assert_eq!(id(None), Some(3));
        assert_ne!(resolver.choose(None).cert[0], fallback_der);

        resolver.install(&[]);
        assert_eq!(resolver.choose(Some("mail.example.com")).cert[0], fallback_der);
        assert!(!format!("{resolver:?}").contains("PRIVATE"));
    }

    /// A handshake over an in-memory pipe: the leaf the client got, or the error.
    async fn handshake(
        server: Arc<ServerConfig>,
        ca: &TestCa,
        sni: &str,
        alpn: &[&[u8]],
    ) -> Result<rustls_pki_types::CertificateDer<'static>, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls_pki_types::CertificateDer::from(ca.der())).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let server = tokio::spawn(async move { acceptor.accept(b).await.map(|_| ()) });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = rustls_pki_types::ServerName::try_from(sni.to_string()).unwrap();
        let result = connector.connect(name, a).await.map_err(|e| e.to_string());
        let _ = server.await;
        let tls = result?;
        Ok(tls.get_ref().1.peer_certificates().unwrap()[0].clone())
    }

    #[tokio::test]
    async fn acme_tls_alpn_gets_only_the_challenge_certificate() {
        let now = postern_store::now();
        let ca = TestCa::new("Resolver CA");
        let resolver = CertResolver::new("mail.example.com".parse().unwrap(), fallback());
        let stored = serving(1, &ca, &["mail.example.com"], now + 3600);
        resolver.install(std::slice::from_ref(&stored));
        let config = server_config(resolver.clone(), &[b"http/1.1", ACME_TLS_ALPN]);
        let first = |pem: &str| {
            rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
                .next()
                .unwrap()
                .unwrap()
        };

        let normal = handshake(config.clone(), &ca, "mail.example.com", &[b"http/1.1"]).await;
        assert_eq!(normal.unwrap(), first(&stored.chain_pem));
        let refused = handshake(config.clone(), &ca, "mail.example.com", &[ACME_TLS_ALPN]).await;
        assert!(refused.is_err(), "no challenge set: no certificate for acme-tls/1");

        let (challenge_pem, challenge_key) = ca.issue(&["mail.example.com"], now - 60, now + 600);
        resolver.set_alpn_challenge(
            "Mail.Example.com",
            certified_key(&challenge_pem, &challenge_key).unwrap(),
        );
        let got = handshake(config.clone(), &ca, "mail.example.com", &[ACME_TLS_ALPN]).await;
        assert_eq!(got.unwrap(), first(&challenge_pem));
        let normal = handshake(config.clone(), &ca, "mail.example.com", &[]).await;
        assert_eq!(normal.unwrap(), first(&stored.chain_pem), "others still get the stored one");
        resolver.clear_alpn_challenge("mail.example.com");
        assert!(handshake(config, &ca, "mail.example.com", &[ACME_TLS_ALPN]).await.is_err());
    }
}
