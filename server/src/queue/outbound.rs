//! Delivery to a fixed next hop through the connection cache ([`Pool`]), under the
//! destination's concurrency limit, and the global delivery slot a delivery task holds.
//!
//! [`WAITING`]: crate::delivery::pool::WAITING

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::delivery::pool::{Key, Permit, Pool, Waiting};
use crate::delivery::{ClientOptions, Target};

/// A delivery task's share of the scheduler's global concurrency: one slot, held while any of
/// the message's route groups (delivered concurrently) is at work, and given back while every
/// one left is waiting for its destination's turn.
pub(super) struct Slot {
    slots: Arc<Semaphore>,
    state: Mutex<Held>,
}

struct Held {
    permit: Option<OwnedSemaphorePermit>,
    /// Groups at work (not waiting for a destination, not done).
    active: usize,
}

impl Slot {
    /// `held` for `groups` groups, all at work.
    pub(super) fn new(slots: Arc<Semaphore>, held: OwnedSemaphorePermit, groups: usize) -> Slot {
        Slot { slots, state: Mutex::new(Held { permit: Some(held), active: groups }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A group stops working (it waits, or it is done): the last one gives the slot back.
    pub(super) fn leave(&self) {
        let mut held = self.lock();
        held.active = held.active.saturating_sub(1);
        if held.active == 0 {
            held.permit = None;
        }
    }

    /// A group works again: it takes the slot back if nobody holds it (behind whoever asked
    /// first).
    pub(super) async fn enter(&self) {
        {
            let mut held = self.lock();
            if held.permit.is_some() {
                held.active += 1;
                return;
            }
        }
        let permit = self.slots.clone().acquire_owned().await.ok();
        let mut held = self.lock();
        // Another group may have taken it back meanwhile: one is enough.
        if held.permit.is_none() {
            held.permit = permit;
        }
        held.active += 1;
    }
}

impl Waiting for Slot {
    fn leave(&self) {
        Slot::leave(self);
    }

    fn enter(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Slot::enter(self))
    }
}

/// Waits for a turn at `target`'s destination: the permit to hold while delivering there.
///
/// Run under [`WAITING`] (the job's slot): a group waiting for a busy destination stops counting
/// as at work meanwhile (the task's global slot goes back when no group of it is at work), and
/// is counted again once the destination lets it in: otherwise a slow destination with a
/// backlog would fill every slot with tasks waiting for it, and mail to every other destination
/// would wait too. MX deliveries wait the same way inside the courier ([`Pool::permit`]).
pub(super) async fn turn(pool: &Pool, target: &Target, options: &ClientOptions) -> Option<Permit> {
    pool.permit(&Key::new(target, options)).await
}
