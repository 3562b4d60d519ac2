//! MAIL FROM (RFC 5321 §4.1.1.2) with SIZE (RFC 1870), BODY=8BITMIME (RFC 6152), SMTPUTF8
//! (RFC 6531) and the DSN parameters RET and ENVID (RFC 3461).

use postern_store::model::{Address, AliasSource, Destination};
use smtp_proto::MailFrom;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::smtp::dsn;
use crate::smtp::reply::Reply;
use crate::smtp::session::{Session, Transaction};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(in crate::smtp) fn mail(&mut self, from: MailFrom<String>, line: &[u8]) -> Reply {
        if self.helo.is_none() {
            return Reply::new(503, "5.5.1", "Error: send HELO/EHLO first");
        }
        if self.tx.is_some() {
            return Reply::new(503, "5.5.1", "Error: nested MAIL command");
        }
        if self.kind.takes_auth() && self.auth.is_none() {
            return Reply::new(530, "5.7.0", "Authentication required");
        }
        let dsn = match dsn::mail(line) {
            Ok(dsn) => dsn,
            Err(reply) => return reply,
        };
        if from.size > self.ctx.limits.max_message_size {
            return Reply::new(552, "5.3.4", "Message size exceeds fixed limit");
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return Reply::new(555, "5.5.4", "Error: BODY=BINARYMIME is not supported");
        }
        if let Some(free) = self.ctx.free_disk()
            && free < self.ctx.limits.min_free_disk
        {
            tracing::warn!(free, "refusing mail: the data directory is nearly full");
            return Reply::new(452, "4.3.1", "Insufficient system storage");
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        let sender = from.address;
        if !sender.is_ascii() && !smtputf8 {
            return Reply::new(553, "5.6.7", "Error: a non-ASCII address needs SMTPUTF8");
        }
        if let Some(user) = &self.auth
            && !self.may_send_as(user, &sender)
        {
            return Reply::new(
                553,
                "5.7.1",
                format!("<{sender}>: Sender address rejected: not owned by user {user}"),
            );
        }
        self.tx = Some(Transaction {
            sender,
            envid: dsn.envid,
            ret: dsn.ret,
            smtputf8,
            eight_bit: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
            recipients: Vec::new(),
            chunks: None,
            failed: false,
        });
        Reply::new(250, "2.1.0", "Ok")
    }

    /// An authenticated user may send as its own address (with or without a +tag), as an alias
    /// that delivers to it, or with the null sender. A catch-all does not count: it would let the
    /// user send as every address of the domain.
    fn may_send_as(&self, user: &Address, sender: &str) -> bool {
        if sender.is_empty() {
            return true;
        }
        let Ok(sender) = sender.parse::<Address>() else { return false };
        if &sender == user || sender.without_subaddress().as_ref() == Some(user) {
            return true;
        }
        let snapshot = self.ctx.engine.snapshot();
        let config = &snapshot.config;
        let base = sender.without_subaddress();
        let is_alias = [Some(&sender), base.as_ref()]
            .into_iter()
            .flatten()
            .any(|a| config.aliases.contains_key(&AliasSource::Address(a.clone())));
        is_alias
            && config.resolve(&sender).is_ok_and(|dests| {
                dests.iter().any(|d| matches!(d, Destination::Mailbox(m) if m == user))
            })
    }
}
