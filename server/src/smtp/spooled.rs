//! The end of a message whose body went to the spool as it arrived (`smtp/body.rs`): what is
//! checked on its first part, what is read back whole, and what is left unchecked.
//!
//! Header-only checks (the author addresses of a submission, the header checks, `Message-ID:`
//! and `Date:` for submissions) read the first [`postern_store::spool::INLINE_MAX`] bytes kept in
//! memory. What needs the message in one piece — milters (they may rewrite the body), body checks
//! (they may rewrite it too), DKIM/ARC/DMARC verification and DKIM signing (mail-auth hashes a
//! slice) — gets the body read back whole from the spool when the message is at most
//! [`WHOLE_MAX`], and then runs exactly as for a small message. Above it they are skipped, as
//! rspamd (`max_message`) and the SpamAssassin and ClamAV milters skip large mail: the inbound
//! verdict becomes SPF alone with `dkim=none (message too large to verify)`, and the skip is
//! logged. Our fields (`Received:`, `Authentication-Results:`, PREPENDs) are stored apart, in
//! front of the spooled body, which is never copied.

use postern_store::spool::SpooledBody;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::policy::content::{self, Outcome};
use crate::smtp::authors;
use crate::smtp::body::Spooled;
use crate::smtp::reply::Reply;
use crate::smtp::session::{Session, Transaction};

/// The largest message read back whole for the checks that need it in one piece: a session
/// holds at most this much (plus the copies those checks make) however large the message.
pub const WHOLE_MAX: usize = 8 << 20;

fn header_block(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => &message[..at + 4],
        None => message,
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
            if len <= WHOLE_MAX as u64 {
                return match store.spool_read(&body_ref, WHOLE_MAX).await {
                    Ok(Some(body)) => self.finish_whole(tx, body, Some(pending)).await,
                    Ok(None) | Err(_) => {
                        tracing::error!(body_ref, "cannot read a spooled message back");
                        Reply::new(451, "4.3.0", "Error: queue file read error, try again later")
                    }
                };
            }
            tracing::warn!(
                size = len,
                limit = WHOLE_MAX,
                client = %self.client_description(),
                from = %tx.sender,
                milters = self.milters.is_some(),
                "message too large for milters, body checks and DKIM: only its header block is checked"
            );
        }
        if let Some(milters) = self.milters.as_mut() {
            // They saw the envelope; the message they will not see.
            milters.abort().await;
        }
        let header = header_block(&head).to_vec();
        let (auth_fields, mut inbound) = match self.check_inbound_as(&tx, header, true).await {
            Ok(checked) => checked,
            Err(reply) => return reply,
        };
        // Header checks on the header block; a rewrite cannot be applied to the spooled body.
        let mut tx = tx;
        let who = self.client_description();
        let snapshot = self.ctx.engine.snapshot();
        let checks = &snapshot.config.content_checks;
        let header = header_block(&head).to_vec();
        match content::apply(checks, header, &mut tx.effects, &who, &tx.sender) {
            Outcome::Accept { held, .. } => inbound.held |= held,
            Outcome::Refuse(reply, reason) => {
                let recipients = super::verbs::checks::recipients(&tx);
                self.log_refusal("data", &reply, &reason, Some(&tx.sender), &recipients);
                return reply;
            }
            Outcome::Discard { rule, reason } => {
                tracing::info!(rule, from = %tx.sender, client = %who, "discarded by content check");
                self.log_discard(&tx, &reason);
                return Reply::new(250, "2.0.0", "Ok");
            }
        }
        let size = usize::try_from(len).unwrap_or(usize::MAX);
        let tx = match self.data_services(tx, size).await {
            Ok(tx) => tx,
            Err(reply) => return reply,
        };
        let mut prefix = self.our_fields(&tx, &head).into_bytes();
        prefix.extend_from_slice(&auth_fields);
        let spooled = SpooledBody { body_ref: pending.take(), len, prefix: true };
        self.queue_message(tx, prefix, inbound, Some(spooled)).await
    }

    /// Queues `message`, checked whole after it was read back from the spool: when it still
    /// ends with the spooled body (the checks only put fields in front, as they mostly do),
    /// only what is in front is stored anew, and the spooled body stays; else (a milter or a
    /// body check rewrote it) it is queued as any whole message, and the spooled one removed.
    pub(in crate::smtp) async fn queue_reusing(
        &mut self,
        tx: Transaction,
        message: Vec<u8>,
        inbound: crate::smtp::verbs::data::Inbound,
        pending: Pending,
    ) -> Reply {
        let len = usize::try_from(pending.len).unwrap_or(usize::MAX);
        if let Some(front) = message.len().checked_sub(len)
            && let Some(body_ref) = pending.body_ref.as_deref()
            && matches!(pending.store.spool_equals(body_ref, &message[front..]).await, Ok(true))
        {
            let prefix = message[..front].to_vec();
            drop(message);
            let len = pending.len;
            let spooled = SpooledBody { body_ref: pending.take(), len, prefix: true };
            return self.queue_message(tx, prefix, inbound, Some(spooled)).await;
        }
        drop(pending);
        self.accept_message(tx, message, inbound).await
    }
}
