//! The session's side of the milters (`crate::milter`): each command goes to them once we
//! would accept it, so that a milter's refusal replaces our `250`; at the end of DATA or BDAT
//! the whole message goes to them before our own headers are added, and their changes to the
//! message and the envelope are applied before it is queued.

use postern_store::model::Notify;
use tokio::io::{AsyncRead, AsyncWrite};

use super::reply::Reply;
use super::session::{Recipient, Session, Transaction};
use crate::milter::{Chain, ConnectInfo};

/// The ESMTP parameters of a MAIL or RCPT command line, after the path.
fn esmtp_params(line: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(line);
    let Some((_, rest)) = text.split_once(':') else { return Vec::new() };
    let rest = rest.trim_start();
    let after = if rest.starts_with('<') {
        // The path ends at the first '>' outside a quoted local part.
        let mut quoted = false;
        let mut end = rest.len();
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = !quoted,
                '>' if !quoted => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        &rest[end..]
    } else {
        rest.split_once(' ').map_or("", |(_, r)| r)
    };
    after.split_ascii_whitespace().map(String::from).collect()
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Connects to the milters that serve this listener and tells them who connected; `Some`
    /// is the refusal to send instead of the greeting.
    pub(super) async fn milter_connect(&mut self) -> Option<Reply> {
        let milters = self.ctx.engine.snapshot().config.milters.clone();
        if !milters.iter().any(|m| m.enabled) {
            return None;
        }
        let mut chain = Chain::open(&milters, self.kind.name()).await;
        if chain.is_empty() {
            return None;
        }
        let info = ConnectInfo {
            hostname: &self.ctx.hostname,
            listener: self.kind.name(),
            local: self.local,
            client: self.peer,
            client_name: self.rdns.as_deref(),
        };
        let refusal = chain.connect(&info).await;
        if let Some(reply) = &refusal {
            self.log_refusal("connect", reply, &chain.refused_by(), None, &[]);
        }
        self.milters = Some(chain);
        refusal
    }

    /// HELO or EHLO, once we accepted it.
    pub(super) async fn milter_helo(&mut self, reply: Reply, host: &str) -> Reply {
        let tls = self.conn.get_ref().tls_description();
        let Some(chain) = self.milters.as_mut().filter(|_| reply.code == 250) else { return reply };
        match chain.helo(host, tls.as_deref()).await {
            Some(refusal) => {
                let reason = chain.refused_by();
                self.helo = None;
                self.log_refusal("helo", &refusal, &reason, None, &[]);
                refusal
            }
            None => reply,
        }
    }

    /// MAIL, once we accepted it: a refusal ends the transaction before it starts.
    pub(super) async fn milter_mail(&mut self, reply: Reply, line: &[u8]) -> Reply {
        let Some(chain) = self.milters.as_mut().filter(|_| reply.code == 250) else { return reply };
        let Some(tx) = &self.tx else { return reply };
        let auth =
            self.auth.as_ref().map(|a| (a.to_string(), self.auth_mechanism.unwrap_or("PLAIN")));
        let auth = auth.as_ref().map(|(user, mechanism)| (user.as_str(), *mechanism));
        match chain.mail(&tx.sender, &esmtp_params(line), auth).await {
            Some(refusal) => {
                let reason = chain.refused_by();
                self.log_refusal("mail", &refusal, &reason, None, &[]);
                self.reset();
                refusal
            }
            None => reply,
        }
    }

    /// RCPT: our checks and the policy services first, then the milters; a milter's refusal takes back this recipient.
    pub(super) async fn rcpt_and_milters(
        &mut self,
        to: smtp_proto::RcptTo<String>,
        line: &[u8],
    ) -> Reply {
        if self.milters.is_none() {
            return self.rcpt_delegated(to, line).await;
        }
        let before = self.tx.as_ref().map(|t| (t.recipients.len(), t.effects.clone()));
        let reply = self.rcpt_delegated(to, line).await;
        let (Some(chain), Some(tx), Some((count, effects))) =
            (self.milters.as_mut(), self.tx.as_mut(), before)
        else {
            return reply;
        };
        if reply.code != 250 || tx.recipients.len() != count + 1 {
            return reply;
        }
        let address = tx.recipients[count].address.clone();
        match chain.rcpt(&address, &esmtp_params(line)).await {
            Some(refusal) => {
                tx.recipients.truncate(count);
                tx.effects = effects;
                let reason = chain.refused_by();
                self.log_refusal("rcpt", &refusal, &reason, None, &[address.as_str()]);
                refusal
            }
            None => reply,
        }
    }

    /// DATA or the first BDAT, once the envelope is complete. A refusal ends the transaction.
    pub(in crate::smtp) async fn milter_data(&mut self) -> Option<Reply> {
        let chain = self.milters.as_mut()?;
        self.tx.as_ref()?;
        let refusal = chain.data().await;
        if let Some(reply) = &refusal {
            let reason = chain.refused_by();
            let tx = self.tx.as_ref()?;
            self.log_refusal("data", reply, &reason, None, &super::verbs::checks::recipients(tx));
            self.reset();
        }
        refusal
    }

    /// The whole message to the milters, and their changes applied to it and to the envelope.
    /// `Err` is the reply that ends the transaction instead (a refusal, or the `250` of a
    /// discarded message); the flag says whether a milter asked to hold the message.
    pub(in crate::smtp) async fn milter_message(
        &mut self,
        mut tx: Transaction,
        body: Vec<u8>,
    ) -> Result<(Transaction, Vec<u8>, bool), Reply> {
        let Some(chain) = self.milters.as_mut() else { return Ok((tx, body, false)) };
        let verdict = chain.message(body).await;
        let refused_by = chain.refused_by();
        let client = self.client_description();
        if let Some(reply) = verdict.refusal {
            tracing::info!(%client, from = %tx.sender, %reply, notes = %verdict.notes.join("; "), "message refused by a milter");
            let recipients = super::verbs::checks::recipients(&tx);
            self.log_refusal("data", &reply, &refused_by, Some(&tx.sender), &recipients);
            return Err(reply);
        }
        if let Some(milter) = verdict.discard {
            tracing::info!(%client, from = %tx.sender, %milter, "message discarded by a milter");
            self.log_discard(&tx, &format!("milter {milter} DISCARD"));
            return Err(Reply::new(250, "2.0.0", "Ok"));
        }
        if let Some(sender) = verdict.sender {
            tx.sender = sender;
        }
        for gone in &verdict.deleted {
            for r in &mut tx.recipients {
                if r.address.eq_ignore_ascii_case(gone) {
                    r.destinations.clear();
                } else {
                    r.destinations.retain(|d| !d.eq_ignore_ascii_case(gone));
                }
            }
        }
        tx.recipients.retain(|r| !r.destinations.is_empty());
        // Added recipients are taken as final: the milter named where the message goes.
        for added in verdict.added {
            tx.recipients.push(Recipient {
                orcpt: format!("rfc822;{added}"),
                destinations: vec![added.clone()],
                address: added,
                notify: Notify::default(),
            });
        }
        tx.effects.notes.extend(verdict.notes);
        if tx.recipients.is_empty() {
            tracing::info!(%client, from = %tx.sender, "milters deleted every recipient: message dropped");
            let reason =
                format!("milters deleted every recipient ({})", tx.effects.notes.join("; "));
            self.log_discard(&tx, &reason);
            return Err(Reply::new(250, "2.0.0", "Ok"));
        }
        Ok((tx, verdict.message, verdict.hold))
    }
}

#[cfg(test)]
mod tests {
    use super::esmtp_params;

    #[test]
    fn params_after_the_path() {
        assert_eq!(
            esmtp_params(b"MAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME"),
            ["SIZE=10", "BODY=8BITMIME"]
        );
        assert_eq!(esmtp_params(b"MAIL FROM: <\"x> y\"@b.example> RET=HDRS"), ["RET=HDRS"]);
        assert_eq!(esmtp_params(b"RCPT TO:<a@b.example>"), Vec::<String>::new());
        assert_eq!(esmtp_params(b"MAIL FROM:a@b SIZE=1"), ["SIZE=1"]);
        assert_eq!(esmtp_params(b"junk"), Vec::<String>::new());
    }
}
