//! Rate limits in the engine: the stored limits (`Config::rate_limits`, live from the snapshot)
//! counted in memory, per limit and per subject (an address, a network, a user, a domain).
//!
//! Each subject has a fixed window that starts with its first event and ends `window` later,
//! when the count starts again from nothing — Postfix's anvil does the same with its
//! `anvil_rate_time_unit`. It is exact, needs one small entry per subject, and makes "recovers
//! after the window" a plain statement; the price is that a client may fit up to twice the
//! threshold around a window's end, which for abuse control is fine.
//!
//! Memory is bounded: entries whose window has ended are dropped by [`RateLimiter::sweep`]
//! (every few seconds, from [`publish`]) and whenever the table is full; if it is still full, the
//! tenth of entries whose windows started longest ago go, so a client rotating addresses
//! costs at most `max_entries` entries (and is still counted under its network).
//!
//! Who is counted (Postfix's `smtpd_client_event_limit_exceptions = $mynetworks`): clients in
//! the trusted networks are exempt from every limit. An authenticated session is exempt from the
//! client-ip and client-network message and recipient limits: it is counted under its user
//! instead, so that many users behind one office NAT do not share one budget.
//!
//! The limiter takes the time from the appliance's [`Clock`], so tests run on a simulated one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern_store::model::{RateKey, RateLimit, RateMeasure};
use postern_store::{RateCounter, Store};
use tokio_util::sync::CancellationToken;

pub use postern_store::clock::Clock;

/// Entries kept at most, over every limit (about 100 bytes each).
pub const MAX_ENTRIES: usize = 100_000;

/// Who the client is, for choosing the subjects of each limit.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    pub ip: IpAddr,
    /// In a trusted network: exempt from every limit.
    pub trusted: bool,
    /// The authenticated user, or for an AUTH failure the account name tried.
    pub user: Option<&'a str>,
    /// MAIL FROM (messages and recipients).
    pub sender: Option<&'a str>,
}

/// A limit was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub limit: i64,
    pub key: RateKey,
    pub measure: RateMeasure,
    /// What was counted, as shown to the client and in the log.
    pub subject: String,
    pub count: u64,
    pub threshold: i64,
    /// Until the window ends.
    pub retry_after: Duration,
}

impl Exceeded {
    /// Whole seconds until the window ends, at least 1.
    pub fn seconds(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Slot {
    limit: i64,
    subject: String,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    length: Duration,
    count: u64,
}

impl Window {
    fn end(&self) -> Instant {
        self.start + self.length
    }
}

/// The counting, with the time given: what the unit tests drive.
#[derive(Debug)]
struct Counters {
    table: HashMap<Slot, Window>,
    max_entries: usize,
}

impl Counters {
    /// Counts one event of `slot` under a window of `length`; the count in the window now.
    fn hit(&mut self, slot: Slot, length: Duration, now: Instant) -> Window {
        if !self.table.contains_key(&slot) && self.table.len() >= self.max_entries {
            self.make_room(now);
        }
        let w = self.table.entry(slot).or_insert(Window { start: now, length, count: 0 });
        // A changed window applies from the next one.
        if now >= w.end() {
            *w = Window { start: now, length, count: 0 };
        }
        w.count = w.count.saturating_add(1);
        *w
    }

    /// The count in the window now, without counting.
    fn peek(&self, slot: &Slot, now: Instant) -> Option<Window> {
        self.table.get(slot).filter(|w| now < w.end()).copied()
    }

    fn sweep(&mut self, now: Instant) {
        self.table.retain(|_, w| now < w.end());
    }

    fn make_room(&mut self, now: Instant) {
        self.sweep(now);
        if self.table.len() < self.max_entries {
            return;
        }
        let mut oldest: Vec<(Instant, Slot)> =
            self.table.iter().map(|(s, w)| (w.start, s.clone())).collect();
        oldest.sort_unstable_by_key(|(start, _)| *start);
        for (_, slot) in oldest.into_iter().take(self.max_entries / 10 + 1) {
            self.table.remove(&slot);
        }
    }
}

/// The engine's counters, shared by every session.
pub struct RateLimiter {
    counters: Mutex<Counters>,
    clock: Clock,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("tracked", &self.tracked()).finish()
    }
}

impl Default for RateLimiter {
    fn default() -> RateLimiter {
        RateLimiter::new(Clock::system(), MAX_ENTRIES)
    }
}

impl RateLimiter {
    pub fn new(clock: Clock, max_entries: usize) -> RateLimiter {
        RateLimiter { counters: Mutex::new(Counters { table: HashMap::new(), max_entries }), clock }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one event of `measure` from `client` under every limit of that measure; the first
    /// limit it goes over, if any. Every subject is counted either way, so that the counters
    /// show the real pressure.
    pub fn count(
        &self,
        limits: &[RateLimit],
        measure: RateMeasure,
        client: Client<'_>,
    ) -> Result<(), Exceeded> {
        let now = self.clock.instant();
        let mut counters = self.lock();
        let mut exceeded = None;
        for (limit, subject) in subjects(limits, measure, client) {
            let length = Duration::from_secs(limit.window_secs as u64);
            let w = counters.hit(Slot { limit: limit.id, subject: subject.clone() }, length, now);
            if w.count > limit.threshold as u64 && exceeded.is_none() {
                exceeded = Some(over(limit, subject, w, now));
            }
        }
        exceeded.map_or(Ok(()), Err)
    }

    /// Whether one more event would go over (for AUTH: checked before, counted on failure).
    pub fn check(
        &self,
        limits: &[RateLimit],
        measure: RateMeasure,
        client: Client<'_>,
    ) -> Result<(), Exceeded> {
        let now = self.clock.instant();
        let counters = self.lock();
        for (limit, subject) in subjects(limits, measure, client) {
            let slot = Slot { limit: limit.id, subject };
            if let Some(w) = counters.peek(&slot, now)
                && w.count >= limit.threshold as u64
            {
                return Err(over(limit, slot.subject, w, now));
            }
        }
        Ok(())
    }

    /// Drops the entries whose window has ended.
    pub fn sweep(&self) {
        let now = self.clock.instant();
        self.lock().sweep(now);
    }

    /// Entries held.
    pub fn tracked(&self) -> usize {
        self.lock().table.len()
    }

    /// The `max` counters nearest their thresholds under `limits` (others are stale: their limit
    /// was removed), for the console.
    pub fn top(&self, limits: &[RateLimit], max: usize, node: &str) -> Vec<RateCounter> {
        let now = self.clock.instant();
        let wall = self.clock.now();
        let counters = self.lock();
        let mut out: Vec<RateCounter> = counters
            .table
            .iter()
            .filter(|(_, w)| now < w.end())
            .filter_map(|(slot, w)| {
                let limit = limits.iter().find(|l| l.id == slot.limit)?;
                let left = w.end().saturating_duration_since(now).as_secs() as i64;
                Some(RateCounter {
                    node: node.to_string(),
                    limit_id: slot.limit,
                    subject: slot.subject.clone(),
                    count: w.count.min(i64::MAX as u64) as i64,
                    threshold: limit.threshold,
                    resets_at: wall + left + 1,
                    updated_at: wall,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            (b.count as i128 * a.threshold as i128)
                .cmp(&(a.count as i128 * b.threshold as i128))
                .then(b.count.cmp(&a.count))
        });
        out.truncate(max);
        out
    }
}

fn over(limit: &RateLimit, subject: String, w: Window, now: Instant) -> Exceeded {
    Exceeded {
        limit: limit.id,
        key: limit.key,
        measure: limit.measure,
        subject,
        count: w.count,
        threshold: limit.threshold,
        retry_after: w.end().saturating_duration_since(now),
    }
}

/// Each limit of `measure` that applies to `client`, with the subject it counts.
fn subjects<'a>(
    limits: &'a [RateLimit],
    measure: RateMeasure,
    client: Client<'_>,
) -> Vec<(&'a RateLimit, String)> {
    if client.trusted {
        return Vec::new();
    }
    let ip = client.ip.to_canonical();
    let per_message = matches!(measure, RateMeasure::Messages | RateMeasure::Recipients);
    // An authenticated session is counted under its user for messages and recipients.
    let by_client = !(per_message && client.user.is_some());
    limits
        .iter()
        .filter(|l| l.measure == measure)
        .filter_map(|l| {
            let subject = match l.key {
                RateKey::ClientIp if by_client => ip.to_string(),
                RateKey::ClientNetwork if by_client => network(ip),
                RateKey::User => bounded(client.user?),
                RateKey::SenderDomain if per_message => {
                    let (_, domain) = client.sender?.rsplit_once('@')?;
                    bounded(domain)
                }
                _ => return None,
            };
            (!subject.is_empty()).then_some((l, subject))
        })
        .collect()
}

/// A name as it is counted: trimmed, lower-case, bounded (it comes from the client).
fn bounded(name: &str) -> String {
    name.trim().chars().take(320).collect::<String>().to_lowercase()
}

/// The /24 around an IPv4 address, the /64 around an IPv6 one, in CIDR notation.
fn network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{}/24", std::net::Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
        IpAddr::V6(v6) => {
            format!("{}/64", std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1)))
        }
    }
}

/// The reply to a client over a limit, logged with the limit, the key and the count.
///
/// - connections: `421 4.7.0` and the connection closes (RFC 5321 §3.8: 421 is the one reply a
///   server may give to end a session it will not serve; RFC 3463 4.7.0, a security or policy
///   status), as Postfix answers past `smtpd_client_connection_rate_limit`;
/// - messages at MAIL, recipients at RCPT: `450 4.7.1` (RFC 5321 §4.2.2: 450, not taken now;
///   RFC 3463 4.7.1, not authorized for now), as Postfix answers past its message and recipient
///   rate limits: the client keeps the message and tries again later, nothing is lost;
/// - AUTH failures: `454 4.7.0` (RFC 4954 §6, temporary authentication failure), and every AUTH
///   until the window ends gets the same without a password being checked.
pub fn refusal(e: &Exceeded, client: &str) -> crate::smtp::Reply {
    use crate::smtp::Reply;
    tracing::warn!(
        limit = e.limit,
        key = %e.key,
        measure = %e.measure,
        subject = %e.subject,
        count = e.count,
        threshold = e.threshold,
        retry_after = e.seconds(),
        client,
        "rate limit exceeded; refused"
    );
    let (s, wait) = (&e.subject, e.seconds());
    match e.measure {
        RateMeasure::Connections => Reply::new(
            421,
            "4.7.0",
            format!("Error: too many connections from {s}, try again in {wait} seconds"),
        ),
        RateMeasure::Messages => Reply::new(
            450,
            "4.7.1",
            format!("Error: too much mail from {s}, try again in {wait} seconds"),
        ),
        RateMeasure::Recipients => Reply::new(
            450,
            "4.7.1",
            format!("Error: too many recipients from {s}, try again in {wait} seconds"),
        ),
        RateMeasure::AuthFailures => Reply::new(
            454,
            "4.7.0",
            format!("Too many authentication failures from {s}, try again in {wait} seconds"),
        ),
    }
}

/// How often the engine publishes its top counters for the console.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(5);
/// How many counters it publishes.
pub const PUBLISHED: usize = 50;

/// Every [`PUBLISH_EVERY`], drops ended windows and replaces this node's published counters in
/// the store (only when there is something to say or something to clear), until `shutdown`.
///
/// The console reads them from the store rather than through a view injected by `serve`: the
/// console never calls into an engine, runs without one in its process when the engines run
/// elsewhere, and with several engines over one Postgres sees each one's rows (by node).
pub async fn publish(
    store: Store,
    node: String,
    engine: crate::engine::Engine,
    limiter: Arc<RateLimiter>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    let mut published_any = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        limiter.sweep();
        let snapshot = engine.snapshot();
        let top = limiter.top(&snapshot.config.rate_limits, PUBLISHED, &node);
        if top.is_empty() && !published_any {
            continue;
        }
        published_any = !top.is_empty();
        if let Err(e) = store.publish_rate_counters(&node, &top).await {
            tracing::warn!(error = %e, "cannot publish the rate-limit counters");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(
        id: i64,
        key: RateKey,
        measure: RateMeasure,
        threshold: i64,
        window: i64,
    ) -> RateLimit {
        RateLimit {
            id,
            key,
            measure,
            threshold,
            window_secs: window,
            description: String::new(),
            created_at: 0,
        }
    }

    fn client(ip: &str) -> Client<'static> {
        Client { ip: ip.parse().unwrap(), trusted: false, user: None, sender: None }
    }

    fn limiter() -> (Clock, RateLimiter) {
        let clock = Clock::manual(1_000_000);
        (clock.clone(), RateLimiter::new(clock, 1000))
    }

    #[test]
    fn refuses_past_the_threshold_and_recovers_after_the_window() {
        let (clock, l) = limiter();
        let limits = [limit(1, RateKey::ClientIp, RateMeasure::Connections, 3, 60)];
        let c = client("192.0.2.1");
        for _ in 0..3 {
            l.count(&limits, RateMeasure::Connections, c).unwrap();
        }
        clock.advance(20);
        let e = l.count(&limits, RateMeasure::Connections, c).unwrap_err();
        assert_eq!((e.limit, e.subject.as_str(), e.count, e.threshold), (1, "192.0.2.1", 4, 3));
        assert_eq!(e.seconds(), 40, "until the window that began with the first event ends");
        // Another address is not affected; other measures are not either.
        l.count(&limits, RateMeasure::Connections, client("192.0.2.2")).unwrap();
        l.count(&limits, RateMeasure::Messages, c).unwrap();
        clock.advance(39);
        assert!(l.count(&limits, RateMeasure::Connections, c).is_err());
        clock.advance(1);
        l.count(&limits, RateMeasure::Connections, c).unwrap();
    }

    #[test]
    fn networks_users_and_sender_domains_are_keys() {
        let (_, l) = limiter();
        let limits = [
            limit(1, RateKey::ClientNetwork, RateMeasure::Messages, 2, 3600),
            limit(2, RateKey::User, RateMeasure::Recipients, 2, 3600),
            limit(3, RateKey::SenderDomain, RateMeasure::Messages, 2, 3600),
        ];
        let from = |ip, sender| Client { sender: Some(sender), ..client(ip) };
        l.count(&limits, RateMeasure::Messages, from("192.0.2.1", "a@one.test")).unwrap();
        l.count(&limits, RateMeasure::Messages, from("192.0.2.200", "b@ONE.test")).unwrap();
        let e =
            l.count(&limits, RateMeasure::Messages, from("192.0.2.3", "c@two.test")).unwrap_err();
        assert_eq!((e.limit, e.subject.as_str()), (1, "192.0.2.0/24"));
        let e = l
            .count(&limits, RateMeasure::Messages, from("198.51.100.1", "d@one.test"))
            .unwrap_err();
        assert_eq!((e.limit, e.subject.as_str()), (3, "one.test"));
        // IPv6 networks are /64s.
        let v6 = [limit(4, RateKey::ClientNetwork, RateMeasure::Connections, 1, 60)];
        l.count(&v6, RateMeasure::Connections, client("2001:db8::1")).unwrap();
        let e = l.count(&v6, RateMeasure::Connections, client("2001:db8::ffff:2")).unwrap_err();
        assert_eq!(e.subject, "2001:db8::/64");
        // Per user, authenticated sessions only.
        let ann = Client { user: Some("Ann@example.test"), ..client("192.0.2.9") };
        l.count(&limits, RateMeasure::Recipients, ann).unwrap();
        l.count(&limits, RateMeasure::Recipients, ann).unwrap();
        let e = l.count(&limits, RateMeasure::Recipients, ann).unwrap_err();
        assert_eq!(e.subject, "ann@example.test");
        for _ in 0..5 {
            l.count(&limits, RateMeasure::Recipients, client("192.0.2.9")).unwrap();
        }
    }

    #[test]
    fn trusted_networks_and_authenticated_senders_are_exempt_as_described() {
        let (_, l) = limiter();
        let limits = [limit(1, RateKey::ClientIp, RateMeasure::Messages, 1, 3600)];
        let trusted = Client { trusted: true, ..client("127.0.0.1") };
        let user = Client { user: Some("ann@example.test"), ..client("192.0.2.1") };
        for _ in 0..10 {
            l.count(&limits, RateMeasure::Messages, trusted).unwrap();
            l.count(&limits, RateMeasure::Messages, user).unwrap();
        }
        l.count(&limits, RateMeasure::Messages, client("192.0.2.1")).unwrap();
        assert!(l.count(&limits, RateMeasure::Messages, client("192.0.2.1")).is_err());
        // AUTH failures count per address whoever is named.
        let auth = [limit(2, RateKey::ClientIp, RateMeasure::AuthFailures, 2, 3600)];
        let guess = Client { user: Some("ann@example.test"), ..client("192.0.2.5") };
        l.check(&auth, RateMeasure::AuthFailures, guess).unwrap();
        let _ = l.count(&auth, RateMeasure::AuthFailures, guess);
        l.check(&auth, RateMeasure::AuthFailures, guess).unwrap();
        let _ = l.count(&auth, RateMeasure::AuthFailures, guess);
        let e = l.check(&auth, RateMeasure::AuthFailures, guess).unwrap_err();
        assert_eq!(e.count, 2, "check does not count");
        assert!(l.check(&auth, RateMeasure::AuthFailures, client("192.0.2.6")).is_ok());
    }

    #[test]
    fn memory_is_bounded_against_a_client_rotating_addresses() {
        let clock = Clock::manual(1_000_000);
        let l = RateLimiter::new(clock.clone(), 100);
        let limits = [limit(1, RateKey::ClientIp, RateMeasure::Connections, 5, 3600)];
        for n in 0..10_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            let c = Client { ip, trusted: false, user: None, sender: None };
            l.count(&limits, RateMeasure::Connections, c).unwrap();
        }
        assert!(l.tracked() <= 100, "{}", l.tracked());
        clock.advance(3600);
        l.sweep();
        assert_eq!(l.tracked(), 0, "ended windows are dropped");
    }

    #[test]
    fn the_top_counters_are_nearest_their_thresholds() {
        let (_, l) = limiter();
        let limits = [
            limit(1, RateKey::ClientIp, RateMeasure::Connections, 10, 60),
            limit(2, RateKey::ClientIp, RateMeasure::Messages, 2, 60),
        ];
        for _ in 0..5 {
            l.count(&limits, RateMeasure::Connections, client("192.0.2.1")).unwrap();
        }
        l.count(&limits, RateMeasure::Messages, client("192.0.2.2")).unwrap();
        l.count(&limits, RateMeasure::Messages, client("192.0.2.2")).unwrap();
        let top = l.top(&limits, 10, "n1");
        let got: Vec<(i64, &str, i64)> =
            top.iter().map(|c| (c.limit_id, c.subject.as_str(), c.count)).collect();
        assert_eq!(got, [(2, "192.0.2.2", 2), (1, "192.0.2.1", 5)]);
        assert!(
            l.top(&limits[..1], 10, "n1").len() == 1,
            "a removed limit's counters are not shown"
        );
    }
}
