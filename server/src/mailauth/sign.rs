//! The DKIM signer: each active key of the author's domain, read from the live snapshot, so
//! that a key activated by the rollout (a new configuration revision) signs from the next
//! message on without a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mail_auth::common::crypto::{DkimKey as SigningKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner as Builder, Done};
use postern_store::model::{DkimAlgorithm, DkimKey, DomainName};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::Signer;
use crate::engine::Engine;

/// The fields signed when present (RFC 6376 §5.4.1's list): those a receiver shows or threads
/// by, and the MIME fields that say how to read the body. `From` is listed twice so that a
/// second `From:` added in transit breaks the signature (§5.4.2, "over-signing").
const SIGNED_FIELDS: &[&str] = &[
    "From",
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Sender",
];

/// A key ready to sign, with its domain, selector and fields; parsing an RSA key is not free,
/// so each is prepared once.
type Prepared = Builder<SigningKey, Done>;

/// Signs with the active keys of the snapshot current when a message is queued.
pub struct DkimSigner {
    engine: Engine,
    /// By record name: a record name's private key never changes (a new key gets a new
    /// selector), so an entry never goes stale; it is dropped when its key stops signing.
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
}

impl DkimSigner {
    pub fn new(engine: Engine) -> DkimSigner {
        DkimSigner { engine, prepared: Mutex::new(HashMap::new()) }
    }

    fn prepared(&self, key: &DkimKey) -> Option<Arc<Prepared>> {
        let name = key.record_name();
        let mut cache = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = cache.get(&name) {
            return Some(found.clone());
        }
        let der = key.private_key.pkcs8_der();
        let made = match key.algorithm {
            DkimAlgorithm::Ed25519 => Ed25519Key::from_pkcs8_der(der).map(SigningKey::from),
            DkimAlgorithm::Rsa => RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(
                PrivatePkcs8KeyDer::from(der.to_vec()),
            ))
            .map(SigningKey::from),
        };
        let made = made.map(|signing| builder(signing, key));
        match made {
            Ok(prepared) => {
                let prepared = Arc::new(prepared);
                cache.insert(name, prepared.clone());
                Some(prepared)
            }
            Err(e) => {
                // Unreachable for keys the store made; the message goes unsigned rather than
                // not at all.
                tracing::error!(key = %name, error = %e, "cannot use the DKIM key; not signing with it");
                None
            }
        }
    }

    /// Forgets the prepared keys that no longer sign; names are built only when the cache
    /// holds more keys than sign now, so the common case costs a count.
    fn prune(&self, config: &postern_store::model::Config) {
        let active = |k: &&DkimKey| k.state == postern_store::model::DkimState::Active;
        let mut cache = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > config.dkim.iter().filter(active).count() {
            let names: Vec<String> =
                config.dkim.iter().filter(active).map(DkimKey::record_name).collect();
            cache.retain(|name, _| names.contains(name));
        }
    }
}

impl Signer for DkimSigner {
    fn sign(&self, domain: &str, parts: &[&[u8]]) -> String {
        let Ok(domain) = domain.parse::<DomainName>() else { return String::new() };
        let snapshot = self.engine.snapshot();
        let config = &snapshot.config;
        let mut fields = String::new();
        for key in config.active_dkim_keys(&domain) {
            let Some(prepared) = self.prepared(key) else { continue };
            match prepared.sign_chained(parts.iter().copied()) {
                Ok(signature) => fields.push_str(&signature.to_header()),
                Err(e) => {
                    tracing::warn!(key = %key.record_name(), error = %e, "DKIM signing failed");
                }
            }
        }
        self.prune(config);
        fields
    }
}

fn builder(signing: SigningKey, key: &DkimKey) -> Prepared {
    Builder::from_key(signing)
        .domain(key.domain.as_str())
        .selector(key.selector.as_str())
        .headers(SIGNED_FIELDS.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}
