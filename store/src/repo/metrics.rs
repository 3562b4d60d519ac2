//! The gauges `/metrics` reads from the store at each scrape: the queue by state and age, ACME
//! orders and DKIM keys by state. Over every engine sharing the store (Postgres).

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::metrics::AGE_CLASSES;
use crate::store::Store;

type Labels = Vec<(&'static str, &'static str)>;

const QUEUE_STATES: [&str; 3] = ["pending", "deferred", "held"];
const ACME_STATES: [&str; 4] = ["pending", "validating", "issued", "failed"];
const DKIM_STATES: [&str; 4] = ["pending", "active", "retiring", "retired"];

impl Store {
    /// Everything `/metrics` shows, in the Prometheus (OpenMetrics) text format: this
    /// process's counters, then the gauges read from the store now.
    pub async fn render_metrics(&self) -> Result<String> {
        let mut registry = Registry::with_prefix("postern");
        let now = self.clock().now();

        let queue = Family::<Labels, Gauge>::default();
        registry.register(
            "queue_recipients",
            "Recipients waiting in the queue (every node), by state (pending, deferred, held) and \
             by the age of their message",
            queue.clone(),
        );
        for state in QUEUE_STATES {
            for (age, _) in AGE_CLASSES {
                let _ = queue.get_or_create(&vec![("state", state), ("age", age)]);
            }
        }
        let rows = sqlx::query(
            "SELECT CASE WHEN m.held = 1 THEN 'held' ELSE r.status END AS state, \
             CAST(CASE WHEN $1 - m.received_at < 300 THEN 0 WHEN $1 - m.received_at < 3600 THEN 1 \
                  WHEN $1 - m.received_at < 86400 THEN 2 ELSE 3 END AS BIGINT) AS age, \
             COUNT(*) AS n \
             FROM queue_recipients r JOIN queue_messages m ON m.id = r.message_id \
             WHERE r.status IN ('pending', 'deferred') GROUP BY 1, 2",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        for row in &rows {
            let state: String = row.try_get("state")?;
            let age: i64 = row.try_get("age")?;
            let n: i64 = row.try_get("n")?;
            let state = QUEUE_STATES.into_iter().find(|s| *s == state).unwrap_or("pending");
            let age = AGE_CLASSES[usize::try_from(age).unwrap_or(3).min(3)].0;
            queue.get_or_create(&vec![("state", state), ("age", age)]).inc_by(n);
        }

        let oldest = Gauge::<i64>::default();
        registry.register(
            "queue_oldest_seconds",
            "Age of the oldest message with a recipient still to deliver (0 when the queue is empty)",
            oldest.clone(),
        );
        let first: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(m.received_at) FROM queue_messages m WHERE EXISTS (SELECT 1 FROM \
             queue_recipients r WHERE r.message_id = m.id AND r.status IN ('pending', 'deferred'))",
        )
        .fetch_one(self.pool())
        .await?;
        oldest.set(first.map_or(0, |at| (now - at).max(0)));

        for (table, name, help, states) in [
            ("acme_orders", "acme_orders", "ACME certificate orders, by state", &ACME_STATES),
            ("dkim_keys", "dkim_keys", "DKIM keys, by rollout state", &DKIM_STATES),
        ] {
            let family = Family::<Labels, Gauge>::default();
            registry.register(name, help, family.clone());
            for state in states.iter() {
                let _ = family.get_or_create(&vec![("state", *state)]);
            }
            let query = match table {
                "acme_orders" => "SELECT state, COUNT(*) AS n FROM acme_orders GROUP BY state",
                _ => "SELECT state, COUNT(*) AS n FROM dkim_keys GROUP BY state",
            };
            for row in sqlx::query(query).fetch_all(self.pool()).await? {
                let state: String = row.try_get("state")?;
                let n: i64 = row.try_get("n")?;
                if let Some(state) = states.iter().find(|s| **s == state) {
                    family.get_or_create(&vec![("state", *state)]).set(n);
                }
            }
        }

        let mut out = String::with_capacity(8192);
        let encode = |out: &mut String| -> std::fmt::Result {
            self.metrics().encode_counters(out)?;
            prometheus_client::encoding::text::encode_registry(out, &registry)?;
            prometheus_client::encoding::text::encode_eof(out)
        };
        encode(&mut out).map_err(|_| StoreError::Corrupt {
            table: "metrics",
            message: "cannot encode the metrics".into(),
        })?;
        Ok(out)
    }
}
