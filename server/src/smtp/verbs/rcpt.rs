//! RCPT TO (RFC 5321 §4.1.1.3): the relay decision and the recipient's destinations, both from one
//! parse of the address, against the configuration snapshot current now.

use postern_store::model::{
    Address, Config, Destination, DomainKind, DomainName, PolicyStage, RateMeasure, Transport,
};
use smtp_proto::RcptTo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::delivery::wire;
use crate::smtp::dsn;
use crate::smtp::reply::Reply;
use crate::smtp::session::{Recipient, Session};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(in crate::smtp) async fn rcpt(&mut self, to: RcptTo<String>, line: &[u8]) -> Reply {
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
        let mut effects = tx.effects.clone();
        let dsn = match dsn::rcpt(line, smtputf8) {
            Ok(dsn) => dsn,
            Err(reply) => return reply,
        };
        // Access rules first: a refusal needs no routing, and what an accepting rule does
        // (REDIRECT, BCC, HOLD, DISCARD) counts only once the recipient is accepted below.
        let named = if to.address.is_empty() { "postmaster" } else { to.address.as_str() };
        if let Some(reply) = self.policy(PolicyStage::Rcpt, None, None, vec![named], &mut effects) {
            return reply;
        }
        if let Some((reply, reason)) = self.rate_check(RateMeasure::Recipients, None, None, true) {
            self.log_refusal("rcpt", &reply, &reason, None, &[named]);
            return reply;
        }
        // smtp-proto gives "" both for <> and for the domainless <postmaster> that RFC 5321
        // §4.5.1 requires us to accept.
        let (address, destinations) = if to.address.is_empty() {
            if !names_bare_postmaster(line) {
                return Reply::new(501, "5.1.3", "Bad recipient address syntax");
            }
            let snapshot = self.ctx.engine.snapshot();
            match postmaster(&snapshot.config, &self.ctx.hostname, None) {
                Ok(d) => (format!("postmaster@{}", self.ctx.hostname), d),
                Err(reply) => return reply,
            }
        } else {
            if !to.address.is_ascii() && !smtputf8 {
                return Reply::new(553, "5.6.7", "Error: a non-ASCII address needs SMTPUTF8");
            }
            // Addresses of a directory domain that we do not hold ourselves: the directory
            // decides (smtp/directory.rs).
            let routed = match self.directory_rcpt(&to.address).await {
                Some(decided) => decided,
                None => self.route(&to.address),
            };
            match routed {
                Ok(d) => (to.address, d),
                Err(reply) => return reply,
            }
        };
        // DNS blocklists and greylisting, once the recipient is one we take (policy/screen.rs).
        let snapshot = self.ctx.engine.snapshot();
        if crate::policy::Screen::wanted(&snapshot.config) {
            let check = crate::policy::RcptCheck {
                client: self.peer.ip(),
                who: &self.client_description(),
                helo: self.helo.as_ref().map(|(h, _)| h.as_str()),
                sender: self.tx.as_ref().map_or("", |t| t.sender.as_str()),
                recipient: &address,
                exempt: self.auth.is_some() || snapshot.config.is_trusted(self.peer.ip()),
            };
            if let Some((reply, reason)) =
                self.ctx.screen.rcpt(&snapshot.config, &check, &mut effects).await
            {
                self.log_refusal("rcpt", &reply, &reason, None, &[address.as_str()]);
                return reply;
            }
        }
        // RFC 3461 §4.2: without ORCPT, the address as the client named it, quoted where its
        // local part needs it (RFC 5321 §4.1.2), so that a DSN shows it as it was written.
        let orcpt = dsn.orcpt.unwrap_or_else(|| format!("rfc822;{}", wire::mailbox(&address)));
        if let Some(tx) = &mut self.tx {
            tx.recipients.push(Recipient {
                address: address.clone(),
                destinations,
                orcpt,
                notify: dsn.notify,
            });
            tx.effects = effects;
        }
        Reply::new(250, "2.1.5", "Ok")
    }

    /// Decides whether we take mail for `address` and where it goes: the relay decision.
    ///
    /// The domain is the part after the *last* `@` of the address as smtp-proto unquoted it, and
    /// routing uses the same parse, so `"a@b"@ours`, `a%b@ours` and `b!a@ours` are local parts in
    /// our domain, never relays of ours: unknown users in a local domain, and refused in a relay
    /// domain unless the client may relay anyway. Source routes were already dropped (RFC 5321
    /// §3.6.1 tells us to ignore them).
    fn route(&self, address: &str) -> Result<Vec<String>, Reply> {
        // Replies name the address as it is spelled on the wire, quotes and all.
        let shown = crate::delivery::wire::mailbox(address);
        let denied = || Reply::new(554, "5.7.1", format!("<{shown}>: Relay access denied"));
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Err(Reply::new(501, "5.1.3", "Bad recipient address syntax"));
        };
        let Ok(domain) = domain.parse::<DomainName>() else {
            return Err(Reply::new(501, "5.1.2", format!("<{shown}>: bad destination domain")));
        };
        let snapshot = self.ctx.engine.snapshot();
        let config = &snapshot.config;
        if let Some(rule) = config.transport_for(&domain)
            && let Transport::Error(text) = &rule.transport
        {
            return Err(Reply::new(550, "5.0.0", format!("<{shown}>: {text}")));
        }
        let kind = config.domain_kind(&domain);
        let trusted = self.auth.is_some() || config.is_trusted(self.peer.ip());
        if kind.is_none() {
            // Not ours: only our users and trusted networks may relay.
            return if trusted { Ok(vec![address.to_string()]) } else { Err(denied()) };
        }
        // A relay domain's next hop may honour routing in the local part (`a%b@relay`,
        // `b!a@relay`, `"a@b"@relay`) and relay on for anyone: like Postfix's
        // `allow_untrusted_routing = no`, only our users and trusted networks may send that.
        if kind == Some(DomainKind::Relay) && local.contains(['%', '!', '@']) && !trusted {
            return Err(denied());
        }
        let unknown = || {
            Reply::new(550, "5.1.1", format!("<{shown}>: Recipient address rejected: User unknown"))
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
                return Err(Reply::new(554, "5.4.6", format!("<{shown}>: mail forwarding loop")));
            }
        };
        let disabled = |d: &Destination| matches!(d, Destination::Mailbox(m) if config.mailboxes.get(m).is_some_and(|m| !m.enabled));
        // RFC 5321 §4.5.1: postmaster@ each of our domains is accepted, set up or not.
        if kind == Some(DomainKind::Local)
            && parsed.local() == "postmaster"
            && destinations.iter().all(|d| matches!(d, Destination::Unknown(_)) || disabled(d))
        {
            return postmaster(config, &self.ctx.hostname, Some(&domain));
        }
        if destinations.iter().all(|d| matches!(d, Destination::Unknown(_))) {
            return Err(unknown());
        }
        if destinations.iter().all(disabled) {
            return Err(Reply::new(550, "5.2.1", format!("<{shown}>: mailbox disabled")));
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

/// True when the path of `RCPT TO:<path>` is the domainless `<postmaster>` (any case).
fn names_bare_postmaster(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else { return false };
    let path = line[colon + 1..].trim_ascii_start();
    path.get(..12).is_some_and(|p| p.eq_ignore_ascii_case(b"<postmaster>"))
}

/// Where mail to the postmaster goes (see [`Config::postmaster`]). With no mailbox at all to
/// take it, the configuration is unfinished: a temporary refusal lets the mail come back once
/// it is done, where a 550 would lose it.
fn postmaster(
    config: &Config,
    hostname: &str,
    named: Option<&DomainName>,
) -> Result<Vec<String>, Reply> {
    match config.postmaster(hostname, named) {
        Some(p) => Ok(p
            .destinations
            .into_iter()
            .map(|d| match d {
                Destination::Mailbox(a) | Destination::Forward(a) | Destination::Unknown(a) => {
                    a.to_string()
                }
            })
            .collect()),
        None => Err(Reply::new(
            451,
            "4.3.5",
            "<postmaster>: no mailbox is set up to take the postmaster's mail yet",
        )),
    }
}
