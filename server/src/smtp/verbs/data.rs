//! DATA (RFC 5321 §4.1.1.4): read the body to `<CRLF>.<CRLF>`, check it, queue it.

use tokio::io::{AsyncRead, AsyncWrite};

use postern_store::model::PolicyStage;

use crate::mailauth::{self, Disposition};
use crate::smtp::ListenerKind;
use crate::smtp::authors;
use crate::smtp::body::{Body, BodyError, Finished};
use crate::smtp::data::read_data;
use crate::smtp::reply::Reply;
use crate::smtp::session::{Session, Transaction};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(in crate::smtp) async fn data(&mut self) -> std::io::Result<Reply> {
        let Some(tx) = &self.tx else {
            return Ok(Reply::new(503, "5.5.1", "Error: need RCPT command"));
        };
        if tx.failed || tx.chunks.is_some() {
            return Ok(Reply::new(503, "5.5.1", "Error: DATA after BDAT; send RSET"));
        }
        if tx.recipients.is_empty() {
            return Ok(Reply::new(554, "5.5.1", "Error: no valid recipients"));
        }
        if let Some(reply) = self.data_policy() {
            return Ok(reply);
        }
        if let Some(reply) = self.milter_data().await {
            return Ok(reply);
        }
        self.answer(Reply::new(354, "2.0.0", "End data with <CR><LF>.<CR><LF>"));
        self.flush().await?;
        let mut body = Body::spooling(self.ctx.limits.max_message_size, self.ctx.sink.spool());
        let read = tokio::time::timeout(
            self.ctx.limits.data_timeout,
            read_data(&mut self.conn, &mut body),
        )
        .await;
        let tx = self.tx.take().expect("checked above");
        if let Some(reply) = self.body_read(read)? {
            return Ok(reply);
        }
        Ok(self.finish_message(tx, body).await)
    }

    /// The data-stage access rules, once per transaction (at DATA or the first BDAT), with
    /// every accepted recipient known. A refusal ends the transaction.
    pub(in crate::smtp) fn data_policy(&mut self) -> Option<Reply> {
        let tx = self.tx.as_ref()?;
        if tx.data_checked {
            return None;
        }
        let mut effects = tx.effects.clone();
        let recipients: Vec<&str> = tx.recipients.iter().map(|r| r.address.as_str()).collect();
        let refusal = self.policy(PolicyStage::Data, None, None, recipients, &mut effects);
        if refusal.is_some() {
            self.reset();
        } else if let Some(tx) = &mut self.tx {
            tx.effects = effects;
            tx.data_checked = true;
        }
        refusal
    }

    /// Checks a complete body, adds our headers and queues it. The transaction is over either way.
    pub(in crate::smtp) async fn finish_message(&mut self, tx: Transaction, body: Body) -> Reply {
        let body = match body.finish_streamed().await {
            Ok(Finished::Whole(body)) => body,
            Ok(Finished::Spooled(spooled)) => return self.finish_spooled(tx, spooled).await,
            Err(e) => return body_error(e),
        };
        self.finish_whole(tx, body, None).await
    }

    /// [`Session::finish_message`] for a message held whole in memory; `spooled`: it was read
    /// back from the spool, where it stays if what is queued still ends with it.
    pub(in crate::smtp) async fn finish_whole(
        &mut self,
        tx: Transaction,
        body: Vec<u8>,
        spooled: Option<crate::smtp::spooled::Pending>,
    ) -> Reply {
        if let Some(user) = &self.auth
            && let Some(reply) = authors::check(&self.ctx.engine.snapshot().config, user, &body)
        {
            tracing::info!(%user, client = %self.client_description(), %reply, "submission refused");
            return reply;
        }
        let (tx, body, milter_hold) = match self.milter_message(tx, body).await {
            Ok(filtered) => filtered,
            Err(reply) => return reply,
        };
        let (body, mut inbound) = match self.check_inbound(&tx, body).await {
            Ok(checked) => checked,
            Err(reply) => return reply,
        };
        inbound.held |= milter_hold;
        let (tx, body, inbound) = match self.end_of_data(tx, body, inbound).await {
            Ok(checked) => checked,
            Err(reply) => return reply,
        };
        if let Some(spooled) = spooled {
            // Our fields, and the signatures over them and the message, go in front without
            // copying the message (which may be tens of megabytes).
            let fields = self.our_fields(&tx, &body);
            let mut front = self.signatures(&tx, fields.as_bytes(), &body).into_bytes();
            front.extend_from_slice(fields.as_bytes());
            return self.queue_reusing(tx, front, body, inbound, spooled).await;
        }
        let message = self.add_headers(&tx, body);
        self.accept_message(tx, message, inbound).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// SPF, DKIM, ARC and DMARC on what arrives on port 25 from a client that is neither
    /// signed in nor trusted; the result goes on top as `Authentication-Results:`, and the
    /// inbound policy of the recipients' domain (or the global one) says what happens next.
    async fn check_inbound(
        &self,
        tx: &Transaction,
        body: Vec<u8>,
    ) -> Result<(Vec<u8>, Inbound), Reply> {
        let Some(verifier) = &self.ctx.verifier else {
            return Ok((body, Inbound::default()));
        };
        let snapshot = self.ctx.engine.snapshot();
        if self.kind != ListenerKind::Smtp
            || self.auth.is_some()
            || snapshot.config.is_trusted(self.peer.ip())
        {
            return Ok((body, Inbound::default()));
        }
        let helo = self.helo.as_ref().map_or("", |(h, _)| h.as_str());
        let verdict = verifier.verify(self.peer.ip(), helo, &tx.sender, &body).await;
        // The verdict holds the message with its field in front: this copy goes now.
        drop(body);
        let domains = tx.recipients.iter().map(|r| {
            let address = r.orcpt.split_once(';').map_or(r.orcpt.as_str(), |(_, a)| a);
            address.rsplit_once('@').map_or("", |(_, d)| d)
        });
        let policy = snapshot.config.mail_auth.for_recipients(domains);
        let disposition = mailauth::decide(&verdict, &policy);
        tracing::info!(
            client = %self.client_description(),
            sender = %tx.sender,
            ?disposition,
            "{}",
            verdict.summary
        );
        let refused = |reply: Reply| {
            let reason = format!("inbound mail authentication policy: {}", verdict.summary);
            let recipients = super::checks::recipients(tx);
            self.log_refusal("data", &reply, &reason, Some(&tx.sender), &recipients);
            Err(reply)
        };
        match disposition {
            Disposition::Reject { code, text } => refused(Reply::new(550, code, text)),
            Disposition::Defer { code, text } => refused(Reply::new(451, code, text)),
            Disposition::Accept { held, tags } => {
                let mut tagged = String::new();
                for tag in &tags {
                    tagged.push_str(&format!("{}: {tag}\r\n", mailauth::TAG_FIELD));
                }
                // The verdict's copy of the message, with the tags in front: not copied again.
                let mut message = verdict.message;
                if !tagged.is_empty() {
                    message.splice(0..0, tagged.into_bytes());
                }
                let mut results = verdict.summary;
                if !tags.is_empty() {
                    results.push_str(&format!(" tagged=\"{}\"", tags.join("; ")));
                }
                Ok((message, Inbound { held, auth_results: Some(results) }))
            }
        }
    }
}

/// What the inbound checks leave for the queue.
#[derive(Debug, Default)]
pub(in crate::smtp) struct Inbound {
    /// Queue the message on hold (a DMARC quarantine).
    pub held: bool,
    /// The checks' results in one line.
    pub auth_results: Option<String>,
}

pub(in crate::smtp) fn body_error(error: BodyError) -> Reply {
    match error {
        BodyError::TooBig => Reply::new(552, "5.3.4", "Message size exceeds fixed limit"),
        // Refused, not repaired: a bare line ending is how SMTP smuggling starts.
        BodyError::BareLineEnding => {
            Reply::new(550, "5.5.2", "Error: message contains a bare CR or LF")
        }
        BodyError::Nul => Reply::new(550, "5.6.0", "Error: message contains a NUL character"),
        BodyError::Loop => Reply::new(554, "5.4.6", "Error: too many Received: headers, mail loop"),
        BodyError::Storage => {
            Reply::new(451, "4.3.0", "Error: queue file write error, try again later")
        }
    }
}
