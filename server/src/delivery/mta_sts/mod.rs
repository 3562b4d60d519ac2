//! MTA-STS (RFC 8461): a recipient domain's policy, discovered by TXT record, fetched over
//! HTTPS and cached. The cache lives in memory: after a restart, policies are fetched again
//! (§3.3 allows that; a persistent cache would only shorten the window §10.2 describes).

pub mod apply;
pub mod fetch;
pub mod policy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postern_store::clock::Clock;
use rustls::pki_types::CertificateDer;

pub use fetch::Fetcher;
pub use policy::{Mode, Policy};

use crate::dns::Resolver;

/// How policies are fetched and kept.
#[derive(Debug, Clone)]
pub struct StsSettings {
    /// How long one fetch may take, body included; past it there is no policy. The delivery
    /// that asked waits that long at most (a minute by default).
    pub fetch_timeout: Duration,
    /// How long a failed fetch is not tried again for the same policy id, so that a domain
    /// whose policy host is down does not cost every delivery attempt a fetch.
    pub retry_failed_after: Duration,
    /// The policy host's port: 443, except in tests.
    pub https_port: u16,
    /// Trusted besides the web PKI for the policy host's certificate (tests, a private CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// What policies' `max_age` and the failed-fetch pause run on: the store's clock.
    pub clock: Clock,
}

impl Default for StsSettings {
    fn default() -> Self {
        StsSettings {
            fetch_timeout: Duration::from_secs(60),
            retry_failed_after: Duration::from_secs(300),
            https_port: 443,
            extra_roots: Vec::new(),
            clock: Clock::system(),
        }
    }
}

/// A policy fetched and not yet expired.
struct Cached {
    /// The TXT record's id when it was fetched (§3.1): a new id means a new policy.
    id: String,
    policy: Arc<Policy>,
    expires: Instant,
}

/// Policies of recipient domains, fetched on demand and kept for their `max_age`.
pub struct MtaSts {
    resolver: Arc<dyn Resolver>,
    fetcher: Fetcher,
    retry_failed_after: Duration,
    policies: Mutex<HashMap<String, Cached>>,
    /// Failed fetches, by domain: the TXT id and when a fetch may be tried again.
    failures: Mutex<HashMap<String, (String, Instant)>>,
    /// One fetch per domain at a time: the others wait and take its result.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    clock: Clock,
}

/// Entries past which expired ones are swept out, so that the maps stay small.
const SWEEP_AT: usize = 4096;

impl MtaSts {
    pub fn new(resolver: Arc<dyn Resolver>, settings: StsSettings) -> Result<MtaSts, String> {
        let fetcher = Fetcher::new(
            resolver.clone(),
            &settings.extra_roots,
            settings.https_port,
            settings.fetch_timeout,
        )?;
        Ok(MtaSts {
            resolver,
            fetcher,
            retry_failed_after: settings.retry_failed_after,
            policies: Mutex::default(),
            failures: Mutex::default(),
            fetching: Mutex::default(),
            clock: settings.clock,
        })
    }

    /// The policy that applies to mail for `domain`: `None` when the domain has none, or one
    /// in mode `none`.
    pub async fn policy(&self, domain: &str) -> Option<Arc<Policy>> {
        let policy = self.lookup(&normal(domain)).await?;
        (policy.mode != Mode::None).then_some(policy)
    }

    /// The discovery of §3 with the cache rules of §3.1 and §3.3: a TXT id equal to the
    /// cached policy's means that policy still holds; a new id means a new fetch; and when
    /// the TXT lookup fails, or finds no record, or the fetch fails, an unexpired cached
    /// policy is used all the same (an attacker who can block DNS or HTTPS must not be able
    /// to strip a policy before it expires, §10.2).
    async fn lookup(&self, domain: &str) -> Option<Arc<Policy>> {
        let id = match self.resolver.txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => policy::txt_id(&records),
            Err(e) => Err(e.to_string()),
        };
        let cached = self.cached(domain);
        let id = match id {
            Ok(id) => id,
            Err(why) => {
                if cached.is_some() {
                    tracing::debug!(domain, why, "MTA-STS: no usable TXT record; cached policy");
                }
                return cached.map(|(_, policy)| policy);
            }
        };
        if let Some((cached_id, policy)) = &cached
            && *cached_id == id
        {
            return Some(policy.clone());
        }

        let gate = self.gate(domain);
        let turn = gate.lock().await;
        // Whoever held the gate before may have fetched this very policy, or failed to.
        let result = match self.cached(domain) {
            Some((cached_id, policy)) if cached_id == id => Some(policy),
            _ if self.failed_lately(domain, &id) => cached.map(|(_, policy)| policy),
            _ => self.fetch(domain, id, cached.map(|(_, policy)| policy)).await,
        };
        drop(turn);
        drop(gate);
        lock(&self.fetching).retain(|_, gate| Arc::strong_count(gate) > 1);
        result
    }

    async fn fetch(
        &self,
        domain: &str,
        id: String,
        cached: Option<Arc<Policy>>,
    ) -> Option<Arc<Policy>> {
        match self.fetcher.fetch(domain).await {
            Ok(policy) => {
                tracing::info!(domain, id, mode = %policy.mode, "MTA-STS policy fetched");
                lock(&self.failures).remove(domain);
                let policy = Arc::new(policy);
                let expires = self.clock.instant() + policy.max_age;
                let mut policies = lock(&self.policies);
                if policies.len() >= SWEEP_AT {
                    let now = self.clock.instant();
                    policies.retain(|_, c| c.expires > now);
                }
                policies.insert(domain.to_string(), Cached { id, policy: policy.clone(), expires });
                Some(policy)
            }
            Err(why) => {
                // §3.3: without a usable fetched policy, deliver as if the domain had none,
                // unless a cached one has not expired yet.
                tracing::warn!(domain, id, why, "MTA-STS policy fetch failed");
                let mut failures = lock(&self.failures);
                if failures.len() >= SWEEP_AT {
                    let now = self.clock.instant();
                    failures.retain(|_, (_, until)| *until > now);
                }
                let until = self.clock.instant() + self.retry_failed_after;
                failures.insert(domain.to_string(), (id, until));
                cached
            }
        }
    }

    /// The unexpired cached policy of `domain` and its id; an expired one is forgotten.
    fn cached(&self, domain: &str) -> Option<(String, Arc<Policy>)> {
        let mut policies = lock(&self.policies);
        match policies.get(domain) {
            Some(c) if c.expires > self.clock.instant() => Some((c.id.clone(), c.policy.clone())),
            Some(_) => {
                policies.remove(domain);
                None
            }
            None => None,
        }
    }

    fn failed_lately(&self, domain: &str, id: &str) -> bool {
        lock(&self.failures)
            .get(domain)
            .is_some_and(|(failed_id, until)| failed_id == id && *until > self.clock.instant())
    }

    fn gate(&self, domain: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.fetching).entry(domain.to_string()).or_default().clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change under these locks is one step: a panic leaves the map consistent.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn normal(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    name.strip_suffix('.').map(str::to_string).unwrap_or(name)
}
