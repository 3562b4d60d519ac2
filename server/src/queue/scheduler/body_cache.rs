//! Bodies of fresh messages kept in memory for their first attempt, within a budget, so that a
//! first attempt reads nothing back from the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most bytes of message bodies kept in memory for first attempts. Past it, a fresh message's body
/// is read back from the store when its turn comes: when delivery falls behind intake (a next hop
/// down), memory stays bounded.
pub(super) const BODY_CACHE_BYTES: usize = 64 << 20;

/// A body kept for a message's first attempt, counted against [`BODY_CACHE_BYTES`] while kept.
pub(super) struct CachedBody {
    pub(super) data: Arc<Vec<u8>>,
    budget: Arc<AtomicUsize>,
}

impl CachedBody {
    /// Keeps `body` if the budget allows.
    pub(super) fn keep(body: Vec<u8>, budget: &Arc<AtomicUsize>) -> Option<CachedBody> {
        let len = body.len();
        let taken = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            (used + len <= BODY_CACHE_BYTES).then_some(used + len)
        });
        taken.ok().map(|_| CachedBody { data: Arc::new(body), budget: budget.clone() })
    }
}

impl Drop for CachedBody {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.data.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_cache_stays_within_its_budget() {
        let budget = Arc::new(AtomicUsize::new(0));
        let big = CachedBody::keep(vec![0; BODY_CACHE_BYTES - 10], &budget).expect("fits");
        assert!(CachedBody::keep(vec![0; 11], &budget).is_none(), "over the budget: read later");
        let small = CachedBody::keep(vec![0; 10], &budget).expect("fits exactly");
        drop(big);
        assert_eq!(budget.load(Ordering::Relaxed), 10);
        drop(small);
        assert_eq!(budget.load(Ordering::Relaxed), 0);
    }
}
