//! The session's side of directory domains (`crate::directory`): at RCPT, an address of such a
//! domain that is none of our own mailboxes or aliases is looked up in the directory; at AUTH,
//! its password is checked by binding as its entry. A directory that cannot answer gives a
//! temporary refusal (RFC 3463 4.3.0 at RCPT, RFC 4954 §6 454 4.7.0 at AUTH), never "unknown".

use postern_store::model::{
    Address, Destination, DirectorySettings, DomainKind, DomainName, Transport,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::reply::Reply;
use super::session::Session;
use crate::directory::{Lookup, Verdict, mailbox_of};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// The directory settings that decide `address`, if its domain has a directory and our own
    /// configuration does not know the address (a mailbox, an alias or a catch-all wins).
    fn directory_for(&self, address: &Address) -> Option<DirectorySettings> {
        let snapshot = self.ctx.engine.snapshot();
        let config = &snapshot.config;
        let settings = config.directories.get(address.domain())?;
        if config.domain_kind(address.domain()) != Some(DomainKind::Local) {
            return None;
        }
        if config
            .transport_for(address.domain())
            .is_some_and(|rule| matches!(rule.transport, Transport::Error(_)))
        {
            // An error: transport refuses the domain's mail before anyone is looked up.
            return None;
        }
        let unknown = config
            .resolve(address)
            .is_ok_and(|d| d.iter().all(|d| matches!(d, Destination::Unknown(_))));
        unknown.then(|| settings.clone())
    }

    /// RCPT for an address of a directory domain: `None` when the directory does not decide it
    /// (the usual routing then does), else its destination or the refusal.
    pub(in crate::smtp) async fn directory_rcpt(
        &mut self,
        address: &str,
    ) -> Option<Result<Vec<String>, Reply>> {
        let (local, domain) = address.rsplit_once('@')?;
        let domain = domain.parse::<DomainName>().ok()?;
        let parsed = Address::new(local, domain).ok()?;
        let settings = self.directory_for(&parsed)?;
        let shown = crate::delivery::wire::mailbox(address);
        match self.ctx.directory.lookup(&settings, &parsed).await {
            Ok(Lookup::Found(entry)) => {
                let snapshot = self.ctx.engine.snapshot();
                let mailbox = mailbox_of(&entry, &parsed, &snapshot.config.directories);
                Some(Ok(vec![mailbox.to_string()]))
            }
            // RFC 5321 §4.5.1: the postmaster is accepted whatever the directory says; the
            // usual routing finds where its mail goes.
            Ok(Lookup::NotFound) | Err(_) if parsed.local() == "postmaster" => None,
            Ok(Lookup::NotFound) => Some(Err(Reply::new(
                550,
                "5.1.1",
                format!("<{shown}>: Recipient address rejected: User unknown"),
            ))),
            Err(e) => {
                tracing::warn!(domain = %settings.domain, error = %e, "directory lookup failed");
                let reply = Reply::new(
                    451,
                    "4.3.0",
                    format!("<{shown}>: directory unavailable, try again later"),
                );
                self.log_refusal("rcpt", &reply, "directory unavailable", None, &[address]);
                Some(Err(reply))
            }
        }
    }

    /// AUTH for an address of a directory domain: `None` when no directory decides it.
    pub(in crate::smtp) async fn directory_auth(
        &mut self,
        check: postern_store::auth::Check,
        user: &str,
        password: &str,
        mechanism: u64,
    ) -> Result<Reply, postern_store::auth::Check> {
        let Some(settings) = user.parse::<Address>().ok().and_then(|a| {
            let snapshot = self.ctx.engine.snapshot();
            // A mailbox of our own, enabled or not, is checked as ours.
            if snapshot.config.mailboxes.contains_key(&a) {
                return None;
            }
            snapshot.config.directories.get(a.domain()).cloned().map(|s| (a, s))
        }) else {
            return Err(check);
        };
        let (address, settings) = settings;
        match self.ctx.directory.authenticate(&settings, &address, password).await {
            Ok(Verdict::Accepted(_entry)) => {
                check.settle(Some(true));
                Ok(self.authenticated(address, mechanism))
            }
            Ok(Verdict::Refused) => {
                check.settle(Some(false));
                Ok(self.auth_failed(user))
            }
            Err(e) => {
                check.settle(None);
                tracing::warn!(peer = %self.peer, domain = %settings.domain, error = %e,
                    "directory authentication unavailable");
                // RFC 4954 §6: a temporary failure, never "wrong password".
                Ok(Reply::new(454, "4.7.0", "Temporary authentication failure"))
            }
        }
    }
}
