//! The first-run certificate: self-signed for the host name, so that STARTTLS and the console
//! work before a real certificate is issued.

use std::io::Write;
use std::path::{Path, PathBuf};

use postern_store::model::DomainName;
use time::{Duration, OffsetDateTime};

use crate::error::ServerError;

/// Where a certificate and its key are on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// True when this call created them.
    pub created: bool,
}

/// Makes `<dir>/<hostname>.crt` and `.key` unless both exist. The key is written owner-only.
pub fn ensure_self_signed(
    dir: &Path,
    hostname: &DomainName,
) -> Result<CertificateFiles, ServerError> {
    let cert = dir.join(format!("{hostname}.crt"));
    let key = dir.join(format!("{hostname}.key"));
    if cert.exists() && key.exists() {
        return Ok(CertificateFiles { cert, key, created: false });
    }
    let fail = |path: &Path, message: String| ServerError::Certificate {
        path: path.display().to_string(),
        message,
    };
    postern_store::files::private_dir(dir)
        .map_err(|e| fail(dir, format!("cannot create the directory: {e}")))?;

    let mut params = rcgen::CertificateParams::new(vec![hostname.to_string()])
        .map_err(|e| fail(&cert, format!("bad subject name: {e}")))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, hostname.as_str());
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365);
    let key_pair = rcgen::KeyPair::generate().map_err(|e| fail(&key, e.to_string()))?;
    let certificate = params.self_signed(&key_pair).map_err(|e| fail(&cert, e.to_string()))?;

    write_private(&key, key_pair.serialize_pem().as_bytes())
        .map_err(|e| fail(&key, e.to_string()))?;
    std::fs::write(&cert, certificate.pem()).map_err(|e| fail(&cert, e.to_string()))?;
    Ok(CertificateFiles { cert, key, created: true })
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn made_once_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let host: DomainName = "mail.example.com".parse().unwrap();
        let first = ensure_self_signed(dir.path(), &host).unwrap();
        assert!(first.created);
        let pem = std::fs::read_to_string(&first.cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let mode = std::fs::metadata(&first.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ensure_self_signed(dir.path(), &host).unwrap();
        assert!(!again.created);
        assert_eq!(std::fs::read_to_string(&again.cert).unwrap(), pem);
    }
}
