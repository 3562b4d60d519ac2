//! The policy delegation client: Postfix's policy protocol (SMTPD_POLICY_README, "Protocol
//! description"), spoken to the configured policy services (postgrey, policyd-spf, …).
//!
//! A request is `name=value` lines ending with an empty line; the answer is `action=…` (and
//! possibly other `name=value` lines) ending with an empty line. The connection stays open for
//! the next request of the session, as Postfix keeps it. The action is read as an access(5)
//! action: OK, DUNNO, REJECT, DEFER, DEFER_IF_PERMIT, 4xx/5xx text, HOLD, DISCARD, PREPEND,
//! REDIRECT, BCC, WARN; anything else is logged and taken as DUNNO.
//!
//! A service that cannot answer within its timeout — refused, hung, dead mid-answer, garbage —
//! gets its configured default: go on (DUNNO) or `451 4.3.5`, so that the client tries again
//! and nothing is lost.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use postern_store::model::{
    Address, OnFailure, PolicyService, ServiceAddress, ServiceStage, check_header_field,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::time::Instant;

use super::{Decision, Effects};
use crate::smtp::Reply;

/// Longest answer line we read, and most lines in an answer: a service is trusted with its
/// answer, not with our memory.
const MAX_LINE: u64 = 4096;
const MAX_LINES: usize = 64;
/// Longest reply text taken from a service into an SMTP reply.
const MAX_TEXT: usize = 300;

/// What a request says about the client and the message; encoded as the standard attributes.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// `SMTP` or `ESMTP`.
    pub protocol_name: String,
    pub helo_name: String,
    pub sender: String,
    pub recipient: String,
    pub recipient_count: usize,
    pub client: Option<SocketAddr>,
    /// The client's reverse DNS name, `unknown` when there is none.
    pub client_name: String,
    /// Identifies the message across its requests (the same for every RCPT of one message).
    pub instance: String,
    pub sasl_method: String,
    pub sasl_username: String,
    /// The message size: SIZE= at RCPT when given, the real size at the end of DATA.
    pub size: usize,
    /// `TLSv1.3` and its cipher, when the session is encrypted.
    pub encryption_protocol: String,
    pub encryption_cipher: String,
    pub queue_id: String,
}

impl Query {
    /// The request for `stage`, in the protocol's format (every value on one line).
    pub fn encode(&self, stage: ServiceStage) -> Vec<u8> {
        let state = match stage {
            ServiceStage::Rcpt => "RCPT",
            ServiceStage::Data => "END-OF-MESSAGE",
        };
        let ip = self.client.map(|c| c.ip().to_string()).unwrap_or_default();
        let port = self.client.map(|c| c.port().to_string()).unwrap_or_default();
        let count = self.recipient_count.to_string();
        let size = self.size.to_string();
        let attrs: [(&str, &str); 20] = [
            ("request", "smtpd_access_policy"),
            ("protocol_state", state),
            ("protocol_name", &self.protocol_name),
            ("helo_name", &self.helo_name),
            ("queue_id", &self.queue_id),
            ("sender", &self.sender),
            ("recipient", &self.recipient),
            ("recipient_count", &count),
            ("client_address", &ip),
            ("client_port", &port),
            ("client_name", &self.client_name),
            ("reverse_client_name", &self.client_name),
            ("instance", &self.instance),
            ("sasl_method", &self.sasl_method),
            ("sasl_username", &self.sasl_username),
            ("sasl_sender", ""),
            ("size", &size),
            ("encryption_protocol", &self.encryption_protocol),
            ("encryption_cipher", &self.encryption_cipher),
            ("policy_context", ""),
        ];
        let mut out = Vec::with_capacity(512);
        for (name, value) in attrs {
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            // A value is one line: a line ending would end the request early (or inject one).
            out.extend(value.bytes().map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }));
            out.push(b'\n');
        }
        out.push(b'\n');
        out
    }
}

/// Why a service gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("connection lost: {0}")]
    Io(String),
    #[error("not a policy answer: {0}")]
    Garbage(String),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

struct Conn {
    address: ServiceAddress,
    stream: BufReader<Box<dyn Stream>>,
}

/// A session's connections to its policy services, one per service, kept between requests,
/// and the instance of the message being asked about.
#[derive(Default)]
pub struct Delegation {
    conns: HashMap<String, Conn>,
    instance: String,
    messages: u64,
}

impl std::fmt::Debug for Delegation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delegation").field("open", &self.conns.len()).finish()
    }
}

async fn connect(address: &ServiceAddress) -> std::io::Result<Box<dyn Stream>> {
    Ok(match address {
        ServiceAddress::Inet { host, port } => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            stream.set_nodelay(true)?;
            Box::new(stream)
        }
        ServiceAddress::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
    })
}

/// Reads one answer: `name=value` lines up to an empty line; returns the action.
async fn read_answer(stream: &mut BufReader<Box<dyn Stream>>) -> Result<String, Failure> {
    let mut action = None;
    for _ in 0..MAX_LINES {
        let mut line = Vec::new();
        let n = (&mut *stream)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| Failure::Io(e.to_string()))?;
        if n == 0 {
            return Err(Failure::Io("closed before the end of the answer".into()));
        }
        if line.last() != Some(&b'\n') {
            return Err(Failure::Garbage(format!("an answer line longer than {MAX_LINE} bytes")));
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return action.ok_or_else(|| Failure::Garbage("an answer without action=".into()));
        }
        match line.split_once('=') {
            Some((name, value)) if name.eq_ignore_ascii_case("action") => {
                action.get_or_insert_with(|| value.trim().to_string());
            }
            Some(_) => {}
            None => return Err(Failure::Garbage(format!("{:?}", clip(line)))),
        }
    }
    Err(Failure::Garbage(format!("more than {MAX_LINES} answer lines")))
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_TEXT).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

impl Delegation {
    /// Starts a new message: the following requests carry a new `instance`.
    pub fn begin_message(&mut self) {
        self.messages += 1;
        self.instance = format!("{:x}.{:x}", rand::random::<u32>(), self.messages);
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Sends one request to `service` and reads its action, within its timeout. A kept
    /// connection the service has closed meanwhile is opened again once, as Postfix does.
    pub async fn ask(
        &mut self,
        service: &PolicyService,
        stage: ServiceStage,
        query: &Query,
    ) -> Result<String, Failure> {
        let request = query.encode(stage);
        let deadline = Instant::now() + service.timeout;
        for attempt in 0..2 {
            let kept = self.conns.remove(&service.name).filter(|c| c.address == service.address);
            let reused = kept.is_some();
            let exchange = async {
                let mut conn = match kept {
                    Some(conn) => conn,
                    None => Conn {
                        address: service.address.clone(),
                        stream: BufReader::new(
                            connect(&service.address)
                                .await
                                .map_err(|e| Failure::Connect(e.to_string()))?,
                        ),
                    },
                };
                let stream = conn.stream.get_mut();
                stream.write_all(&request).await.map_err(|e| Failure::Io(e.to_string()))?;
                stream.flush().await.map_err(|e| Failure::Io(e.to_string()))?;
                let action = read_answer(&mut conn.stream).await?;
                Ok::<_, Failure>((conn, action))
            };
            match tokio::time::timeout_at(deadline, exchange).await {
                Err(_) => return Err(Failure::Timeout(service.timeout)),
                Ok(Ok((conn, action))) => {
                    self.conns.insert(service.name.clone(), conn);
                    return Ok(action);
                }
                Ok(Err(Failure::Io(_))) if reused && attempt == 0 => continue,
                Ok(Err(e)) => return Err(e),
            }
        }
        Err(Failure::Io("the service closed the connection twice".into()))
    }

    /// Asks every enabled service of `stage`, in order, and acts on their answers: the first
    /// refusal (or OK) ends it; what an accepting answer does goes into `effects`.
    pub async fn consult(
        &mut self,
        services: &[PolicyService],
        stage: ServiceStage,
        query: &Query,
        effects: &mut Effects,
        who: &str,
    ) -> Decision {
        for service in services.iter().filter(|s| s.enabled && s.stage == stage) {
            let action = match self.ask(service, stage, query).await {
                Ok(action) => action,
                Err(failure) => {
                    tracing::warn!(
                        service = %service.name,
                        address = %service.address,
                        %stage,
                        %failure,
                        default = %service.on_failure,
                        client = who,
                        "policy service failed"
                    );
                    match service.on_failure {
                        OnFailure::Dunno => continue,
                        OnFailure::Defer => {
                            return Decision::Refuse(
                                Reply::new(
                                    451,
                                    "4.3.5",
                                    "Server configuration problem, try again later",
                                ),
                                format!(
                                    "policy service {} failed ({failure}), default defer",
                                    service.name
                                ),
                            );
                        }
                    }
                }
            };
            tracing::info!(
                service = %service.name,
                %stage,
                action = %clip(&action),
                recipient = %query.recipient,
                client = who,
                "policy service answered"
            );
            match act(&service.name, &action, effects) {
                Acted::Next => continue,
                Acted::Stop => return Decision::Continue,
                Acted::Refuse(reply) => {
                    let reason = format!("policy service {}: {}", service.name, clip(&action));
                    return Decision::Refuse(reply, reason);
                }
            }
        }
        Decision::Continue
    }
}

/// What one answer means for the services after it.
#[derive(Debug, PartialEq)]
pub enum Acted {
    /// DUNNO and its kin: ask the next service.
    Next,
    /// OK: accepted; the services after it are not asked.
    Stop,
    Refuse(Reply),
}

/// A refusal with `code` and the service's text; the text's own enhanced status code is kept
/// when it has one of the code's class, else `class.7.1` goes in front (Postfix does the same).
fn refusal(code: u16, text: &str, default: &str) -> Reply {
    let text = clip(text.trim());
    let class = code / 100;
    let (enhanced, rest) = match text.split_once(' ').unwrap_or((&text, "")) {
        (first, rest) if is_enhanced(first, class) => (first.to_string(), rest.trim().to_string()),
        _ => (format!("{class}.7.1"), text.clone()),
    };
    let rest = if rest.is_empty() { default.to_string() } else { rest };
    Reply::plain(code, vec![format!("{enhanced} {rest}")])
}

fn is_enhanced(word: &str, class: u16) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && parts[0] == class.to_string()
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Acts on one action (access(5) syntax), recording accepting effects with rule id 0 and a note
/// naming the service.
pub fn act(service: &str, action: &str, effects: &mut Effects) -> Acted {
    let action = action.trim();
    let (keyword, rest) = action.split_once([' ', '\t']).unwrap_or((action, ""));
    let rest = rest.trim();
    let upper = keyword.to_ascii_uppercase();
    let numeric = upper.len() == 3 && upper.bytes().all(|b| b.is_ascii_digit());
    if numeric {
        let code: u16 = upper.parse().unwrap_or(0);
        return match code {
            // A 421 would close the session with no say of ours: a plain 450 instead.
            421 => Acted::Refuse(refusal(450, rest, "Try again later")),
            400..=499 => Acted::Refuse(refusal(code, rest, "Try again later")),
            500..=599 => Acted::Refuse(refusal(code, rest, "Access denied")),
            _ => {
                tracing::warn!(service, action = %clip(action), "policy service gave a code that is not 4xx or 5xx: ignored");
                Acted::Next
            }
        };
    }
    match upper.as_str() {
        "OK" => Acted::Stop,
        "DUNNO" | "DEFER_IF_REJECT" => Acted::Next,
        "REJECT" => Acted::Refuse(refusal(554, rest, "Access denied")),
        "DEFER" | "DEFER_IF_PERMIT" => Acted::Refuse(refusal(450, rest, "Try again later")),
        "HOLD" => {
            effects.hold.get_or_insert(0);
            effects.notes.push(format!("held by policy service {service}"));
            Acted::Next
        }
        "DISCARD" => {
            effects.discard.get_or_insert(0);
            effects.notes.push(format!("discarded by policy service {service}"));
            Acted::Next
        }
        "PREPEND" => {
            if check_header_field("prepend", rest).is_ok() {
                effects.prepend.push(rest.to_string());
                effects.notes.push(format!("header added by policy service {service}"));
            } else {
                tracing::warn!(service, action = %clip(action), "policy service's PREPEND is not one header field: ignored");
            }
            Acted::Next
        }
        "REDIRECT" | "BCC" => match rest.parse::<Address>() {
            Ok(to) => {
                let to = to.to_string();
                effects.notes.push(format!(
                    "{} to {to} by policy service {service}",
                    if upper == "BCC" { "copy" } else { "redirected" }
                ));
                if upper == "BCC" {
                    effects.bcc.push((0, to));
                } else {
                    effects.redirect.get_or_insert((0, to));
                }
                Acted::Next
            }
            Err(_) => {
                tracing::warn!(service, action = %clip(action), "policy service named no address: ignored");
                Acted::Next
            }
        },
        "WARN" | "INFO" => {
            tracing::info!(service, text = %clip(rest), "policy service warns");
            Acted::Next
        }
        _ => {
            tracing::warn!(service, action = %clip(action), "unknown policy service action: taken as DUNNO");
            Acted::Next
        }
    }
}

/// Sends one request to `service` on a connection of its own and says what it answered: the
/// console's and the CLI's live test (a request of its own, with an instance of its own).
pub async fn probe(service: &PolicyService, query: &Query) -> Result<String, Failure> {
    let mut delegation = Delegation::default();
    delegation.begin_message();
    let query = Query { instance: delegation.instance().to_string(), ..query.clone() };
    delegation.ask(service, service.stage, &query).await
}

#[cfg(test)]
mod tests;
