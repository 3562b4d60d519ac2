//! One conversation with a directory server (RFC 4511) through `ldap3`: connect (LDAPS, or LDAP
//! upgraded with StartTLS, the server's certificate verified against the configured CA or the
//! system's and the web's roots), bind, search, unbind. A connection per operation: lookups are
//! cached, and AUTH is rare next to mail, so a pool would buy little and hold sockets open.

use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};
use postern_store::model::{Address, DirectorySettings};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// RFC 4511 §4.1.9 result codes that say something about the credentials.
const INVALID_CREDENTIALS: u32 = 49;
/// The system's CA bundle (Debian's ca-certificates): where a site installs its own CA.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why the directory gave no answer: always temporary for mail (451/454), never "unknown".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DirectoryError(pub String);

fn fail(what: &str, e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError(format!("{what}: {e}"))
}

/// An entry found for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    /// Its addresses, the primary one first (see `DirectorySettings::entry_addresses`).
    pub addresses: Vec<Address>,
}

/// The TLS client configuration for `settings`: only the configured CA when there is one.
fn tls_config(settings: &DirectorySettings) -> Result<ClientConfig, DirectoryError> {
    let mut roots = RootCertStore::empty();
    match settings.ca_pem.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| fail("the directory's CA certificate", e))?;
                roots.add(cert).map_err(|e| fail("the directory's CA certificate", e))?;
            }
        }
        None => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Ok(bundle) = std::fs::read(SYSTEM_BUNDLE) {
                for cert in CertificateDer::pem_slice_iter(&bundle).flatten() {
                    let _ = roots.add(cert);
                }
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail("TLS", e))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A live connection, bound as the service account.
pub struct Session {
    ldap: ldap3::Ldap,
    timeout: Duration,
}

fn describe(e: LdapError) -> String {
    match e {
        LdapError::LdapResult { result } => {
            let text = result.text.trim();
            if text.is_empty() {
                format!("the server answered result code {}", result.rc)
            } else {
                format!("the server answered result code {} ({text})", result.rc)
            }
        }
        LdapError::Timeout { .. } => "no answer in time".into(),
        other => other.to_string(),
    }
}

/// Connects to the directory of `settings` (TLS as configured), without binding.
async fn connect(settings: &DirectorySettings) -> Result<Session, DirectoryError> {
    let url = settings.url().map_err(DirectoryError)?;
    let timeout = Duration::from_millis(settings.timeout_ms);
    let mut conn = LdapConnSettings::new().set_conn_timeout(timeout);
    if url.tls || settings.starttls {
        conn = conn.set_config(Arc::new(tls_config(settings)?)).set_starttls(settings.starttls);
    }
    let address = format!("{}://{}:{}", if url.tls { "ldaps" } else { "ldap" }, url.host, url.port);
    let connected =
        tokio::time::timeout(timeout, LdapConnAsync::with_settings(conn, &address)).await;
    let (driver, ldap) = match connected {
        Err(_) => return Err(DirectoryError(format!("{address}: no connection in time"))),
        Ok(Err(e)) => return Err(DirectoryError(format!("{address}: {}", describe(e)))),
        Ok(Ok(pair)) => pair,
    };
    tokio::spawn(async move {
        if let Err(e) = driver.drive().await {
            tracing::debug!(error = %e, "directory connection ended");
        }
    });
    Ok(Session { ldap, timeout })
}

/// Connects and binds as the service account (or anonymously without one).
pub async fn open(settings: &DirectorySettings) -> Result<Session, DirectoryError> {
    let mut session = connect(settings).await?;
    if !settings.bind_dn.is_empty() {
        let result = session
            .ldap
            .with_timeout(session.timeout)
            .simple_bind(&settings.bind_dn, settings.bind_password.expose())
            .await
            .map_err(|e| fail("service bind", describe(e)))?;
        if result.rc != 0 {
            let why = if result.rc == INVALID_CREDENTIALS {
                "the service account's DN or password is wrong".to_string()
            } else {
                format!("result code {} {}", result.rc, result.text)
            };
            session.close().await;
            return Err(DirectoryError(format!("service bind as {}: {why}", settings.bind_dn)));
        }
    }
    Ok(session)
}

impl Session {
    /// The entries under the base DN holding `address` in a configured attribute.
    pub async fn find(
        &mut self,
        settings: &DirectorySettings,
        address: &Address,
    ) -> Result<Vec<Entry>, DirectoryError> {
        let filter = settings.search_filter(address);
        let attributes: Vec<&str> = settings.attributes.iter().map(String::as_str).collect();
        let (entries, result) = self
            .ldap
            .with_timeout(self.timeout)
            .search(&settings.base_dn, Scope::Subtree, &filter, attributes)
            .await
            .map_err(|e| fail("search", describe(e)))?
            .success()
            .map_err(|e| fail(&format!("search under {}", settings.base_dn), describe(e)))?;
        let _ = result;
        Ok(entries
            .into_iter()
            .map(|raw| {
                let entry = SearchEntry::construct(raw);
                let addresses = settings.entry_addresses(
                    entry.attrs.iter().map(|(name, values)| (name.as_str(), values.as_slice())),
                );
                Entry { dn: entry.dn, addresses }
            })
            .collect())
    }

    /// Whether the base DN can be read: the console's and the CLI's connection test.
    pub async fn read_base(&mut self, settings: &DirectorySettings) -> Result<(), DirectoryError> {
        self.ldap
            .with_timeout(self.timeout)
            .search(&settings.base_dn, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await
            .map_err(|e| fail("reading the base DN", describe(e)))?
            .success()
            .map_err(|e| fail(&format!("reading the base DN {}", settings.base_dn), describe(e)))?;
        Ok(())
    }

    /// Binds as `dn` with `password` (RFC 4513 §5.1.3): `Ok(false)` for wrong credentials.
    /// The caller has refused an empty password already (§5.1.2: an unauthenticated bind would
    /// "succeed" without proving anything).
    pub async fn bind_as(&mut self, dn: &str, password: &str) -> Result<bool, DirectoryError> {
        let result = self
            .ldap
            .with_timeout(self.timeout)
            .simple_bind(dn, password)
            .await
            .map_err(|e| fail("user bind", describe(e)))?;
        match result.rc {
            0 => Ok(true),
            INVALID_CREDENTIALS => Ok(false),
            rc => Err(DirectoryError(format!("user bind: result code {rc} {}", result.text))),
        }
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(self.timeout, self.ldap.unbind()).await;
    }
}
