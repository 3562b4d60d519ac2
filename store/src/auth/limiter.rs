//! Failed password checks per (account, client address) and per client address, shared by the
//! console's login and SMTP AUTH, so that guessing is slowed wherever it comes in.
//!
//! Each key has a free allowance of failures; past it, every further attempt must wait a delay
//! that doubles with each failure, up to a cap. Nothing is locked: a person who mistyped waits
//! seconds, and an attacker's failures slow down only the keys it fails under. Since the
//! account key is paired with the address, failures from elsewhere never delay the right password
//! from an address that has not failed (issue 9, item 3).
//!
//! An attempt is counted when it is reserved, before the password is checked: checks still
//! running count toward the allowance, so that a burst of simultaneous attempts gets no more
//! checks than the allowance, and once past it only one attempt per key runs at a time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How one kind of key is slowed down.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Failures allowed without delay.
    pub free: u32,
    /// The delay after the first failure past the allowance; each further one doubles it.
    pub base: Duration,
    /// The longest delay.
    pub cap: Duration,
}

impl Rule {
    /// The wait after `failures` failures (none within the allowance).
    fn delay(&self, failures: u32) -> Duration {
        if failures < self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free).min(31);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Per account name (as typed, case and surrounding space ignored) and client address.
    pub pair: Rule,
    /// Per client address, whatever the account: guessing across many accounts.
    pub address: Rule,
    /// A key with no failure for this long starts again from nothing.
    pub forget: Duration,
    /// Keys kept at most: past it, the longest-quiet keys are forgotten first.
    pub max_keys: usize,
}

impl Default for Policy {
    /// Five free failures per account and address, then 1 s, 2 s, 4 s… up to 5 minutes: about a
    /// dozen guesses an hour per account from one address once past the start. Twenty per
    /// address, as many people may share one (a NAT), and at most a minute's delay, so that
    /// one person's guessing slows, but does not lock out, the others behind it.
    fn default() -> Policy {
        Policy {
            pair: Rule { free: 5, base: Duration::from_secs(1), cap: Duration::from_secs(300) },
            address: Rule { free: 20, base: Duration::from_secs(1), cap: Duration::from_secs(60) },
            forget: Duration::from_secs(30 * 60),
            max_keys: 100_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(String, IpAddr),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// Attempts reserved and not yet finished.
    in_flight: u32,
    /// No attempt past the allowance starts before this.
    next: Instant,
    /// The last failure (or the entry's creation).
    last: Instant,
}

impl Entry {
    fn new(now: Instant) -> Entry {
        Entry { failures: 0, in_flight: 0, next: now, last: now }
    }

    fn quiet(&self, now: Instant, policy: &Policy) -> bool {
        self.in_flight == 0 && now >= self.next && now.duration_since(self.last) >= policy.forget
    }

    /// How long before an attempt may start, or `None` if it may now.
    fn wait(&self, rule: &Rule, now: Instant) -> Option<Duration> {
        if self.failures + self.in_flight < rule.free {
            return None;
        }
        if self.in_flight > 0 {
            // Past the allowance, one at a time: the running check decides the next delay.
            return Some(self.next.saturating_duration_since(now).max(Duration::from_secs(1)));
        }
        (now < self.next).then(|| self.next - now)
    }
}

/// Come back after this long (rounded up to whole seconds for a reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(pub Duration);

impl Wait {
    pub fn seconds(&self) -> u64 {
        let d = self.0;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

#[derive(Debug, Default)]
pub struct AttemptLimiter {
    policy: Policy,
    table: Mutex<HashMap<Key, Entry>>,
}

/// A reserved attempt. Say how it ended with [`failed`](Attempt::failed) or
/// [`succeeded`](Attempt::succeeded); dropped without either (the check could not run), it
/// counts for nothing.
#[must_use]
pub struct Attempt {
    limiter: Arc<AttemptLimiter>,
    keys: Option<[Key; 2]>,
}

impl AttemptLimiter {
    pub fn new(policy: Policy) -> Arc<AttemptLimiter> {
        Arc::new(AttemptLimiter { policy, table: Mutex::default() })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Reserves an attempt at `account` from `ip`, or says how long to wait first.
    pub fn reserve(
        self: &Arc<Self>,
        account: &str,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Attempt, Wait> {
        let ip = client(ip);
        let keys = [Key::Pair(account_key(account), ip), Key::Address(ip)];
        let rules = [self.policy.pair, self.policy.address];
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = Duration::ZERO;
        for (key, rule) in keys.iter().zip(&rules) {
            if let Some(entry) = table.get_mut(key) {
                if entry.quiet(now, &self.policy) {
                    *entry = Entry::new(now);
                }
                if let Some(w) = entry.wait(rule, now) {
                    wait = wait.max(w);
                }
            }
        }
        if !wait.is_zero() {
            return Err(Wait(wait));
        }
        for key in &keys {
            if !table.contains_key(key) && table.len() >= self.policy.max_keys {
                self.make_room(&mut table, now);
            }
            table.entry(key.clone()).or_insert_with(|| Entry::new(now)).in_flight += 1;
        }
        Ok(Attempt { limiter: self.clone(), keys: Some(keys) })
    }

    /// How long `account` from `ip` must wait, without reserving an attempt: for credentials
    /// whose check is cheap and runs side by side with others (API tokens), of which only the
    /// failures are counted, with [`AttemptLimiter::record_failure`].
    pub fn waiting(&self, account: &str, ip: IpAddr, now: Instant) -> Option<Wait> {
        let ip = client(ip);
        let keys = [Key::Pair(account_key(account), ip), Key::Address(ip)];
        let rules = [self.policy.pair, self.policy.address];
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = Duration::ZERO;
        for (key, rule) in keys.iter().zip(&rules) {
            if let Some(e) = table.get(key)
                && !e.quiet(now, &self.policy)
                && e.failures >= rule.free
                && now < e.next
            {
                wait = wait.max(e.next - now);
            }
        }
        (!wait.is_zero()).then_some(Wait(wait))
    }

    /// Counts a failure of `account` from `ip` that was not reserved (see [`Self::waiting`]).
    pub fn record_failure(&self, account: &str, ip: IpAddr, now: Instant) {
        let ip = client(ip);
        let keys = [Key::Pair(account_key(account), ip), Key::Address(ip)];
        let rules = [self.policy.pair, self.policy.address];
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        for (key, rule) in keys.iter().zip(&rules) {
            if !table.contains_key(key) && table.len() >= self.policy.max_keys {
                self.make_room(&mut table, now);
            }
            let entry = table.entry(key.clone()).or_insert_with(|| Entry::new(now));
            if entry.quiet(now, &self.policy) {
                *entry = Entry::new(now);
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last = now;
            entry.next = now + rule.delay(entry.failures);
        }
    }

    /// Forgets quiet keys; if that is not enough, the tenth that failed longest ago. Keys with
    /// an attempt running stay.
    fn make_room(&self, table: &mut HashMap<Key, Entry>, now: Instant) {
        table.retain(|_, e| !e.quiet(now, &self.policy));
        if table.len() < self.policy.max_keys {
            return;
        }
        let mut idle: Vec<(Instant, Key)> = table
            .iter()
            .filter(|(_, e)| e.in_flight == 0)
            .map(|(k, e)| (e.last, k.clone()))
            .collect();
        idle.sort_unstable_by_key(|(last, _)| *last);
        for (_, key) in idle.into_iter().take(self.policy.max_keys / 10 + 1) {
            table.remove(&key);
        }
    }

    fn finish(&self, keys: &[Key; 2], failed: Option<Instant>) {
        let rules = [self.policy.pair, self.policy.address];
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        for (key, rule) in keys.iter().zip(&rules) {
            let Some(entry) = table.get_mut(key) else { continue };
            entry.in_flight = entry.in_flight.saturating_sub(1);
            match (failed, key) {
                (Some(now), _) => {
                    entry.failures = entry.failures.saturating_add(1);
                    entry.last = now;
                    entry.next = now + rule.delay(entry.failures);
                }
                // The right password clears its own account and address pair; the address's
                // count stays, as one good password does not excuse a spray from the same place.
                (None, Key::Pair(..)) => {
                    entry.failures = 0;
                    entry.next = entry.last;
                }
                (None, Key::Address(_)) => {}
            }
            if entry.in_flight == 0 && entry.failures == 0 {
                table.remove(key);
            }
        }
    }

    /// Keys held (for tests).
    pub fn tracked(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Attempt {
    pub fn failed(mut self, now: Instant) {
        if let Some(keys) = self.keys.take() {
            self.limiter.finish(&keys, Some(now));
        }
    }

    pub fn succeeded(mut self) {
        if let Some(keys) = self.keys.take() {
            self.limiter.finish(&keys, None);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(keys) = self.keys.take() {
            let mut table = self.limiter.table.lock().unwrap_or_else(|p| p.into_inner());
            for key in &keys {
                if let Some(entry) = table.get_mut(key) {
                    entry.in_flight = entry.in_flight.saturating_sub(1);
                    if entry.in_flight == 0 && entry.failures == 0 {
                        table.remove(key);
                    }
                }
            }
        }
    }
}

/// The name as the logins compare it; bounded, as it comes from the client.
fn account_key(account: &str) -> String {
    account.trim().chars().take(320).collect::<String>().to_lowercase()
}

/// What a client is counted as: its address, or for IPv6 the /64 around it, as one host is
/// commonly given a whole /64. A v4 client on a dual-stack socket counts as IPv4.
fn client(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    const A: &str = "192.0.2.1";
    const B: &str = "192.0.2.2";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The store's simulated clock: the limiter's delays pass when the test moves it.
    fn sim() -> Clock {
        Clock::manual(1_700_000_000)
    }

    fn limiter() -> Arc<AttemptLimiter> {
        AttemptLimiter::new(Policy::default())
    }

    #[test]
    fn delays_grow_past_the_allowance_and_cap() {
        let rule = Policy::default().pair;
        let delays: Vec<u64> = (0..16).map(|n| rule.delay(n).as_secs()).collect();
        assert_eq!(&delays[..9], &[0, 0, 0, 0, 0, 1, 2, 4, 8]);
        assert_eq!(delays[14], 300);
        assert_eq!(rule.delay(u32::MAX), rule.cap);
    }

    #[test]
    fn simultaneous_attempts_count_before_they_are_checked() {
        let l = limiter();
        let clock = sim();
        let now = clock.instant();
        let held: Vec<Attempt> = (0..5).map(|_| l.reserve("alice", ip(A), now).unwrap()).collect();
        // Five checks are running: a sixth is not allowed to start beside them.
        let refused = l.reserve("alice", ip(A), now).err().unwrap();
        assert_eq!(refused.seconds(), 1);
        // Another account from the same address, and the same one from elsewhere, are free.
        l.reserve("bob", ip(A), now).unwrap().failed(now);
        l.reserve("alice", ip(B), now).unwrap().succeeded();
        for attempt in held {
            attempt.failed(now);
        }
        assert_eq!(l.reserve("alice", ip(A), now).err(), Some(Wait(Duration::from_secs(1))));
    }

    #[test]
    fn failures_slow_down_one_pair_without_locking_the_account() {
        let l = limiter();
        let clock = sim();
        let mut now = clock.instant();
        for _ in 0..5 {
            l.reserve("Alice", ip(A), now).unwrap().failed(now);
        }
        assert!(l.reserve(" alice ", ip(A), now).is_err(), "the name as the login compares it");
        let mut waits = Vec::new();
        for _ in 0..5 {
            let Wait(wait) = l.reserve("alice", ip(A), now).err().unwrap();
            waits.push(wait.as_secs());
            clock.advance_by(wait);
            now = clock.instant();
            l.reserve("alice", ip(A), now).unwrap().failed(now);
        }
        assert_eq!(waits, [1, 2, 4, 8, 16]);
        // Never refused: the right password from an address that has not failed.
        l.reserve("alice", ip(B), now).unwrap().succeeded();
        // Once the delay has passed, the right password clears the pair.
        clock.advance(32);
        now = clock.instant();
        l.reserve("alice", ip(A), now).unwrap().succeeded();
        l.reserve("alice", ip(A), now).unwrap().failed(now);
        l.reserve("alice", ip(A), now).unwrap().succeeded();
    }

    #[test]
    fn an_address_guessing_across_accounts_is_slowed() {
        let l = limiter();
        let clock = sim();
        let now = clock.instant();
        for n in 0..20 {
            l.reserve(&format!("user{n}"), ip(A), now).unwrap().failed(now);
        }
        assert_eq!(l.reserve("carol", ip(A), now).err(), Some(Wait(Duration::from_secs(1))));
        assert!(l.reserve("carol", ip(B), now).is_ok());
        clock.advance(1);
        let later = clock.instant();
        assert!(l.reserve("carol", ip(A), later).is_ok(), "a delay, not a lock-out");
    }

    #[test]
    fn an_ipv6_client_counts_as_its_64() {
        let l = limiter();
        let clock = sim();
        let now = clock.instant();
        for n in 0..5 {
            l.reserve("alice", ip(&format!("2001:db8:1:2::{n}")), now).unwrap().failed(now);
        }
        assert!(l.reserve("alice", ip("2001:db8:1:2::ffff"), now).is_err());
        assert!(l.reserve("alice", ip("2001:db8:1:3::1"), now).is_ok());
        assert!(l.reserve("ALICE", ip("::ffff:192.0.2.9"), now).is_ok());
        assert_eq!(client(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
    }

    #[test]
    fn unfinished_attempts_count_for_nothing_and_quiet_keys_are_forgotten() {
        let l = limiter();
        let clock = sim();
        let now = clock.instant();
        drop(l.reserve("alice", ip(A), now).unwrap());
        assert_eq!(l.tracked(), 0);
        for _ in 0..9 {
            let _ = l.reserve("alice", ip(A), now).map(|a| a.failed(now));
        }
        assert!(l.reserve("alice", ip(A), now).is_err());
        clock.advance_by(Policy::default().forget + Duration::from_secs(300));
        let later = clock.instant();
        l.reserve("alice", ip(A), later).unwrap().succeeded();
        assert_eq!(l.tracked(), 0, "both keys were forgotten, then cleared");
    }

    #[test]
    fn failures_recorded_without_a_reservation_slow_down_the_same_way() {
        let l = limiter();
        let clock = sim();
        let now = clock.instant();
        for _ in 0..5 {
            assert_eq!(l.waiting("token:x", ip(A), now), None);
            l.record_failure("token:x", ip(A), now);
        }
        assert_eq!(l.waiting("token:x", ip(A), now), Some(Wait(Duration::from_secs(1))));
        assert_eq!(l.waiting("token:x", ip(B), now), None, "another address is not slowed");
        assert_eq!(l.waiting("token:y", ip(A), now), None, "nor another token");
        clock.advance(1);
        assert_eq!(l.waiting("token:x", ip(A), clock.instant()), None);
        // Waiting reserves nothing: many at once are all let through.
        assert!((0..50).all(|_| l.waiting("token:z", ip(A), now).is_none()));
    }

    #[test]
    fn the_table_is_bounded() {
        let policy = Policy { max_keys: 100, ..Policy::default() };
        let l = AttemptLimiter::new(policy);
        let clock = sim();
        let now = clock.instant();
        for n in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            l.reserve("alice", ip, now).unwrap().failed(now);
        }
        assert!(l.tracked() <= 100, "{}", l.tracked());
    }
}
