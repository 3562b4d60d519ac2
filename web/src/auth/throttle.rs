//! Failed logins per client address and per account name, in memory: after too many in a
//! window, further attempts are refused without checking the password. The account key is the
//! name as typed, so a name that does not exist is limited exactly like one that does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(15 * 60);
const PER_ACCOUNT: u32 = 5;
const PER_ADDRESS: u32 = 20;
/// Bounds the table, so that a spray of names cannot grow it without limit.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    /// Seconds to wait when either key is over its limit.
    pub fn blocked(&self, ip: IpAddr, account: &str) -> Option<u64> {
        let table = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let wait = |key: String, limit: u32| {
            table.get(&key).and_then(|(n, since)| {
                let left = WINDOW.checked_sub(since.elapsed())?;
                (*n >= limit).then_some(left.as_secs().max(1))
            })
        };
        wait(format!("ip:{ip}"), PER_ADDRESS).or_else(|| wait(account_key(account), PER_ACCOUNT))
    }

    pub fn failed(&self, ip: IpAddr, account: &str) {
        let mut table = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_KEYS {
            table.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        for key in [format!("ip:{ip}"), account_key(account)] {
            let entry = table.entry(key).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }

    /// A successful login clears the account's count (not the address's: one good password does
    /// not excuse a spray from the same place).
    pub fn succeeded(&self, account: &str) {
        let mut table = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        table.remove(&account_key(account));
    }
}

fn account_key(account: &str) -> String {
    format!("account:{}", account.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_account_and_per_address() {
        let t = LoginThrottle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..PER_ACCOUNT {
            assert!(t.blocked(ip, "alice").is_none());
            t.failed(ip, "alice");
        }
        assert!(t.blocked(ip, "alice").is_some());
        assert!(t.blocked(ip, "ALICE ").is_some(), "the name is compared as the login compares it");
        assert!(t.blocked(ip, "bob").is_none());
        for i in 0..PER_ADDRESS {
            t.failed(ip, &format!("user{i}"));
        }
        assert!(t.blocked(ip, "carol").is_some(), "the address is over its limit");
        assert!(t.blocked("192.0.2.2".parse().unwrap(), "carol").is_none());
    }
}
