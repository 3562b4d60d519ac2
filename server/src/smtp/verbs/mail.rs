//! MAIL FROM (RFC 5321 §4.1.1.2) with SIZE (RFC 1870), BODY=8BITMIME (RFC 6152), SMTPUTF8
//! (RFC 6531) and the DSN parameters RET and ENVID (RFC 3461).

use postern_store::model::{Address, PolicyStage, RateMeasure};
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
            && sender.is_empty()
        {
            return Reply::new(
                550,
                "5.7.1",
                format!("<>: Sender address rejected: the null sender is not for user {user}"),
            );
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
        let mut effects = self.effects.clone();
        if let Some(reply) =
            self.policy(PolicyStage::Mail, None, Some(&sender), vec![], &mut effects)
        {
            return reply;
        }
        if let Some(reply) = self.rate_limit(RateMeasure::Messages, None, Some(&sender), true) {
            return reply;
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
            effects,
            data_checked: false,
            size: from.size,
        });
        Reply::new(250, "2.1.0", "Ok")
    }

    /// Whether the authenticated `user` may use `sender` in MAIL FROM. The null sender is for
    /// bounces (RFC 5321 §4.5.5), which a mail client never sends: refused, so that it cannot
    /// carry a message past the sender check.
    fn may_send_as(&self, user: &Address, sender: &str) -> bool {
        let Ok(sender) = sender.parse::<Address>() else { return false };
        self.ctx.engine.snapshot().config.may_send_as(user, &sender)
    }
}
