//! When to try a deferred recipient again: exponential back-off with jitter, Postfix's defaults
//! (`minimal_backoff_time` 300 s, `maximal_backoff_time` 4000 s, `maximal_queue_lifetime` 5 d),
//! and when its sender is warned of the delay (`delay_warning_time`, off by default).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub first: Duration,
    pub max: Duration,
    /// A recipient still deferred this long after the message arrived fails.
    pub give_up: Duration,
    /// A recipient still deferred this long after the message arrived gets its sender one
    /// delay notice; `None` sends none.
    pub delay_warning: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            first: Duration::from_secs(300),
            max: Duration::from_secs(4000),
            give_up: Duration::from_secs(5 * 24 * 3600),
            delay_warning: None,
        }
    }
}

impl From<&postern_store::boot::DeliveryConfig> for RetryPolicy {
    fn from(c: &postern_store::boot::DeliveryConfig) -> RetryPolicy {
        RetryPolicy {
            first: c.retry_first,
            max: c.retry_max,
            give_up: c.give_up,
            delay_warning: c.delay_warning,
        }
    }
}

impl RetryPolicy {
    /// Seconds until the next try after the `attempts`-th failed one (1 for the first).
    pub fn delay(&self, attempts: u32) -> u64 {
        let base = self.first.as_secs().max(1);
        let doubled = base.saturating_mul(1u64 << attempts.saturating_sub(1).min(30));
        let capped = doubled.min(self.max.as_secs().max(base));
        // ±10 %, so that messages deferred together do not all come back together.
        let spread = capped / 10;
        capped - spread + rand::random_range(0..=2 * spread)
    }

    /// True when a message received at `received_at` has been queued for too long at `now`.
    pub fn expired(&self, received_at: i64, now: i64) -> bool {
        now.saturating_sub(received_at) >= self.give_up.as_secs() as i64
    }

    /// True when a recipient of a message received at `received_at` that is still deferred at
    /// `now` is owed a delay warning (if it has not had one).
    pub fn warning_due(&self, received_at: i64, now: i64) -> bool {
        self.delay_warning
            .is_some_and(|after| now.saturating_sub(received_at) >= after.as_secs() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_exponentially_within_bounds() {
        let p = RetryPolicy::default();
        for attempts in 1..40 {
            let d = p.delay(attempts);
            let ideal = (300u64 << (attempts - 1).min(30)).min(4000);
            assert!(d >= ideal - ideal / 10 && d <= ideal + ideal / 10, "{attempts}: {d}");
        }
        assert!(p.expired(0, 5 * 24 * 3600));
        assert!(!p.expired(0, 5 * 24 * 3600 - 1));
    }

    #[test]
    fn delay_warnings_are_off_unless_configured() {
        let p = RetryPolicy::default();
        assert!(!p.warning_due(0, 4 * 24 * 3600));
        let p = RetryPolicy { delay_warning: Some(Duration::from_secs(4 * 3600)), ..p };
        assert!(!p.warning_due(0, 4 * 3600 - 1));
        assert!(p.warning_due(0, 4 * 3600));
    }

    #[test]
    fn the_boot_config_sets_the_schedule() {
        let c = postern_store::boot::DeliveryConfig {
            retry_first: Duration::from_secs(60),
            delay_warning: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        let p = RetryPolicy::from(&c);
        assert_eq!((p.first, p.max, p.give_up), (c.retry_first, c.retry_max, c.give_up));
        assert_eq!(p.delay_warning, c.delay_warning);
        let d = RetryPolicy::from(&postern_store::boot::DeliveryConfig::default());
        let r = RetryPolicy::default();
        assert_eq!((d.first, d.max, d.give_up, d.delay_warning), (r.first, r.max, r.give_up, None));
    }
}
