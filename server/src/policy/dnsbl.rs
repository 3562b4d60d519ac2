//! Asking the DNS blocklists (RFC 5782): every configured list at once, each within a timeout,
//! through the engine's resolver, with answers cached for their TTL. What a name is, which
//! answers count and how they score is `postern_store::model::dnsbl`'s; this module only asks.
//! A list that cannot be asked (timeout, SERVFAIL) counts for nothing: a DNS failure never
//! refuses mail.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use postern_store::model::{
    Dnsbl, DnsblFailure, DnsblHit, DnsblReport, DomainName, ListKind, domain_query, ip_query,
};
use tokio::task::JoinSet;

use super::Clock;
use crate::dns::{DnsError, Resolver};

/// How long a list may take to answer (postscreen's `postscreen_dnsbl_timeout` is 10 s; a
/// client waits for our reply to RCPT meanwhile).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers are kept at least this long, and at most [`MAX_TTL`] (postscreen's
/// `postscreen_dnsbl_min_ttl` and `max_ttl`); a failure is kept [`MIN_TTL`] too, so that a dead
/// list costs one timeout a minute rather than one per recipient.
pub const MIN_TTL: i64 = 60;
pub const MAX_TTL: i64 = 3600;
/// Entries in the cache at most; beyond, expired ones go, then all of them.
const MAX_CACHED: usize = 50_000;

/// What one name gave.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Records(Vec<Ipv4Addr>),
    NotListed,
    Failed(String),
}

/// What is asked: the client's address, or a domain (the sender's, the HELO name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Client(IpAddr),
    Domain { role: &'static str, name: DomainName },
}

impl Subject {
    fn listed(&self) -> String {
        match self {
            Subject::Client(ip) => ip.to_string(),
            Subject::Domain { name, .. } => name.to_string(),
        }
    }
}

/// The blocklist checker of one engine: its resolver, its cache.
pub struct Blocklists {
    resolver: RwLock<Arc<dyn Resolver>>,
    cache: Mutex<HashMap<String, (i64, Answer)>>,
    clock: Clock,
    timeout: Duration,
}

impl Blocklists {
    pub fn new(resolver: Arc<dyn Resolver>, clock: Clock) -> Blocklists {
        Blocklists {
            resolver: RwLock::new(resolver),
            cache: Mutex::new(HashMap::new()),
            clock,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same with another timeout (tests of a list that never answers).
    pub fn with_timeout(mut self, timeout: Duration) -> Blocklists {
        self.timeout = timeout;
        self
    }

    /// Asks another resolver from now on (tests point a running server at a DNS server).
    pub fn use_resolver(&self, resolver: Arc<dyn Resolver>) {
        *self.resolver.write().unwrap_or_else(|e| e.into_inner()) = resolver;
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Asks every list of `dnsbl` that fits each subject (address lists for the client, domain
    /// lists for domains), all at once, and scores what they said.
    pub async fn check(&self, dnsbl: &Dnsbl, subjects: &[Subject]) -> DnsblReport {
        let mut asks = Vec::new();
        for list in &dnsbl.lists {
            for subject in subjects {
                let name = match (list.kind, subject) {
                    (ListKind::Ip, Subject::Client(ip)) => ip_query(*ip, &list.zone),
                    (ListKind::Domain, Subject::Domain { name, .. }) => {
                        domain_query(name, &list.zone)
                    }
                    _ => continue,
                };
                asks.push((list, subject, name));
            }
        }
        let now = self.clock.now();
        let mut answers: HashMap<String, Answer> = HashMap::new();
        let mut lookups = JoinSet::new();
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for (_, _, name) in &asks {
                match cache.get(name) {
                    Some((until, answer)) if *until > now => {
                        answers.insert(name.clone(), answer.clone());
                    }
                    _ if answers.contains_key(name) => {}
                    _ => {
                        answers.insert(name.clone(), Answer::Failed(String::new()));
                        let resolver = self.resolver.read().unwrap_or_else(|e| e.into_inner());
                        lookups.spawn(ask(resolver.clone(), name.clone(), self.timeout));
                    }
                }
            }
        }
        let mut fresh = Vec::new();
        while let Some(done) = lookups.join_next().await {
            if let Ok((name, answer, ttl)) = done {
                fresh.push((name.clone(), answer.clone(), ttl));
                answers.insert(name, answer);
            }
        }
        self.remember(now, fresh);

        let mut hits = Vec::new();
        let mut failures = Vec::new();
        for (list, subject, name) in asks {
            match answers.get(&name) {
                Some(Answer::Records(ips)) => {
                    let counted: Vec<String> = ips
                        .iter()
                        .filter(|ip| list.codes.matches(**ip))
                        .map(|ip| ip.to_string())
                        .collect();
                    if counted.is_empty() {
                        tracing::debug!(zone = %list.zone, query = %name, answers = ?ips, "blocklist answer not counted");
                        continue;
                    }
                    hits.push(DnsblHit {
                        zone: list.zone.to_string(),
                        weight: list.weight,
                        listed: subject.listed(),
                        query: name,
                        answers: counted,
                    });
                }
                Some(Answer::NotListed) => {}
                Some(Answer::Failed(why)) => {
                    let error = if why.is_empty() { "no answer".to_string() } else { why.clone() };
                    tracing::warn!(zone = %list.zone, query = %name, %error, "blocklist lookup failed; not counted");
                    failures.push(DnsblFailure { zone: list.zone.to_string(), query: name, error });
                }
                None => {}
            }
        }
        DnsblReport::new(hits, failures, dnsbl.threshold)
    }

    fn remember(&self, now: i64, fresh: Vec<(String, Answer, i64)>) {
        if fresh.is_empty() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() + fresh.len() > MAX_CACHED {
            cache.retain(|_, (until, _)| *until > now);
            if cache.len() + fresh.len() > MAX_CACHED {
                cache.clear();
            }
        }
        for (name, answer, ttl) in fresh {
            cache.insert(name, (now + ttl, answer));
        }
    }

    /// How many names are cached (for tests and the log).
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One lookup, bounded by `timeout`: the name, what it gave, and for how long that holds.
async fn ask(
    resolver: Arc<dyn Resolver>,
    name: String,
    timeout: Duration,
) -> (String, Answer, i64) {
    let clamp = |ttl: i64| ttl.clamp(MIN_TTL, MAX_TTL);
    let (answer, ttl) = match tokio::time::timeout(timeout, resolver.ipv4_ttl(&name)).await {
        Ok(Ok((ips, ttl))) => (Answer::Records(ips), clamp(ttl.into())),
        Ok(Err(DnsError::NxDomain { .. } | DnsError::NoData { .. })) => {
            (Answer::NotListed, clamp(crate::dns::DEFAULT_TTL.into()))
        }
        Ok(Err(e)) => (Answer::Failed(e.to_string()), MIN_TTL),
        Err(_) => {
            (Answer::Failed(format!("no answer within {} s", timeout.as_secs_f32())), MIN_TTL)
        }
    };
    (name, answer, ttl)
}

#[cfg(test)]
mod tests {
    use postern_store::model::{Blocklist, ReturnCodes};

    use super::*;
    use crate::dns::ScriptedResolver;

    fn list(zone: &str, kind: ListKind, weight: i64, codes: &str) -> Blocklist {
        Blocklist {
            zone: zone.parse().unwrap(),
            kind,
            weight,
            codes: codes.parse::<ReturnCodes>().unwrap(),
            description: String::new(),
            created_at: 0,
        }
    }

    fn lists(threshold: i64) -> Dnsbl {
        Dnsbl {
            lists: vec![
                list("zen.bl.test", ListKind::Ip, 2, ""),
                list("only10.bl.test", ListKind::Ip, 1, "127.0.0.10"),
                list("dbl.bl.test", ListKind::Domain, 1, ""),
                list("broken.bl.test", ListKind::Ip, 5, ""),
            ],
            threshold,
            whitelist: vec![],
        }
    }

    #[tokio::test]
    async fn lists_are_asked_and_scored_and_failures_do_not_count() {
        let dns = Arc::new(
            ScriptedResolver::new()
                .address("2.0.0.127.zen.bl.test", "127.0.0.2".parse().unwrap())
                .address("2.0.0.127.only10.bl.test", "127.0.0.4".parse().unwrap())
                .address("spam.test.dbl.bl.test", "127.0.1.2".parse().unwrap())
                .temporary("2.0.0.127.broken.bl.test"),
        );
        let checker = Blocklists::new(dns.clone(), Clock::manual(1000));
        let subjects = [
            Subject::Client("127.0.0.2".parse().unwrap()),
            Subject::Domain { role: "sender domain", name: "spam.test".parse().unwrap() },
        ];
        let report = checker.check(&lists(3), &subjects).await;
        let zones: Vec<&str> = report.hits.iter().map(|h| h.zone.as_str()).collect();
        assert_eq!(zones, ["zen.bl.test", "dbl.bl.test"], "127.0.0.4 is not only10's code");
        assert_eq!(report.score, 3);
        assert!(report.blocked());
        assert_eq!(report.failures.len(), 1);
        assert_eq!(report.failures[0].zone, "broken.bl.test");
        assert_eq!(report.hits[1].listed, "spam.test");

        // IPv6 clients are asked by nibbles.
        let report =
            checker.check(&lists(3), &[Subject::Client("2001:db8::1".parse().unwrap())]).await;
        assert!(report.hits.is_empty());
        assert!(dns.queries().iter().any(|q| q.starts_with("A 1.0.0.0.") && q.ends_with(".8.b.d.0.1.0.0.2.zen.bl.test")));
    }

    #[tokio::test]
    async fn answers_are_cached_for_their_ttl_on_a_simulated_clock() {
        let dns = Arc::new(
            ScriptedResolver::new().address("2.0.0.127.zen.bl.test", "127.0.0.2".parse().unwrap()),
        );
        let clock = Clock::manual(1000);
        let checker = Blocklists::new(dns.clone(), clock.clone());
        let dnsbl = Dnsbl { lists: vec![list("zen.bl.test", ListKind::Ip, 1, "")], ..lists(1) };
        let me = [Subject::Client("127.0.0.2".parse().unwrap())];
        let other = [Subject::Client("127.0.0.3".parse().unwrap())];
        assert!(checker.check(&dnsbl, &me).await.blocked());
        assert!(!checker.check(&dnsbl, &other).await.blocked());
        assert_eq!(dns.queries().len(), 2);

        // Within the TTL (the scripted resolver's 300 s), nothing is asked again.
        clock.advance(299);
        assert!(checker.check(&dnsbl, &me).await.blocked());
        assert!(!checker.check(&dnsbl, &other).await.blocked());
        assert_eq!(dns.queries().len(), 2);
        assert_eq!(checker.cached(), 2);

        // Past it, both are asked again, and a delisting shows.
        clock.advance(2);
        let dns2 = Arc::new(ScriptedResolver::new());
        checker.use_resolver(dns2.clone());
        assert!(!checker.check(&dnsbl, &me).await.blocked());
        assert_eq!(dns2.queries(), ["A 2.0.0.127.zen.bl.test"]);
    }

    /// A resolver that never answers.
    struct Silent;

    impl Resolver for Silent {
        fn mx<'a>(&'a self, _: &'a str) -> crate::dns::DnsFuture<'a, Vec<crate::dns::MxRecord>> {
            Box::pin(std::future::pending())
        }
        fn ipv4<'a>(&'a self, _: &'a str) -> crate::dns::DnsFuture<'a, Vec<Ipv4Addr>> {
            Box::pin(std::future::pending())
        }
        fn ipv6<'a>(&'a self, _: &'a str) -> crate::dns::DnsFuture<'a, Vec<std::net::Ipv6Addr>> {
            Box::pin(std::future::pending())
        }
        fn txt<'a>(&'a self, _: &'a str) -> crate::dns::DnsFuture<'a, Vec<String>> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn a_list_that_never_answers_times_out_and_counts_for_nothing() {
        let checker = Blocklists::new(Arc::new(Silent), Clock::manual(0))
            .with_timeout(Duration::from_millis(200));
        let report =
            checker.check(&lists(1), &[Subject::Client("127.0.0.2".parse().unwrap())]).await;
        assert!(!report.blocked());
        assert_eq!(report.failures.len(), 3, "{report:?}");
        assert!(report.failures[0].error.contains("no answer within 0.2 s"), "{report:?}");
    }
}
