//! A domain's DNS health for the console and the API: the report itself is the engine's
//! (`postern_server::mailauth::health`, handed in by `postern serve` through [`HealthCheck`],
//! so that this crate stays apart from the engine and tests need no network); here it is kept
//! for a while per domain, so that the domain list shows a summary from memory and never waits
//! on DNS, while a domain's own page and the API check again when the report is old.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern_store::model::{DomainName, Health, HealthRow, health_summary};

pub type HealthFuture<'a> = Pin<Box<dyn Future<Output = Vec<HealthRow>> + Send + 'a>>;

/// Makes a domain's report: every record looked up through the process's resolver. Failed
/// lookups are rows with status `failed`, never an error.
pub trait HealthCheck: Send + Sync {
    fn check<'a>(&'a self, domain: &'a DomainName) -> HealthFuture<'a>;
}

/// One report, as of `at` (epoch seconds).
#[derive(Debug, Clone)]
pub struct Report {
    pub at: i64,
    pub rows: Arc<Vec<HealthRow>>,
}

impl Report {
    pub fn summary(&self) -> String {
        health_summary(&self.rows)
    }
}

/// A report is reused this long: DNS changes take minutes to show anyway (TTLs).
const FRESH: Duration = Duration::from_secs(600);
/// "Check again" is honoured this often at most per domain, whoever asks.
const RECHECK: Duration = Duration::from_secs(10);
/// A whole report (a dozen lookups) gets this long; past it, one failed row says so.
const DEADLINE: Duration = Duration::from_secs(30);

/// The last report of each domain, refreshed on demand (the domain's page, the API) or in the
/// background (the domain list, one domain after the other, one sweep at a time).
#[derive(Default)]
pub struct HealthCache {
    reports: Mutex<HashMap<DomainName, (Instant, Report)>>,
    sweeping: AtomicBool,
}

async fn run(check: &dyn HealthCheck, domain: &DomainName) -> Report {
    let rows = match tokio::time::timeout(DEADLINE, check.check(domain)).await {
        Ok(rows) => rows,
        Err(_) => vec![HealthRow {
            check: "DNS",
            name: domain.to_string(),
            status: Health::Failed,
            found: Some(format!("no answer within {} seconds", DEADLINE.as_secs())),
            publish: None,
            optional: false,
        }],
    };
    Report { at: postern_store::now(), rows: Arc::new(rows) }
}

impl HealthCache {
    fn get(&self, domain: &DomainName) -> Option<(Instant, Report)> {
        self.reports.lock().unwrap_or_else(|p| p.into_inner()).get(domain).cloned()
    }

    fn put(&self, domain: &DomainName, report: Report) {
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.clone(), (Instant::now(), report));
    }

    /// The last report of `domain`, whatever its age; `None` before the first check.
    pub fn cached(&self, domain: &DomainName) -> Option<Report> {
        self.get(domain).map(|(_, report)| report)
    }

    /// A report of `domain` no older than ten minutes (or, with `again`, than ten seconds),
    /// checking now when there is none.
    pub async fn report(
        &self,
        check: &dyn HealthCheck,
        domain: &DomainName,
        again: bool,
    ) -> Report {
        let fresh = if again { RECHECK } else { FRESH };
        if let Some((at, report)) = self.get(domain)
            && at.elapsed() < fresh
        {
            return report;
        }
        let report = run(check, domain).await;
        self.put(domain, report.clone());
        report
    }

    /// The cached reports of `domains` (`None`: not checked yet), starting one background
    /// sweep over those without a fresh report unless one is running: a page of the domain
    /// list costs no lookup itself.
    pub fn summaries(
        self: &Arc<Self>,
        check: Option<Arc<dyn HealthCheck>>,
        domains: &[DomainName],
    ) -> Vec<Option<Report>> {
        let found: Vec<Option<(Instant, Report)>> = domains.iter().map(|d| self.get(d)).collect();
        let stale: Vec<DomainName> = domains
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.as_ref().is_none_or(|(at, _)| at.elapsed() >= FRESH))
            .map(|(d, _)| d.clone())
            .collect();
        if let Some(check) = check
            && !stale.is_empty()
            && !self.sweeping.swap(true, Ordering::AcqRel)
        {
            let cache = Arc::clone(self);
            tokio::spawn(async move {
                for domain in stale {
                    let report = run(check.as_ref(), &domain).await;
                    cache.put(&domain, report);
                }
                cache.sweeping.store(false, Ordering::Release);
            });
        }
        found.into_iter().map(|f| f.map(|(_, report)| report)).collect()
    }

    /// Waits until no background sweep runs (tests).
    pub async fn settled(&self) {
        while self.sweeping.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl HealthCheck for Counting {
        fn check<'a>(&'a self, domain: &'a DomainName) -> HealthFuture<'a> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let row = HealthRow {
                check: "DMARC",
                name: format!("_dmarc.{domain}"),
                status: Health::Missing,
                found: None,
                publish: Some("TXT \"v=DMARC1; p=none\"".into()),
                optional: false,
            };
            Box::pin(async move { vec![row] })
        }
    }

    #[tokio::test]
    async fn the_list_reads_the_cache_and_sweeps_in_the_background() {
        let cache = Arc::new(HealthCache::default());
        let counting = Arc::new(Counting::default());
        let check: Arc<dyn HealthCheck> = counting.clone();
        let domains: Vec<DomainName> =
            ["a.test", "b.test"].iter().map(|d| d.parse().unwrap()).collect();
        let first = cache.summaries(Some(check.clone()), &domains);
        assert!(first.iter().all(Option::is_none), "not checked yet");
        cache.settled().await;
        assert_eq!(counting.0.load(Ordering::SeqCst), 2);
        let second = cache.summaries(Some(check.clone()), &domains);
        assert_eq!(second[0].as_ref().unwrap().summary(), "1 to fix");
        cache.settled().await;
        assert_eq!(counting.0.load(Ordering::SeqCst), 2, "fresh: no new lookups");
        // The page reuses a fresh report; "check again" makes a new one once it is 10 s old.
        cache.report(check.as_ref(), &domains[0], false).await;
        cache.report(check.as_ref(), &domains[0], true).await;
        assert_eq!(counting.0.load(Ordering::SeqCst), 2);
    }
}
