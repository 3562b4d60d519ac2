//! One SMTP session: the state of the conversation, the read-dispatch-reply loop with its limits
//! (line length, error budget, timeouts), and the handing over of accepted messages. Each verb's
//! handling lives in `verbs/`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postern_store::model::{
    Address, DsnRet, NewMessage, NewRecipient, Notify, PolicyEnvelope, PolicyStage, RateMeasure,
};
use postern_store::{NewRefusal, RefusalStatus};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::body::Body;
use super::io::Io;
use super::line::{Line, read_line};
use super::reply::Reply;
use super::{ListenerKind, SessionContext};
use crate::policy::{self, Decision, Effects};

/// Limits of a session. The defaults follow Postfix's.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `message_size_limit` (`[smtp] max_message_size`); announced by SIZE, checked at MAIL's
    /// SIZE= and while the body arrives.
    pub max_message_size: usize,
    /// `smtpd_recipient_limit`.
    pub max_recipients: usize,
    /// `smtpd_hard_error_limit`: after this many errors the session is closed.
    pub max_errors: u32,
    /// Longest command line (RFC 5321 §4.5.3.1.4 allows 512; ESMTP parameters need more).
    pub line_limit: usize,
    /// Time for one whole command line to arrive inside a mail transaction (RFC 5321
    /// §4.5.3.2.7: 5 minutes).
    pub command_timeout: Duration,
    /// The same outside a transaction (before MAIL, or between messages): shorter, so that an
    /// idle client does not hold a session slot for 5 minutes.
    pub idle_timeout: Duration,
    /// Time for the whole of DATA, or of one BDAT chunk, to arrive; bounds a trickling client.
    pub data_timeout: Duration,
    /// MAIL is refused with 452 below this much free space in the data directory.
    pub min_free_disk: u64,
    /// Sessions at once over every listener; a connection beyond it gets `421 4.3.2` and is
    /// closed, so that a flood cannot take the file descriptors the queue and delivery need
    /// (Postfix bounds smtpd with its process limit).
    pub max_sessions: usize,
    /// Sessions at once from one client address, per service (Postfix's
    /// `smtpd_client_connection_count_limit`); 0 is no limit.
    pub max_sessions_per_address: usize,
    /// The same from one /24 (IPv4) or /64 (IPv6); 0 is no limit.
    pub max_sessions_per_network: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        let max_message_size = postern_store::boot::DEFAULT_MAX_MESSAGE_SIZE as usize;
        let clients = postern_store::boot::SmtpClientLimits::default();
        Limits {
            max_message_size,
            max_recipients: 1000,
            max_errors: 20,
            line_limit: 2048,
            command_timeout: Duration::from_secs(300),
            idle_timeout: clients.idle_timeout,
            data_timeout: Duration::from_secs(600),
            min_free_disk: 2 * max_message_size as u64,
            max_sessions: postern_store::boot::DEFAULT_MAX_SESSIONS,
            max_sessions_per_address: clients.per_address,
            max_sessions_per_network: clients.per_network,
        }
    }
}

/// A recipient accepted by RCPT.
#[derive(Debug, Clone)]
pub(super) struct Recipient {
    /// The address as the client named it (access rules match on it).
    pub address: String,
    /// Final addresses after alias expansion (one for a plain mailbox or a forward).
    pub destinations: Vec<String>,
    /// ORCPT as given, else `rfc822;` and the address the client named.
    pub orcpt: String,
    pub notify: Notify,
}

/// One mail transaction, from MAIL to the end of DATA or BDAT LAST.
pub(super) struct Transaction {
    pub sender: String,
    pub envid: Option<String>,
    pub ret: Option<DsnRet>,
    pub smtputf8: bool,
    pub eight_bit: bool,
    pub recipients: Vec<Recipient>,
    /// A BDAT sequence in progress.
    pub chunks: Option<Body>,
    /// A BDAT chunk failed: the transaction is dead until RSET or a new MAIL (RFC 3030 §2).
    pub failed: bool,
    /// What access rules decided for this message (discard, hold, redirect, copies).
    pub effects: Effects,
    /// The data-stage rules were evaluated (at DATA or the first BDAT).
    pub data_checked: bool,
    /// MAIL's SIZE= (RFC 1870), 0 when not given: the policy services' `size` at RCPT.
    pub size: usize,
}

pub(super) struct Session<S> {
    pub ctx: Arc<SessionContext>,
    pub kind: ListenerKind,
    pub peer: SocketAddr,
    pub conn: BufReader<Io<S>>,
    out: Vec<u8>,
    /// The EHLO/HELO name, and whether it was EHLO.
    pub helo: Option<(String, bool)>,
    /// The mailbox that authenticated.
    pub auth: Option<Address>,
    /// The SASL mechanism it authenticated with (`PLAIN`, `LOGIN`).
    pub auth_mechanism: Option<&'static str>,
    /// Our end of the connection, when the listener knows it (milters' `{daemon_addr}`).
    pub local: Option<SocketAddr>,
    pub tx: Option<Transaction>,
    /// The client's reverse DNS name, looked up only when an access rule needs it.
    pub rdns: Option<String>,
    /// What access rules at connect and HELO decided for every message of the session.
    pub effects: Effects,
    /// Connections to the policy services, kept for the session.
    pub delegation: crate::policy::delegate::Delegation,
    errors: u32,
    /// The milters of this session (`crate::milter`), when any serves this listener.
    pub milters: Option<crate::milter::Chain>,
    /// Set when the session must end after the pending replies are sent.
    pub closing: bool,
}

/// A verb's reply; `None` when the handler has already answered (STARTTLS).
pub(super) type Handled = std::io::Result<Option<Reply>>;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub fn new(
        ctx: Arc<SessionContext>,
        kind: ListenerKind,
        peer: SocketAddr,
        io: Io<S>,
    ) -> Session<S> {
        Session {
            ctx,
            kind,
            peer,
            conn: BufReader::with_capacity(16 * 1024, io),
            out: Vec::with_capacity(1024),
            helo: None,
            auth: None,
            auth_mechanism: None,
            local: None,
            tx: None,
            rdns: None,
            effects: Effects::default(),
            delegation: Default::default(),
            errors: 0,
            milters: None,
            closing: false,
        }
    }

    /// Speaks SMTP until QUIT, an error limit, a timeout or the client leaves.
    pub async fn run(mut self) {
        if let Err(e) = self.converse().await {
            tracing::debug!(peer = %self.peer, error = %e, "session ended");
        }
        if let Some(milters) = self.milters.take() {
            milters.quit().await;
        }
        let _ = self.conn.get_mut().shutdown().await;
        tracing::info!(peer = %self.peer, listener = self.kind.name(), "disconnect");
    }

    async fn converse(&mut self) -> std::io::Result<()> {
        // RFC 5321 §3.1: the client waits for the greeting. One that talks first is not a
        // mail client (postscreen's pregreet test); tell it so and close.
        tokio::task::yield_now().await;
        if self.input_pending() {
            self.reply(Reply::new(
                554,
                "5.5.0",
                format!("{} Error: talking before the greeting", self.ctx.hostname),
            ));
            return self.flush().await;
        }
        if let Some(reply) = self.rate_limit(RateMeasure::Connections, None, None, true) {
            self.reply(reply);
            return self.flush().await;
        }
        if self.ctx.engine.snapshot().config.policy.needs_rdns() {
            self.rdns = policy::reverse_name(self.peer.ip()).await;
        }
        let mut effects = Effects::default();
        if let Some(reply) = self.policy(PolicyStage::Connect, None, None, vec![], &mut effects) {
            // RFC 5321 §3.1: a server that refuses service says so in the greeting and closes.
            self.reply(reply);
            return self.flush().await;
        }
        self.effects = effects;
        if let Some(reply) = self.milter_connect().await {
            self.reply(reply);
            return self.flush().await;
        }
        // RFC 5321 §3.1: a server shutting down may greet with 421 and close.
        let draining = self.ctx.draining.clone();
        if draining.is_cancelled() {
            self.reply(self.shutting_down());
            return self.flush().await;
        }
        self.reply(Reply::plain(220, vec![format!("{} ESMTP Postern", self.ctx.hostname)]));
        while !self.closing {
            // RFC 5321 §3.8: on shutdown the server answers the next command with 421 and
            // closes. A command already running (a DATA or BDAT transfer) is not cut short:
            // it finishes, its message is committed and answered, and then this ends it.
            if draining.is_cancelled() {
                self.answer(self.shutting_down());
                break;
            }
            // PIPELINING (RFC 2920 §3.2): replies to a batch of commands go out together, once
            // the client has nothing more queued for us.
            if !self.input_pending() {
                self.flush().await?;
            }
            let timeout = match self.tx {
                Some(_) => self.ctx.limits.command_timeout,
                None => self.ctx.limits.idle_timeout,
            };
            let read = tokio::time::timeout(
                timeout,
                read_line(&mut self.conn, self.ctx.limits.line_limit),
            );
            // §3.8 also lets the 421 go out without waiting for a command, "on the assumption
            // that the client will receive it after the next command is issued": an idle
            // client does not hold the shutdown up.
            let read = tokio::select! {
                _ = draining.cancelled() => None,
                read = read => Some(read),
            };
            let line = match read {
                None => {
                    self.answer(self.shutting_down());
                    break;
                }
                Some(Err(_)) => {
                    self.reply(self.timed_out());
                    break;
                }
                Some(Ok(line)) => line?,
            };
            let reply = match line {
                Line::Eof => return Ok(()),
                Line::TooLong => Reply::new(500, "5.5.2", "Error: line too long"),
                Line::Text(text) => match self.command(text).await? {
                    Some(reply) => reply,
                    None => continue,
                },
            };
            self.answer(reply);
        }
        self.flush().await
    }

    /// Queues a reply to a command, counting errors toward the session's budget.
    pub fn answer(&mut self, reply: Reply) {
        let closes = reply.closes();
        if reply.is_error() && reply.code != 421 {
            self.errors += 1;
        }
        self.reply(reply);
        if closes {
            self.closing = true;
        } else if self.errors >= self.ctx.limits.max_errors {
            self.reply(Reply::new(
                421,
                "4.7.0",
                format!("{} Error: too many errors", self.ctx.hostname),
            ));
            self.closing = true;
        }
    }

    fn reply(&mut self, reply: Reply) {
        if reply.is_error() {
            tracing::debug!(peer = %self.peer, %reply, "refused");
        }
        reply.write_to(&mut self.out);
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let out = std::mem::take(&mut self.out);
            self.conn.get_mut().write_all(&out).await?;
            self.conn.get_mut().flush().await?;
            self.out = out;
            self.out.clear();
        }
        Ok(())
    }

    /// True when the client has sent bytes we have not read yet.
    pub fn input_pending(&mut self) -> bool {
        if !self.conn.buffer().is_empty() {
            return true;
        }
        // Poll the socket once, without waiting: a later real read registers the real waker.
        use tokio::io::AsyncBufRead;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::Pin::new(&mut self.conn).poll_fill_buf(&mut cx) {
            std::task::Poll::Ready(Ok(buf)) => !buf.is_empty(),
            _ => false,
        }
    }

    /// Handles one command line.
    async fn command(&mut self, line: Vec<u8>) -> Handled {
        let verb_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        let verb = String::from_utf8_lossy(&line[..verb_end]).to_ascii_uppercase();
        match verb.as_str() {
            // Postfix's smtpd_forbidden_commands: a web client or proxy talking to port 25.
            "GET" | "POST" | "PUT" | "HEAD" | "CONNECT" | "OPTIONS" => {
                self.closing = true;
                return Ok(Some(Reply::new(
                    221,
                    "2.7.0",
                    "Error: I can break rules, too. Goodbye.",
                )));
            }
            // smtp-proto's BDAT parser truncates an overflowing size, which would desynchronise
            // the session: BDAT is parsed here.
            "BDAT" => return self.bdat(&line[verb_end..]).await.map(Some),
            _ => {}
        }
        let mut with_lf = line.clone();
        with_lf.push(b'\n');
        let request = match smtp_proto::Request::parse(&mut with_lf.iter()) {
            Ok(request) => request.into_owned(),
            Err(e) => return Ok(Some(parse_error(e, &verb))),
        };
        use smtp_proto::Request;
        let reply = match request {
            Request::Ehlo { host } => {
                let reply = self.ehlo(&host, true);
                self.milter_helo(reply, &host).await
            }
            Request::Helo { host } => {
                let reply = self.ehlo(&host, false);
                self.milter_helo(reply, &host).await
            }
            Request::Lhlo { .. } => {
                Reply::new(500, "5.5.1", "Error: this is an SMTP server, not LMTP")
            }
            Request::StartTls => return self.starttls().await,
            Request::Auth { mechanism, initial_response } => {
                self.auth(mechanism, initial_response).await?
            }
            Request::Mail { from } => {
                let reply = self.mail(from, &line);
                self.milter_mail(reply, &line).await
            }
            Request::Rcpt { to } => self.rcpt_and_milters(to, &line).await,
            Request::Data => self.data().await?,
            Request::Rset => {
                self.reset();
                Reply::new(250, "2.0.0", "Ok")
            }
            Request::Noop { .. } => Reply::new(250, "2.0.0", "Ok"),
            Request::Quit => Reply::new(221, "2.0.0", "Bye"),
            // RFC 5321 §3.5.3: 252 rather than confirming which addresses exist.
            Request::Vrfy { .. } => Reply::new(252, "2.0.0", "Send some mail, I'll try my best"),
            Request::Expn { .. } => Reply::new(502, "5.5.1", "Error: EXPN is not supported"),
            Request::Help { .. } => Reply::new(214, "2.0.0", "See RFC 5321"),
            Request::Bdat { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => Reply::new(502, "5.5.1", "Error: command not implemented"),
        };
        Ok(Some(reply))
    }

    /// The 421 of a server shutting down (RFC 5321 §3.8; RFC 3463 4.3.2: system not accepting
    /// network messages).
    pub fn shutting_down(&self) -> Reply {
        Reply::new(
            421,
            "4.3.2",
            format!("{} Service shutting down, try again later", self.ctx.hostname),
        )
    }

    /// The 421 for a client too slow to finish a command or its data.
    pub fn timed_out(&self) -> Reply {
        Reply::new(421, "4.4.2", format!("{} Error: timeout exceeded", self.ctx.hostname))
    }

    /// Judges a deadline-bound read of DATA or a BDAT chunk: `Some(421)` (and the session ends)
    /// when the deadline passed, an error when the client left, `None` when the body is complete.
    pub fn body_read(
        &mut self,
        read: Result<std::io::Result<bool>, tokio::time::error::Elapsed>,
    ) -> std::io::Result<Option<Reply>> {
        match read {
            Err(_) => {
                self.closing = true;
                Ok(Some(self.timed_out()))
            }
            Ok(Ok(true)) => Ok(None),
            Ok(Ok(false)) => Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(Err(e)) => Err(e),
        }
    }

    /// Ends the transaction: RSET, a new HELO, or after a message was accepted or refused.
    pub fn reset(&mut self) {
        self.tx = None;
    }

    /// Evaluates the access rules of `stage` against what the session knows (the HELO name and
    /// sender given here, else the session's), recording what an accepting rule does in
    /// `effects`; `Some` is the refusal to send instead of going on.
    pub fn policy(
        &self,
        stage: PolicyStage,
        helo: Option<&str>,
        sender: Option<&str>,
        recipients: Vec<&str>,
        effects: &mut Effects,
    ) -> Option<Reply> {
        let snapshot = self.ctx.engine.snapshot();
        let rules = &snapshot.config.policy;
        if !rules.has(stage) {
            return None;
        }
        let env = PolicyEnvelope {
            client: Some(self.peer.ip()),
            rdns: self.rdns.as_deref(),
            helo: helo.or(self.helo.as_ref().map(|(h, _)| h.as_str())),
            sender: sender.or(self.tx.as_ref().map(|t| t.sender.as_str())),
            recipients,
            auth: None,
        };
        let user = self.auth.as_ref().map(ToString::to_string);
        let env = PolicyEnvelope { auth: user.as_deref(), ..env };
        match policy::decide(
            rules,
            stage,
            &env,
            effects,
            self.peer.ip(),
            &self.client_description(),
        ) {
            Decision::Continue => None,
            Decision::Refuse(reply, reason) => {
                self.log_refusal(stage.as_str(), &reply, &reason, env.sender, &env.recipients);
                Some(reply)
            }
        }
    }

    /// Puts what the session refused in the delivery log: one entry per recipient named (one
    /// without a recipient when none is), with the stage, the client's address, the sender
    /// (`sender`, else the transaction's) and what decided (`reason`: the rule, list, service
    /// or milter). Through the bounded writer of `policy::refusals`: never waits; under a flood
    /// some are dropped and counted.
    pub fn log_refusal(
        &self,
        stage: &str,
        reply: &Reply,
        reason: &str,
        sender: Option<&str>,
        recipients: &[&str],
    ) {
        self.log_outcome(
            RefusalStatus::of_code(reply.code),
            stage,
            reply,
            reason,
            sender,
            recipients,
        );
    }

    /// Puts a message accepted with a 250 and dropped (a DISCARD) in the delivery log, one
    /// entry per recipient, saying what dropped it.
    pub fn log_discard(&self, tx: &Transaction, reason: &str) {
        let recipients: Vec<&str> = tx.recipients.iter().map(|r| r.address.as_str()).collect();
        let reply = Reply::new(250, "2.0.0", "Ok");
        let sender = Some(tx.sender.as_str());
        self.log_outcome(RefusalStatus::Discarded, "data", &reply, reason, sender, &recipients);
    }

    fn log_outcome(
        &self,
        status: RefusalStatus,
        stage: &str,
        reply: &Reply,
        reason: &str,
        sender: Option<&str>,
        recipients: &[&str],
    ) {
        let sender = sender.or(self.tx.as_ref().map(|t| t.sender.as_str())).unwrap_or("");
        let entry = |recipient: &str| NewRefusal {
            at: postern_store::now(),
            status,
            stage: stage.to_string(),
            client: self.peer.ip().to_string(),
            sender: sender.to_string(),
            recipient: recipient.to_string(),
            reply: reply.to_string(),
            reason: reason.to_string(),
        };
        let entries = recipients.len().max(1) as u64;
        self.ctx.metrics.refused(status.as_str(), stage, reason, entries);
        match recipients {
            [] => self.ctx.refusals.record(entry("")),
            all => all.iter().for_each(|r| self.ctx.refusals.record(entry(r))),
        }
    }

    /// Counts one event of `measure` against the rate limits (`policy::rate`), or with `count`
    /// false only checks that one more would fit; `Some` is the refusal. `user` and `sender`
    /// default to the session's authenticated user and the transaction's sender.
    pub fn rate_limit(
        &self,
        measure: RateMeasure,
        user: Option<&str>,
        sender: Option<&str>,
        count: bool,
    ) -> Option<Reply> {
        let (reply, reason) = self.rate_check(measure, user, sender, count)?;
        let stage = match measure {
            RateMeasure::Connections => "connect",
            RateMeasure::Messages => "mail",
            RateMeasure::Recipients => "rcpt",
            RateMeasure::AuthFailures => "auth",
        };
        self.log_refusal(stage, &reply, &reason, sender, &[]);
        Some(reply)
    }

    /// [`Session::rate_limit`] without the delivery log: the refusal and the limit that gave
    /// it, for a caller that logs it itself (with the recipient) or only counts.
    pub fn rate_check(
        &self,
        measure: RateMeasure,
        user: Option<&str>,
        sender: Option<&str>,
        count: bool,
    ) -> Option<(Reply, String)> {
        let e = self.rate_exceeded(measure, user, sender, count)?;
        let reason = format!(
            "rate limit {}: {} {} from {} {}, limit {}",
            e.limit, e.count, e.measure, e.key, e.subject, e.threshold
        );
        Some((policy::rate::refusal(&e, &self.client_description()), reason))
    }

    /// The rate limit `measure` is past, if any, without a reply or a log line.
    pub fn rate_exceeded(
        &self,
        measure: RateMeasure,
        user: Option<&str>,
        sender: Option<&str>,
        count: bool,
    ) -> Option<policy::rate::Exceeded> {
        let snapshot = self.ctx.engine.snapshot();
        let config = &snapshot.config;
        if config.rate_limits.is_empty() {
            return None;
        }
        let authenticated = self.auth.as_ref().map(ToString::to_string);
        let client = policy::rate::Client {
            ip: self.peer.ip(),
            trusted: config.is_trusted(self.peer.ip()),
            user: user.or(authenticated.as_deref()),
            sender: sender.or(self.tx.as_ref().map(|t| t.sender.as_str())),
        };
        let rates = &self.ctx.rates;
        let result = match count {
            true => rates.count(&config.rate_limits, measure, client),
            false => rates.check(&config.rate_limits, measure, client),
        };
        result.err()
    }

    /// Hands an accepted message to the queue; `250` only once it is durable.
    pub async fn accept_message(
        &mut self,
        tx: Transaction,
        body: Vec<u8>,
        inbound: crate::smtp::verbs::data::Inbound,
    ) -> Reply {
        self.queue_message(tx, body, inbound, None).await
    }

    /// [`Session::accept_message`]; with `spooled`, `body` is only the fields in front of the
    /// spooled body that `spooled` names, which is removed if the message is not queued.
    pub async fn queue_message(
        &mut self,
        tx: Transaction,
        body: Vec<u8>,
        inbound: crate::smtp::verbs::data::Inbound,
        spooled: Option<postern_store::spool::SpooledBody>,
    ) -> Reply {
        let received_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        // One copy per final recipient, however many RCPTs and aliases lead to it (Postfix's
        // cleanup does the same); the first RCPT that led there keeps its ORCPT and NOTIFY.
        let mut seen = std::collections::HashSet::new();
        let recipients = tx
            .recipients
            .iter()
            .flat_map(|r| {
                r.destinations.iter().map(move |d| NewRecipient {
                    address: d.clone(),
                    orcpt: Some(r.orcpt.clone()),
                    notify: r.notify,
                })
            })
            .filter(|r| seen.insert(r.address.to_ascii_lowercase()))
            .collect::<Vec<_>>();
        let effects = &tx.effects;
        if let Some(rule) = effects.discard {
            self.log_discard(&tx, &format!("access rule {rule} DISCARD"));
            tracing::info!(
                rule,
                from = %tx.sender,
                nrcpt = recipients.len(),
                client = %self.client_description(),
                "discarded by policy rule"
            );
            if let (Some(spooled), Some(store)) = (&spooled, self.ctx.sink.spool()) {
                store.spool_discard(std::slice::from_ref(&spooled.body_ref)).await;
            }
            return Reply::new(250, "2.0.0", "Ok");
        }
        // REDIRECT sends the message to one address instead of every recipient (Postfix's
        // access(5) REDIRECT); BCC adds a copy.
        let mut recipients = match &effects.redirect {
            Some((_, to)) => {
                vec![NewRecipient { address: to.clone(), orcpt: None, notify: Notify::default() }]
            }
            None => recipients,
        };
        for (_, to) in &effects.bcc {
            if seen.insert(to.to_ascii_lowercase()) || effects.redirect.is_some() {
                recipients.push(NewRecipient {
                    address: to.clone(),
                    orcpt: None,
                    notify: Notify::default(),
                });
            }
        }
        recipients.dedup_by(|a, b| a.address.eq_ignore_ascii_case(&b.address));
        let size = body.len() + spooled.as_ref().map_or(0, |s| s.len as usize);
        let message = NewMessage {
            sender: tx.sender.clone(),
            recipients,
            envid: tx.envid,
            ret: tx.ret,
            smtputf8: tx.smtputf8,
            eight_bit: tx.eight_bit,
            received_at,
            client: self.client_description(),
            auth_user: self.auth.as_ref().map(ToString::to_string),
            held: effects.hold.is_some() || inbound.held,
            note: effects.note(),
            auth_results: inbound.auth_results,
            body,
        };
        let rcpt_count = message.recipients.len();
        let message_held = message.held;
        let queued = match spooled {
            None => self.ctx.sink.accept(message).await,
            Some(spooled) => self.ctx.sink.accept_spooled(message, spooled).await,
        };
        match queued {
            Ok(id) => {
                self.ctx.metrics.message_received(self.kind.name());
                tracing::info!(
                    queue_id = %id,
                    from = %tx.sender,
                    nrcpt = rcpt_count,
                    policy = tx.effects.note().as_deref().unwrap_or(""),
                    size,
                    client = %self.client_description(),
                    held = message_held,
                    "accepted"
                );
                Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))
            }
            Err(e) => {
                tracing::error!(error = %e, client = %self.client_description(), "cannot queue a message");
                Reply::new(451, "4.3.0", "Error: queue file write error, try again later")
            }
        }
    }

    /// `helo ([ip])`, for logs, the queue and the Received: header.
    pub fn client_description(&self) -> String {
        let helo = self.helo.as_ref().map(|(h, _)| h.as_str()).unwrap_or("unknown");
        format!("{helo} ([{}])", self.peer.ip())
    }
}

/// The reply to a command smtp-proto could not parse.
fn parse_error(error: smtp_proto::Error, verb: &str) -> Reply {
    use smtp_proto::Error as E;
    match error {
        E::UnknownCommand => Reply::new(500, "5.5.2", "Error: command not recognized"),
        E::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        E::InvalidRecipientAddress => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
        E::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        // A SIZE that does not fit (20 digits) is, whatever its value, over our limit.
        E::InvalidParameter { param: "SIZE" } if verb == "MAIL" => {
            Reply::new(552, "5.3.4", "Message size exceeds fixed limit")
        }
        E::InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("Invalid {param} parameter"))
        }
        // RFC 5321 §4.1.1.11: 555 for an unrecognised MAIL or RCPT parameter.
        E::UnsupportedParameter { param } => {
            Reply::new(555, "5.5.4", format!("Unsupported parameter {param}"))
        }
        E::NeedsMoreData { .. } | E::ResponseTooLong | E::InvalidResponse { .. } => {
            Reply::new(500, "5.5.2", "Error: bad syntax")
        }
    }
}
