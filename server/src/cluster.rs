//! The node's membership among several engines on one store: its heartbeat renews its lease
//! (one row for its whole queue), claims the messages of nodes whose lease lapsed and hands
//! them to the scheduler, and carries out a drain an administrator asked for (SMTP stops, the
//! attempts in progress end, the lease is given up so that the others claim the queue at once).
//! The rules of the lease are the store's (`store/src/repo/cluster.rs`).

use std::time::Duration;

use postern_store::model::WorkSet;
use postern_store::{Heartbeat, Membership, Store};
use tokio::sync::{mpsc, oneshot};
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

/// Runs the heartbeat until `shutdown`. `smtp` is `None` on a console-only node, which holds
/// no queue and claims nothing.
pub fn run(
    store: Store,
    membership: Membership,
    every: Duration,
    smtp: Option<SmtpSide>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let node = membership.node.clone();
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drained = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
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
                    drain(&store, &node, smtp.as_ref()).await;
                    drained = true;
                }
                Heartbeat::Held { .. } => {
                    if let Some(side) = &smtp {
                        claim(&store, &node, side).await;
                    }
                }
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
                    if let Some(side) = &smtp {
                        let (done, wait) = oneshot::channel();
                        if side.control.send(Control::Reload(done)).await.is_ok() {
                            let _ = wait.await;
                        }
                    }
                }
            }
        }
    })
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
