//! Good API tokens kept in memory, so that a request does not read its token and the token's
//! owner from the store each time.
//!
//! An entry is keyed by the SHA-256 of the whole bearer (never the bearer itself) and holds the
//! principal it stands for. It is good only at the configuration revision it was read at: every
//! change to a token or an administrator is a configuration change (`Store::change`), so a
//! revocation, a narrowed owner or a removed administrator moves the revision and empties the
//! cache before the next request is answered. A change made in this process moves the revision
//! as it commits; one made by another process (`postern token revoke` on the command line) moves
//! it as soon as the store's change feed learns of it (a LISTEN on Postgres; a 200 ms poll on
//! SQLite). Entries also lapse after a minute, so that the store still records each token's last
//! use (to the minute) and an expiry is honoured to the second.
//!
//! Only good tokens are kept: a wrong one always goes to the store, and is counted by the
//! wrong-token limiter as before.

use std::collections::HashMap;
use std::sync::RwLock;

use postern_store::secret_hash;
use tokio::sync::watch;

use super::Principal;

/// How long an entry is trusted without reading the store again (seconds).
const LIFETIME: i64 = 60;
/// The most tokens kept; past it the cache starts afresh (a busy appliance has a few dozen).
const CAPACITY: usize = 10_000;

struct Entry {
    principal: Principal,
    /// Epoch seconds when it was read from the store.
    read_at: i64,
}

struct Entries {
    /// The configuration revision every entry was read at.
    revision: i64,
    map: HashMap<String, Entry>,
}

pub struct TokenCache {
    revision: watch::Receiver<i64>,
    entries: RwLock<Entries>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache that follows `revision` (the store's [`postern_store::Store::subscribe`]).
    pub fn new(revision: watch::Receiver<i64>) -> TokenCache {
        let now = *revision.borrow();
        TokenCache {
            revision,
            entries: RwLock::new(Entries { revision: now, map: HashMap::new() }),
        }
    }

    /// The key of a bearer: its hash, so that no usable secret sits in memory longer than the
    /// request that carried it.
    pub fn key(bearer: &str) -> String {
        secret_hash(bearer)
    }

    /// The configuration revision now, to be read *before* the store is asked, and handed to
    /// [`TokenCache::insert`]: an entry read while a revocation commits is then never kept.
    pub fn revision(&self) -> i64 {
        *self.revision.borrow()
    }

    /// The principal of a token that was good at the current revision, within the last minute,
    /// and has not expired since.
    pub fn get(&self, key: &str, now: i64) -> Option<Principal> {
        let revision = self.revision();
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        if entries.revision != revision {
            return None;
        }
        let entry = entries.map.get(key)?;
        let fresh = now - entry.read_at < LIFETIME && now >= entry.read_at;
        let unexpired = entry.principal.expires_at.is_none_or(|e| e > now);
        (fresh && unexpired).then(|| entry.principal.clone())
    }

    /// Keeps a principal the store vouched for at `revision` (read before asking it).
    pub fn insert(&self, key: String, principal: Principal, revision: i64, now: i64) {
        let current = self.revision();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.revision != current {
            entries.map.clear();
            entries.revision = current;
        }
        // Read at an older revision than the current one: it may be a token revoked since.
        if revision != current {
            return;
        }
        if entries.map.len() >= CAPACITY {
            entries.map.clear();
        }
        entries.map.insert(key, Entry { principal, read_at: now });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).map.len()
    }
}

#[cfg(test)]
mod tests {
    use postern_store::model::{Access, Role};

    use super::*;

    fn principal(expires_at: Option<i64>) -> Principal {
        Principal {
            name: "alice".parse().unwrap(),
            role: Role::Admin,
            domains: None,
            access: Access::Write,
            expires_at,
            actor: "api:alice/t".into(),
        }
    }

    #[test]
    fn an_entry_lasts_until_the_revision_moves_a_minute_passes_or_it_expires() {
        let (tx, rx) = watch::channel(7);
        let cache = TokenCache::new(rx);
        let key = TokenCache::key("pst_a_b");
        assert_ne!(key, "pst_a_b");
        cache.insert(key.clone(), principal(None), 7, 1000);
        assert!(cache.get(&key, 1000).is_some());
        assert!(cache.get(&key, 1059).is_some());
        assert!(cache.get(&key, 1060).is_none(), "read again after a minute");
        tx.send(8).unwrap();
        assert!(cache.get(&key, 1001).is_none(), "a change empties it");
        // Read before the change, stored after it: not kept.
        cache.insert(key.clone(), principal(None), 7, 1001);
        assert!(cache.get(&key, 1001).is_none());
        assert_eq!(cache.len(), 0);
        cache.insert(key.clone(), principal(Some(1010)), 8, 1001);
        assert!(cache.get(&key, 1009).is_some());
        assert!(cache.get(&key, 1010).is_none(), "expired");
    }
}
