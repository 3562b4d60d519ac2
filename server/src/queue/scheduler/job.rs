//! One attempt at one message, run as its own task: its recipients grouped by route, each
//! group handed to the courier, after a turn at a busy destination.

use std::sync::Arc;

use postern_store::Store;
use postern_store::model::{Notify, QueueId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Attempt, Entry, SchedulerConfig};
use crate::delivery::{Delivery, Outcome, Pool, RcptDsn, Reply};
use crate::engine::Snapshot;
use crate::queue::courier::{self, Context, Courier};
use crate::queue::outbound::{self, Slot};
use crate::queue::route::{Route, route};

/// What every attempt started in one pass shares.
pub(super) struct Shared {
    pub(super) store: Store,
    pub(super) snapshot: Arc<Snapshot>,
    pub(super) courier: Arc<dyn Courier>,
    pub(super) config: Arc<SchedulerConfig>,
    pub(super) pool: Arc<Pool>,
}

/// One attempt at one message: everything a delivery task needs, owned.
pub(super) struct Job {
    id: QueueId,
    at: i64,
    sender: String,
    envid: Option<String>,
    ret_full: Option<bool>,
    smtputf8: bool,
    eight_bit: bool,
    rcpts: Vec<(u32, String)>,
    /// Each recipient's NOTIFY and ORCPT, by address, for a next hop that takes them.
    dsn: Vec<(String, Notify, Option<String>)>,
    body: Option<Arc<Vec<u8>>>,
    recovered: bool,
    store: Store,
    snapshot: Arc<Snapshot>,
    courier: Arc<dyn Courier>,
    config: Arc<SchedulerConfig>,
    pool: Arc<Pool>,
    slot: Slot,
}

impl Job {
    pub(super) fn new(
        entry: &Entry,
        now: i64,
        s: &Shared,
        permit: OwnedSemaphorePermit,
        slots: Arc<Semaphore>,
    ) -> Job {
        Job {
            id: entry.id,
            at: now,
            sender: entry.sender.clone(),
            envid: entry.envid.clone(),
            ret_full: entry.ret_full,
            smtputf8: entry.smtputf8,
            eight_bit: entry.eight_bit,
            rcpts: entry
                .rcpts
                .iter()
                .filter(|r| r.waiting() && r.next_at <= now)
                .map(|r| (r.index, r.address.clone()))
                .collect(),
            dsn: entry
                .rcpts
                .iter()
                .filter(|r| r.waiting() && r.next_at <= now)
                .map(|r| (r.address.clone(), r.notify, r.orcpt.clone()))
                .collect(),
            body: entry.body.as_ref().map(|b| b.data.clone()),
            recovered: entry.recovered,
            store: s.store.clone(),
            snapshot: s.snapshot.clone(),
            courier: s.courier.clone(),
            config: s.config.clone(),
            pool: s.pool.clone(),
            slot: Slot::new(slots, permit),
        }
    }

    pub(super) async fn run(mut self) -> Attempt {
        // Recipients with the same route go together, in the order they came.
        let mut groups: Vec<(Route, Vec<(u32, String)>)> = Vec::new();
        for (index, address) in &self.rcpts {
            let r = route(&self.snapshot.config, address);
            match groups.iter_mut().find(|(g, _)| *g == r) {
                Some((_, members)) => members.push((*index, address.clone())),
                None => groups.push((r, vec![(*index, address.clone())])),
            }
        }
        let mut outcomes = Vec::with_capacity(self.rcpts.len());
        for (route, members) in groups {
            let relay = route.relay();
            let results = self.deliver(&route, &members).await;
            outcomes.extend(
                members
                    .iter()
                    .zip(results)
                    .map(|((index, _), outcome)| (*index, relay.clone(), outcome)),
            );
        }
        Attempt { id: self.id, at: self.at, outcomes }
    }

    /// The message, read from the store when the attempt first needs it: after any wait for
    /// a busy destination, so that waiting attempts do not all hold their bodies.
    async fn body(&mut self) -> Result<Arc<Vec<u8>>, Reply> {
        if let Some(body) = &self.body {
            return Ok(body.clone());
        }
        let body = match self.store.queue_body(self.id).await {
            Ok(Some(body)) => Arc::new(body),
            Ok(None) => {
                return Err(Reply::new(
                    451,
                    [4, 3, 0],
                    "the message body is missing from the queue",
                ));
            }
            Err(e) => {
                return Err(Reply::new(
                    451,
                    [4, 3, 0],
                    format!("cannot read the message body: {e}"),
                ));
            }
        };
        self.body = Some(body.clone());
        Ok(body)
    }

    async fn deliver(&mut self, route: &Route, members: &[(u32, String)]) -> Vec<Outcome> {
        let addresses: Vec<String> = members.iter().map(|(_, a)| a.clone()).collect();
        let n = addresses.len();
        if let Some(outcomes) = courier::settled(route, n) {
            return outcomes;
        }
        // A fixed next hop is a destination with a limit on sessions: wait for its turn
        // before reading the body, so that waiting attempts do not all hold theirs.
        let _permit = match route {
            Route::Next { protocol, target, tls, credentials } => {
                let options =
                    courier::next_hop_options(&self.config, *protocol, *tls, credentials.as_ref());
                Some(outbound::turn(&self.pool, &mut self.slot, target, &options).await)
            }
            _ => None,
        };
        let body = match self.body().await {
            Ok(body) => body,
            Err(reply) => return vec![Outcome::deferred(reply); n],
        };
        let id = self.id.to_string();
        let rcpt_dsn: Vec<RcptDsn<'_>> = self
            .dsn
            .iter()
            .map(|(address, notify, orcpt)| RcptDsn {
                address,
                notify: *notify,
                orcpt: orcpt.as_deref(),
            })
            .collect();
        let delivery = Delivery {
            queue_id: &id,
            sender: &self.sender,
            recipients: &addresses,
            body: &body,
            smtputf8: self.smtputf8,
            eight_bit: self.eight_bit,
            envid: self.envid.as_deref(),
            ret_full: self.ret_full,
            rcpt_dsn: &rcpt_dsn,
        };
        let context = Context { config: &self.snapshot.config, recovered: self.recovered };
        self.courier.deliver(route, &delivery, context).await
    }
}
