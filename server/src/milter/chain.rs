//! The milters of one SMTP session, in their configured order: each event of the session
//! (connect, HELO, MAIL, RCPT, DATA) goes to each milter as it happens, so that a milter's
//! refusal refuses that command; at the end of the message, the whole message goes to one
//! milter after the other, each seeing the previous one's changes (as Postfix's cleanup does).
//! A milter that cannot be reached, is too slow or breaks the protocol gets its default action.

use std::collections::HashMap;
use std::net::SocketAddr;

use postern_store::model::{Milter, MilterDefault};

use super::client::{Client, MilterError};
use super::message::Message;
use super::negotiate::proto;
use super::response::{Modification, Response};
use super::wire::{self, Packet, cmd, put_str};
use crate::smtp::Reply;

/// Where in the session an event happens: refusals and verdicts depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
    /// Headers and body chunks.
    Content,
    EndOfMessage,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Helo => "helo",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Data => "data",
            Stage::Content => "content",
            Stage::EndOfMessage => "end-of-message",
        }
    }

    fn message(self) -> bool {
        self >= Stage::Mail
    }
}

/// The macros we send before each command unless the milter asked for others
/// (`SMFIR_SETSYMLIST`): Postfix's defaults (`milter_*_macros`) with the client's address too.
fn default_macros(command: u8) -> &'static [&'static str] {
    match command {
        cmd::CONNECT => &[
            "j",
            "_",
            "{daemon_name}",
            "{daemon_addr}",
            "{if_name}",
            "{if_addr}",
            "{client_addr}",
            "{client_port}",
            "{client_name}",
            "{client_ptr}",
            "v",
        ],
        cmd::HELO => &["{tls_version}", "{cipher}"],
        cmd::MAIL => &["i", "{auth_type}", "{auth_authen}", "{mail_addr}"],
        cmd::RCPT => &["i", "{rcpt_addr}"],
        cmd::DATA | cmd::EOH => &["i"],
        cmd::BODYEOB => &["i"],
        _ => &[],
    }
}

/// What the session knows when the client connects.
pub struct ConnectInfo<'a> {
    /// Our host name (`j`).
    pub hostname: &'a str,
    /// The listener's name (`{daemon_name}`: smtp, submission or submissions).
    pub listener: &'a str,
    pub local: Option<SocketAddr>,
    pub client: SocketAddr,
    /// The client's reverse DNS name, when the session looked it up.
    pub client_name: Option<&'a str>,
}

/// What the milters made of a whole message.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Refuse the message with this reply.
    pub refusal: Option<Reply>,
    /// Accept the message and drop it: the milter that said so.
    pub discard: Option<String>,
    /// Hold the message in the queue (`SMFIR_QUARANTINE`).
    pub hold: bool,
    /// The message with every milter's changes.
    pub message: Vec<u8>,
    pub sender: Option<String>,
    pub added: Vec<String>,
    pub deleted: Vec<String>,
    /// For the delivery log: what each milter did beyond continuing.
    pub notes: Vec<String>,
}

enum State {
    Ready(Box<Client>),
    /// Accepted the whole session, or is down with the default `accept`: skipped.
    Off,
    /// Down with a refusing default: every message from now on gets this reply.
    Down(Reply),
}

struct Member {
    name: String,
    default: MilterDefault,
    state: State,
    /// It accepted the current message (or refused it): nothing more of it goes there.
    done: bool,
    /// It saw a MAIL whose message it has not seen to the end: owed an `SMFIC_ABORT`.
    open: bool,
}

/// The milters of one session.
pub struct Chain {
    members: Vec<Member>,
    macros: HashMap<&'static str, String>,
    /// A milter discarded the current message.
    discard: Option<String>,
    /// What milters did to the current message, for the delivery log.
    notes: Vec<String>,
    /// Which milter gave the last refusal, and how, for the delivery log.
    refused_by: Option<String>,
}

fn refusal(stage: Stage, response: &Response) -> Option<Reply> {
    let connect = stage == Stage::Connect;
    Some(match response {
        Response::Reject if connect => Reply::new(554, "5.7.1", "Service unavailable"),
        Response::Reject if stage >= Stage::Content => {
            Reply::new(550, "5.7.1", "Message content rejected")
        }
        Response::Reject => Reply::new(550, "5.7.1", "Command rejected"),
        // RFC 5321 §3.1 and §3.8: a temporary refusal of the connection is 421, and closes.
        Response::Tempfail if connect => {
            Reply::new(421, "4.7.1", "Service unavailable - try again later")
        }
        Response::Tempfail => Reply::new(451, "4.7.1", "Service unavailable - try again later"),
        Response::ReplyCode { code, lines } => {
            let code = match (connect, *code >= 500) {
                (true, true) => 554,
                (true, false) => 421,
                _ => *code,
            };
            Reply::plain(code, lines.clone())
        }
        _ => return None,
    })
}

/// A milter that is down and refuses by its default, as the delivery log names it.
fn down(m: &Member) -> String {
    format!("milter {} unavailable, default {}", m.name, m.default)
}

/// The reply a milter's refusing default gives.
fn default_reply(default: MilterDefault) -> Option<Reply> {
    match default {
        MilterDefault::Accept => None,
        MilterDefault::Tempfail => {
            Some(Reply::new(451, "4.7.1", "Service unavailable - try again later"))
        }
        MilterDefault::Reject => Some(Reply::new(550, "5.7.1", "Service unavailable")),
    }
}

/// The command's data: NUL-terminated strings.
fn strings<'a>(code: u8, items: impl IntoIterator<Item = &'a [u8]>) -> Packet {
    let mut data = Vec::new();
    for s in items {
        put_str(&mut data, s);
    }
    Packet::new(code, data)
}

impl Chain {
    /// Connects to each enabled milter of `milters` that serves `listener`.
    pub async fn open<'a>(milters: impl IntoIterator<Item = &'a Milter>, listener: &str) -> Chain {
        let mut members = Vec::new();
        for m in milters {
            let serves = match listener {
                "smtp" => m.listeners.smtp,
                _ => m.listeners.submission,
            };
            if !m.enabled || !serves {
                continue;
            }
            let state = match Client::connect(&m.address, m.timeouts).await {
                Ok(client) => {
                    tracing::debug!(milter = %m.name, negotiated = ?client.negotiated, "milter connected");
                    State::Ready(Box::new(client))
                }
                Err(e) => {
                    tracing::warn!(milter = %m.name, address = %m.address, error = %e, default = %m.default_action, "milter unavailable");
                    match default_reply(m.default_action) {
                        Some(reply) => State::Down(reply),
                        None => State::Off,
                    }
                }
            };
            members.push(Member {
                name: m.name.clone(),
                default: m.default_action,
                state,
                done: false,
                open: false,
            });
        }
        Chain {
            members,
            macros: HashMap::new(),
            discard: None,
            notes: Vec::new(),
            refused_by: None,
        }
    }

    /// Which milter gave the last refusal (`milter clamav`, or one that is down and refuses
    /// by its default), for the delivery log.
    pub fn refused_by(&self) -> String {
        self.refused_by.clone().unwrap_or_else(|| "milter".into())
    }

    /// True when no milter serves this session.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn macro_packet(&self, client: &Client, command: u8) -> Option<Packet> {
        let asked = client.negotiated.macros.iter().find(|(c, _)| *c == command);
        let mut data = vec![command];
        let mut any = false;
        let mut add = |name: &str| {
            if let Some(value) = self.macros.get(name) {
                put_str(&mut data, name.as_bytes());
                put_str(&mut data, value.as_bytes());
                any = true;
            }
        };
        match asked {
            Some((_, names)) => names.iter().for_each(|n| add(n)),
            None => default_macros(command).iter().for_each(|n| add(n)),
        }
        any.then(|| Packet::new(cmd::MACRO, data))
    }

    fn set(&mut self, name: &'static str, value: impl Into<String>) {
        self.macros.insert(name, value.into());
    }

    /// A milter failed: its default applies from now on. The refusal to give now, if any.
    fn fail(&mut self, i: usize, stage: Stage, error: MilterError) -> Option<Reply> {
        let m = &mut self.members[i];
        tracing::warn!(milter = %m.name, stage = stage.name(), error = %error, default = %m.default, "milter failed");
        m.open = false;
        m.done = true;
        let what = format!("milter {}: {error}, default {}", m.name, m.default);
        self.notes.push(what.clone());
        match default_reply(m.default) {
            None => {
                m.state = State::Off;
                None
            }
            Some(reply) => {
                m.state = State::Down(reply.clone());
                let refused = stage.message().then_some(reply);
                if refused.is_some() {
                    self.refused_by = Some(what);
                }
                refused
            }
        }
    }

    /// Sends one envelope event to every milter in order; the first refusal ends it.
    async fn event(
        &mut self,
        stage: Stage,
        skip_flag: u32,
        packet: impl Fn() -> Packet,
    ) -> Option<Reply> {
        for i in 0..self.members.len() {
            let member = &mut self.members[i];
            if stage.message() && member.done {
                continue;
            }
            match &member.state {
                State::Off => continue,
                State::Down(reply) if stage.message() => {
                    let reply = reply.clone();
                    self.refused_by = Some(down(&self.members[i]));
                    return Some(reply);
                }
                State::Down(_) => continue,
                State::Ready(_) => {}
            }
            if stage == Stage::Mail {
                member.open = true;
            }
            let State::Ready(client) = &self.members[i].state else { continue };
            if client.negotiated.skips(skip_flag) {
                continue;
            }
            let p = packet();
            let macros = self.macro_packet(client, p.code);
            let State::Ready(client) = &mut self.members[i].state else { continue };
            let answer = client.ask(macros, p).await;
            match answer {
                Ok(None | Some(Response::Continue)) => {}
                Ok(Some(Response::Accept)) => {
                    let m = &mut self.members[i];
                    if stage.message() {
                        m.done = true;
                    } else {
                        m.state = State::Off;
                    }
                }
                Ok(Some(Response::Discard)) if stage.message() => {
                    let name = self.members[i].name.clone();
                    tracing::info!(milter = %name, stage = stage.name(), "milter discards the message");
                    self.notes.push(format!("milter {name}: discard"));
                    self.discard.get_or_insert(name);
                    self.members.iter_mut().for_each(|m| m.done = true);
                    return None;
                }
                Ok(Some(r)) => match refusal(stage, &r) {
                    Some(reply) => {
                        let m = &self.members[i];
                        tracing::info!(milter = %m.name, stage = stage.name(), %reply, "milter refuses");
                        self.refused_by = Some(format!("milter {}", m.name));
                        if stage == Stage::Mail {
                            // The transaction never starts: nothing to abort later.
                            self.abort().await;
                        }
                        return Some(reply);
                    }
                    None => {
                        if let Some(reply) = self.fail(i, stage, MilterError::Unexpected(r)) {
                            return Some(reply);
                        }
                    }
                },
                Err(e) => {
                    if let Some(reply) = self.fail(i, stage, e) {
                        return Some(reply);
                    }
                }
            }
        }
        None
    }

    /// The client connected (`SMFIC_CONNECT`); `Some` refuses the session (554 or 421).
    pub async fn connect(&mut self, info: &ConnectInfo<'_>) -> Option<Reply> {
        let ip = info.client.ip();
        let name = info.client_name.map_or_else(|| format!("[{ip}]"), str::to_string);
        self.set("j", info.hostname);
        self.set("{daemon_name}", info.listener);
        self.set("{if_name}", info.hostname);
        if let Some(local) = info.local {
            self.set("{daemon_addr}", local.ip().to_string());
            self.set("{if_addr}", local.ip().to_string());
        }
        self.set("_", format!("{name} [{ip}]"));
        self.set("{client_addr}", ip.to_string());
        self.set("{client_port}", info.client.port().to_string());
        self.set("{client_name}", name.clone());
        self.set("{client_ptr}", info.client_name.unwrap_or("unknown"));
        self.set("v", "Postern");
        let family = if ip.is_ipv4() { b'4' } else { b'6' };
        let address = ip.to_string();
        let port = info.client.port();
        self.event(Stage::Connect, proto::NOCONNECT, || {
            let mut data = Vec::new();
            put_str(&mut data, name.as_bytes());
            data.push(family);
            data.extend_from_slice(&port.to_be_bytes());
            put_str(&mut data, address.as_bytes());
            Packet::new(cmd::CONNECT, data)
        })
        .await
    }

    /// HELO or EHLO (`SMFIC_HELO`), with the TLS version and cipher when TLS is on.
    pub async fn helo(&mut self, name: &str, tls: Option<&str>) -> Option<Reply> {
        if let Some(tls) = tls {
            let mut words = tls.split_whitespace();
            if let Some(version) = words.next() {
                self.set("{tls_version}", version);
            }
            if let Some(cipher) = words.last() {
                self.set("{cipher}", cipher);
            }
        }
        self.event(Stage::Helo, proto::NOHELO, || strings(cmd::HELO, [name.as_bytes()])).await
    }

    /// MAIL FROM (`SMFIC_MAIL`): the sender in angle brackets, then its ESMTP parameters. An
    /// unfinished earlier transaction is aborted first.
    pub async fn mail(
        &mut self,
        sender: &str,
        params: &[String],
        auth: Option<(&str, &str)>,
    ) -> Option<Reply> {
        self.abort().await;
        self.discard = None;
        self.notes.clear();
        self.members.iter_mut().for_each(|m| m.done = false);
        // A stand-in for the queue ID, which is known only once the message is queued: unique
        // per message, for milters that key their state or logs on it.
        self.set("i", format!("{:010X}", rand::random::<u64>() & 0xff_ffff_ffff));
        self.set("{mail_addr}", sender);
        match auth {
            Some((user, mechanism)) => {
                self.set("{auth_authen}", user);
                self.set("{auth_type}", mechanism);
            }
            None => {
                self.macros.remove("{auth_authen}");
                self.macros.remove("{auth_type}");
            }
        }
        let path = format!("<{sender}>");
        self.event(Stage::Mail, proto::NOMAIL, || {
            strings(
                cmd::MAIL,
                std::iter::once(path.as_bytes()).chain(params.iter().map(|p| p.as_bytes())),
            )
        })
        .await
    }

    /// One RCPT TO (`SMFIC_RCPT`); a refusal refuses this recipient only.
    pub async fn rcpt(&mut self, recipient: &str, params: &[String]) -> Option<Reply> {
        self.set("{rcpt_addr}", recipient);
        let path = format!("<{recipient}>");
        self.event(Stage::Rcpt, proto::NORCPT, || {
            strings(
                cmd::RCPT,
                std::iter::once(path.as_bytes()).chain(params.iter().map(|p| p.as_bytes())),
            )
        })
        .await
    }

    /// The DATA command, or the first BDAT (`SMFIC_DATA`).
    pub async fn data(&mut self) -> Option<Reply> {
        self.event(Stage::Data, proto::NODATA, || Packet::new(cmd::DATA, Vec::new())).await
    }

    /// Ends a transaction that did not reach the end of the message (`SMFIC_ABORT`).
    pub async fn abort(&mut self) {
        for m in &mut self.members {
            if let (true, State::Ready(client)) = (m.open, &mut m.state) {
                client.tell(cmd::ABORT).await;
            }
            m.open = false;
        }
    }

    /// The session is over (`SMFIC_QUIT`).
    pub async fn quit(mut self) {
        self.abort().await;
        for m in &mut self.members {
            if let State::Ready(client) = &mut m.state {
                client.tell(cmd::QUIT).await;
            }
        }
    }

    /// The whole message, to each milter in turn: header fields, end of header, body chunks and
    /// end of message, applying each one's changes before the next one sees the message.
    pub async fn message(&mut self, message: Vec<u8>) -> Verdict {
        let mut verdict = Verdict { discard: self.discard.take(), ..Verdict::default() };
        let mut parsed = Message::parse(&message);
        // The parsed copy is the one the milters change: the original goes now, so that a
        // large message is held twice at most.
        drop(message);
        for i in 0..self.members.len() {
            if verdict.discard.is_some() {
                break;
            }
            let m = &self.members[i];
            if m.done {
                continue;
            }
            match &m.state {
                State::Off => continue,
                State::Down(reply) => {
                    verdict.refusal = Some(reply.clone());
                    self.refused_by = Some(down(m));
                    break;
                }
                State::Ready(_) => {}
            }
            let result = self.one_message(i, &mut parsed, &mut verdict).await;
            self.members[i].open = false;
            self.members[i].done = true;
            match result {
                Ok(None) => {}
                Ok(Some(response)) => match response {
                    Response::Discard => {
                        let name = self.members[i].name.clone();
                        self.notes.push(format!("milter {name}: discard"));
                        verdict.discard = Some(name);
                    }
                    r => match refusal(Stage::EndOfMessage, &r) {
                        Some(reply) => {
                            tracing::info!(milter = %self.members[i].name, %reply, "milter refuses the message");
                            self.refused_by = Some(format!("milter {}", self.members[i].name));
                            verdict.refusal = Some(reply);
                            break;
                        }
                        None => {
                            let e = MilterError::Unexpected(r);
                            if let Some(reply) = self.fail(i, Stage::EndOfMessage, e) {
                                verdict.refusal = Some(reply);
                                break;
                            }
                        }
                    },
                },
                Err(e) => {
                    if let Some(reply) = self.fail(i, Stage::EndOfMessage, e) {
                        verdict.refusal = Some(reply);
                        break;
                    }
                }
            }
        }
        self.members.iter_mut().for_each(|m| m.open = false);
        verdict.message = parsed.into_bytes();
        verdict.notes.append(&mut self.notes);
        verdict
    }

    /// One milter's turn with the message. `Ok(None)` goes on to the next milter; `Ok(Some)`
    /// is a verdict that ends it (a refusal or a discard).
    async fn one_message(
        &mut self,
        i: usize,
        message: &mut Message,
        verdict: &mut Verdict,
    ) -> Result<Option<Response>, MilterError> {
        let State::Ready(client) = &self.members[i].state else { return Ok(None) };
        let n = client.negotiated.clone();
        let leading = n.wants(proto::HDR_LEADSPC);
        let eoh_macros = self.macro_packet(client, cmd::EOH);
        let eom_macros = self.macro_packet(client, cmd::BODYEOB);
        let name = self.members[i].name.clone();
        let State::Ready(client) = &mut self.members[i].state else { return Ok(None) };
        // Headers, end of header, body: `Accept` ends this milter's turn without changes,
        // a refusal or discard ends the message.
        let mut steps: Vec<(Option<Packet>, Packet)> = Vec::new();
        if !n.skips(proto::NOHDRS) {
            for f in &message.fields {
                let value = Message::value_for_milter(f, leading);
                steps.push((None, strings(cmd::HEADER, [f.name.as_bytes(), &value[..]])));
            }
        }
        if !n.skips(proto::NOEOH) {
            steps.push((eoh_macros, Packet::new(cmd::EOH, Vec::new())));
        }
        for (macros, packet) in steps {
            match client.ask(macros, packet).await? {
                None | Some(Response::Continue) => {}
                Some(Response::Accept) => return Ok(None),
                Some(Response::Skip) => return Err(MilterError::Unexpected(Response::Skip)),
                Some(other) => return Ok(Some(other)),
            }
        }
        // The body a packet at a time (at most 65535 bytes each), made as it is sent: a large
        // message is not copied whole into packets first.
        let body: &[u8] = if n.skips(proto::NOBODY) { &[] } else { &message.body };
        for chunk in body.chunks(wire::CHUNK_SIZE) {
            match client.ask(None, Packet::new(cmd::BODY, chunk.to_vec())).await? {
                None | Some(Response::Continue) => {}
                Some(Response::Skip) => break,
                Some(Response::Accept) => return Ok(None),
                Some(other) => return Ok(Some(other)),
            }
        }
        let (changes, last) = client.end_of_message(eom_macros).await?;
        match last {
            Response::Continue | Response::Accept => {}
            other => return Ok(Some(other)),
        }
        let mut new_body: Option<Vec<u8>> = None;
        for change in changes {
            tracing::debug!(milter = %name, ?change, "milter changes the message");
            match change {
                Modification::AddHeader { name: field, value } => {
                    self.notes.push(format!("milter {name}: added {field}"));
                    message.add_header(&field, &value, leading);
                }
                Modification::InsertHeader { index, name: field, value } => {
                    self.notes.push(format!("milter {name}: added {field}"));
                    message.insert_header(index, &field, &value, leading);
                }
                Modification::ChangeHeader { index, name: field, value } => {
                    let what = if value.is_empty() { "deleted" } else { "changed" };
                    self.notes.push(format!("milter {name}: {what} {field}"));
                    message.change_header(index, &field, &value, leading);
                }
                Modification::AddRecipient(r) => {
                    self.notes.push(format!("milter {name}: added recipient {r}"));
                    verdict.deleted.retain(|d| !d.eq_ignore_ascii_case(&r));
                    verdict.added.push(r);
                }
                Modification::DeleteRecipient(r) => {
                    self.notes.push(format!("milter {name}: deleted recipient {r}"));
                    verdict.added.retain(|a| !a.eq_ignore_ascii_case(&r));
                    verdict.deleted.push(r);
                }
                Modification::ChangeSender(s) => {
                    self.notes.push(format!("milter {name}: changed sender to <{s}>"));
                    verdict.sender = Some(s);
                }
                Modification::ReplaceBody(piece) => {
                    new_body.get_or_insert_with(Vec::new).extend_from_slice(&piece);
                }
                Modification::Quarantine(reason) => {
                    tracing::info!(milter = %name, %reason, "milter quarantines the message");
                    self.notes.push(format!("milter {name}: quarantine {reason}"));
                    verdict.hold = true;
                }
            }
        }
        if let Some(body) = new_body {
            self.notes.push(format!("milter {name}: replaced body"));
            message.replace_body(&body);
        }
        Ok(None)
    }
}
