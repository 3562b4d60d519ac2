//! How many connections the console holds: at most so many over every console listener, and
//! at most so many from one address, so that a flood of idle connections can neither take the
//! descriptors SMTP needs nor shut out every other client.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every console connection is taken.
    All,
    /// This address holds as many as one address may.
    Address,
}

/// The console's connection counts, shared by its listeners.
pub struct ConnectionCap {
    slots: Arc<Semaphore>,
    per_address: usize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
    last_report: Mutex<Option<Instant>>,
}

/// One admitted connection; its place comes back when it is dropped.
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
    cap: Arc<ConnectionCap>,
    ip: IpAddr,
}

impl ConnectionCap {
    /// `per_address` 0 means no limit per address.
    pub fn new(max: usize, per_address: usize) -> Arc<ConnectionCap> {
        Arc::new(ConnectionCap {
            slots: Arc::new(Semaphore::new(max.max(1))),
            per_address,
            by_address: Mutex::default(),
            refused: AtomicU64::new(0),
            last_report: Mutex::new(None),
        })
    }

    /// Takes a place for a connection from `ip`, or says why there is none. Never waits: a
    /// connection beyond the cap is refused at once rather than queued.
    pub fn admit(self: &Arc<ConnectionCap>, ip: IpAddr) -> Result<Admitted, Full> {
        let ip = ip.to_canonical();
        let mut counts = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.get(&ip).copied().unwrap_or(0);
        if self.per_address > 0 && count >= self.per_address {
            drop(counts);
            self.note_refusal(ip, Full::Address);
            return Err(Full::Address);
        }
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            drop(counts);
            self.note_refusal(ip, Full::All);
            return Err(Full::All);
        };
        counts.insert(ip, count + 1);
        Ok(Admitted { _slot: slot, cap: self.clone(), ip })
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
        self.by_address.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.cap.by_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_all_connections_and_each_address() {
        let cap = ConnectionCap::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        let held = [cap.admit(a).unwrap(), cap.admit(a).unwrap()];
        assert_eq!(cap.admit(a).err(), Some(Full::Address));
        let third = cap.admit(b).unwrap();
        assert_eq!(cap.admit("192.0.2.3".parse().unwrap()).err(), Some(Full::All));
        drop(held);
        let _again = cap.admit(a).unwrap();
        drop(third);
        assert_eq!(cap.tracked(), 1, "nothing is kept for clients that left");
    }
}
