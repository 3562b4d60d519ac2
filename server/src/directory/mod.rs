//! Mailboxes from a directory (LDAP or Active Directory), per domain (`DirectorySettings` in the
//! snapshot): RCPT asks [`Directory::lookup`] whether an address belongs to an entry, AUTH asks
//! [`Directory::authenticate`] to bind as the entry with the given password.
//!
//! Answers to lookups, found or not, are kept for the domain's cache TTL in a bounded map keyed
//! by the settings' revision, so an edit to the settings is obeyed at once. Passwords are never
//! kept: every AUTH binds to the directory. A directory that cannot answer is an error the
//! caller turns into a temporary refusal, never "unknown user".

mod client;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use client::{DirectoryError, Entry};
use postern_store::model::{Address, DirectorySettings, DomainName};

/// The most lookups kept; past it, the oldest half is dropped.
const CACHE_LIMIT: usize = 10_000;

/// What the directory said about an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Entry),
    NotFound,
}

/// What a password check came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The entry's bind succeeded; its primary address.
    Accepted(Entry),
    /// No such entry, or the wrong password.
    Refused,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    domain: DomainName,
    /// The settings' revision: new settings never see the old ones' answers.
    updated_at: i64,
    address: Address,
}

/// The engine's directory client with its cache; one per process.
#[derive(Default)]
pub struct Directory {
    cache: Mutex<HashMap<Key, (Instant, Lookup)>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").finish_non_exhaustive()
    }
}

impl Directory {
    pub fn new() -> Directory {
        Directory::default()
    }

    fn cached(&self, key: &Key, ttl: Duration) -> Option<Lookup> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).filter(|(at, _)| at.elapsed() < ttl).map(|(_, l)| l.clone())
    }

    fn remember(&self, key: Key, lookup: Lookup) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            let mut ages: Vec<Instant> = cache.values().map(|(at, _)| *at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            cache.retain(|_, (at, _)| *at > cut);
        }
        cache.insert(key, (Instant::now(), lookup));
    }

    /// How many answers are kept now (for tests and figures).
    pub fn cached_answers(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Looks `address` up in `settings`' directory, through the cache.
    pub async fn lookup(
        &self,
        settings: &DirectorySettings,
        address: &Address,
    ) -> Result<Lookup, DirectoryError> {
        let key = Key {
            domain: settings.domain.clone(),
            updated_at: settings.updated_at,
            address: address.clone(),
        };
        let ttl = Duration::from_secs(settings.cache_ttl_secs);
        if let Some(hit) = self.cached(&key, ttl) {
            return Ok(hit);
        }
        let lookup = lookup_now(settings, address).await?;
        if !ttl.is_zero() {
            self.remember(key, lookup.clone());
        }
        Ok(lookup)
    }

    /// Finds the entry of `address` (service bind and search, never cached: a moved or
    /// disabled user must not keep logging in) and binds as it with `password`.
    pub async fn authenticate(
        &self,
        settings: &DirectorySettings,
        address: &Address,
        password: &str,
    ) -> Result<Verdict, DirectoryError> {
        // RFC 4513 §5.1.2: a bind with a DN and no password is an unauthenticated bind, which
        // servers answer with success. It proves nothing.
        if password.is_empty() {
            return Ok(Verdict::Refused);
        }
        let mut session = client::open(settings).await?;
        let found = session.find(settings, address).await;
        let entries = match found {
            Ok(e) => e,
            Err(e) => {
                session.close().await;
                return Err(e);
            }
        };
        let entry = match entries.as_slice() {
            [one] => one.clone(),
            [] => {
                session.close().await;
                return Ok(Verdict::Refused);
            }
            many => {
                session.close().await;
                tracing::warn!(address = %address, entries = many.len(),
                    "directory: several entries hold this address; refusing to guess whose password it is");
                return Ok(Verdict::Refused);
            }
        };
        let bound = session.bind_as(&entry.dn, password).await;
        session.close().await;
        Ok(if bound? { Verdict::Accepted(entry) } else { Verdict::Refused })
    }
}

/// A search now, without the cache: the console's and the CLI's "look up this address".
pub async fn lookup_now(
    settings: &DirectorySettings,
    address: &Address,
) -> Result<Lookup, DirectoryError> {
    let mut session = client::open(settings).await?;
    let found = session.find(settings, address).await;
    session.close().await;
    Ok(match found?.into_iter().next() {
        Some(entry) => Lookup::Found(entry),
        None => Lookup::NotFound,
    })
}

/// Connects, binds as the service account and reads the base DN: what the console's and the
/// CLI's "test connection" report.
pub async fn test(settings: &DirectorySettings) -> Result<String, DirectoryError> {
    let started = Instant::now();
    let mut session = client::open(settings).await?;
    let read = session.read_base(settings).await;
    session.close().await;
    read?;
    let who = if settings.bind_dn.is_empty() {
        "anonymously".to_string()
    } else {
        format!("as {}", settings.bind_dn)
    };
    Ok(format!(
        "connected to {} {who} and read {} in {} ms",
        settings.url,
        settings.base_dn,
        started.elapsed().as_millis()
    ))
}

/// The address whose Maildir an entry's mail goes to: its primary address when that is in a
/// domain with the same directory, else the address it was reached by.
pub fn mailbox_of(
    entry: &Entry,
    reached: &Address,
    directories: &std::collections::BTreeMap<DomainName, DirectorySettings>,
) -> Address {
    entry
        .addresses
        .first()
        .filter(|primary| {
            directories
                .get(primary.domain())
                .zip(directories.get(reached.domain()))
                .is_some_and(|(a, b)| a.url == b.url && a.base_dn == b.base_dn)
        })
        .cloned()
        .unwrap_or_else(|| reached.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_store::model::DirectoryPassword;

    fn settings(url: &str, ttl: u64) -> DirectorySettings {
        DirectorySettings {
            domain: "corp.test".parse().unwrap(),
            url: url.into(),
            starttls: false,
            ca_pem: None,
            bind_dn: "cn=svc,dc=corp,dc=test".into(),
            bind_password: DirectoryPassword("pw".into()),
            base_dn: "dc=corp,dc=test".into(),
            user_filter: String::new(),
            attributes: vec!["mail".into()],
            timeout_ms: 500,
            cache_ttl_secs: ttl,
            updated_at: 1,
        }
    }

    /// A port nothing listens on.
    fn closed_port() -> u16 {
        postern_store::testing::free_port()
    }

    #[tokio::test]
    async fn an_empty_password_is_refused_without_asking() {
        // Not even a connection is tried: the directory is unreachable, yet the answer is a
        // refusal, not an error.
        let s = settings(&format!("ldap://127.0.0.1:{}", closed_port()), 60);
        let a: Address = "ann@corp.test".parse().unwrap();
        assert_eq!(Directory::new().authenticate(&s, &a, "").await, Ok(Verdict::Refused));
    }

    #[tokio::test]
    async fn a_directory_down_is_an_error_and_errors_are_not_cached() {
        let s = settings(&format!("ldap://127.0.0.1:{}", closed_port()), 60);
        let a: Address = "ann@corp.test".parse().unwrap();
        let directory = Directory::new();
        assert!(directory.lookup(&s, &a).await.is_err());
        assert!(directory.authenticate(&s, &a, "pw").await.is_err());
        assert_eq!(directory.cached_answers(), 0);
    }

    #[test]
    fn answers_are_kept_per_settings_revision_and_for_their_ttl() {
        let directory = Directory::new();
        let a: Address = "ann@corp.test".parse().unwrap();
        let key = |updated_at| Key {
            domain: "corp.test".parse().unwrap(),
            updated_at,
            address: a.clone(),
        };
        directory.remember(key(1), Lookup::NotFound);
        assert_eq!(directory.cached(&key(1), Duration::from_secs(60)), Some(Lookup::NotFound));
        assert_eq!(directory.cached(&key(2), Duration::from_secs(60)), None, "new settings");
        assert_eq!(directory.cached(&key(1), Duration::ZERO), None, "expired");
        for i in 0..CACHE_LIMIT + 10 {
            let address: Address = format!("u{i}@corp.test").parse().unwrap();
            directory.remember(Key { address, ..key(1) }, Lookup::NotFound);
        }
        assert!(directory.cached_answers() <= CACHE_LIMIT, "{}", directory.cached_answers());
    }

    #[test]
    fn mail_goes_to_the_primary_address_of_the_same_directory() {
        let s = settings("ldap://127.0.0.1:389", 60);
        let mut directories = std::collections::BTreeMap::new();
        directories.insert(s.domain.clone(), s.clone());
        let entry = Entry {
            dn: "uid=ann".into(),
            addresses: vec!["ann@corp.test".parse().unwrap(), "sales@corp.test".parse().unwrap()],
        };
        let sales: Address = "sales@corp.test".parse().unwrap();
        assert_eq!(mailbox_of(&entry, &sales, &directories).to_string(), "ann@corp.test");
        // A primary address elsewhere: the address it was reached by keeps the mail.
        let entry = Entry { addresses: vec!["ann@other.test".parse().unwrap()], ..entry };
        assert_eq!(mailbox_of(&entry, &sales, &directories), sales);
    }
}
