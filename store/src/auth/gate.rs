//! Bounds the argon2 work done at once. Each check needs 19 MiB of working memory and a core for
//! tens of milliseconds; unbounded, a flood of bad logins runs hundreds at once and takes
//! gigabytes (issue 9, item 1). Here at most one check per core runs, a few more wait briefly,
//! and the rest are refused at once ([`Busy`]) so that the client can come back later.
//!
//! Each running check uses one of a fixed set of preallocated memory areas rather than a fresh
//! allocation: glibc keeps freed blocks of this size in its arenas, so allocating per check grew
//! the process for good, whereas the set never grows beyond one area per permit.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::Block;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::StoreError;
use crate::model::{MEMORY_BLOCKS, PasswordHash};

/// Every permit is taken and the waiting line is full, or the wait ran out: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks at once; try again shortly")]
pub struct Busy;

/// Shared by every listener; cheap to clone.
#[derive(Clone)]
pub struct HashGate {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Arc<Semaphore>,
    size: usize,
    queue: usize,
    waiting: AtomicUsize,
    wait: Duration,
    /// Working memory of finished checks, for the next ones; never more areas than permits.
    pool: Mutex<Vec<Vec<Block>>>,
    /// Checks run so far, and the most that ran at once (for tests and figures).
    done: AtomicU64,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl HashGate {
    /// `permits` checks at once; up to `queue` more wait at most `wait` for a permit.
    pub fn new(permits: usize, queue: usize, wait: Duration) -> HashGate {
        let size = permits.max(1);
        HashGate {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(size)),
                size,
                queue,
                waiting: AtomicUsize::new(0),
                wait,
                pool: Mutex::new(Vec::new()),
                done: AtomicU64::new(0),
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
        }
    }

    /// One permit per core the process may use, and a queue of four per permit waiting at most
    /// a second: a check takes ~50 ms, so a queued one is normally served well within that.
    pub fn for_this_machine() -> HashGate {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        HashGate::new(cores, 4 * cores, Duration::from_secs(1))
    }

    pub fn permits(&self) -> usize {
        self.inner.size
    }

    /// Password checks and hashes run to the end so far.
    pub fn checks_run(&self) -> u64 {
        self.inner.done.load(Ordering::Relaxed)
    }

    /// The most checks that ran at once.
    pub fn peak_running(&self) -> usize {
        self.inner.peak.load(Ordering::Relaxed)
    }

    /// Checks `password` against `hash`; `Err(Busy)` without checking when the gate is full.
    pub async fn verify(&self, hash: PasswordHash, password: &str) -> Result<bool, Busy> {
        let password = password.to_string();
        self.run(move |blocks| hash.verify_in(&password, blocks))
            .await
            .map(|ok| ok.unwrap_or(false))
    }

    /// Hashes a new password (see [`PasswordHash::create`]).
    pub async fn hash(&self, password: &str) -> Result<Result<PasswordHash, StoreError>, Busy> {
        let password = password.to_string();
        let made = self.run(move |blocks| PasswordHash::create_in(&password, blocks)).await?;
        Ok(made.unwrap_or_else(|| Err(StoreError::Password("password hashing panicked".into()))))
    }

    /// Runs `work` on the blocking pool with one permit and one memory area, both held by the
    /// blocking task itself: a caller that goes away (a dropped connection) cannot free its
    /// permit while the work still runs. `None` when the work panicked.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<Option<T>, Busy> {
        let permit = self.admit().await?;
        let inner = self.inner.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit: OwnedSemaphorePermit = permit;
            let running = inner.running.fetch_add(1, Ordering::SeqCst) + 1;
            inner.peak.fetch_max(running, Ordering::SeqCst);
            let mut blocks = inner.take_blocks();
            let result = work(&mut blocks);
            inner.pool.lock().unwrap_or_else(|p| p.into_inner()).push(blocks);
            inner.running.fetch_sub(1, Ordering::SeqCst);
            inner.done.fetch_add(1, Ordering::Relaxed);
            result
        });
        Ok(task.await.ok())
    }

    /// A permit now, or after a short wait in a bounded line, or `Busy`.
    async fn admit(&self) -> Result<OwnedSemaphorePermit, Busy> {
        let permits = self.inner.permits.clone();
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = &self.inner.waiting;
        if waiting.fetch_add(1, Ordering::SeqCst) >= self.inner.queue {
            waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Busy);
        }
        let got = tokio::time::timeout(self.inner.wait, permits.acquire_owned()).await;
        waiting.fetch_sub(1, Ordering::SeqCst);
        match got {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Busy),
        }
    }
}

impl Inner {
    /// A free memory area, made on first use: the holder of a permit always finds one or makes
    /// one, and at most `size` permits exist, so at most `size` areas ever do.
    fn take_blocks(&self) -> Vec<Block> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        pooled.unwrap_or_else(|| vec![Block::default(); MEMORY_BLOCKS])
    }
}

impl Default for HashGate {
    fn default() -> HashGate {
        HashGate::for_this_machine()
    }
}

impl std::fmt::Debug for HashGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashGate").field("permits", &self.inner.size).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_and_hashes_through_the_gate() {
        let gate = HashGate::new(1, 0, Duration::from_secs(1));
        let hash = gate.hash("correct horse").await.unwrap().unwrap();
        assert!(gate.verify(hash.clone(), "correct horse").await.unwrap());
        assert!(!gate.verify(hash, "wrong horse").await.unwrap());
        assert!(!gate.verify(PasswordHash::decoy(), "anything").await.unwrap());
        assert!(gate.hash("short").await.unwrap().is_err());
        assert_eq!(gate.checks_run(), 5);
        assert_eq!(gate.inner.pool.lock().unwrap().len(), 1, "one permit, one memory area");
    }

    #[tokio::test]
    async fn a_full_gate_refuses_at_once_and_a_waiter_gives_up() {
        let wait = Duration::from_secs(2);
        let gate = HashGate::new(2, 1, wait);
        let held = [gate.admit().await.unwrap(), gate.admit().await.unwrap()];
        // The one place in the line: this caller waits, and then gives up.
        let started = std::time::Instant::now();
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.admit().await.map(drop) }
        });
        while gate.inner.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // The line is full: refused without waiting for anything.
        let refused_at = std::time::Instant::now();
        assert_eq!(gate.verify(PasswordHash::decoy(), "x").await, Err(Busy));
        assert!(refused_at.elapsed() < wait / 2, "{:?}", refused_at.elapsed());
        assert_eq!(waiter.await.unwrap(), Err(Busy));
        assert!(started.elapsed() >= wait);
        assert_eq!(gate.inner.waiting.load(Ordering::SeqCst), 0);
        assert_eq!(gate.checks_run(), 0);
        drop(held);
        assert!(gate.admit().await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_run_at_once_than_permits() {
        let gate = HashGate::new(2, 100, Duration::from_secs(60));
        let checks: Vec<_> = (0..8)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move { gate.verify(PasswordHash::decoy(), "x").await })
            })
            .collect();
        for check in checks {
            assert_eq!(check.await.unwrap(), Ok(false));
        }
        assert_eq!(gate.checks_run(), 8);
        assert!(gate.peak_running() <= 2, "{}", gate.peak_running());
        assert!(gate.inner.pool.lock().unwrap().len() <= 2);
    }
}
