//! The node's membership among several engines on one store: its heartbeat renews its lease
//! (one row for its whole queue), claims the messages of nodes whose lease lapsed and hands
//! them to the scheduler, and carries out a drain an administrator asked for (SMTP stops, the
//! attempts in progress end, the lease is given up so that the others claim the queue at once).
//! The rules of the lease are the store's (`store/src/repo/cluster.rs`).

use std::sync::Arc;
use std::time::Duration;

use postern_store::model::WorkSet;
use postern_store::{Heartbeat, Membership, Store};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::queue::{ClusterLink, Control};

/// Messages claimed per transaction: each is a short lock on that many rows, and a scheduler
/// takes a batch at a time.
pub const CLAIM_BATCH: u32 = 200;

/// The SMTP side of a node: what a drain stops, and the scheduler it releases.
pub struct SmtpSide {
    /// Cancelled to stop the SMTP listeners (sessions answer `421 4.3.2` and close).
    pub stop: CancellationToken,
    /// Cancelled by the MTA once every SMTP session has ended.
    pub stopped: CancellationToken,
    claimed: mpsc::Sender<WorkSet>,
    control: mpsc::Sender<Control>,
}

impl SmtpSide {
    /// The node's SMTP side, and the scheduler's end of it.
    pub fn new(stop: CancellationToken, stopped: CancellationToken) -> (SmtpSide, ClusterLink) {
        let (claimed, claimed_rx) = mpsc::channel(4);
        let (control, control_rx) = mpsc::channel(1);
        (
            SmtpSide { stop, stopped, claimed, control },
            ClusterLink { claimed: claimed_rx, control: control_rx },
        )
    }
}

/// Registers the node (alive, with a fresh lease): before its scheduler loads its queue, so
/// that nobody claims it meanwhile.
pub async fn join(store: &Store, membership: &Membership) -> postern_store::Result<()> {
    store.node_register(membership).await?;
    tracing::info!(node = %membership.node, dead_after_secs = membership.dead_after, smtp = membership.smtp, console = membership.console, "joined the cluster");
    Ok(())
}

/// What the heartbeat asks of the node's worker: anything that may take longer than a
/// heartbeat, so that the lease is renewed on time however long it takes.
enum Order {
    Drain,
    Reload,
}

/// Runs the heartbeat until `shutdown`. `smtp` is `None` on a console-only node, which holds
/// no queue and claims nothing.
///
/// The heartbeat only renews the lease and decides; claiming, draining and reloading run in a
/// worker task beside it. A heartbeat that waited for them (a claim handing 200 messages to a
/// busy scheduler, a drain waiting for its attempts) could let the lease lapse while the node
/// still works its messages, and the others would claim and send them a second time.
pub fn run(
    store: Store,
    membership: Membership,
    every: Duration,
    smtp: Option<SmtpSide>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let node = membership.node.clone();
        let claims = Arc::new(Notify::new());
        let (orders, worker) = match smtp {
            Some(side) => {
                let (orders, rx) = mpsc::unbounded_channel();
                let task =
                    tokio::spawn(work(store.clone(), node.clone(), side, rx, claims.clone()));
                (Some(orders), Some(task))
            }
            None => (None, None),
        };
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Asked to drain (or drained): no more claims, and a lapse is no reason to reload.
        let mut drained = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let beat = match store.node_heartbeat(&node, membership.dead_after).await {
                Ok(beat) => beat,
                Err(e) => {
                    // The lease runs out if this goes on; the others then take the queue, and
                    // the next heartbeat that gets through finds it lapsed.
                    tracing::warn!(error = %e, "cannot renew the node's lease");
                    continue;
                }
            };
            match beat {
                Heartbeat::Held { drain: true } if !drained => {
                    drained = true;
                    match &orders {
                        Some(orders) => {
                            let _ = orders.send(Order::Drain);
                        }
                        None => drain(&store, &node, None).await,
                    }
                }
                Heartbeat::Held { .. } if !drained => claims.notify_one(),
                Heartbeat::Held { .. } => {}
                Heartbeat::Drained => drained = true,
                Heartbeat::Lapsed | Heartbeat::Missing if drained => {}
                Heartbeat::Lapsed | Heartbeat::Missing => {
                    tracing::warn!(
                        node = %node,
                        "the node's lease lapsed; other nodes may have taken some of its \
                         messages: reloading the queue from the store"
                    );
                    if let Err(e) = store.node_register(&membership).await {
                        tracing::warn!(error = %e, "cannot register the node again");
                        continue;
                    }
                    if let Some(orders) = &orders {
                        let _ = orders.send(Order::Reload);
                    }
                }
            }
        }
        drop(orders);
        if let Some(worker) = worker {
            worker.abort();
            let _ = worker.await;
        }
    })
}

/// Carries out the heartbeat's orders and claims, one at a time.
async fn work(
    store: Store,
    node: String,
    side: SmtpSide,
    mut orders: mpsc::UnboundedReceiver<Order>,
    claims: Arc<Notify>,
) {
    loop {
        tokio::select! {
            biased;
            order = orders.recv() => match order {
                None => return,
                Some(Order::Drain) => drain(&store, &node, Some(&side)).await,
                Some(Order::Reload) => {
                    let (done, wait) = oneshot::channel();
                    if side.control.send(Control::Reload(done)).await.is_ok() {
                        let _ = wait.await;
                    }
                }
            },
            _ = claims.notified() => claim(&store, &node, &side).await,
        }
    }
}

/// Gives the lease up as the process stops (SIGTERM), once its scheduler has ended and its
/// queue writer has committed the last messages: the other nodes claim what is left at their
/// next heartbeat, as after a drain, instead of waiting for `dead_after`.
pub async fn leave(store: &Store, node: &str) {
    // A few tries only: the process is on its way out, and the lease lapses anyway.
    let mut backoff = Duration::from_millis(100);
    for _ in 0..5 {
        match store.node_drained(node).await {
            Ok(()) => {
                tracing::info!(node = %node, "lease given up: the other nodes take the queue");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot give the lease up; it lapses after dead_after");
                store.clock().sleep(backoff).await;
                backoff *= 2;
            }
        }
    }
}

/// Takes the queues of lapsed nodes, a batch at a time, into this node's scheduler.
async fn claim(store: &Store, node: &str, side: &SmtpSide) {
    loop {
        let work = match store.queue_claim(node, CLAIM_BATCH).await {
            Ok(work) => work,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim the messages of lapsed nodes");
                return;
            }
        };
        let n = work.messages.len() + work.damaged.len();
        if n == 0 || side.claimed.send(work).await.is_err() {
            return;
        }
        if n < CLAIM_BATCH as usize {
            return;
        }
    }
}

/// Stops SMTP, lets the scheduler end its attempts and write their results, then gives the
/// lease up: the other nodes claim whatever is left at their next heartbeat.
async fn drain(store: &Store, node: &str, smtp: Option<&SmtpSide>) {
    tracing::info!(node = %node, "draining: SMTP stops, the queue goes to the other nodes");
    if let Some(side) = smtp {
        side.stop.cancel();
        side.stopped.cancelled().await;
        let (done, wait) = oneshot::channel();
        if side.control.send(Control::Release(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
    let mut backoff = Duration::from_millis(100);
    while let Err(e) = store.node_drained(node).await {
        tracing::warn!(error = %e, "cannot record the drain; trying again");
        store.clock().sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    tracing::info!(node = %node, "drained");
}
