//! The last day's traffic per hour, as the dashboard's chart and tiles and `GET /api/v1/traffic`
//! show it: for a global administrator, the engines' Prometheus counters as they sample them
//! into the store (`metric_samples`, summed over the nodes), so that the chart and `/metrics`
//! agree; for a domain-admin, the delivery log limited to its domains, as the counters do not
//! know domains.

use postern_store::model::DomainName;
use postern_store::{HourCounts, Store};

/// Hours in the chart.
pub const HOURS: usize = 24;

/// Where the numbers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Counters,
    DeliveryLog,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Counters => "counters",
            Source::DeliveryLog => "delivery_log",
        }
    }
}

/// The `HOURS` hours up to `now`: the first hour's start, the counts (hours without traffic
/// left out) and their source.
pub async fn last_day(
    store: &Store,
    domains: &Option<Vec<DomainName>>,
    now: i64,
) -> postern_store::Result<(i64, Vec<HourCounts>, Source)> {
    let start = (now.div_euclid(3600) - (HOURS as i64 - 1)) * 3600;
    Ok(match domains {
        None => (start, store.metric_counts(start).await?, Source::Counters),
        Some(_) => (start, store.delivery_counts(start, domains).await?, Source::DeliveryLog),
    })
}

/// The sum of `hours`.
pub fn totals(hours: &[HourCounts]) -> HourCounts {
    hours.iter().fold(HourCounts::default(), |mut t, h| {
        t.received += h.received;
        t.delivered += h.delivered;
        t.deferred += h.deferred;
        t.failed += h.failed;
        t.rejected += h.rejected;
        t.tempfailed += h.tempfailed;
        t.discarded += h.discarded;
        t
    })
}
