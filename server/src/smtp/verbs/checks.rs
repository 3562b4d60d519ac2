//! Where the session meets the policy services and the header and body checks
//! (`crate::policy::delegate`, `crate::policy::content`): the services of the rcpt stage after
//! each recipient the other checks accepted, and, once the message is whole, the content checks
//! then the services of the data stage.

use postern_store::model::ServiceStage;
use smtp_proto::RcptTo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::policy::content::{self, Outcome};
use crate::policy::delegate::Query;
use crate::policy::{Decision, Effects};
use crate::smtp::reply::Reply;
use crate::smtp::session::{Session, Transaction};
use crate::smtp::verbs::data::Inbound;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// RCPT, then the rcpt-stage policy services for a recipient it accepted. Like Postfix's
    /// `check_policy_service` after `reject_unauth_destination`, a service is only asked about
    /// recipients we would take; its refusal takes the recipient back out.
    pub(in crate::smtp) async fn rcpt_delegated(
        &mut self,
        to: RcptTo<String>,
        line: &[u8],
    ) -> Reply {
        let before = self.tx.as_ref().map(|tx| tx.effects.clone());
        let reply = self.rcpt(to, line).await;
        let snapshot = self.ctx.engine.snapshot();
        let services = &snapshot.config.policy_services;
        if reply.code != 250 || !services.iter().any(|s| s.enabled && s.stage == ServiceStage::Rcpt)
        {
            return reply;
        }
        let Some(tx) = &self.tx else { return reply };
        if tx.recipients.len() == 1 {
            self.delegation.begin_message();
        }
        let mut query = self.query(tx);
        query.recipient = tx.recipients.last().map(|r| r.address.clone()).unwrap_or_default();
        query.recipient_count = tx.recipients.len() - 1;
        let mut effects = tx.effects.clone();
        let who = self.client_description();
        let decision =
            self.delegation.consult(services, ServiceStage::Rcpt, &query, &mut effects, &who).await;
        if let Decision::Refuse(refusal, reason) = &decision {
            self.log_refusal("rcpt", refusal, reason, None, &[query.recipient.as_str()]);
        }
        let Some(tx) = &mut self.tx else { return reply };
        match decision {
            Decision::Continue => {
                tx.effects = effects;
                reply
            }
            Decision::Refuse(refusal, _) => {
                tx.recipients.pop();
                if let Some(before) = before {
                    tx.effects = before;
                }
                refusal
            }
        }
    }

    /// The header and body checks, then the data-stage policy services, on a whole message.
    /// `Err` is the reply to send instead of queueing: a refusal, or the 250 of a dropped
    /// message.
    pub(in crate::smtp) async fn end_of_data(
        &mut self,
        mut tx: Transaction,
        message: Vec<u8>,
        mut inbound: Inbound,
    ) -> Result<(Transaction, Vec<u8>, Inbound), Reply> {
        let snapshot = self.ctx.engine.snapshot();
        let who = self.client_description();
        let message = match content::apply(
            &snapshot.config.content_checks,
            message,
            &mut tx.effects,
            &who,
            &tx.sender,
        ) {
            Outcome::Accept { message, held } => {
                inbound.held |= held;
                message
            }
            Outcome::Refuse(reply, reason) => {
                self.log_refusal("data", &reply, &reason, Some(&tx.sender), &recipients(&tx));
                return Err(reply);
            }
            Outcome::Discard { rule, reason } => {
                tracing::info!(rule, from = %tx.sender, client = %who, "discarded by content check");
                self.log_discard(&tx, &reason);
                return Err(Reply::new(250, "2.0.0", "Ok"));
            }
        };
        let size = message.len();
        let tx = self.data_services(tx, size).await?;
        Ok((tx, message, inbound))
    }

    /// The data-stage policy services for a message of `size` bytes, and a DISCARD one of
    /// them answered; a refusal ends the transaction.
    pub(in crate::smtp) async fn data_services(
        &mut self,
        mut tx: Transaction,
        size: usize,
    ) -> Result<Transaction, Reply> {
        let snapshot = self.ctx.engine.snapshot();
        let who = self.client_description();
        let services = &snapshot.config.policy_services;
        if services.iter().any(|s| s.enabled && s.stage == ServiceStage::Data) {
            // One instance per message: the rcpt stage's, or a new one when no service asked.
            if !services.iter().any(|s| s.enabled && s.stage == ServiceStage::Rcpt) {
                self.delegation.begin_message();
            }
            let mut query = self.query(&tx);
            if let [only] = tx.recipients.as_slice() {
                query.recipient = only.address.clone();
            }
            query.recipient_count = tx.recipients.len();
            query.size = size;
            let mut effects: Effects = tx.effects.clone();
            match self
                .delegation
                .consult(services, ServiceStage::Data, &query, &mut effects, &who)
                .await
            {
                Decision::Continue => tx.effects = effects,
                Decision::Refuse(reply, reason) => {
                    self.log_refusal("data", &reply, &reason, Some(&tx.sender), &recipients(&tx));
                    return Err(reply);
                }
            }
        }
        // A policy service's DISCARD (rule id 0; access rules' are dropped when queued).
        if tx.effects.discard == Some(0) {
            tracing::info!(
                from = %tx.sender,
                client = %who,
                note = tx.effects.note().as_deref().unwrap_or(""),
                "discarded by policy service"
            );
            let reason = tx.effects.note().unwrap_or_else(|| "policy service DISCARD".into());
            self.log_discard(&tx, &reason);
            return Err(Reply::new(250, "2.0.0", "Ok"));
        }
        Ok(tx)
    }

    /// What every request to a policy service says about this session and transaction.
    fn query(&self, tx: &Transaction) -> Query {
        let tls = self.conn.get_ref().tls_description().unwrap_or_default();
        let (protocol, cipher) = tls.split_once(" with cipher ").unwrap_or((&tls, ""));
        Query {
            protocol_name: match &self.helo {
                Some((_, true)) => "ESMTP",
                _ => "SMTP",
            }
            .into(),
            helo_name: self.helo.as_ref().map(|(h, _)| h.clone()).unwrap_or_default(),
            sender: tx.sender.clone(),
            client: Some(self.peer),
            client_name: self.rdns.clone().unwrap_or_else(|| "unknown".into()),
            instance: self.delegation.instance().to_string(),
            sasl_username: self.auth.as_ref().map(ToString::to_string).unwrap_or_default(),
            sasl_method: self.auth_mechanism.unwrap_or_default().to_string(),
            // MAIL's SIZE= until the message is whole (the data stage sets the real size).
            size: tx.size,
            encryption_protocol: protocol.to_string(),
            encryption_cipher: cipher.to_string(),
            // `queue_id` stays empty: the queue ID is given when the message is committed,
            // after the services of both stages have answered.
            ..Default::default()
        }
    }
}

/// The recipients of a transaction as the client named them, for the delivery log.
pub(in crate::smtp) fn recipients(tx: &Transaction) -> Vec<&str> {
    tx.recipients.iter().map(|r| r.address.as_str()).collect()
}
