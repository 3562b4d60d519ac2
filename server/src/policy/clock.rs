//! The time greylisting and the blocklist cache go by, in whole seconds since the Unix epoch:
//! the wall clock in production, a hand-moved one in tests, so that "retry after five minutes"
//! and "the answer's TTL ran out" are tested without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// `postern_store::now()`.
    #[default]
    System,
    /// Stands still until [`Clock::advance`] moves it.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A simulated clock showing `start`.
    pub fn manual(start: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start)))
    }

    pub fn now(&self) -> i64 {
        match self {
            Clock::System => postern_store::now(),
            Clock::Manual(at) => at.load(Ordering::SeqCst),
        }
    }

    /// Moves a simulated clock on by `seconds` (a no-op on the system clock).
    pub fn advance(&self, seconds: i64) {
        if let Clock::Manual(at) = self {
            at.fetch_add(seconds, Ordering::SeqCst);
        }
    }
}
