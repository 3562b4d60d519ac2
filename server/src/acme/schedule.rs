//! When to try an order again, when to renew a certificate, and when to warn about one: pure
//! functions of times in epoch seconds, so that they are tested without a clock.

use std::time::Duration;

/// Attempts written off as a stale nonce before the order counts as failed. instant-acme
/// already retries a refused nonce twice per request; at pebble's 5 % rejection a third
/// refusal in a row happens about once in 8,000 requests, and these retries make an order
/// fail from it about never.
pub const NONCE_RETRIES: u32 = 3;

/// The wait after the `attempts`-th failed attempt (1 for the first): `first`, doubling each
/// time, at most `max`.
pub fn backoff(attempts: i64, first: Duration, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
    first.saturating_mul(1u32 << doublings).min(max)
}

/// When a certificate valid from `not_before` to `not_after` is renewed: when a third of its
/// lifetime is left (Let's Encrypt's advice: day 60 of 90).
pub fn renew_at(not_before: i64, not_after: i64) -> i64 {
    let lifetime = (not_after - not_before).max(0);
    not_after - lifetime / 3
}

/// The CA's suggested renewal window (ARI, RFC 9773 §4.2): a time inside it, picked by the
/// caller's `fraction` in [0, 1) (uniformly random in production, so that the clients of one
/// CA do not all come at once); a window that has started means now.
pub fn ari_renew_at(start: i64, end: i64, fraction: f64, now: i64) -> i64 {
    if start <= now {
        return now;
    }
    let span = (end - start).max(0) as f64;
    start + (span * fraction.clamp(0.0, 1.0)) as i64
}

/// Days before expiry from which each certificate is warned about (RFC-free: what an
/// administrator needs to act in time).
pub const WARN_BEFORE: i64 = 14 * 86_400;

/// True when a certificate expiring at `not_after` is due a warning at `now`.
pub fn expiring_soon(not_after: i64, now: i64) -> bool {
    not_after - now <= WARN_BEFORE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_the_maximum() {
        let (first, max) = (Duration::from_secs(60), Duration::from_secs(6 * 3600));
        let waits: Vec<u64> = (1..=11).map(|n| backoff(n, first, max).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 21600, 21600]);
        assert_eq!(backoff(0, first, max), first);
        assert_eq!(backoff(i64::MAX, first, max), max);
    }

    #[test]
    fn renewal_comes_with_a_third_of_the_lifetime_left() {
        let day = 86_400;
        assert_eq!(renew_at(0, 90 * day), 60 * day);
        assert_eq!(renew_at(1000, 1030), 1020);
        assert_eq!(renew_at(5, 5), 5);
    }

    #[test]
    fn an_ari_window_is_honoured() {
        assert_eq!(ari_renew_at(100, 200, 0.5, 50), 150);
        assert_eq!(ari_renew_at(100, 200, 0.0, 50), 100);
        assert_eq!(ari_renew_at(100, 200, 0.99, 120), 120, "a started window means now");
    }

    #[test]
    fn warnings_start_fourteen_days_before_expiry() {
        let day = 86_400;
        assert!(!expiring_soon(100 * day, 85 * day));
        assert!(expiring_soon(100 * day, 86 * day));
        assert!(expiring_soon(100 * day, 101 * day));
    }
}
