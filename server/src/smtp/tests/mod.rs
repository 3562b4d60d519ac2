//! SMTP sessions over in-memory streams, against a real store and engine: the protocol, the relay
//! decision, and every hostile-client case of the MTA core issue.

mod auth_limits;
mod auth_tls;
mod clients;
mod content_checks;
mod delegation;
mod dialog;
mod drain;
mod dsn;
mod hostile;
mod identity;
mod inbound_auth;
mod milter_peers;
mod milters;
mod properties;
mod protocol;
mod rate_limits;
mod refusal_log;
mod relay;
mod screening;
mod signing;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_store::auth::PasswordChecks;
use postern_store::model::{DomainKind, NewMailbox, PasswordHash};
use postern_store::testing::TestDb;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::io::Io;
use super::session::Session;
use postern_store::model::{NewMessage, QueueId};

use super::{Limits, ListenerKind, MessageSink, SessionContext};
use crate::engine::Engine;
use crate::queue::QueueError;

pub const PASSWORD: &str = "correct horse battery";

/// Keeps what the sessions accept (the queue is tested on its own); its flag makes it refuse, as
/// a queue whose write failed would.
#[derive(Default)]
pub struct Collect(pub Mutex<Vec<NewMessage>>, pub std::sync::atomic::AtomicBool);

impl MessageSink for Collect {
    fn accept(
        &self,
        message: NewMessage,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<QueueId, QueueError>> + Send + '_>>
    {
        Box::pin(async move {
            if self.1.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(QueueError::Closed);
            }
            let mut all = self.0.lock().unwrap();
            all.push(message);
            Ok(queue_id(all.len()))
        })
    }
}

/// The ID [`Collect`] gives its `n`th message: `0000000000000001` for the first.
pub fn queue_id(n: usize) -> QueueId {
    format!("{n:016}").parse().expect("digits make a queue ID")
}

pub trait Rw: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Rw for T {}

/// A server configuration with example.test (ann, bob; sales -> ann, bob; bob may also send as
/// boss@elsewhere.test and @relay.test), catchall.test (everything -> ann), relay.test as a relay
/// domain, gone.test refused by an `error:` transport, and a self-signed certificate for
/// mail.example.test.
pub struct Server {
    pub ctx: Arc<SessionContext>,
    /// The store the engine follows: a change here is live once the snapshot has its revision.
    pub store: postern_store::Store,
    pub sink: Arc<Collect>,
    pub client_tls: tokio_rustls::TlsConnector,
    /// The sessions' clock (rate limits, greylisting): moves only when a test says.
    pub clock: crate::policy::Clock,
    _db: TestDb,
    _shutdown: tokio_util::sync::DropGuard,
}

impl Server {
    pub async fn new() -> Server {
        Server::with_limits(Limits::default()).await
    }

    pub async fn with_limits(limits: Limits) -> Server {
        Server::with(limits, PasswordChecks::default()).await
    }

    pub async fn with(limits: Limits, passwords: PasswordChecks) -> Server {
        let db = TestDb::sqlite();
        let store = db.open().await;
        let actor = "test";
        store.add_domain(actor, &"example.test".parse().unwrap(), DomainKind::Local).await.unwrap();
        store.add_domain(actor, &"relay.test".parse().unwrap(), DomainKind::Relay).await.unwrap();
        let hash = PasswordHash::create(PASSWORD).unwrap();
        for (user, enabled) in [("ann", true), ("bob", true), ("off", false)] {
            let new = NewMailbox {
                address: format!("{user}@example.test").parse().unwrap(),
                display_name: String::new(),
                enabled,
                quota_bytes: None,
                password_hash: hash.clone(),
            };
            store.add_mailbox(actor, new).await.unwrap();
        }
        let dests = ["ann@example.test".parse().unwrap(), "bob@example.test".parse().unwrap()];
        store.add_alias(actor, &"sales@example.test".parse().unwrap(), &dests).await.unwrap();
        // bob may also send as boss@elsewhere.test and anything at relay.test; a catch-all that
        // delivers to ann gives her nothing to send as.
        let send_as = postern_store::model::parse_send_as("boss@elsewhere.test @relay.test").ok();
        let update = postern_store::model::MailboxUpdate { send_as, ..Default::default() };
        store.update_mailbox(actor, &"bob@example.test".parse().unwrap(), update).await.unwrap();
        store
            .add_domain(actor, &"catchall.test".parse().unwrap(), DomainKind::Local)
            .await
            .unwrap();
        let ann = ["ann@example.test".parse().unwrap()];
        store.add_alias(actor, &"@catchall.test".parse().unwrap(), &ann).await.unwrap();
        let moved = "error:this domain has moved".parse().unwrap();
        store
            .set_transport(actor, &"gone.test".parse().unwrap(), moved, Default::default(), None)
            .await
            .unwrap();
        let shutdown = CancellationToken::new();
        let (engine, _task) = Engine::start(store.clone(), "test", shutdown.clone()).await.unwrap();

        let cert =
            rcgen::generate_simple_self_signed(vec!["mail.example.test".to_string()]).unwrap();
        let acceptor = crate::tls::acceptor_from_pem(
            cert.cert.pem().as_bytes(),
            cert.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();

        let sink = Arc::new(Collect::default());
        let clock = crate::policy::Clock::manual(1_000_000_000);
        let rates =
            crate::policy::RateLimiter::new(clock.clone(), crate::policy::rate::MAX_ENTRIES);
        let (refusals, writer) = crate::policy::RefusalLog::start(store.clone(), shutdown.clone());
        tokio::spawn(writer);
        let ctx = Arc::new(SessionContext {
            hostname: "mail.example.test".into(),
            engine,
            sink: sink.clone(),
            tls: Some(acceptor),
            limits,
            disk: crate::smtp::DiskGauge::watch(db.dir(), shutdown.clone()),
            signer: Arc::new(TestSigner),
            verifier: None,
            // The attempt limiter's delays on the same simulated clock.
            passwords: passwords.on_clock(clock.clone()),
            rates: Arc::new(rates),
            screen: Arc::new(crate::policy::Screen::new(
                store.clone(),
                Arc::new(crate::dns::ScriptedResolver::new()),
                clock.clone(),
            )),
            refusals,
            auth_backend: Default::default(),
            directory: Default::default(),
            draining: CancellationToken::new(),
            metrics: store.metrics().clone(),
        });
        Server {
            ctx,
            store,
            sink,
            client_tls: tokio_rustls::TlsConnector::from(Arc::new(client)),
            clock,
            _db: db,
            _shutdown: shutdown.drop_guard(),
        }
    }

    /// Starts a session as if `peer` had connected to a `kind` listener; returns the client end
    /// before the greeting is read.
    pub fn connect_silent(&self, kind: ListenerKind, peer: &str) -> Client {
        let (client, server) = tokio::io::duplex(1 << 20);
        let peer: SocketAddr = format!("{peer}:40000").parse().unwrap();
        tokio::spawn(Session::new(self.ctx.clone(), kind, peer, Io::Plain(server)).run());
        Client { conn: BufReader::new(Box::new(client)), tls: self.client_tls.clone() }
    }

    /// Connects and reads the greeting.
    pub async fn connect(&self, kind: ListenerKind, peer: &str) -> Client {
        let mut client = self.connect_silent(kind, peer);
        let greeting = client.reply().await;
        assert!(greeting.starts_with("220 mail.example.test"), "{greeting}");
        client
    }

    /// Adds an access rule and waits until the engine's snapshot has it.
    pub async fn add_rule(&self, rule: postern_store::model::NewPolicyRule) {
        self.store.add_policy_rule("test", rule, None).await.unwrap();
        self.caught_up().await;
    }

    /// Waits until the engine's snapshot carries the store's current revision, so that a
    /// configuration change just made is live.
    pub async fn caught_up(&self) {
        let wanted = self.store.revision().await.unwrap();
        let start = std::time::Instant::now();
        while self.ctx.engine.snapshot().revision() < wanted {
            assert!(start.elapsed() < Duration::from_secs(10), "the engine never took {wanted}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until the delivery log holds `n` entries of `status` (the refusals' writer is a
    /// task of its own) and returns them, newest first.
    pub async fn logged(&self, status: &str, n: usize) -> Vec<postern_store::LogEntry> {
        let filter = postern_store::LogFilter { status: Some(status.into()), ..Default::default() };
        let start = std::time::Instant::now();
        loop {
            let found = self.store.delivery_log(&filter, None, 1000).await.unwrap();
            if found.len() >= n {
                return found;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{n} {status} never logged: {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn accepted(&self) -> Vec<NewMessage> {
        self.sink.0.lock().unwrap().clone()
    }
}

pub struct Client {
    pub conn: BufReader<Box<dyn Rw>>,
    tls: tokio_rustls::TlsConnector,
}

impl Client {
    pub async fn send(&mut self, bytes: &[u8]) {
        self.conn.get_mut().write_all(bytes).await.unwrap();
        self.conn.get_mut().flush().await.unwrap();
    }

    /// One whole reply, its lines joined with "\n"; "" when the server closed.
    pub async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.conn.read_line(&mut line))
                .await
                .expect("a reply within 10 s")
                .unwrap();
            if n == 0 {
                return lines.join("\n");
            }
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Sends a command and asserts the reply starts with `expect`.
    pub async fn expect(&mut self, line: &str, expect: &str) -> String {
        let reply = self.cmd(line).await;
        assert!(reply.starts_with(expect), "{line:?} got {reply:?}, wanted {expect:?}");
        reply
    }

    /// True once the server has closed the connection.
    pub async fn closed(&mut self) -> bool {
        let mut rest = String::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.conn.read_line(&mut rest)).await,
            Ok(Ok(0))
        )
    }

    pub async fn starttls(&mut self) {
        self.expect("STARTTLS", "220 2.0.0").await;
        self.upgrade().await;
    }

    pub async fn upgrade(&mut self) {
        let conn = std::mem::replace(
            &mut self.conn,
            BufReader::new(Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink()))),
        );
        assert!(conn.buffer().is_empty(), "the server said something before the handshake");
        let name = rustls_pki_types::ServerName::try_from("mail.example.test").unwrap();
        let tls = self.tls.connect(name, conn.into_inner()).await.unwrap();
        self.conn = BufReader::new(Box::new(tls));
    }

    /// A whole transaction; returns the reply after the data.
    pub async fn mail(&mut self, from: &str, to: &[&str], body: &str) -> String {
        self.expect(&format!("MAIL FROM:<{from}>"), "250").await;
        for rcpt in to {
            self.expect(&format!("RCPT TO:<{rcpt}>"), "250").await;
        }
        self.expect("DATA", "354").await;
        self.send(body.as_bytes()).await;
        self.cmd(".").await
    }
}

/// Marks what it would sign, so that tests see where signing happens.
struct TestSigner;

impl crate::mailauth::Signer for TestSigner {
    fn sign(&self, domain: &str, parts: &[&[u8]]) -> String {
        let signed: usize = parts.iter().map(|p| p.len()).sum();
        format!("DKIM-Signature: v=1; d={domain}; test=yes; signed={signed}\r\n")
    }
}

pub fn base64_plain(authzid: &str, user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{authzid}\0{user}\0{password}"))
}
