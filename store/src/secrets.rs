//! Secrets the store must be able to give back (smarthost passwords now; DKIM and ACME keys
//! next) are sealed with AES-256-GCM under a key kept in a file outside the database, so that a
//! copy of the database alone (a backup, a dump, a stolen disk image of a Postgres server) does
//! not give them away.

use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{Result, StoreError};
use crate::files;

/// The key file's name in the data directory, unless configured elsewhere.
pub const KEY_FILE_NAME: &str = "secret.key";
/// How long the key is: 256 bits.
pub const KEY_LEN: usize = 32;
/// What a sealed value starts with; a stored value without it is plaintext from an older
/// version, sealed at the next start.
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// The key that seals and opens stored secrets. Neither `Debug` nor anything else shows it.
pub struct SecretKey {
    key: LessSafeKey,
    path: PathBuf,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey").field("path", &self.path).finish_non_exhaustive()
    }
}

fn key_error(path: &Path, message: impl Into<String>) -> StoreError {
    StoreError::SecretKey { path: path.display().to_string(), message: message.into() }
}

impl SecretKey {
    /// Reads the key from `path`, or `None` if there is no such file. A key file of ours that
    /// group or others can read is tightened to 0600 first.
    pub fn load(path: &Path) -> Result<Option<SecretKey>> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(key_error(path, format!("cannot read it: {e}"))),
        };
        files::tighten_file(path).map_err(|e| key_error(path, format!("cannot chmod it: {e}")))?;
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| {
            key_error(path, format!("is {} bytes long; a key is {KEY_LEN} random bytes", b.len()))
        })?;
        Ok(Some(SecretKey::from_bytes(&bytes, path)))
    }

    /// Makes a new random key and writes it to `path` (mode 0600); fails if the file exists.
    pub fn create(path: &Path) -> Result<SecretKey> {
        let mut bytes = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| key_error(path, "the system's random source failed"))?;
        files::create_private_new(path, &bytes)
            .map_err(|e| key_error(path, format!("cannot create it: {e}")))?;
        let key = SecretKey::from_bytes(&bytes, path);
        bytes.fill(0);
        tracing::info!(path = %path.display(), "created the key that seals stored secrets: back it up");
        Ok(key)
    }

    /// Reads the key at `path`, creating it first if there is none.
    pub fn load_or_create(path: &Path) -> Result<SecretKey> {
        if let Some(key) = SecretKey::load(path)? {
            return Ok(key);
        }
        match SecretKey::create(path) {
            // Another process made it between our read and our write: use theirs.
            Err(_) if path.exists() => SecretKey::load(path)?
                .ok_or_else(|| key_error(path, "appeared and vanished while starting")),
            result => result,
        }
    }

    /// A key from its bytes; `path` is only where it is said to come from in messages.
    pub fn from_bytes(bytes: &[u8; KEY_LEN], path: &Path) -> SecretKey {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).expect("AES-256 takes a 32-byte key");
        SecretKey { key: LessSafeKey::new(unbound), path: path.to_path_buf() }
    }

    /// The file the key came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seals `plaintext` for the place named by `context` (say `transport *:auth_password`): the
    /// result opens only with the same context, so a sealed value copied to another row does not.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        // A random 96-bit nonce: safe for far more seals than a store will ever make.
        aws_lc_rs::rand::fill(&mut nonce).expect("the system's random source works");
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(context)),
                &mut sealed,
            )
            .expect("AES-GCM seals any input under 64 GB");
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(raw))
    }

    /// Opens a value made by [`SecretKey::seal`] with the same `context`. Fails, naming the key
    /// file, when the key is another one or the value was changed or moved.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>> {
        let fail = |why: &str| {
            key_error(&self.path, format!("cannot open the sealed secret of {context}: {why}"))
        };
        let encoded = sealed.strip_prefix(SEALED_PREFIX).ok_or_else(|| fail("it is not sealed"))?;
        let mut raw = STANDARD.decode(encoded).map_err(|_| fail("it is not valid base64"))?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(fail("it is too short"));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&raw[..NONCE_LEN]);
        let plaintext = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(context)),
                &mut raw[NONCE_LEN..],
            )
            .map_err(|_| {
                fail(
                    "this is not the key it was sealed with (restore the key file that goes \
                     with this database), or the stored value was altered",
                )
            })?;
        Ok(plaintext.to_vec())
    }

    /// Opens a sealed value as text; a value without the sealed prefix is plaintext from an older
    /// version and is returned as it is.
    pub fn open_text(&self, context: &str, stored: &str) -> Result<String> {
        if !is_sealed(stored) {
            return Ok(stored.to_string());
        }
        String::from_utf8(self.open(context, stored)?).map_err(|_| {
            key_error(&self.path, format!("the sealed secret of {context} is not UTF-8"))
        })
    }
}

/// Whether a stored value is sealed (rather than plaintext from an older version).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// The additional data bound to a sealed value: the format version and where it belongs.
fn aad(context: &str) -> Vec<u8> {
    format!("postern sealed v1\0{context}").into_bytes()
}

/// Where a smarthost password lives: the transport's pattern is the row's identity.
pub(crate) fn transport_password_context(pattern: &str) -> String {
    format!("transports/{pattern}/auth_password")
}

/// Where a stored certificate's private key lives: the certificate's id is the row's identity.
pub(crate) fn certificate_key_context(id: &str) -> String {
    format!("certificates/{id}/key_pem")
}

/// Where an ACME account's credentials live: one account per directory URL.
pub(crate) fn acme_account_context(directory: &str) -> String {
    format!("acme_accounts/{directory}/credentials")
}

/// Where a DKIM private key lives: the key's record name (`<selector>._domainkey.<domain>`) is
/// the row's identity, so a sealed key opens only for its own domain and selector.
pub(crate) fn dkim_private_key_context(record_name: &str) -> String {
    format!("dkim_keys/{record_name}/private_key")
}

/// Where a domain's directory service password lives: the domain is the row's identity.
pub(crate) fn directory_password_context(domain: &str) -> String {
    format!("directories/{domain}/bind_password")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_only_with_the_same_key_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        let key = SecretKey::load_or_create(&path).unwrap();
        let sealed = key.seal("transports/*/auth_password", b"hunter2");
        assert!(sealed.starts_with(SEALED_PREFIX) && !sealed.contains("hunter2"), "{sealed}");
        assert_ne!(sealed, key.seal("transports/*/auth_password", b"hunter2"), "fresh nonces");
        assert_eq!(key.open("transports/*/auth_password", &sealed).unwrap(), b"hunter2");

        let again = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(again.open_text("transports/*/auth_password", &sealed).unwrap(), "hunter2");
        let err = key.open("transports/x.test/auth_password", &sealed).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains("x.test"), "{err}");

        let other = SecretKey::create(&dir.path().join("other.key")).unwrap();
        assert!(other.open("transports/*/auth_password", &sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(key.open("transports/*/auth_password", &tampered).is_err());
        assert_eq!(key.open_text("c", "legacy plaintext").unwrap(), "legacy plaintext");
    }

    #[test]
    fn the_key_file_is_private_and_never_shown() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join(KEY_FILE_NAME);
        let key = SecretKey::load_or_create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (32, 0o600));
        assert_eq!(format!("{key:?}"), format!("SecretKey {{ path: {path:?}, .. }}"));
        std::fs::write(&path, b"short").unwrap();
        let err = SecretKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("5 bytes long"), "{err}");
    }
}
