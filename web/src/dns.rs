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
}

/// Checks `domains` against `hostname`, all at once, each within a few seconds.
pub async fn check(lookup: &dyn MxLookup, hostname: &str, domains: &[String]) -> Vec<Attention> {
    let checks = domains.iter().map(|domain| async move {
        let answer = tokio::time::timeout(Duration::from_secs(5), lookup.mx(domain))
            .await
            .unwrap_or_else(|_| MxAnswer::Failed("no answer within 5 seconds".into()));
        problem(&answer, hostname).map(|problem| Attention { domain: domain.clone(), problem })
    });
    let mut found: Vec<Attention> =
        futures_util::future::join_all(checks).await.into_iter().flatten().collect();
    found.sort_by(|a, b| a.domain.cmp(&b.domain));
    found
}

fn problem(answer: &MxAnswer, hostname: &str) -> Option<String> {
    let hostname = hostname.trim_end_matches('.').to_ascii_lowercase();
    match answer {
        MxAnswer::Hosts(hosts) if hosts.contains(&hostname) => None,
        MxAnswer::Hosts(hosts) if hosts.iter().all(|h| h.is_empty()) => {
            Some("a null MX (RFC 7505) says the domain takes no mail".into())
        }
        MxAnswer::Hosts(hosts) => Some(format!(
            "its MX points to {}, not to this appliance ({hostname})",
            hosts.join(", ")
        )),
        MxAnswer::None => Some(format!(
            "no MX record: publish `MX 10 {hostname}.` so that other servers find this one"
        )),
        MxAnswer::Failed(why) => Some(format!("the MX lookup failed ({why}); checked again soon")),
    }
}

/// The last check's result, refreshed in the background so that the dashboard never waits on DNS.
#[derive(Default)]
pub struct DnsWatch {
    last: Mutex<Option<(Instant, Arc<Vec<Attention>>)>>,
    running: std::sync::atomic::AtomicBool,
}

const FRESH: Duration = Duration::from_secs(600);

impl DnsWatch {
    /// The latest result (`None` before the first check ends), starting a new check when the
    /// result is older than ten minutes.
    pub fn current(
        self: &Arc<Self>,
        lookup: Arc<dyn MxLookup>,
        hostname: String,
        domains: Vec<String>,
    ) -> Option<Arc<Vec<Attention>>> {
        use std::sync::atomic::Ordering;
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let stale = last.as_ref().is_none_or(|(at, _)| at.elapsed() > FRESH);
        if stale && !self.running.swap(true, Ordering::AcqRel) {
            let watch = Arc::clone(self);
            tokio::spawn(async move {
                let found = check(lookup.as_ref(), &hostname, &domains).await;
                *watch.last.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), Arc::new(found)));
                watch.running.store(false, Ordering::Release);
            });
        }
        last.map(|(_, found)| found)
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
        assert!(found[2].problem.contains("MX 10 mail.example.test."));
    }
}
