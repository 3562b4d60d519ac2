//! Delivery to a fixed next hop through the connection cache ([`Pool`]), under the
//! destination's concurrency limit, and the global delivery slot a delivery task holds.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::delivery::pool::{Key, Permit, Pool};
use crate::delivery::{ClientOptions, Target};

/// A delivery task's share of the scheduler's global concurrency.
pub(super) struct Slot {
    slots: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl Slot {
    pub(super) fn new(slots: Arc<Semaphore>, held: OwnedSemaphorePermit) -> Slot {
        Slot { slots, held: Some(held) }
    }
}

/// Waits for a turn at `target`'s destination: the permit to hold while delivering there.
///
/// A task waiting for a busy destination gives its global slot back meanwhile, and takes one
/// again (behind whoever asked first) once the destination lets it in: otherwise a slow
/// destination with a backlog would fill every slot with tasks waiting for it, and mail to
/// every other destination would wait too.
pub(super) async fn turn(
    pool: &Pool,
    slot: &mut Slot,
    target: &Target,
    options: &ClientOptions,
) -> Option<Permit> {
    let key = Key::new(target, options);
    if let Some(permit) = pool.try_permit(&key) {
        return Some(permit);
    }
    slot.held = None;
    let permit = pool.permit(&key).await;
    slot.held = slot.slots.clone().acquire_owned().await.ok();
    permit
}
