//! The one clock of the appliance: wall time as whole seconds since the Unix epoch (UTC, as
//! everything stored keeps it), a monotonic instant for measuring spans, and sleeping.
//!
//! Everything that schedules by time (the queue's retries, give-up and delay warnings, holds and
//! releases, rate-limit windows, greylisting, the DKIM rollout and the ACME renewals) reads a
//! [`Clock`]: the system's in production, a [`SimClock`] in tests, which moves only when the
//! test says so and wakes the sleepers whose time has come. A test of "retry after five
//! minutes" or "give up after an hour" then takes milliseconds, and fails if the rule breaks
//! rather than if the machine is slow.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// Seconds since the Unix epoch on the system clock; 0 on a clock set before 1970.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A sleep that a [`Time`] hands out.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where time comes from.
pub trait Time: Send + Sync + 'static {
    /// Wall time: seconds since the Unix epoch.
    fn wall(&self) -> i64;
    /// A monotonic instant, for spans (rate-limit windows).
    fn instant(&self) -> Instant;
    /// Ends once `d` has passed on this clock.
    fn sleep(&self, d: Duration) -> Sleep;
}

/// The system's clocks: `SystemTime`, `Instant` and tokio's timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Time for SystemClock {
    fn wall(&self) -> i64 {
        now()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, d: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A simulated clock: stands still until [`SimClock::advance`] or [`SimClock::set`] moves it,
/// and then wakes every sleeper whose time has come. Wall time and the monotonic instant move
/// together, in milliseconds.
#[derive(Clone)]
pub struct SimClock {
    /// Milliseconds since the epoch; a watch so that sleepers see every move.
    millis: Arc<watch::Sender<i64>>,
    /// The instant that stands for `start`.
    origin: Instant,
    start: i64,
}

impl fmt::Debug for SimClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimClock").field("millis", &*self.millis.borrow()).finish()
    }
}

impl SimClock {
    /// A clock showing `start` (seconds since the epoch).
    pub fn new(start: i64) -> SimClock {
        let start = start.saturating_mul(1000);
        SimClock { millis: Arc::new(watch::Sender::new(start)), origin: Instant::now(), start }
    }

    /// A clock showing the system's time now: what the store records (with its own `now()`)
    /// and what the simulated clock shows agree until the test moves it on.
    pub fn at_system_now() -> SimClock {
        SimClock::new(now())
    }

    /// Moves the clock on by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.millis.send_modify(|m| *m = m.saturating_add(by));
    }

    /// Moves the clock on by `seconds` (never back).
    pub fn advance_secs(&self, seconds: i64) {
        self.advance(Duration::from_secs(seconds.max(0) as u64));
    }

    /// Moves the clock to `at` (seconds since the epoch), if that is later than now.
    pub fn set(&self, at: i64) {
        let at = at.saturating_mul(1000);
        self.millis.send_if_modified(|m| {
            let later = at > *m;
            if later {
                *m = at;
            }
            later
        });
    }

    fn millis(&self) -> i64 {
        *self.millis.borrow()
    }
}

impl Time for SimClock {
    fn wall(&self) -> i64 {
        self.millis().div_euclid(1000)
    }

    fn instant(&self) -> Instant {
        let elapsed = self.millis().saturating_sub(self.start).max(0) as u64;
        self.origin + Duration::from_millis(elapsed)
    }

    fn sleep(&self, d: Duration) -> Sleep {
        let deadline =
            self.millis().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut rx = self.millis.subscribe();
        Box::pin(async move {
            // The sender lives as long as any clone of the clock; once none is left, nothing
            // can move it, and the sleep never ends (as a real one would not, that far out).
            if rx.wait_for(|m| *m >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// A cheap, cloneable handle on the appliance's clock; the system's by default.
#[derive(Clone)]
pub struct Clock {
    time: Arc<dyn Time>,
    /// The same clock when simulated, so that tests can move it.
    sim: Option<SimClock>,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sim {
            Some(sim) => sim.fmt(f),
            None => f.write_str("SystemClock"),
        }
    }
}

impl From<SimClock> for Clock {
    fn from(sim: SimClock) -> Clock {
        Clock { time: Arc::new(sim.clone()), sim: Some(sim) }
    }
}

impl Clock {
    pub fn system() -> Clock {
        Clock { time: Arc::new(SystemClock), sim: None }
    }

    /// A simulated clock showing `start` (seconds since the epoch).
    pub fn manual(start: i64) -> Clock {
        SimClock::new(start).into()
    }

    /// Any other source of time.
    pub fn from_time(time: Arc<dyn Time>) -> Clock {
        Clock { time, sim: None }
    }

    /// Wall time: seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.time.wall()
    }

    /// A monotonic instant.
    pub fn instant(&self) -> Instant {
        self.time.instant()
    }

    /// Ends once `d` has passed on this clock.
    pub fn sleep(&self, d: Duration) -> Sleep {
        self.time.sleep(d)
    }

    /// Ends once the wall clock shows `at` or later (at once if it already does).
    pub fn sleep_until(&self, at: i64) -> Sleep {
        let left = at.saturating_sub(self.now()).max(0) as u64;
        self.sleep(Duration::from_secs(left))
    }

    /// The simulated clock behind this one, if it is simulated.
    pub fn simulated(&self) -> Option<&SimClock> {
        self.sim.as_ref()
    }

    /// Moves a simulated clock on by `seconds` (nothing on the system clock).
    pub fn advance(&self, seconds: i64) {
        if let Some(sim) = &self.sim {
            sim.advance_secs(seconds);
        }
    }

    /// Moves a simulated clock on by `by` (nothing on the system clock).
    pub fn advance_by(&self, by: Duration) {
        if let Some(sim) = &self.sim {
            sim.advance(by);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_simulated_clock_wakes_sleepers_when_moved_and_not_before() {
        let sim = SimClock::new(1_000);
        let clock = Clock::from(sim.clone());
        let start = clock.instant();
        let mut sleep = tokio::spawn(clock.sleep(Duration::from_secs(300)));
        // Not woken by waiting on real time.
        tokio::task::yield_now().await;
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut sleep).await.is_err());
        clock.advance(299);
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut sleep).await.is_err());
        sim.advance(Duration::from_millis(1000));
        tokio::time::timeout(Duration::from_secs(5), sleep).await.unwrap().unwrap();
        assert_eq!(clock.now(), 1_300);
        assert_eq!(clock.instant() - start, Duration::from_secs(300));
        // `set` never moves it back.
        sim.set(10);
        assert_eq!(clock.now(), 1_300);
        sim.set(2_000);
        assert_eq!(clock.now(), 2_000);
        // A deadline already past ends at once.
        tokio::time::timeout(Duration::from_secs(5), clock.sleep_until(1_999)).await.unwrap();
    }

    #[test]
    fn the_system_clock_shows_the_system_time() {
        let clock = Clock::default();
        assert!((clock.now() - now()).abs() <= 1);
        assert!(clock.simulated().is_none());
        clock.advance(1000);
        assert!((clock.now() - now()).abs() <= 1, "the system clock is not moved");
    }
}
