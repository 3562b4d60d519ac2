//! Password checks shared by the console's login and SMTP AUTH: the [`AttemptLimiter`] that
//! slows guessing per account and address, and the [`HashGate`] that bounds the argon2 work
//! done at once. One [`PasswordChecks`] serves the whole process, so that guesses count the same
//! wherever they come in.
//!
//! An attempt that must wait is refused at once with the time to come back (HTTP 429 with
//! `Retry-After`, SMTP 454 4.7.0), never held sleeping: a sleeping attempt would keep its
//! connection and its console or SMTP slot for up to minutes, and so become a way to exhaust
//! them; a refusal costs nothing, and even the first delay (1 s) is short to come back after.

mod gate;
mod limiter;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::clock::Clock;

pub use gate::{Busy, HashGate};
pub use limiter::{Attempt, AttemptLimiter, Policy, Rule, Wait};

use crate::error::StoreError;
use crate::model::PasswordHash;

/// Why a password was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many failures for this account or address: come back after this long.
    Wait(Wait),
    /// Too many checks at once: come back in a moment.
    Busy,
}

impl Refused {
    /// Whole seconds for a `Retry-After` or a reply's text.
    pub fn retry_after(&self) -> u64 {
        match self {
            Refused::Wait(wait) => wait.seconds(),
            Refused::Busy => 1,
        }
    }
}

/// The limiter and the gate, cheap to clone.
#[derive(Clone, Debug)]
pub struct PasswordChecks {
    pub gate: HashGate,
    pub attempts: Arc<AttemptLimiter>,
    /// What the limiter's delays are measured on: the store's clock (the system's in
    /// production, a simulated one in tests, so that "wait a minute" is tested without waiting).
    pub clock: Clock,
}

impl Default for PasswordChecks {
    fn default() -> PasswordChecks {
        PasswordChecks::new(HashGate::for_this_machine(), Policy::default())
    }
}

/// A reserved check, to be run with [`Check::verify`].
pub struct Check {
    attempt: Attempt,
    gate: HashGate,
    clock: Clock,
}

impl PasswordChecks {
    pub fn new(gate: HashGate, policy: Policy) -> PasswordChecks {
        PasswordChecks { gate, attempts: AttemptLimiter::new(policy), clock: Clock::system() }
    }

    /// The same checks, with delays measured on `clock` (the store's: `Store::clock`).
    pub fn on_clock(mut self, clock: Clock) -> PasswordChecks {
        self.clock = clock;
        self
    }

    /// Now, on the checks' clock: the instant to hand [`AttemptLimiter`]'s methods.
    pub fn instant(&self) -> Instant {
        self.clock.instant()
    }

    /// Reserves a check of `account`'s password from `ip`, before the account is even looked
    /// up: a refused attempt costs nothing more.
    pub fn begin(&self, account: &str, ip: IpAddr) -> Result<Check, Refused> {
        let attempt = self.attempts.reserve(account, ip, self.instant()).map_err(Refused::Wait)?;
        Ok(Check { attempt, gate: self.gate.clone(), clock: self.clock.clone() })
    }

    /// Hashes a new password through the gate.
    pub async fn hash(&self, password: &str) -> Result<Result<PasswordHash, StoreError>, Busy> {
        self.gate.hash(password).await
    }
}

impl Check {
    /// Records the outcome of a check made elsewhere (Dovecot's authentication service): it
    /// counts toward the same per-account and per-address limits. `None` (no answer) records
    /// nothing, as a busy gate does.
    pub fn settle(self, ok: Option<bool>) {
        match ok {
            Some(true) => self.attempt.succeeded(),
            Some(false) => self.attempt.failed(self.clock.instant()),
            None => {}
        }
    }

    /// Checks `password` against `hash`, or against a decoy of the same cost when the account
    /// does not exist (`None`), so that the reply and its timing do not tell the two apart.
    /// Records the outcome; `Err(Busy)` records nothing.
    pub async fn verify(self, hash: Option<PasswordHash>, password: &str) -> Result<bool, Refused> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(PasswordHash::decoy);
        let ok = self.gate.verify(hash, password).await.map_err(|Busy| Refused::Busy)? && known;
        if ok {
            self.attempt.succeeded();
        } else {
            self.attempt.failed(self.clock.instant());
        }
        Ok(ok)
    }
}
