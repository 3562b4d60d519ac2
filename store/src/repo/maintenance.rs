//! Keeping the history tables bounded: the delivery log, the queue's event tail and expired
//! console sessions would otherwise grow for as long as the appliance runs.

use std::time::Duration;

use crate::error::Result;
use crate::store::{Store, now};

/// How long history is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// The delivery log the console shows (Postfix sites often keep a month of maillog).
    pub delivery_log: Duration,
    /// Queue events only need to outlive the engines' poll; a day leaves room for a stopped one.
    pub queue_events: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            delivery_log: Duration::from_secs(30 * 86_400),
            queue_events: Duration::from_secs(86_400),
        }
    }
}

/// Rows removed by one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    pub delivery_log: u64,
    pub queue_events: u64,
    pub sessions: u64,
    /// The engines' counter samples (kept as long as the delivery log).
    pub metric_samples: u64,
}

impl Store {
    pub async fn trim_history(&self, retention: Retention) -> Result<Trimmed> {
        // The queue's records are stamped on the store's clock: their age is measured on it.
        let at = self.clock().now();
        let before = |keep: Duration| at - keep.as_secs() as i64;
        let delivery_log = self.trim_delivery_log(before(retention.delivery_log)).await?;
        let queue_events = sqlx::query("DELETE FROM queue_events WHERE at < $1")
            .bind(before(retention.queue_events))
            .execute(self.pool())
            .await?
            .rows_affected();
        // Console sessions expire on the system's clock, as the login stamps them.
        let sessions = sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
            .bind(now())
            .execute(self.pool())
            .await?
            .rows_affected();
        let metric_samples = self.trim_metric_samples(before(retention.delivery_log)).await?;
        Ok(Trimmed { delivery_log, queue_events, sessions, metric_samples })
    }
}
