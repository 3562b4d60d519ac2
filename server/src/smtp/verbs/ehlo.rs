//! EHLO and HELO (RFC 5321 §4.1.1.1): the client names itself, we list our extensions.

use tokio::io::{AsyncRead, AsyncWrite};

use postern_store::model::PolicyStage;

use crate::smtp::reply::Reply;
use crate::smtp::session::Session;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(in crate::smtp) fn ehlo(&mut self, host: &str, esmtp: bool) -> Reply {
        // The name goes into Received: headers and logs: keep it one plain token.
        if host.is_empty()
            || host.len() > 255
            || host.chars().any(|c| c.is_control() || "()<>\\\"".contains(c))
        {
            return Reply::new(501, "5.5.2", "Error: bad HELO/EHLO name");
        }
        let mut effects = self.effects.clone();
        if let Some(reply) = self.policy(PolicyStage::Helo, Some(host), None, vec![], &mut effects)
        {
            return reply;
        }
        self.effects = effects;
        // §4.1.4: EHLO ends any transaction, like RSET.
        self.reset();
        self.helo = Some((host.to_string(), esmtp));
        let hostname = self.ctx.hostname.clone();
        if !esmtp {
            return Reply::plain(250, vec![hostname]);
        }
        let tls = self.conn.get_ref().is_tls();
        let mut lines = vec![
            hostname,
            "PIPELINING".into(),
            format!("SIZE {}", self.ctx.limits.max_message_size),
        ];
        if self.ctx.tls.is_some() && !tls {
            lines.push("STARTTLS".into());
        }
        if self.kind.takes_auth() && tls && self.auth.is_none() && !self.auth_barred() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.extend(
            ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"].map(String::from),
        );
        Reply::plain(250, lines)
    }

    /// Whether this client's address is past its AUTH-failure limits (a stored rate limit on
    /// AUTH failures, or the built-in slowdown per address): EHLO then does not offer AUTH,
    /// so that a well-behaved client does not try, and a guesser learns nothing new; an AUTH
    /// sent anyway still gets `454 4.7.0` without a password being checked.
    fn auth_barred(&self) -> bool {
        let ip = self.peer.ip();
        self.rate_exceeded(postern_store::model::RateMeasure::AuthFailures, None, None, false)
            .is_some()
            || self.ctx.passwords.attempts.waiting("", ip, self.ctx.passwords.instant()).is_some()
    }
}
