//! The appliance's Prometheus metrics: counters the engine bumps as things happen, and gauges
//! read from the store when `/metrics` is scraped (the queue, ACME orders, DKIM keys).
//!
//! It lives in the store because both the engine (which counts) and the console (which serves
//! `/metrics`) reach it, and each `Store` carries its own [`Metrics`]: `prometheus-client`
//! keeps one registry per value, so several engines in one test process keep their own counts
//! (the `metrics` crate has one recorder per process).
//!
//! The hot paths (a message accepted, a session opened, a recipient delivered) touch only
//! handles resolved once here: an atomic add each, no allocation, no lock and no label lookup.
//! The histograms are ours ([`Histogram`]) for the same reason: `prometheus-client`'s takes a
//! mutex per observation.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// The SMTP listeners, in the order of [`Metrics::listener`]'s index.
pub const LISTENERS: [&str; 3] = ["smtp", "submission", "submissions"];

/// The delivery agents the latency histogram is labelled with.
pub const TRANSPORTS: [&str; 3] = ["maildir", "smtp", "lmtp"];

/// The TLS versions counted by name; anything else counts as `other`.
pub const TLS_VERSIONS: [&str; 3] = ["TLSv1.2", "TLSv1.3", "other"];

/// Where a refusal came from, as the `reason` label of `postern_messages_rejected_total`:
/// a handful of classes, never the free text (which would make a series per client).
pub const REASON_CLASSES: [&str; 10] = [
    "access_rule",
    "rate_limit",
    "dnsbl",
    "greylisting",
    "content_check",
    "policy_service",
    "milter",
    "mail_auth",
    "discard",
    "other",
];

/// The stages a refusal is logged at (`policy/refusals.rs`).
pub const STAGES: [&str; 6] = ["connect", "helo", "mail", "rcpt", "data", "auth"];

/// Delivery attempt buckets, in seconds: a Maildir write takes milliseconds, a remote MX
/// several seconds.
const DELIVERY_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The queue writer's commit: one fsync'd transaction per batch.
const COMMIT_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// A histogram with fixed buckets kept in atomics: an observation is a few relaxed adds.
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then the +Inf bucket; not cumulative (the encoder sums them).
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// In nanoseconds, so that the sum is an integer add too.
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = self.bounds.iter().position(|b| secs <= *b).unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn encode_into(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            sum,
            self.count(),
            &buckets,
            None,
        )
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram").field("count", &self.count()).finish()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), fmt::Error> {
        self.encode_into(encoder)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Several [`Histogram`]s told apart by one label with a fixed set of values.
#[derive(Debug)]
pub struct LabelledHistograms {
    label: &'static str,
    members: Vec<(&'static str, Histogram)>,
}

impl LabelledHistograms {
    fn new(label: &'static str, values: &[&'static str], bounds: &'static [f64]) -> Self {
        let members = values.iter().map(|v| (*v, Histogram::new(bounds))).collect();
        LabelledHistograms { label, members }
    }

    /// The histogram for `value`, if it is one of the fixed values.
    pub fn get(&self, value: &str) -> Option<&Histogram> {
        self.members.iter().find(|(v, _)| *v == value).map(|(_, h)| h)
    }
}

impl EncodeMetric for LabelledHistograms {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        for (value, histogram) in &self.members {
            let labels = [(self.label, *value)];
            histogram.encode_into(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

type Labels = Vec<(&'static str, &'static str)>;
type RefusalLabels = [(&'static str, &'static str); 3];

/// A metric the registry encodes while [`Metrics`] keeps a handle to record into.
#[derive(Debug)]
struct Shared<T>(std::sync::Arc<T>);

impl<T: EncodeMetric> EncodeMetric for Shared<T> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), fmt::Error> {
        self.0.encode(encoder)
    }
    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

/// Every counter and histogram of one appliance, and its registry.
pub struct Metrics {
    registry: Registry,
    received: [Counter; 3],
    sessions_total: [Counter; 3],
    sessions_current: [Gauge; 3],
    tls: [Counter; 3],
    auth_failures: [Counter; 3],
    delivered: Counter,
    deferred: Counter,
    bounced: Counter,
    /// Resolved per refusal (a read lock and a hash: refusals are not the accepted-mail path);
    /// the labels are a fixed array of static names, so the lookup allocates nothing.
    rejected: Family<RefusalLabels, Counter>,
    delivery_seconds: std::sync::Arc<LabelledHistograms>,
    commit_seconds: std::sync::Arc<Histogram>,
    /// The same refusals summed by status alone (`rejected`, `tempfailed`, `discarded`), for
    /// [`Metrics::totals`]: not registered, as the family above shows them.
    refused_by_status: [Counter; 3],
}

/// The totals of the counters the dashboard charts, as one process counted them since it
/// started: what the engine samples into the store (`metric_samples`), as deltas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterTotals {
    /// `postern_messages_received_total`, every listener.
    pub received: u64,
    /// `postern_recipients_delivery_total` by result.
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
    /// `postern_messages_rejected_total` by status.
    pub rejected: u64,
    pub tempfailed: u64,
    pub discarded: u64,
}

impl CounterTotals {
    /// The increase from `earlier` to `self`. A counter below its earlier value has started
    /// again from 0 (a new process with the same handle cannot, but a sampler handed a fresh
    /// registry can): all of it is new.
    pub fn since(&self, earlier: &CounterTotals) -> CounterTotals {
        let d = |now: u64, then: u64| if now >= then { now - then } else { now };
        CounterTotals {
            received: d(self.received, earlier.received),
            delivered: d(self.delivered, earlier.delivered),
            deferred: d(self.deferred, earlier.deferred),
            bounced: d(self.bounced, earlier.bounced),
            rejected: d(self.rejected, earlier.rejected),
            tempfailed: d(self.tempfailed, earlier.tempfailed),
            discarded: d(self.discarded, earlier.discarded),
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == CounterTotals::default()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// Counters for each of `values`, as one family labelled `label`, each resolved once.
fn per_label<const N: usize>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    values: [&'static str; N],
) -> [Counter; N] {
    let family = Family::<Labels, Counter>::default();
    registry.register(name, help, family.clone());
    values.map(|v| family.get_or_create(&vec![(label, v)]).clone())
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("postern");
        let received = per_label(
            &mut registry,
            "messages_received",
            "Messages accepted (answered 250 after DATA/BDAT), by listener",
            "listener",
            LISTENERS,
        );
        let sessions_total = per_label(
            &mut registry,
            "smtp_sessions",
            "SMTP sessions started, by listener",
            "listener",
            LISTENERS,
        );
        let current = Family::<Labels, Gauge>::default();
        registry.register(
            "smtp_sessions_current",
            "SMTP sessions open now, by listener",
            current.clone(),
        );
        let sessions_current =
            LISTENERS.map(|l| current.get_or_create(&vec![("listener", l)]).clone());
        let tls = per_label(
            &mut registry,
            "tls_handshakes",
            "TLS sessions negotiated on the SMTP listeners (STARTTLS and port 465), by version",
            "version",
            TLS_VERSIONS,
        );
        let auth_failures = per_label(
            &mut registry,
            "smtp_auth_failures",
            "SMTP AUTH attempts refused (bad credentials), by listener",
            "listener",
            LISTENERS,
        );
        let outcomes = Family::<Labels, Counter>::default();
        registry.register(
            "recipients_delivery",
            "Delivery attempts recorded, by result: delivered, deferred (to be retried), bounced \
             (failed for good)",
            outcomes.clone(),
        );
        let outcome = |r: &'static str| outcomes.get_or_create(&vec![("result", r)]).clone();
        let (delivered, deferred, bounced) =
            (outcome("delivered"), outcome("deferred"), outcome("bounced"));
        let rejected = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "messages_rejected",
            "Refusals and discards by the SMTP sessions (as in the delivery log), by status, \
             stage and reason class",
            rejected.clone(),
        );
        let delivery_seconds = std::sync::Arc::new(LabelledHistograms::new(
            "transport",
            &TRANSPORTS,
            DELIVERY_BUCKETS,
        ));
        registry.register(
            "delivery_duration_seconds",
            "How long one delivery attempt (a group of recipients on one route) took, by transport",
            Shared(delivery_seconds.clone()),
        );
        let commit_seconds = std::sync::Arc::new(Histogram::new(COMMIT_BUCKETS));
        registry.register(
            "store_queue_commit_seconds",
            "How long the queue writer's commit of one batch took (the fsync the 250s wait for)",
            Shared(commit_seconds.clone()),
        );
        Metrics {
            registry,
            received,
            sessions_total,
            sessions_current,
            tls,
            auth_failures,
            delivered,
            deferred,
            bounced,
            rejected,
            delivery_seconds,
            commit_seconds,
            refused_by_status: Default::default(),
        }
    }

    /// The charted counters' totals now.
    pub fn totals(&self) -> CounterTotals {
        let [rejected, tempfailed, discarded] = self.refused_by_status.each_ref().map(|c| c.get());
        CounterTotals {
            received: self.received.iter().map(|c| c.get()).sum(),
            delivered: self.delivered.get(),
            deferred: self.deferred.get(),
            bounced: self.bounced.get(),
            rejected,
            tempfailed,
            discarded,
        }
    }

    /// The index of a listener's name in [`LISTENERS`] (unknown names count as `smtp`).
    fn listener(name: &str) -> usize {
        LISTENERS.iter().position(|l| *l == name).unwrap_or(0)
    }

    pub fn message_received(&self, listener: &str) {
        self.received[Self::listener(listener)].inc();
    }

    /// A session opened; the returned guard closes it when dropped.
    pub fn session_opened(self: &std::sync::Arc<Self>, listener: &str) -> SessionGuard {
        let i = Self::listener(listener);
        self.sessions_total[i].inc();
        self.sessions_current[i].inc();
        SessionGuard { metrics: self.clone(), listener: i }
    }

    /// A TLS handshake completed with `version` (rustls's `TLSv1_3` or `TLSv1.3` both count).
    pub fn tls_negotiated(&self, version: &str) {
        let i = match version {
            "TLSv1_2" | "TLSv1.2" => 0,
            "TLSv1_3" | "TLSv1.3" => 1,
            _ => 2,
        };
        self.tls[i].inc();
    }

    pub fn auth_failed(&self, listener: &str) {
        self.auth_failures[Self::listener(listener)].inc();
    }

    pub fn delivered(&self, n: u64) {
        self.delivered.inc_by(n);
    }

    pub fn deferred(&self, n: u64) {
        self.deferred.inc_by(n);
    }

    pub fn bounced(&self, n: u64) {
        self.bounced.inc_by(n);
    }

    /// One refusal or discard as the delivery log records it: `status` is the log's
    /// (`rejected`, `tempfailed`, `discarded`), `reason` its free text, classed here.
    /// `entries` is how many log entries it made (one per recipient).
    pub fn refused(&self, status: &str, stage: &str, reason: &str, entries: u64) {
        let (status, i) = match status {
            "rejected" => ("rejected", 0),
            "tempfailed" => ("tempfailed", 1),
            _ => ("discarded", 2),
        };
        self.refused_by_status[i].inc_by(entries);
        let stage = STAGES.iter().copied().find(|s| *s == stage).unwrap_or("other");
        let class = if status == "discarded" { "discard" } else { reason_class(reason) };
        self.rejected
            .get_or_create(&[("status", status), ("stage", stage), ("reason", class)])
            .inc_by(entries);
    }

    /// One delivery attempt by `transport` (one of [`TRANSPORTS`]).
    pub fn delivery_took(&self, transport: &str, took: Duration) {
        if let Some(h) = self.delivery_seconds.get(transport) {
            h.observe(took);
        }
    }

    /// One commit of the queue writer.
    pub fn queue_commit_took(&self, took: Duration) {
        self.commit_seconds.observe(took);
    }

    /// The counters in the text format, without the end-of-file line (the store adds its
    /// gauges after them).
    pub(crate) fn encode_counters(&self, out: &mut String) -> fmt::Result {
        prometheus_client::encoding::text::encode_registry(out, &self.registry)
    }
}

/// Closes a session in `postern_smtp_sessions_current` when dropped.
pub struct SessionGuard {
    metrics: std::sync::Arc<Metrics>,
    listener: usize,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.metrics.sessions_current[self.listener].dec();
    }
}

/// The class of a refusal's reason text, as the decision points word it (`access rule 3`,
/// `blocklist zen…`, `greylisting: …`, `header check 2`, `policy service x: …`, `milter x`,
/// `inbound mail authentication policy: …`, and the rate limits' replies).
pub fn reason_class(reason: &str) -> &'static str {
    const PREFIXES: [(&str, &str); 11] = [
        ("access rule", "access_rule"),
        ("policy rule", "access_rule"),
        ("rate limit", "rate_limit"),
        ("dns blocklist", "dnsbl"),
        ("blocklist", "dnsbl"),
        ("greylist", "greylisting"),
        ("header check", "content_check"),
        ("body check", "content_check"),
        ("policy service", "policy_service"),
        ("milter", "milter"),
        ("inbound mail authentication", "mail_auth"),
    ];
    // Compared in place: no lowered copy of the text per refusal.
    let starts = |p: &str| reason.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p));
    PREFIXES.iter().find(|(p, _)| starts(p)).map_or("other", |(_, class)| class)
}

/// The age classes of `postern_queue_recipients`.
pub const AGE_CLASSES: [(&str, i64); 4] =
    [("0-5m", 300), ("5m-1h", 3600), ("1h-1d", 86_400), ("1d+", i64::MAX)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_are_in_the_text() {
        let m = std::sync::Arc::new(Metrics::new());
        m.message_received("submission");
        m.message_received("submission");
        let guard = m.session_opened("smtp");
        m.tls_negotiated("TLSv1_3");
        m.refused("rejected", "rcpt", "access rule 4", 1);
        m.refused("discarded", "data", "access rule 4 DISCARD", 1);
        m.delivery_took("maildir", Duration::from_millis(3));
        m.queue_commit_took(Duration::from_millis(2));
        m.delivered(3);
        let mut text = String::new();
        m.encode_counters(&mut text).unwrap();
        assert!(
            text.contains("postern_messages_received_total{listener=\"submission\"} 2"),
            "{text}"
        );
        assert!(text.contains("postern_smtp_sessions_current{listener=\"smtp\"} 1"), "{text}");
        drop(guard);
        let mut text = String::new();
        m.encode_counters(&mut text).unwrap();
        assert!(text.contains("postern_smtp_sessions_current{listener=\"smtp\"} 0"), "{text}");
        assert!(text.contains("postern_tls_handshakes_total{version=\"TLSv1.3\"} 1"), "{text}");
        assert!(
            text.contains(
                "postern_messages_rejected_total{status=\"rejected\",stage=\"rcpt\",reason=\"access_rule\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("reason=\"discard\"} 1"), "{text}");
        assert!(
            text.contains("postern_recipients_delivery_total{result=\"delivered\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "postern_delivery_duration_seconds_bucket{le=\"0.005\",transport=\"maildir\"} 1"
            ) || text.contains(
                "postern_delivery_duration_seconds_bucket{transport=\"maildir\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("postern_store_queue_commit_seconds_count 1"), "{text}");
        let totals = m.totals();
        assert_eq!(
            totals,
            CounterTotals {
                received: 2,
                delivered: 3,
                rejected: 1,
                discarded: 1,
                ..CounterTotals::default()
            }
        );
        let later = CounterTotals { received: 5, ..totals };
        assert_eq!(later.since(&totals), CounterTotals { received: 3, ..CounterTotals::default() });
        // Started again from 0: all of it counts.
        let restarted = CounterTotals { received: 1, ..CounterTotals::default() };
        assert_eq!(restarted.since(&totals).received, 1);
    }

    #[test]
    fn reasons_fall_into_few_classes() {
        assert_eq!(reason_class("access rule 12"), "access_rule");
        assert_eq!(reason_class("greylisting: retried too soon, 3 s to wait"), "greylisting");
        assert_eq!(reason_class("milter clamav"), "milter");
        assert_eq!(reason_class("body check 3"), "content_check");
        assert_eq!(reason_class("DNS blocklist zen: client listed"), "dnsbl");
        assert_eq!(reason_class("rate limit 2: 11 messages from a"), "rate_limit");
        assert_eq!(reason_class("policy service grey: DEFER"), "policy_service");
        assert_eq!(reason_class("inbound mail authentication policy: dmarc=fail"), "mail_auth");
        assert_eq!(reason_class("something new"), "other");
    }
}
