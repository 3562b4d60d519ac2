//! Destination concurrency feedback, after Postfix's: a destination that throttles us gets half
//! as many sessions at once (down to one), and one more back after each run of successful
//! deliveries, up to its configured limit.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use postern_store::clock::Clock;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Outcome;

/// What one session's results say about the destination's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// It refused or dropped us in a way that says "too many" (see [`after_open`],
    /// [`after_send`]).
    Throttled,
    /// It took the message for at least one recipient.
    Success,
    /// Neither: a refused recipient, a timeout, a policy problem of ours.
    Neutral,
}

/// The limit a destination has now, and the feedback that moves it. Pure arithmetic; [`Gate`]
/// applies it to a semaphore.
#[derive(Debug, Clone)]
pub struct Controller {
    max: usize,
    limit: usize,
    successes: usize,
    /// Bumped on every decrease. Sessions started before it ran under the old limit, and
    /// their failures are the same burst that caused the decrease: they must not halve it
    /// again, or one burst of 421s to 20 sessions would take the limit straight to 1.
    epoch: u64,
}

impl Controller {
    pub fn new(max: usize) -> Controller {
        let max = max.max(1);
        Controller { max, limit: max, successes: 0, epoch: 0 }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Negative feedback from a session started at `epoch`: halves the limit, down to 1
    /// (Postfix lowers by `default_destination_concurrency_negative_feedback`; halving backs
    /// off faster from a destination that says it is overloaded). Returns the new limit when
    /// it changed.
    pub fn throttled(&mut self, epoch: u64) -> Option<usize> {
        if epoch != self.epoch {
            return None;
        }
        self.successes = 0;
        self.epoch += 1;
        let lower = (self.limit / 2).max(1);
        (lower != self.limit).then(|| {
            self.limit = lower;
            lower
        })
    }

    /// Positive feedback: one more session after as many successful deliveries as the limit
    /// allows at once (Postfix's `default_destination_concurrency_positive_feedback = 1/concurrency`),
    /// up to the configured maximum. Returns the new limit when it changed.
    pub fn succeeded(&mut self) -> Option<usize> {
        if self.limit >= self.max {
            return None;
        }
        self.successes += 1;
        if self.successes < self.limit {
            return None;
        }
        self.successes = 0;
        self.limit += 1;
        Some(self.limit)
    }
}

/// A destination's concurrency gate: a semaphore whose size follows a [`Controller`].
pub struct Gate {
    semaphore: Arc<Semaphore>,
    state: Mutex<State>,
    /// The store's clock: how long ago the limit changed is a schedule (the throttling is
    /// remembered for half an hour), tested on a simulated clock.
    clock: Clock,
}

struct State {
    controller: Controller,
    /// Permits to take out of circulation as they come back: the limit fell while they were
    /// held, and a held permit cannot be forgotten until it is returned.
    owed: usize,
    /// When the limit last changed, so that a destination left throttled is forgotten some
    /// time after its traffic stops.
    changed: Instant,
}

/// Leave to deliver to a destination; returned to its gate (or forgotten, if the gate shrank
/// meanwhile) when dropped.
pub struct Permit {
    inner: Option<OwnedSemaphorePermit>,
    gate: Arc<Gate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else { return };
        // Under the lock, so that a shrink sees either this permit held or back in the pool.
        let mut state = self.gate.lock();
        if state.owed > 0 {
            state.owed -= 1;
            inner.forget();
        } else {
            drop(inner);
        }
    }
}

impl Gate {
    pub fn new(max: usize, clock: Clock) -> Arc<Gate> {
        let controller = Controller::new(max);
        Arc::new(Gate {
            semaphore: Arc::new(Semaphore::new(controller.limit())),
            state: Mutex::new(State { controller, owed: 0, changed: clock.instant() }),
            clock,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under the lock is one step: a panic leaves it consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn try_permit(self: &Arc<Gate>) -> Option<Permit> {
        let inner = self.semaphore.clone().try_acquire_owned().ok()?;
        Some(Permit { inner: Some(inner), gate: self.clone() })
    }

    pub async fn permit(self: &Arc<Gate>) -> Option<Permit> {
        // The semaphore is never closed, so this is always `Some`.
        let inner = self.semaphore.clone().acquire_owned().await.ok()?;
        Some(Permit { inner: Some(inner), gate: self.clone() })
    }

    /// The destination's limit now.
    pub fn limit(&self) -> usize {
        self.lock().controller.limit()
    }

    /// The feedback epoch to hand back with a session's [`Signal`].
    pub fn epoch(&self) -> u64 {
        self.lock().controller.epoch()
    }

    /// Whether the gate is below its configured limit and was changed within `within`: such a
    /// gate is kept even when nobody uses it, so that its throttling is remembered.
    pub fn remembers(&self, within: std::time::Duration) -> bool {
        let state = self.lock();
        let since = self.clock.instant().saturating_duration_since(state.changed);
        state.controller.limit() < state.controller.max() && since < within
    }

    /// Applies what a session started at `epoch` found; returns the new limit when it changed.
    pub fn feedback(&self, signal: Signal, epoch: u64) -> Option<usize> {
        let mut state = self.lock();
        let before = state.controller.limit();
        let after = match signal {
            Signal::Throttled => state.controller.throttled(epoch)?,
            Signal::Success => state.controller.succeeded()?,
            Signal::Neutral => return None,
        };
        state.changed = self.clock.instant();
        if after < before {
            // Permits now free go at once; those held are forgotten as they come back.
            let cut = before - after;
            let forgotten = self.semaphore.forget_permits(cut);
            state.owed += cut - forgotten;
        } else {
            // A debt still owed is cancelled first: those permits simply stay.
            let added = after - before;
            let cancelled = added.min(state.owed);
            state.owed -= cancelled;
            self.semaphore.add_permits(added - cancelled);
        }
        Some(after)
    }
}

/// What a failure to open a session says: a 421, a 4xx greeting or EHLO reply (the server
/// turning sessions away: RFC 5321 §3.1 and §4.2.5), a refused connection, or a connection
/// closed or reset before the greeting all mean "not now, not so many". A timeout, a TLS or
/// AUTH problem says nothing about load. The texts are the client's own ([`super::client`]).
pub fn after_open(outcome: &Outcome) -> Signal {
    let Some(reply) = outcome.reply() else { return Signal::Neutral };
    let text = reply.message.as_str();
    let whole_session_4xx = reply.code / 100 == 4
        && [
            "greeted us with this",
            "answered EHLO with",
            "answered HELO with",
            "answered LHLO with",
        ]
        .iter()
        .any(|stage| text.contains(stage));
    let dropped =
        text.contains("lost connection") && (text.contains("in the greeting") || is_reset(text));
    if reply.code == 421 || whole_session_4xx || text.contains("connection refused by") || dropped {
        Signal::Throttled
    } else {
        Signal::Neutral
    }
}

/// What a message's outcomes on an open session say: a 421 anywhere (RFC 5321 §3.8: the server
/// is shutting the session) or a connection reset mid-session throttles; a delivery is a
/// success.
pub fn after_send(outcomes: &[Outcome]) -> Signal {
    let throttled = |o: &Outcome| {
        o.reply().is_some_and(|r| r.code == 421 || (o.is_deferred() && is_reset(&r.message)))
    };
    if outcomes.iter().any(throttled) {
        Signal::Throttled
    } else if outcomes.iter().any(Outcome::is_delivered) {
        Signal::Success
    } else {
        Signal::Neutral
    }
}

fn is_reset(text: &str) -> bool {
    // std::io::Error's text for ECONNRESET.
    text.contains("Connection reset")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_throttling_down_to_one() {
        let mut c = Controller::new(20);
        assert_eq!(c.throttled(0), Some(10));
        assert_eq!(c.throttled(1), Some(5));
        assert_eq!(c.throttled(2), Some(2));
        assert_eq!(c.throttled(3), Some(1));
        assert_eq!(c.throttled(4), None, "never below one");
        assert_eq!(c.limit(), 1);
    }

    #[test]
    fn one_burst_halves_once() {
        let mut c = Controller::new(20);
        let epoch = c.epoch();
        // Twenty sessions started together, all told 421.
        let changes: Vec<_> = (0..20).filter_map(|_| c.throttled(epoch)).collect();
        assert_eq!(changes, [10]);
        // A session started after the decrease counts again.
        assert_eq!(c.throttled(c.epoch()), Some(5));
    }

    #[test]
    fn grows_by_one_per_round_of_successes_up_to_the_maximum() {
        let mut c = Controller::new(4);
        c.throttled(0);
        c.throttled(1);
        assert_eq!(c.limit(), 1);
        // One success at 1, two at 2, three at 3.
        let mut grown = Vec::new();
        for n in 1..=10 {
            if let Some(limit) = c.succeeded() {
                grown.push((n, limit));
            }
        }
        assert_eq!(grown, [(1, 2), (3, 3), (6, 4)]);
        assert_eq!(c.limit(), 4, "no higher than configured");
    }

    #[test]
    fn a_throttle_restarts_the_count_of_successes() {
        let mut c = Controller::new(8);
        c.throttled(0);
        assert_eq!(c.limit(), 4);
        for _ in 0..3 {
            assert_eq!(c.succeeded(), None);
        }
        assert_eq!(c.throttled(c.epoch()), Some(2));
        assert_eq!(c.succeeded(), None, "the earlier successes no longer count");
        assert_eq!(c.succeeded(), Some(3));
    }

    #[tokio::test]
    async fn shrinking_with_permits_out_forgets_them_as_they_return() {
        let gate = Gate::new(4, Clock::system());
        let held: Vec<Permit> = (0..3).map(|_| gate.try_permit().unwrap()).collect();
        // 4 -> 2 with three held and one free: the free one goes now, one more is owed.
        assert_eq!(gate.feedback(Signal::Throttled, gate.epoch()), Some(2));
        assert!(gate.try_permit().is_none());
        let mut held = held.into_iter();
        drop(held.next());
        assert!(gate.try_permit().is_none(), "the first returned permit paid the debt");
        drop(held.next());
        let again = gate.try_permit().expect("two held, limit two: one was free");
        assert!(gate.try_permit().is_none());
        drop(again);
        drop(held.next());
        // Nothing held: exactly the limit is free.
        let free: Vec<Permit> = std::iter::from_fn(|| gate.try_permit()).collect();
        assert_eq!(free.len(), 2);
    }

    #[tokio::test]
    async fn growing_pays_a_debt_before_adding_permits() {
        let gate = Gate::new(4, Clock::system());
        let held: Vec<Permit> = (0..4).map(|_| gate.try_permit().unwrap()).collect();
        assert_eq!(gate.feedback(Signal::Throttled, gate.epoch()), Some(2));
        // Two owed. Two successes at limit 2 bring it to 3: one debt cancelled.
        gate.feedback(Signal::Success, 0);
        assert_eq!(gate.feedback(Signal::Success, 0), Some(3));
        drop(held);
        let free: Vec<Permit> = std::iter::from_fn(|| gate.try_permit()).collect();
        assert_eq!(free.len(), 3);
    }

    #[tokio::test]
    async fn a_waiter_gets_in_when_the_limit_grows() {
        let gate = Gate::new(2, Clock::system());
        gate.feedback(Signal::Throttled, 0);
        let held = gate.try_permit().unwrap();
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.permit().await.is_some() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(gate.feedback(Signal::Success, 0), Some(2));
        assert!(waiting.await.unwrap());
        drop(held);
    }

    /// The throttling is remembered for as long as asked after the limit last changed, on the
    /// store's clock: a simulated half hour passes in no time.
    #[test]
    fn a_throttled_gate_is_remembered_for_a_while_on_the_clock() {
        let clock = Clock::manual(1_700_000_000);
        let gate = Gate::new(4, clock.clone());
        let within = std::time::Duration::from_secs(30 * 60);
        assert!(!gate.remembers(within), "at its configured limit: nothing to remember");
        gate.feedback(Signal::Throttled, gate.epoch());
        assert!(gate.remembers(within));
        clock.advance(29 * 60);
        assert!(gate.remembers(within));
        // A success moves the limit: the half hour starts again.
        assert_eq!(gate.feedback(Signal::Success, 0), None);
        gate.feedback(Signal::Success, 0);
        assert_eq!(gate.limit(), 3);
        clock.advance(29 * 60);
        assert!(gate.remembers(within));
        clock.advance(60);
        assert!(!gate.remembers(within), "forgotten half an hour after the last change");
    }

    #[test]
    fn what_counts_as_throttling() {
        let d = |text: &str| Outcome::deferred(super::super::Reply::from_text(text));
        for throttled in [
            "421 4.3.2 too many connections (127.0.0.1:25 greeted us with this)",
            "450 4.3.0 Error: command failed (127.0.0.1:25 greeted us with this)",
            "451 4.3.0 busy (127.0.0.1:25 answered EHLO with this)",
            "451 4.4.1 connection refused by 127.0.0.1:25",
            "451 4.4.2 lost connection with 127.0.0.1:25 in the greeting: connection closed",
            "451 4.4.2 lost connection with 127.0.0.1:25 after EHLO: Connection reset by peer (os error 104)",
        ] {
            assert_eq!(after_open(&d(throttled)), Signal::Throttled, "{throttled}");
        }
        for neutral in [
            "451 4.4.1 connection to 127.0.0.1:25 timed out",
            "451 4.4.2 timed out waiting for 127.0.0.1:25 in the greeting",
            "451 4.7.10 TLS is required for 127.0.0.1:25, which does not offer STARTTLS",
            "451 4.7.0 127.0.0.1:25 refused our AUTH: 454 4.7.0 try later",
            "554 5.7.1 go away (127.0.0.1:25 greeted us with this)",
        ] {
            assert_eq!(after_open(&d(neutral)), Signal::Neutral, "{neutral}");
        }
        let ok = Outcome::Delivered {
            detail: "127.0.0.1:25 said: 250 2.0.0 Ok".into(),
            handoff: super::super::Handoff::Relayed,
        };
        let greylisted = d("450 4.2.0 <bob@example.com>: greylisted");
        assert_eq!(after_send(&[ok.clone(), greylisted.clone()]), Signal::Success);
        assert_eq!(after_send(std::slice::from_ref(&greylisted)), Signal::Neutral);
        let closing = d("421 4.4.2 closing (127.0.0.1:25 answered MAIL with this)");
        assert_eq!(after_send(&[closing]), Signal::Throttled);
        let reset =
            d("451 4.4.2 lost connection with 127.0.0.1:25 after RCPT: Connection reset by peer");
        assert_eq!(after_send(&[reset, ok]), Signal::Throttled);
    }
}
