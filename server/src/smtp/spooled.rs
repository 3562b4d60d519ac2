//! The end of a message whose body went to the spool as it arrived (`smtp/body.rs`): what is
//! checked on its first part, and how it is read back whole for the checks that need it so.
//!
//! Header-only checks (the author addresses of a submission, `Message-ID:` and `Date:` for
//! submissions) read the first [`postern_store::spool::INLINE_MAX`] bytes kept in memory. What
//! needs the message in one piece — milters (they may rewrite the body), body checks (they may
//! rewrite it too), DKIM/ARC/DMARC verification and DKIM signing (mail-auth parses and hashes a
//! slice) — gets the body read back whole from the spool, whatever its size: nothing is skipped.
//! Memory stays bounded by a budget of bytes for the whole process, [`WHOLE_BUDGET`]: each such
//! read first takes the message's size from it (all of it for a message larger than the budget)
//! and gives it back once the message is queued, so that five 40 MB messages arriving at once
//! are checked one after another while their bodies keep streaming to the spool. A message
//! that finds no room within [`BUDGET_WAIT`] is deferred (`451 4.3.2`). Our fields
//! (`Received:`, `Authentication-Results:`, `DKIM-Signature:`, PREPENDs) are stored apart, in
//! front of the spooled body, which is not copied again unless a check rewrote it.
//!
//! Why a budget rather than streaming each check: mail-auth's signer and verifier take the
//! message as slices (the signer takes the fields we add as a slice of their own, so that they
//! are signed without copying the message), and the milters and body checks can rewrite the
//! message; streaming them would mean a DKIM implementation and a MIME decoder of our own.

use std::time::Duration;

use postern_store::spool::SpooledBody;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::smtp::authors;
use crate::smtp::body::Spooled;
use crate::smtp::reply::Reply;
use crate::smtp::session::{Session, Transaction};

/// How many bytes of spooled messages the whole process may hold, read back whole, at once.
/// The checks copy a message once or twice more (a milter's or body check's rewrite, the
/// `Authentication-Results:` field put in front), so the peak is a small multiple of this, or of
/// the largest message when that is larger; `[smtp] max_message_size` (50 MiB by default)
/// bounds both.
pub const WHOLE_BUDGET: usize = 48 << 20;

/// How long a message waits for room in the budget before it is deferred: long enough for a
/// queue of large messages ahead of it, well inside the 10 minutes a client waits after its
/// final dot (RFC 5321 §4.5.3.2.6).
pub const BUDGET_WAIT: Duration = Duration::from_secs(300);

static WHOLE: Semaphore = Semaphore::const_new(WHOLE_BUDGET);

/// Room in [`WHOLE_BUDGET`] for a message of `len` bytes, held until dropped; `None` if none
/// came within [`BUDGET_WAIT`].
pub(in crate::smtp) async fn reserve(len: u64) -> Option<SemaphorePermit<'static>> {
    let want = u32::try_from(len.min(WHOLE_BUDGET as u64)).unwrap_or(u32::MAX);
    match tokio::time::timeout(BUDGET_WAIT, WHOLE.acquire_many(want)).await {
        Ok(Ok(permit)) => Some(permit),
        // The semaphore is never closed; a timeout is the only way here.
        Ok(Err(_)) | Err(_) => None,
    }
}

/// A spooled body that is removed unless it is handed on: whatever way the message ends
/// (a refusal, a discard, the session dropped), nothing is left in the spool.
pub(in crate::smtp) struct Pending {
    store: postern_store::Store,
    body_ref: Option<String>,
    len: u64,
}

impl Pending {
    fn take(mut self) -> String {
        self.body_ref.take().unwrap_or_default()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(body_ref) = self.body_ref.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let store = self.store.clone();
            runtime.spawn(async move { store.spool_discard(&[body_ref]).await });
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Whether a check that needs the whole message applies to this transaction.
    fn needs_whole(&self) -> bool {
        let snapshot = self.ctx.engine.snapshot();
        let verifies = self.ctx.verifier.is_some()
            && self.kind == crate::smtp::ListenerKind::Smtp
            && self.auth.is_none()
            && !snapshot.config.is_trusted(self.peer.ip());
        self.milters.as_ref().is_some_and(|m| !m.is_empty())
            || !snapshot.config.content_checks.is_empty()
            || verifies
            || self.may_sign()
    }

    /// Checks, and queues, a message whose body is in the spool. The transaction is over
    /// either way.
    pub(in crate::smtp) async fn finish_spooled(
        &mut self,
        tx: Transaction,
        mut spooled: Spooled,
    ) -> Reply {
        let head = std::mem::take(&mut spooled.head);
        let len = spooled.len;
        let store = spooled.store().clone();
        if let Some(user) = &self.auth
            && let Some(reply) = authors::check(&self.ctx.engine.snapshot().config, user, &head)
        {
            tracing::info!(%user, client = %self.client_description(), %reply, "submission refused");
            return reply;
        }
        let body_ref = match spooled.commit().await {
            Ok(body_ref) => body_ref,
            Err(e) => {
                tracing::error!(error = %e, client = %self.client_description(), "cannot spool a message");
                return Reply::new(451, "4.3.0", "Error: queue file write error, try again later");
            }
        };
        let pending = Pending { store: store.clone(), body_ref: Some(body_ref.clone()), len };
        if self.needs_whole() {
            let waited = std::time::Instant::now();
            let Some(_room) = reserve(len).await else {
                tracing::warn!(
                    size = len,
                    budget = WHOLE_BUDGET,
                    client = %self.client_description(),
                    "no room to check a large message within {BUDGET_WAIT:?}: deferred"
                );
                return Reply::new(
                    451,
                    "4.3.2",
                    "Error: too busy to check the message, try again later",
                );
            };
            if waited.elapsed() > Duration::from_secs(1) {
                tracing::info!(size = len, waited = ?waited.elapsed(), "a large message waited for room to be checked whole");
            }
            // Held until the message is queued: it is in memory until then.
            return match store
                .spool_read(&body_ref, usize::try_from(len).unwrap_or(usize::MAX))
                .await
            {
                Ok(Some(body)) => self.finish_whole(tx, body, Some(pending)).await,
                Ok(None) | Err(_) => {
                    tracing::error!(body_ref, "cannot read a spooled message back");
                    Reply::new(451, "4.3.0", "Error: queue file read error, try again later")
                }
            };
        }
        // No milter, body or header check, verification or signing applies: only the policy
        // services see it (with its size), and nothing but the spooled body is read.
        if let Some(milters) = self.milters.as_mut() {
            // An empty chain: nothing to tell.
            milters.abort().await;
        }
        let size = usize::try_from(len).unwrap_or(usize::MAX);
        let tx = match self.data_services(tx, size).await {
            Ok(tx) => tx,
            Err(reply) => return reply,
        };
        let prefix = self.our_fields(&tx, &head).into_bytes();
        let spooled = SpooledBody { body_ref: pending.take(), len, prefix: true };
        let inbound = crate::smtp::verbs::data::Inbound::default();
        self.queue_message(tx, prefix, inbound, Some(spooled)).await
    }

    /// Queues `message`, checked whole after it was read back from the spool, with `front`
    /// (our fields and signatures) before it: when it still ends with the spooled body (the
    /// checks only put fields in front, as they mostly do), only what is in front is stored
    /// anew, and the spooled body stays; else (a milter or a body check rewrote it) it is queued
    /// as any whole message, and the spooled one removed.
    pub(in crate::smtp) async fn queue_reusing(
        &mut self,
        tx: Transaction,
        mut front: Vec<u8>,
        message: Vec<u8>,
        inbound: crate::smtp::verbs::data::Inbound,
        pending: Pending,
    ) -> Reply {
        let len = usize::try_from(pending.len).unwrap_or(usize::MAX);
        if let Some(at) = message.len().checked_sub(len)
            && let Some(body_ref) = pending.body_ref.as_deref()
            && matches!(pending.store.spool_equals(body_ref, &message[at..]).await, Ok(true))
        {
            front.extend_from_slice(&message[..at]);
            drop(message);
            let len = pending.len;
            let spooled = SpooledBody { body_ref: pending.take(), len, prefix: true };
            return self.queue_message(tx, front, inbound, Some(spooled)).await;
        }
        drop(pending);
        front.extend_from_slice(&message);
        drop(message);
        self.accept_message(tx, front, inbound).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{WHOLE_BUDGET, reserve};

    /// A message larger than the budget takes all of it, and the next waits until it is
    /// given back. (Other tests of this process may hold part of it for a moment: this one
    /// only ever waits longer, never wrongly gets room.)
    #[tokio::test]
    async fn the_budget_lets_one_large_message_at_a_time() {
        let whole = reserve(3 * WHOLE_BUDGET as u64).await.expect("room, eventually");
        assert_eq!(whole.num_permits(), WHOLE_BUDGET);
        let waiting = tokio::spawn(reserve(1 << 20));
        // One thread: each yield lets the waiting task run until it waits for room.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "no room while the large one holds the budget");
        drop(whole);
        let next = tokio::time::timeout(Duration::from_secs(10), waiting).await;
        assert!(next.expect("room once given back").unwrap().is_some());
    }
}
