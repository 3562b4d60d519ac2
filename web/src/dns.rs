//! The dashboard's DNS check: does each local domain's MX point at this appliance? The lookup
//! itself comes from outside (the engine's resolver, through `postern serve`), so that this
//! crate stays apart from the engine and tests need no network.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a lookup of a domain's MX records found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// The exchanges, lower case without the trailing dot.
    Hosts(Vec<String>),
    /// No MX records (NODATA or NXDOMAIN).
    None,
    /// The lookup failed for a reason that may pass (timeout, SERVFAIL).
    Failed(String),
}

pub type MxFuture<'a> = Pin<Box<dyn Future<Output = MxAnswer> + Send + 'a>>;

pub trait MxLookup: Send + Sync {
    fn mx<'a>(&'a self, domain: &'a str) -> MxFuture<'a>;
}

/// A domain whose DNS needs the administrator's attention, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attention {
    pub domain: String,
    pub problem: String,
    /// The record to publish, when that is the fix: shown as text, not inside the problem.
    pub record: Option<String>,
}

/// Checks `domains` against `hostname`, all at once, each within a few seconds.
pub async fn check(lookup: &dyn MxLookup, hostname: &str, domains: &[String]) -> Vec<Attention> {
    let checks = domains.iter().map(|domain| async move {
        let answer = tokio::time::timeout(Duration::from_secs(5), lookup.mx(domain))
            .await
            .unwrap_or_else(|_| MxAnswer::Failed("no answer within 5 seconds".into()));
        problem(&answer, hostname).map(|(problem, record)| Attention {
            domain: domain.clone(),
            problem,
            record,
        })
    });
    let mut found: Vec<Attention> =
        futures_util::future::join_all(checks).await.into_iter().flatten().collect();
    found.sort_by(|a, b| a.domain.cmp(&b.domain));
    found
}

fn problem(answer: &MxAnswer, hostname: &str) -> Option<(String, Option<String>)> {
    let hostname = hostname.trim_end_matches('.').to_ascii_lowercase();
    let record = Some(format!("MX 10 {hostname}."));
    match answer {
        MxAnswer::Hosts(hosts) if hosts.contains(&hostname) => None,
        MxAnswer::Hosts(hosts) if hosts.iter().all(|h| h.is_empty()) => {
            Some(("a null MX (RFC 7505) says the domain takes no mail".into(), None))
        }
        MxAnswer::Hosts(hosts) => Some((
            format!(
                "its MX points to {}, not to this appliance ({hostname}); to receive its mail \
                 here, publish",
                hosts.join(", ")
            ),
            record,
        )),
        MxAnswer::None => Some((
            "no MX record, so other servers do not find this one: publish".to_string(),
            record,
        )),
        MxAnswer::Failed(why) => {
            Some((format!("the MX lookup failed ({why}); checked again soon"), None))
        }
    }
}

/// One finished check: what it found, for which domains, and when.
#[derive(Debug, Clone)]
pub struct Checked {
    pub found: Arc<Vec<Attention>>,
    /// Seconds since the Unix epoch.
    pub at: i64,
    domains: Vec<String>,
    started: Instant,
}

/// The last check's result, refreshed in the background so that the dashboard never waits on DNS.
#[derive(Default)]
pub struct DnsWatch {
    last: Mutex<Option<Checked>>,
    running: std::sync::atomic::AtomicBool,
}

const FRESH: Duration = Duration::from_secs(600);

impl DnsWatch {
    /// The latest result for exactly `domains` (`None` before the first check of them ends),
    /// starting a new check when the result is older than ten minutes or was for another list
    /// of domains (one was added or removed since): a result for another list is not shown.
    pub fn current(
        self: &Arc<Self>,
        lookup: Arc<dyn MxLookup>,
        hostname: String,
        mut domains: Vec<String>,
    ) -> Option<Checked> {
        use std::sync::atomic::Ordering;
        domains.sort();
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let same = last.as_ref().is_some_and(|c| c.domains == domains);
        let stale = !same || last.as_ref().is_none_or(|c| c.started.elapsed() > FRESH);
        if stale && !self.running.swap(true, Ordering::AcqRel) {
            let watch = Arc::clone(self);
            tokio::spawn(async move {
                let started = Instant::now();
                let found = check(lookup.as_ref(), &hostname, &domains).await;
                let at = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                *watch.last.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(Checked { found: Arc::new(found), at, domains, started });
                watch.running.store(false, Ordering::Release);
            });
        }
        last.filter(|_| same)
    }
}

/// The DKIM rollout's DNS check (the engine's `DkimChecker`, handed in by `postern serve`):
/// looks up `domain`'s key records, records what it found, and moves the keys' states on, in
/// the audit trail as `actor`'s doing.
pub trait DkimCheck: Send + Sync {
    fn check<'a>(
        &'a self,
        actor: &'a str,
        domain: &'a postern_store::model::DomainName,
    ) -> Pin<
        Box<
            dyn Future<Output = postern_store::Result<Vec<postern_store::model::DkimKey>>>
                + Send
                + 'a,
        >,
    >;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl MxLookup for Fixed {
        fn mx<'a>(&'a self, domain: &'a str) -> MxFuture<'a> {
            Box::pin(async move {
                match domain {
                    "good.test" => MxAnswer::Hosts(vec!["mail.example.test".into()]),
                    "elsewhere.test" => MxAnswer::Hosts(vec!["mx.other.test".into()]),
                    "null.test" => MxAnswer::Hosts(vec![String::new()]),
                    "broken.test" => MxAnswer::Failed("SERVFAIL".into()),
                    _ => MxAnswer::None,
                }
            })
        }
    }

    #[tokio::test]
    async fn says_which_domains_need_attention() {
        let domains: Vec<String> =
            ["good.test", "elsewhere.test", "null.test", "broken.test", "none.test"]
                .iter()
                .map(|d| d.to_string())
                .collect();
        let found = check(&Fixed, "Mail.Example.Test.", &domains).await;
        let names: Vec<&str> = found.iter().map(|a| a.domain.as_str()).collect();
        assert_eq!(names, ["broken.test", "elsewhere.test", "none.test", "null.test"]);
        assert!(found[1].problem.contains("mx.other.test"));
        assert_eq!(found[2].record.as_deref(), Some("MX 10 mail.example.test."));
        assert!(found.iter().all(|a| !a.problem.contains('`')), "{found:?}");
    }
}
