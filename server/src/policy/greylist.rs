//! Built-in greylisting in the engine: the state machine is the model's
//! (`postern_store::model::judge`), the records are the store's (so that several engines on one
//! database agree), and this keeps a bounded cache in front of them, so that a triplet waiting
//! out its delay or a correspondent that passed long ago costs no database round trip. A record
//! is written only when its state changes (first seen, passed) or once a day for a passed one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use postern_store::Store;
use postern_store::model::{GreylistRecord, GreylistSettings, Judgement, Triplet, judge};

use super::Clock;

/// Triplets kept in memory at most; beyond, the forgotten ones go, then all of them (the store
/// still has them).
const MAX_CACHED: usize = 100_000;
/// How often forgotten triplets are deleted from the store.
const PRUNE_EVERY: i64 = 3600;

pub struct Greylist {
    store: Store,
    clock: Clock,
    cache: Mutex<HashMap<Triplet, GreylistRecord>>,
    last_prune: AtomicI64,
}

impl Greylist {
    pub fn new(store: Store, clock: Clock) -> Greylist {
        let last_prune = AtomicI64::new(clock.now());
        Greylist { store, clock, cache: Mutex::new(HashMap::new()), last_prune }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Judges an attempt now and records what changed. A store that cannot be read or written
    /// lets the message pass (greylisting is a delay, never a reason to lose mail): `Err` says
    /// why, for the log.
    pub async fn check(
        &self,
        settings: &GreylistSettings,
        triplet: &Triplet,
    ) -> Result<Judgement, String> {
        let now = self.clock.now();
        self.maybe_prune(now, settings);
        let cached = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(triplet).cloned();
        let stored = match cached {
            Some(record) => Some(record),
            None => self.store.greylist_record(triplet).await.map_err(|e| e.to_string())?,
        };
        let judgement = judge(triplet, stored.as_ref(), now, settings);
        if judgement.write {
            self.store.save_greylist_record(&judgement.record).await.map_err(|e| e.to_string())?;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, r| match r.passed_at {
                Some(_) => now - r.last_seen <= settings.expire,
                None => now - r.first_seen <= settings.retry_window,
            });
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(triplet.clone(), judgement.record.clone());
        Ok(judgement)
    }

    /// Deletes forgotten triplets from the store once an hour, in the background.
    fn maybe_prune(&self, now: i64, settings: &GreylistSettings) {
        let last = self.last_prune.load(Ordering::Relaxed);
        if now - last < PRUNE_EVERY
            || self
                .last_prune
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let (store, settings) = (self.store.clone(), *settings);
        tokio::spawn(async move {
            match store.prune_greylist(now, &settings).await {
                Ok(n) => tracing::debug!(pruned = n, "greylisting forgot old triplets"),
                Err(e) => tracing::warn!(error = %e, "cannot prune greylisting's triplets"),
            }
        });
    }

    /// How many triplets are cached.
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use postern_store::model::GreylistVerdict;
    use postern_store::testing::TestDb;

    use super::*;

    #[tokio::test]
    async fn defers_then_passes_and_writes_only_changes() {
        let db = TestDb::sqlite();
        let store = db.open().await;
        let clock = Clock::manual(1_000_000);
        let greylist = Greylist::new(store.clone(), clock.clone());
        let settings = GreylistSettings::default();
        let t = Triplet::new("192.0.2.1".parse().unwrap(), "a@b.test", "c@d.test");

        let first = greylist.check(&settings, &t).await.unwrap();
        assert_eq!(first.verdict, GreylistVerdict::Defer { wait: 300, first: true });
        assert!(store.greylist_record(&t).await.unwrap().is_some(), "written for other engines");

        clock.advance(60);
        let early = greylist.check(&settings, &t).await.unwrap();
        assert_eq!(early.verdict, GreylistVerdict::Defer { wait: 240, first: false });

        clock.advance(240);
        let retry = greylist.check(&settings, &t).await.unwrap();
        assert_eq!(retry.verdict, GreylistVerdict::Pass { first_pass: true });
        assert_eq!(store.greylist_record(&t).await.unwrap().unwrap().passed_at, Some(1_000_300));

        // Another engine (a new cache) on the same store agrees.
        let other = Greylist::new(store.clone(), clock.clone());
        clock.advance(10);
        let again = other.check(&settings, &t).await.unwrap();
        assert_eq!(again.verdict, GreylistVerdict::Pass { first_pass: false });
        assert!(!again.write);
        store.close().await;
    }
}
