//! AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN, only under TLS and only on the submission
//! ports, checked against the mailboxes' argon2id hashes: slowed per account and client address
//! across sessions, and bounded in how many run at once, with the console's logins (see
//! `postern_store::auth`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use postern_store::auth::Refused;
use postern_store::boot::SmtpAuthBackend;
use postern_store::model::{Address, RateMeasure};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::smtp::dovecot_auth;
use crate::smtp::line::{Line, read_line};
use crate::smtp::reply::Reply;
use crate::smtp::session::Session;

/// RFC 4954 §4: a client response may be up to 12288 octets.
const RESPONSE_LIMIT: usize = 12288;

/// Why an exchange ended without credentials to check.
enum Abort {
    Reply(Reply),
    Io(std::io::Error),
}

impl From<std::io::Error> for Abort {
    fn from(e: std::io::Error) -> Abort {
        Abort::Io(e)
    }
}

fn malformed() -> Abort {
    Abort::Reply(Reply::new(501, "5.5.2", "Error: malformed authentication response"))
}

fn invalid() -> Reply {
    Reply::new(535, "5.7.8", "Error: authentication failed")
}

/// RFC 4954 §6: 454 4.7.0 is a temporary failure; the client may try again later. Sent when
/// this account or address has failed too often lately, or too many checks are running.
fn refused(why: Refused, peer: std::net::SocketAddr) -> Reply {
    let seconds = why.retry_after();
    tracing::warn!(%peer, retry_after = seconds, ?why, "authentication not checked");
    Reply::new(
        454,
        "4.7.0",
        format!("Temporary authentication failure, try again in {seconds} seconds"),
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(in crate::smtp) async fn auth(
        &mut self,
        mechanism: u64,
        initial: String,
    ) -> std::io::Result<Reply> {
        if !self.kind.takes_auth() {
            return Ok(Reply::new(503, "5.5.1", "Error: authentication not enabled on this port"));
        }
        if !self.conn.get_ref().is_tls() {
            return Ok(Reply::new(530, "5.7.0", "Must issue a STARTTLS command first"));
        }
        if self.helo.is_none() {
            return Ok(Reply::new(503, "5.5.1", "Error: send EHLO first"));
        }
        if self.auth.is_some() {
            return Ok(Reply::new(503, "5.5.1", "Error: already authenticated"));
        }
        if self.tx.is_some() {
            return Ok(Reply::new(503, "5.5.1", "Error: MAIL transaction in progress"));
        }
        let credentials = match mechanism {
            smtp_proto::AUTH_PLAIN => self.plain(initial).await,
            smtp_proto::AUTH_LOGIN => self.login(initial).await,
            _ => {
                return Ok(Reply::new(504, "5.5.4", "Error: unsupported authentication mechanism"));
            }
        };
        let (user, password) = match credentials {
            Ok(c) => c,
            Err(Abort::Reply(reply)) => return Ok(reply),
            Err(Abort::Io(e)) => return Err(e),
        };
        // Past the AUTH-failure rate limits, no password is checked until the window ends.
        let failures = RateMeasure::AuthFailures;
        if let Some(reply) = self.rate_limit(failures, Some(&user), None, false) {
            return Ok(reply);
        }
        // Counted per account and address before the check, across sessions: reconnecting
        // does not start again (issue 9, item 4).
        let check = match self.ctx.passwords.begin(&user, self.peer.ip()) {
            Ok(check) => check,
            Err(why) => {
                // A client that keeps trying while told to wait is failing too.
                let _ = self.rate_check(failures, Some(&user), None, true);
                return Ok(refused(why, self.peer));
            }
        };
        if let SmtpAuthBackend::Dovecot { socket } = &self.ctx.auth_backend {
            let socket = socket.clone();
            return Ok(self.auth_by_dovecot(socket, check, &user, &password, mechanism).await);
        }
        // A user of a domain whose mailboxes live in a directory binds there (smtp/directory.rs).
        let check = match self.directory_auth(check, &user, &password, mechanism).await {
            Ok(reply) => return Ok(reply),
            Err(check) => check,
        };
        let address = user.parse::<Address>().ok();
        let hash = address.as_ref().and_then(|address| {
            let snapshot = self.ctx.engine.snapshot();
            snapshot
                .config
                .mailboxes
                .get(address)
                .filter(|m| m.enabled)
                .map(|m| m.password_hash.clone())
        });
        // An unknown or malformed user is checked against a decoy, at the same cost.
        match (check.verify(hash, &password).await, address) {
            (Err(why), _) => Ok(refused(why, self.peer)),
            (Ok(true), Some(address)) => Ok(self.authenticated(address, mechanism)),
            (Ok(_), _) => Ok(self.auth_failed(&user)),
        }
    }

    /// Dovecot checks the password (`[auth] backend = "dovecot"`); its name for the user must
    /// be an address, which the session then sends as.
    async fn auth_by_dovecot(
        &mut self,
        socket: std::path::PathBuf,
        check: postern_store::auth::Check,
        user: &str,
        password: &str,
        mechanism: u64,
    ) -> Reply {
        let request = dovecot_auth::Request {
            user,
            password,
            remote: self.peer.ip(),
            secured: self.conn.get_ref().is_tls(),
        };
        match dovecot_auth::check(&socket, &request).await {
            dovecot_auth::Verdict::Accepted(name) => match name.parse::<Address>() {
                Ok(address) => {
                    check.settle(Some(true));
                    self.authenticated(address, mechanism)
                }
                Err(_) => {
                    check.settle(None);
                    tracing::warn!(peer = %self.peer, user = %name, "Dovecot accepted a user \
                        whose name is not an email address: refused, it could send as no one");
                    Reply::new(535, "5.7.8", "Error: authentication failed: not a mail user")
                }
            },
            dovecot_auth::Verdict::Refused => {
                check.settle(Some(false));
                self.auth_failed(user)
            }
            dovecot_auth::Verdict::Unavailable(why) => {
                check.settle(None);
                tracing::warn!(peer = %self.peer, error = %why, "Dovecot authentication unavailable");
                // RFC 4954 §6: a temporary failure, never "wrong password".
                Reply::new(454, "4.7.0", "Temporary authentication failure")
            }
        }
    }

    pub(in crate::smtp) fn authenticated(&mut self, address: Address, mechanism: u64) -> Reply {
        tracing::info!(peer = %self.peer, user = %address, "authenticated");
        self.auth = Some(address);
        // For policy services' sasl_method and milters' {auth_type}.
        self.auth_mechanism = Some(match mechanism {
            smtp_proto::AUTH_PLAIN => "PLAIN",
            _ => "LOGIN",
        });
        Reply::new(235, "2.7.0", "Authentication successful")
    }

    /// Counts a wrong password for `user` as the client gave it; the log names it only when it
    /// is an address, so that a hostile name cannot forge log lines.
    pub(in crate::smtp) fn auth_failed(&mut self, user: &str) -> Reply {
        self.ctx.metrics.auth_failed(self.kind.name());
        let _ = self.rate_check(RateMeasure::AuthFailures, Some(user), None, true);
        let shown = user.parse::<Address>().map(|a| a.to_string()).unwrap_or_default();
        tracing::warn!(peer = %self.peer, user = %shown, "authentication failed");
        invalid()
    }

    /// Sends a 334 challenge and reads the client's base64 answer.
    async fn challenge(&mut self, text: &str) -> Result<Vec<u8>, Abort> {
        self.answer(Reply::plain(334, vec![text.to_string()]));
        self.flush().await?;
        // AUTH comes before MAIL: the idle limit applies, not a transaction's 5 minutes.
        let line = match tokio::time::timeout(
            self.ctx.limits.idle_timeout,
            read_line(&mut self.conn, RESPONSE_LIMIT),
        )
        .await
        {
            Err(_) => {
                return Err(Abort::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "AUTH timed out",
                )));
            }
            Ok(line) => line?,
        };
        match line {
            Line::Eof => Err(Abort::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Line::TooLong => Err(malformed()),
            Line::Text(t) if t == b"*" => {
                Err(Abort::Reply(Reply::new(501, "5.0.0", "Error: authentication cancelled")))
            }
            Line::Text(t) => BASE64.decode(&t).map_err(|_| malformed()),
        }
    }

    /// PLAIN: `authzid NUL authcid NUL password`, in the initial response or after a 334.
    async fn plain(&mut self, initial: String) -> Result<(String, String), Abort> {
        let decoded = match initial.as_str() {
            "" => self.challenge("").await?,
            // RFC 4954 §4: "=" is an empty initial response.
            "=" => Vec::new(),
            text => BASE64.decode(text).map_err(|_| malformed())?,
        };
        plain_credentials(&decoded).map_err(|e| match e {
            Sasl::Malformed => malformed(),
            Sasl::OtherIdentity => Abort::Reply(invalid()),
        })
    }

    /// LOGIN: the user name and the password, each after its own 334 prompt.
    async fn login(&mut self, initial: String) -> Result<(String, String), Abort> {
        let user = match initial.as_str() {
            "" => self.challenge("VXNlcm5hbWU6").await?,
            text => BASE64.decode(text).map_err(|_| malformed())?,
        };
        let password = self.challenge("UGFzc3dvcmQ6").await?;
        let text = |b: Vec<u8>| login_text(b).ok_or_else(malformed);
        Ok((text(user)?, text(password)?))
    }
}

/// Why a decoded SASL response gives no credentials to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::smtp) enum Sasl {
    /// Not the mechanism's syntax: `501 5.5.2`.
    Malformed,
    /// PLAIN naming an authorisation identity other than the user: `535 5.7.8`.
    OtherIdentity,
}

/// PLAIN's message (RFC 4616 §2): `[authzid] NUL authcid NUL passwd`, each UTF-8 without NUL.
/// Returns the user and the password. Pure, so that it can be tested on generated input.
pub(in crate::smtp) fn plain_credentials(decoded: &[u8]) -> Result<(String, String), Sasl> {
    let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
    let [authzid, authcid, password] = parts.as_slice() else { return Err(Sasl::Malformed) };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| Sasl::Malformed);
    let (authzid, authcid, password) = (text(authzid)?, text(authcid)?, text(password)?);
    // We act for no one else: an authorisation identity other than the user is refused.
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(&authcid) {
        return Err(Sasl::OtherIdentity);
    }
    Ok((authcid, password))
}

/// One LOGIN answer (the user name or the password): UTF-8 without NUL.
pub(in crate::smtp) fn login_text(decoded: Vec<u8>) -> Option<String> {
    String::from_utf8(decoded).ok().filter(|s| !s.contains('\0'))
}
