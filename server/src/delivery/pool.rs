//! The outbound connection cache: sessions to a next hop stay open a little while after a
//! message and carry the next one to the same destination; and a limit on the sessions one
//! destination gets at once, so that a slow one cannot take every delivery slot, lowered while
//! the destination throttles us ([`super::throttle`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use postern_store::clock::Clock;
use postern_store::model::TlsPolicy;

use super::client::{Client, ClientOptions, Protocol};
use super::connector::{Connector, Target};
use super::throttle::{self, Gate, Signal};
use super::{Delivery, Outcome};

pub use super::throttle::Permit;

/// How long a destination left throttled (below its limit) is remembered after its limit
/// last changed, once nobody delivers there: long enough to span the retries of what it
/// deferred, short enough that a destination over its trouble starts afresh.
const REMEMBER_THROTTLING: Duration = Duration::from_secs(30 * 60);

/// What a delivery holds while it works and gives back while it waits for a destination's
/// turn (the scheduler's global delivery slot).
pub trait Waiting: Send + Sync {
    /// Stops working: waits from now on.
    fn leave(&self);
    /// Works again, once what it gave back is had again.
    fn enter(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

tokio::task_local! {
    /// The [`Waiting`] of the delivery this task runs, if it runs one for a scheduler.
    pub static WAITING: Arc<dyn Waiting>;
}

/// How the cache behaves.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// How long a session may wait idle for the next message before it is closed.
    pub idle: Duration,
    /// Messages one session carries before it is closed, so that no session lives forever.
    pub max_uses: u32,
    /// Sessions (delivering or idle) to one destination at once; lowered for a while when
    /// the destination throttles us.
    pub per_destination: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            // Postfix's smtp_connection_cache_time_limit is 2 s; 5 s still sits far below
            // RFC 5321 §4.5.3.2.7's 5 minutes a server must wait for us, and covers the gap
            // between one scheduler pass and the next.
            idle: Duration::from_secs(5),
            // Postfix's smtp_connection_reuse_count_limit is unlimited by default but its time
            // limit (300 s) bounds a session; a count is simpler to reason about.
            max_uses: 100,
            // Postfix's default_destination_concurrency_limit.
            per_destination: 20,
        }
    }
}

impl From<&postern_store::boot::DeliveryConfig> for PoolSettings {
    fn from(c: &postern_store::boot::DeliveryConfig) -> PoolSettings {
        PoolSettings {
            idle: c.connection_idle,
            max_uses: c.connection_uses,
            per_destination: c.per_destination,
        }
    }
}

/// What makes two deliveries share a session: where it goes, how (protocol, TLS policy), and
/// as whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    target: Target,
    protocol: Protocol,
    tls: TlsPolicy,
    user: Option<String>,
}

impl Key {
    pub fn new(target: &Target, options: &ClientOptions) -> Key {
        Key {
            target: target.clone(),
            protocol: options.protocol,
            tls: options.tls,
            user: options.credentials.as_ref().map(|c| c.username.clone()),
        }
    }
}

struct Idle {
    client: Client,
    uses: u32,
    since: Instant,
}

#[derive(Default)]
struct Destination {
    idle: Vec<Idle>,
    gate: Option<Arc<Gate>>,
}

type Table = Mutex<HashMap<Key, Destination>>;

/// Idle sessions by destination, and each destination's concurrency gate.
pub struct Pool {
    table: Arc<Table>,
    settings: PoolSettings,
    /// What the destinations' throttling is remembered on (the store's clock). Idle sessions
    /// are timed on the real clock: they mirror the peer's own timeouts, which are real.
    clock: Clock,
}

impl Pool {
    /// A pool whose idle sessions a background task closes when they time out; the task ends
    /// with the pool. Needs a Tokio runtime.
    pub fn new(settings: PoolSettings) -> Pool {
        Pool::with_clock(settings, Clock::system())
    }

    /// A pool whose destinations' throttling is remembered on `clock` (the store's).
    pub fn with_clock(settings: PoolSettings, clock: Clock) -> Pool {
        let table: Arc<Table> = Arc::default();
        tokio::spawn(reap(Arc::downgrade(&table), settings.idle));
        Pool { table, settings, clock }
    }

    /// The permit to hold while delivering to `key`'s destination; `None` when all are taken.
    pub fn try_permit(&self, key: &Key) -> Option<Permit> {
        self.gate(key).try_permit()
    }

    /// Waits for a permit for `key`'s destination. A task running under [`WAITING`] (a
    /// scheduler's delivery) is told when it starts and stops waiting, so that it can give its
    /// global delivery slot back meanwhile: deliveries waiting for one busy destination must
    /// not keep mail to every other one waiting too.
    pub async fn permit(&self, key: &Key) -> Option<Permit> {
        let gate = self.gate(key);
        if let Some(permit) = gate.try_permit() {
            return Some(permit);
        }
        let waiting = WAITING.try_with(Arc::clone).ok();
        if let Some(waiting) = &waiting {
            waiting.leave();
        }
        let permit = gate.permit().await;
        if let Some(waiting) = &waiting {
            waiting.enter().await;
        }
        permit
    }

    /// The sessions `key`'s destination may have at once now.
    pub fn limit(&self, key: &Key) -> usize {
        self.gate(key).limit()
    }

    fn gate(&self, key: &Key) -> Arc<Gate> {
        let mut table = lock(&self.table);
        let dest = table.entry(key.clone()).or_default();
        let (max, clock) = (self.settings.per_destination, &self.clock);
        dest.gate.get_or_insert_with(|| Gate::new(max, clock.clone())).clone()
    }

    /// Moves `key`'s limit by what a session started at `epoch` found, and says so when it
    /// changed.
    fn feedback(&self, key: &Key, target: &Target, signal: Signal, epoch: u64) {
        let Some(limit) = self.gate(key).feedback(signal, epoch) else { return };
        match signal {
            Signal::Throttled => {
                tracing::info!(destination = %target, limit, "destination throttles us; fewer sessions at once")
            }
            _ => {
                tracing::info!(destination = %target, limit, "destination concurrency restored by one")
            }
        }
    }

    /// Sends one message to `target` on a cached session if there is one, else on a new one,
    /// and keeps the session for the next message. The caller holds the destination's permit.
    pub async fn deliver(
        &self,
        connector: &dyn Connector,
        target: &Target,
        options: &ClientOptions,
        delivery: &Delivery<'_>,
    ) -> Vec<Outcome> {
        match self.send(connector, target, options, delivery).await {
            Ok((outcomes, _)) => outcomes,
            Err(outcome) => vec![outcome; delivery.recipients.len()],
        }
    }

    /// As [`Pool::deliver`], with what [`Client::answered_individually`] says of each
    /// recipient; `Err` when no session could be opened, with the outcome for every recipient.
    ///
    /// A cached session that turns out dead before the peer said anything about the message
    /// (the server closed it while idle) costs nothing: the message goes again on a fresh one.
    /// Any other outcome stands, since the peer may have taken the message.
    pub async fn send(
        &self,
        connector: &dyn Connector,
        target: &Target,
        options: &ClientOptions,
        delivery: &Delivery<'_>,
    ) -> Result<(Vec<Outcome>, Vec<bool>), Outcome> {
        let key = Key::new(target, options);
        let epoch = self.gate(&key).epoch();
        if let Some(mut cached) = self.take(&key) {
            let outcomes = cached.client.send(delivery).await;
            // A cached session found closed (even with a 421) is the server ending an idle
            // session, not throttling: it says nothing about load.
            if !cached.client.lost_before_mail() {
                self.feedback(&key, target, throttle::after_send(&outcomes), epoch);
                let individually = cached.client.answered_individually().to_vec();
                cached.uses += 1;
                self.put(key, cached).await;
                return Ok((outcomes, individually));
            }
            tracing::debug!(relay = %target, "cached session was closed; opening a new one");
            cached.client.quit().await;
        }
        let mut client = match Client::connect(connector, target, options).await {
            Ok(client) => client,
            Err(outcome) => {
                self.feedback(&key, target, throttle::after_open(&outcome), epoch);
                return Err(outcome);
            }
        };
        let outcomes = client.send(delivery).await;
        self.feedback(&key, target, throttle::after_send(&outcomes), epoch);
        let individually = client.answered_individually().to_vec();
        self.put(key, Idle { client, uses: 1, since: Instant::now() }).await;
        Ok((outcomes, individually))
    }

    /// The most recently used idle session to `key`'s destination: the others age out first
    /// when traffic falls.
    fn take(&self, key: &Key) -> Option<Idle> {
        let mut table = lock(&self.table);
        let idle = &mut table.get_mut(key)?.idle;
        while let Some(cached) = idle.pop() {
            if cached.since.elapsed() < self.settings.idle {
                return Some(cached);
            }
            // Expired but not yet reaped: the reaper would close it; do it here instead.
            tokio::spawn(cached.client.quit());
        }
        None
    }

    async fn put(&self, key: Key, mut cached: Idle) {
        if !cached.client.is_usable() || cached.uses >= self.settings.max_uses {
            cached.client.quit().await;
            return;
        }
        cached.since = Instant::now();
        lock(&self.table).entry(key).or_default().idle.push(cached);
    }

    /// Closes every idle session, politely (at shutdown).
    pub async fn close_all(&self) {
        let idle: Vec<Idle> =
            lock(&self.table).values_mut().flat_map(|d| d.idle.drain(..)).collect();
        for cached in idle {
            cached.client.quit().await;
        }
    }
}

fn lock(table: &Table) -> MutexGuard<'_, HashMap<Key, Destination>> {
    // A panic while holding the lock leaves the table consistent (every change is one step).
    table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Closes sessions idle longer than `limit`, and forgets destinations with nothing idle,
/// nobody holding or awaiting a permit, and no recent throttling, until the pool is gone.
async fn reap(table: Weak<Table>, limit: Duration) {
    let tick = (limit / 4).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(tick).await;
        let Some(table) = table.upgrade() else { return };
        let mut expired = Vec::new();
        {
            let mut table = lock(&table);
            for dest in table.values_mut() {
                let (old, fresh) = dest.idle.drain(..).partition(|c| c.since.elapsed() >= limit);
                dest.idle = fresh;
                expired.extend::<Vec<Idle>>(old);
            }
            table.retain(|_, d| {
                !d.idle.is_empty()
                    || d.gate.as_ref().is_some_and(|g| {
                        Arc::strong_count(g) > 1 || g.remembers(REMEMBER_THROTTLING)
                    })
            });
        }
        for cached in expired {
            tokio::spawn(cached.client.quit());
        }
    }
}
