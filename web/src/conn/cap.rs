//! How many connections the console holds: at most so many over every console listener, and
//! at most so many from one address, so that a flood of idle connections can neither take the
//! descriptors SMTP needs nor shut out every other client. When every place is taken, the
//! connection that has waited longest without a request in progress gives its place to the
//! newcomer (as a web server closes idle keep-alive connections when it runs short); only when
//! every connection is busy is the newcomer refused, at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::watch::Activity;

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every console connection is taken, and busy.
    All,
    /// This address holds as many as one address may.
    Address,
}

/// The console's connection counts, shared by its listeners.
pub struct ConnectionCap {
    slots: Arc<Semaphore>,
    per_address: usize,
    live: Mutex<Live>,
    refused: AtomicU64,
    last_report: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Live {
    next_id: u64,
    connections: HashMap<u64, Entry>,
    by_address: HashMap<IpAddr, usize>,
}

/// A connection holding a place.
struct Entry {
    slot: OwnedSemaphorePermit,
    ip: IpAddr,
    activity: Arc<Activity>,
    evict: CancellationToken,
}

/// One admitted connection; its place comes back when it is dropped.
pub struct Admitted {
    cap: Arc<ConnectionCap>,
    id: u64,
    /// Cancelled when the connection must give its place to a newcomer.
    pub evicted: CancellationToken,
}

impl ConnectionCap {
    /// `per_address` 0 means no limit per address.
    pub fn new(max: usize, per_address: usize) -> Arc<ConnectionCap> {
        Arc::new(ConnectionCap {
            slots: Arc::new(Semaphore::new(max.max(1))),
            per_address,
            live: Mutex::default(),
            refused: AtomicU64::new(0),
            last_report: Mutex::new(None),
        })
    }

    /// Takes a place for a connection from `ip`, or says why there is none. Never waits: a
    /// connection beyond the cap is refused at once rather than queued.
    pub fn admit(
        self: &Arc<ConnectionCap>,
        ip: IpAddr,
        activity: Arc<Activity>,
    ) -> Result<Admitted, Full> {
        let ip = ip.to_canonical();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let count = live.by_address.get(&ip).copied().unwrap_or(0);
        if self.per_address > 0 && count >= self.per_address {
            drop(live);
            self.note_refusal(ip, Full::Address);
            return Err(Full::Address);
        }
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => match live.evict_longest_waiting() {
                Some(slot) => slot,
                None => {
                    drop(live);
                    self.note_refusal(ip, Full::All);
                    return Err(Full::All);
                }
            },
        };
        live.next_id += 1;
        let id = live.next_id;
        let evicted = CancellationToken::new();
        let entry = Entry { slot, ip, activity, evict: evicted.clone() };
        live.connections.insert(id, entry);
        *live.by_address.entry(ip).or_insert(0) += 1;
        Ok(Admitted { cap: self.clone(), id, evicted })
    }

    /// Logs refusals at most every 10 s, with how many there were: a flood would otherwise
    /// write a log line per connection.
    fn note_refusal(&self, ip: IpAddr, why: Full) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_report.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            self.refused.store(0, Ordering::Relaxed);
            let limit = match why {
                Full::All => "console.max_connections",
                Full::Address => "console.max_connections_per_address",
            };
            tracing::warn!(client = %ip, limit, refused, "console connections refused");
        }
    }

    /// Addresses holding a connection now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).by_address.len()
    }
}

impl Live {
    /// Takes the place of the connection that has waited longest with no request in progress
    /// (idle, or still sending its headers), and tells it to close.
    fn evict_longest_waiting(&mut self) -> Option<OwnedSemaphorePermit> {
        let (&id, _) = self
            .connections
            .iter()
            .filter_map(|(id, e)| e.activity.waiting_since().map(|since| (id, since)))
            .min_by_key(|(_, since)| *since)?;
        let entry = self.connections.remove(&id)?;
        self.forget_address(entry.ip);
        entry.evict.cancel();
        Some(entry.slot)
    }

    fn forget_address(&mut self, ip: IpAddr) {
        if let Some(n) = self.by_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.by_address.remove(&ip);
            }
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut live = self.cap.live.lock().unwrap_or_else(|e| e.into_inner());
        // An evicted connection gave its place and its count away already.
        if let Some(entry) = live.connections.remove(&self.id) {
            live.forget_address(entry.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_all_connections_and_each_address() {
        let cap = ConnectionCap::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        let busy = || {
            let activity = Activity::new();
            std::mem::forget(activity.request());
            activity
        };
        let held = [cap.admit(a, busy()).unwrap(), cap.admit(a, busy()).unwrap()];
        assert_eq!(cap.admit(a, busy()).err(), Some(Full::Address));
        let third = cap.admit(b, busy()).unwrap();
        // Every place is taken by a connection with a request in progress.
        assert_eq!(cap.admit("192.0.2.3".parse().unwrap(), busy()).err(), Some(Full::All));
        drop(held);
        let _again = cap.admit(a, busy()).unwrap();
        drop(third);
        assert_eq!(cap.tracked(), 1, "nothing is kept for clients that left");
    }

    #[tokio::test]
    async fn the_longest_idle_connection_gives_way_to_a_newcomer() {
        let cap = ConnectionCap::new(2, 0);
        let oldest = cap.admit("192.0.2.1".parse().unwrap(), Activity::new()).unwrap();
        let busy = Activity::new();
        let _request = busy.request();
        let working = cap.admit("192.0.2.2".parse().unwrap(), busy).unwrap();
        let newcomer = cap.admit("192.0.2.3".parse().unwrap(), Activity::new()).unwrap();
        assert!(oldest.evicted.is_cancelled(), "the idle one is told to go");
        assert!(!working.evicted.is_cancelled(), "a request in progress is never cut");
        // Now the newcomer is idle and the other busy: the newcomer gives way next.
        let _next = cap.admit("192.0.2.4".parse().unwrap(), Activity::new()).unwrap();
        assert!(newcomer.evicted.is_cancelled());
        drop(oldest);
        assert_eq!(cap.tracked(), 2);
    }
}
