//! The SMTP (RFC 5321) and LMTP (RFC 2033) client: opens a session (greeting, EHLO or LHLO,
//! STARTTLS per policy, AUTH), then sends messages on it, one outcome per recipient.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use postern_store::model::{Host, SmtpCredentials, TlsPolicy};
use rustls::pki_types::{CertificateDer, ServerName};
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN, EXT_AUTH, EXT_START_TLS, EhloResponse};
use tokio::io::AsyncWriteExt;

use super::connector::{Connector, Target};
use super::reply::{Reply, Wire, WireError};
use super::{Delivery, Handoff, Outcome, tls};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Smtp,
    Lmtp,
}

/// Time limits on each wait for the peer. The defaults are RFC 5321 §4.5.3.2's.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub greeting: Duration,
    /// EHLO, STARTTLS (and its handshake), AUTH, RSET, QUIT.
    pub command: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub data_init: Duration,
    /// Each block of the message written.
    pub data_block: Duration,
    /// The reply after the final dot.
    pub data_done: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(60 * m);
        Timeouts {
            greeting: min(5),
            command: min(5),
            mail: min(5),
            rcpt: min(5),
            data_init: min(2),
            data_block: min(3),
            data_done: min(10),
        }
    }
}

impl Timeouts {
    /// One limit for every wait, for tests.
    pub fn all(limit: Duration) -> Timeouts {
        Timeouts {
            greeting: limit,
            command: limit,
            mail: limit,
            rcpt: limit,
            data_init: limit,
            data_block: limit,
            data_done: limit,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub protocol: Protocol,
    /// Our name in EHLO/LHLO.
    pub helo_name: String,
    pub tls: TlsPolicy,
    /// Trusted in addition to webpki-roots under `TlsPolicy::Verify` (a private CA, or tests).
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub credentials: Option<SmtpCredentials>,
    pub timeouts: Timeouts,
}

impl ClientOptions {
    pub fn new(protocol: Protocol, helo_name: impl Into<String>) -> ClientOptions {
        ClientOptions {
            protocol,
            helo_name: helo_name.into(),
            tls: TlsPolicy::May,
            extra_roots: Vec::new(),
            credentials: None,
            timeouts: Timeouts::default(),
        }
    }
}

/// An open session with a next hop, ready for a message.
pub struct Client {
    pub(super) wire: Wire,
    pub(super) target: Target,
    pub(super) protocol: Protocol,
    pub(super) caps: EhloResponse<String>,
    pub(super) tls: bool,
    pub(super) timeouts: Timeouts,
    /// A MAIL was sent and not ended by a final reply: RSET before the next one.
    pub(super) dirty: bool,
    /// The connection failed; nothing more can be sent on it.
    pub(super) broken: bool,
    /// Per recipient of the last message sent: whether its outcome came from an answer about
    /// it alone (its RCPT reply, or its LMTP reply after the data) rather than one for the
    /// whole transaction.
    pub(super) answered: Vec<bool>,
    /// The last message found the session dead (a lost connection, or 421) before the peer
    /// answered anything about it: resending it elsewhere cannot duplicate it.
    pub(super) lost_before_mail: bool,
}

/// Opens a session, sends one message, and closes the session.
pub async fn deliver(
    connector: &dyn Connector,
    target: &Target,
    options: &ClientOptions,
    delivery: &Delivery<'_>,
) -> Vec<Outcome> {
    match Client::connect(connector, target, options).await {
        Ok(mut client) => {
            let outcomes = client.send(delivery).await;
            client.quit().await;
            outcomes
        }
        Err(outcome) => vec![outcome; delivery.recipients.len()],
    }
}

/// Why a session could not be opened: an outcome for every recipient, and whether a TLS
/// handshake was what failed (for the plaintext retry under `May`).
struct OpenError {
    outcome: Outcome,
    handshake: bool,
}

impl From<Outcome> for OpenError {
    fn from(outcome: Outcome) -> Self {
        OpenError { outcome, handshake: false }
    }
}

/// The outcome a reply means: 2xx/3xx delivered (as `handoff` says), 5xx failed, anything else
/// deferred.
pub(crate) fn outcome_of(reply: &Reply, target: &Target, handoff: Handoff) -> Outcome {
    if reply.is_positive() {
        Outcome::Delivered { detail: format!("{target} said: {reply}"), handoff }
    } else if reply.is_permanent() {
        Outcome::failed(reply.clone())
    } else {
        Outcome::deferred(reply.clone())
    }
}

pub(super) fn lost(target: &Target, error: &WireError, stage: &str) -> Outcome {
    let what = match error {
        WireError::Timeout => format!("timed out waiting for {target} {stage}"),
        other => format!("lost connection with {target} {stage}: {other}"),
    };
    Outcome::deferred(Reply::new(451, [4, 4, 2], what))
}

impl Client {
    /// Connects and opens a session. Under `TlsPolicy::May`, a failed TLS handshake is retried
    /// once in plaintext, as Postfix does: RFC 7435 §6 prefers delivery without encryption to
    /// none at all when encryption was only opportunistic.
    pub async fn connect(
        connector: &dyn Connector,
        target: &Target,
        options: &ClientOptions,
    ) -> Result<Client, Outcome> {
        match Self::open(connector, target, options, true).await {
            Ok(client) => Ok(client),
            Err(e) if e.handshake && options.tls == TlsPolicy::May => {
                Self::open(connector, target, options, false).await.map_err(|e| e.outcome)
            }
            Err(e) => Err(e.outcome),
        }
    }

    async fn open(
        connector: &dyn Connector,
        target: &Target,
        options: &ClientOptions,
        try_tls: bool,
    ) -> Result<Client, OpenError> {
        let stream = connector.connect(target).await.map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => format!("connection refused by {target}"),
                std::io::ErrorKind::TimedOut => format!("connection to {target} timed out"),
                _ => format!("cannot connect to {target}: {e}"),
            };
            Outcome::deferred(Reply::new(451, [4, 4, 1], why))
        })?;
        let mut client = Client {
            wire: Wire::new(stream),
            target: target.clone(),
            protocol: options.protocol,
            caps: EhloResponse::default(),
            tls: false,
            timeouts: options.timeouts,
            dirty: false,
            broken: false,
            answered: Vec::new(),
            lost_before_mail: false,
        };
        let greeting = client
            .wire
            .read_reply(client.timeouts.greeting)
            .await
            .map_err(|e| lost(target, &e, "in the greeting"))?;
        if greeting.code != 220 {
            return Err(client.refused(&greeting, "greeted us with").into());
        }
        client.hello(&options.helo_name).await?;
        client.starttls(options, try_tls).await?;
        if let Some(credentials) = &options.credentials {
            client.authenticate(credentials, options.tls).await?;
        }
        Ok(client)
    }

    /// A refusal during session set-up, for every recipient: 5xx fails, anything else defers.
    pub(super) fn refused(&self, reply: &Reply, what: &str) -> Outcome {
        let reply = reply.noted(format_args!("({} {what} this)", self.target));
        if reply.is_permanent() { Outcome::failed(reply) } else { Outcome::deferred(reply) }
    }

    pub(super) async fn command(
        &mut self,
        line: &str,
        limit: Duration,
        stage: &str,
    ) -> Result<Reply, Outcome> {
        let sent = self.wire.send(line.as_bytes(), limit).await;
        let reply = match sent {
            Ok(()) => self.wire.read_reply(limit).await,
            Err(e) => Err(e),
        };
        reply.map_err(|e| {
            self.broken = true;
            lost(&self.target, &e, stage)
        })
    }

    /// EHLO, or LHLO for LMTP; HELO when an SMTP server refuses EHLO (RFC 5321 §3.2).
    async fn hello(&mut self, name: &str) -> Result<(), Outcome> {
        let verb = if self.protocol == Protocol::Lmtp { "LHLO" } else { "EHLO" };
        let limit = self.timeouts.command;
        let reply =
            self.command(&format!("{verb} {name}\r\n"), limit, &format!("after {verb}")).await?;
        if reply.code == 250 {
            self.caps = self.wire.capabilities();
            return Ok(());
        }
        if self.protocol == Protocol::Lmtp || !reply.is_permanent() {
            return Err(self.refused(&reply, &format!("answered {verb} with")));
        }
        let reply = self.command(&format!("HELO {name}\r\n"), limit, "after HELO").await?;
        if reply.code != 250 {
            return Err(self.refused(&reply, "answered HELO with"));
        }
        self.caps = EhloResponse::default();
        Ok(())
    }

    pub(super) fn offers(&self, extension: u32) -> bool {
        self.caps.capabilities & extension != 0
    }

    /// Whether the DSN parameters go to this peer: an SMTP server that offers DSN (RFC 3461
    /// §4). An LMTP server is where the message is delivered; the success notice is ours.
    pub(super) fn takes_dsn(&self) -> bool {
        self.protocol == Protocol::Smtp && self.offers(smtp_proto::EXT_DSN)
    }

    /// What a message this peer accepts becomes, for success notices.
    pub(super) fn handoff(&self) -> Handoff {
        match self.protocol {
            Protocol::Lmtp => Handoff::Mailbox,
            Protocol::Smtp if self.takes_dsn() => Handoff::PassedOn,
            Protocol::Smtp => Handoff::Relayed,
        }
    }

    async fn starttls(&mut self, options: &ClientOptions, try_tls: bool) -> Result<(), OpenError> {
        let required = matches!(options.tls, TlsPolicy::Encrypt | TlsPolicy::Verify);
        if options.tls == TlsPolicy::None || (!try_tls && !required) {
            return Ok(());
        }
        let target = self.target.clone();
        if !self.offers(EXT_START_TLS) {
            if required {
                return Err(Outcome::deferred(Reply::new(
                    451,
                    [4, 7, 10],
                    format!("TLS is required for {target}, which does not offer STARTTLS"),
                ))
                .into());
            }
            return Ok(());
        }
        let limit = self.timeouts.command;
        let reply = self.command("STARTTLS\r\n", limit, "after STARTTLS").await?;
        if reply.code != 220 {
            if required {
                return Err(Outcome::deferred(Reply::new(
                    451,
                    [4, 7, 10],
                    format!(
                        "TLS is required for {target}, which answered STARTTLS with \
                     {reply}"
                    ),
                ))
                .into());
            }
            return Ok(());
        }
        let config = match options.tls {
            TlsPolicy::Verify => tls::verifying(&options.extra_roots),
            _ => tls::unauthenticated(),
        }
        .map_err(|e| {
            Outcome::deferred(Reply::new(451, [4, 7, 5], format!("TLS set-up for {target}: {e}")))
        })?;
        let name = match target.host() {
            Some(Host::Name(name)) => ServerName::try_from(name.as_str().to_string()),
            Some(Host::Ip(ip)) => Ok(ServerName::IpAddress(ip.into())),
            None => ServerName::try_from("localhost".to_string()),
        }
        .map_err(|e| {
            Outcome::deferred(Reply::new(451, [4, 7, 5], format!("TLS name for {target}: {e}")))
        })?;

        let stream = self.wire.take_stream().map_err(|e| {
            self.broken = true;
            Outcome::deferred(Reply::new(451, [4, 7, 5], format!("{target}: {e}")))
        })?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let handshake = tokio::time::timeout(limit, connector.connect(name, stream)).await;
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                self.broken = true;
                let outcome = Outcome::deferred(Reply::new(
                    451,
                    [4, 7, 5],
                    format!("TLS handshake with {target} failed: {e}"),
                ));
                return Err(OpenError { outcome, handshake: true });
            }
            Err(_) => {
                self.broken = true;
                let outcome = Outcome::deferred(Reply::new(
                    451,
                    [4, 7, 5],
                    format!("TLS handshake with {target} timed out"),
                ));
                return Err(OpenError { outcome, handshake: true });
            }
        };
        self.wire = Wire::new(Box::new(stream));
        self.tls = true;
        // RFC 3207 §4.2: forget what was learnt before TLS, and ask again.
        self.hello(&options.helo_name).await?;
        Ok(())
    }

    /// AUTH PLAIN or LOGIN (RFC 4954). Credentials go only over TLS, or in the clear to this
    /// machine when the policy says no TLS (a local relay on loopback or a Unix socket).
    /// A refusal defers rather than fails: it is our configuration that is wrong, not the mail.
    async fn authenticate(
        &mut self,
        credentials: &SmtpCredentials,
        policy: TlsPolicy,
    ) -> Result<(), Outcome> {
        let target = self.target.clone();
        let clear_but_local = policy == TlsPolicy::None && target.is_local();
        if !self.tls && !clear_but_local {
            return Err(Outcome::deferred(Reply::new(
                451,
                [4, 7, 10],
                format!("not sending credentials to {target} without TLS"),
            )));
        }
        if !self.offers(EXT_AUTH) {
            return Err(Outcome::deferred(Reply::new(
                451,
                [4, 7, 0],
                format!("credentials are configured for {target}, which does not offer AUTH"),
            )));
        }
        let limit = self.timeouts.command;
        let mechanisms = self.caps.auth_mechanisms;
        let reply = if mechanisms & AUTH_PLAIN != 0 {
            let token = format!("\0{}\0{}", credentials.username, credentials.password);
            let line = format!("AUTH PLAIN {}\r\n", BASE64.encode(token));
            self.command(&line, limit, "after AUTH").await?
        } else if mechanisms & AUTH_LOGIN != 0 {
            let mut reply = self.command("AUTH LOGIN\r\n", limit, "after AUTH").await?;
            for secret in [&credentials.username, &credentials.password] {
                if reply.code != 334 {
                    break;
                }
                let line = format!("{}\r\n", BASE64.encode(secret));
                reply = self.command(&line, limit, "during AUTH").await?;
            }
            reply
        } else {
            return Err(Outcome::deferred(Reply::new(
                451,
                [4, 7, 0],
                format!("{target} offers neither AUTH PLAIN nor AUTH LOGIN"),
            )));
        };
        if reply.code != 235 {
            return Err(Outcome::deferred(Reply::new(
                451,
                [4, 7, 0],
                format!("{target} refused our AUTH: {reply}"),
            )));
        }
        Ok(())
    }

    /// Whether the session was encrypted with TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether another message can be sent on this session.
    pub fn is_usable(&self) -> bool {
        !self.broken && !self.wire.closing
    }

    /// Sends one message; one outcome per recipient, in order. The session stays open for
    /// another message unless the connection failed.
    pub async fn send(&mut self, d: &Delivery<'_>) -> Vec<Outcome> {
        let n = d.recipients.len();
        self.answered = vec![false; n];
        self.lost_before_mail = false;
        if self.broken {
            self.lost_before_mail = true;
            let gone = Reply::new(
                451,
                [4, 4, 2],
                format!("the connection to {} failed earlier", self.target),
            );
            return vec![Outcome::deferred(gone); n];
        }
        if self.dirty {
            // RFC 5321 §4.1.1.5: start the next transaction from a clean state.
            match self.command("RSET\r\n", self.timeouts.command, "after RSET").await {
                Ok(reply) if reply.code == 250 => self.dirty = false,
                Ok(reply) => {
                    self.broken = true;
                    self.lost_before_mail = reply.code == 421;
                    return vec![self.refused(&reply, "answered RSET with"); n];
                }
                Err(outcome) => {
                    self.lost_before_mail = true;
                    return vec![outcome; n];
                }
            }
        }
        let outcomes = super::transaction::run(self, d).await;
        self.broken |= self.wire.closing;
        outcomes
    }

    /// For each recipient of the last message sent, whether its outcome answered it alone; the
    /// others share a reply for the whole transaction (MAIL, DATA, the end of data, a lost
    /// connection), which another host may answer differently (RFC 5321 §5.1).
    pub fn answered_individually(&self) -> &[bool] {
        &self.answered
    }

    /// Whether the last message met a dead session (the connection lost, or a 421) before
    /// the peer said anything about it, so that nothing of it can have been delivered: how a
    /// cached session the server has since closed shows itself.
    pub fn lost_before_mail(&self) -> bool {
        self.lost_before_mail
    }

    /// Ends the session politely; errors are of no interest any more.
    pub async fn quit(mut self) {
        if !self.broken {
            let _ = self.command("QUIT\r\n", Duration::from_secs(10), "after QUIT").await;
        }
        if let Ok(mut stream) = self.wire.take_stream() {
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.shutdown()).await;
        }
    }
}
