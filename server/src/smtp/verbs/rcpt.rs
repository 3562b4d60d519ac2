//! RCPT TO (RFC 5321 §4.1.1.3): the relay decision and the recipient's destinations, both from one
//! parse of the address, against the configuration snapshot current now.

use postern_store::model::{Address, Destination, DomainKind, DomainName, Notify, Transport};
use smtp_proto::RcptTo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::smtp::reply::Reply;
use crate::smtp::session::{Recipient, Session};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(in crate::smtp) fn rcpt(&mut self, to: RcptTo<String>, line: &[u8]) -> Reply {
        let Some(tx) = &self.tx else {
            return Reply::new(503, "5.5.1", "Error: need MAIL command");
        };
        if tx.failed || tx.chunks.is_some() {
            return Reply::new(503, "5.5.1", "Error: BDAT in progress or failed; send RSET");
        }
        if tx.recipients.len() >= self.ctx.limits.max_recipients {
            return Reply::new(452, "4.5.3", "Error: too many recipients");
        }
        let smtputf8 = tx.smtputf8;
        // smtp-proto gives "" both for <> and for the domainless <postmaster> that RFC 5321
        // §4.5.1 requires us to accept.
        let address = if to.address.is_empty() {
            if String::from_utf8_lossy(line).to_ascii_lowercase().contains("<postmaster>") {
                format!("postmaster@{}", self.ctx.hostname)
            } else {
                return Reply::new(501, "5.1.3", "Bad recipient address syntax");
            }
        } else {
            to.address
        };
        if !address.is_ascii() && !smtputf8 {
            return Reply::new(553, "5.6.7", "Error: a non-ASCII address needs SMTPUTF8");
        }
        let destinations = match self.route(&address) {
            Ok(d) => d,
            Err(reply) => return reply,
        };
        let notify = [
            (smtp_proto::RCPT_NOTIFY_SUCCESS, Notify::SUCCESS),
            (smtp_proto::RCPT_NOTIFY_FAILURE, Notify::FAILURE),
            (smtp_proto::RCPT_NOTIFY_DELAY, Notify::DELAY),
            (smtp_proto::RCPT_NOTIFY_NEVER, Notify::NEVER),
        ]
        .iter()
        .filter(|(flag, _)| to.flags & flag != 0)
        .fold(Notify(0), |acc, (_, bit)| Notify(acc.0 | bit.0));
        let orcpt = format!("rfc822;{}", to.orcpt.unwrap_or_else(|| address.clone()));
        if let Some(tx) = &mut self.tx {
            tx.recipients.push(Recipient { destinations, orcpt, notify });
        }
        Reply::new(250, "2.1.5", "Ok")
    }

    /// Decides whether we take mail for `address` and where it goes: the relay decision.
    ///
    /// The domain is the part after the *last* `@` of the address as smtp-proto unquoted it, and
    /// routing uses the same parse, so `"a@b"@ours`, `a%b@ours` and `b!a@ours` are local parts in
    /// our domain (unknown users), never relays; source routes were already dropped (RFC 5321
    /// §3.6.1 tells us to ignore them).
    fn route(&self, address: &str) -> Result<Vec<String>, Reply> {
        let denied = || Reply::new(554, "5.7.1", format!("<{address}>: Relay access denied"));
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Err(Reply::new(501, "5.1.3", "Bad recipient address syntax"));
        };
        let Ok(domain) = domain.parse::<DomainName>() else {
            return Err(Reply::new(501, "5.1.2", format!("<{address}>: bad destination domain")));
        };
        let snapshot = self.ctx.engine.snapshot();
        let config = &snapshot.config;
        if let Some(rule) = config.transport_for(&domain)
            && let Transport::Error(text) = &rule.transport
        {
            return Err(Reply::new(550, "5.0.0", format!("<{address}>: {text}")));
        }
        let kind = config.domain_kind(&domain);
        if kind.is_none() {
            // Not ours: only our users and trusted networks may relay.
            return if self.auth.is_some() || config.is_trusted(self.peer.ip()) {
                Ok(vec![address.to_string()])
            } else {
                Err(denied())
            };
        }
        let unknown = || {
            Reply::new(
                550,
                "5.1.1",
                format!("<{address}>: Recipient address rejected: User unknown"),
            )
        };
        // A local part that is not a dot-atom cannot name a mailbox or an alias of ours.
        let Ok(parsed) = Address::new(local, domain.clone()) else {
            return if kind == Some(DomainKind::Relay) {
                Ok(vec![address.to_string()])
            } else {
                Err(unknown())
            };
        };
        let destinations = match config.resolve(&parsed) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "alias resolution failed");
                return Err(Reply::new(554, "5.4.6", format!("<{address}>: mail forwarding loop")));
            }
        };
        if destinations.iter().all(|d| matches!(d, Destination::Unknown(_))) {
            return Err(unknown());
        }
        let disabled = |d: &Destination| matches!(d, Destination::Mailbox(m) if config.mailboxes.get(m).is_some_and(|m| !m.enabled));
        if destinations.iter().all(disabled) {
            return Err(Reply::new(550, "5.2.1", format!("<{address}>: mailbox disabled")));
        }
        Ok(destinations
            .into_iter()
            .filter(|d| !disabled(d))
            .map(|d| match d {
                // Passed on as the client spelled it: a remote local part may be case-sensitive.
                Destination::Forward(a) if a == parsed => address.to_string(),
                Destination::Mailbox(a) | Destination::Forward(a) | Destination::Unknown(a) => {
                    a.to_string()
                }
            })
            .collect())
    }
}
