//! The milter client against fake milters in this process: each action, the chain, and milters
//! that are down, hang or talk nonsense. Hangs are bounded by tiny timeouts, never by sleeping.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_store::model::{Milter, MilterAddress, MilterDefault, MilterListeners, MilterTimeouts};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

pub(crate) use super::negotiate::act as actions;
use super::negotiate::{act, proto};
use super::wire;
pub(crate) use super::wire::{Packet, cmd, rsp};
use super::{Chain, ConnectInfo};

/// What a fake milter does on one command.
#[derive(Clone)]
pub(crate) enum Act {
    Reply(Vec<Packet>),
    Raw(Vec<u8>),
    Hang,
    Close,
}

pub(crate) type Script = Arc<dyn Fn(&Packet) -> Act + Send + Sync>;

pub(crate) struct Fake {
    pub address: MilterAddress,
    seen: Arc<Mutex<Vec<Packet>>>,
}

impl Fake {
    pub(crate) fn seen(&self) -> Vec<Packet> {
        self.seen.lock().unwrap().clone()
    }

    pub(crate) fn codes(&self) -> String {
        self.seen().iter().map(|p| p.code as char).collect()
    }
}

pub(crate) fn p(code: u8, data: &[u8]) -> Packet {
    Packet::new(code, data.to_vec())
}

pub(crate) fn optneg(actions: u32, protocol: u32) -> Packet {
    let mut d = Vec::new();
    for n in [6, actions, protocol] {
        d.extend_from_slice(&u32::to_be_bytes(n));
    }
    Packet::new(cmd::OPTNEG, d)
}

/// Answers `continue` to every command that wants an answer, and `eom` to the end of message.
pub(crate) fn answering(eom: Vec<Packet>) -> Script {
    Arc::new(move |packet: &Packet| match packet.code {
        cmd::MACRO | cmd::ABORT | cmd::QUIT => Act::Reply(vec![]),
        cmd::BODYEOB => Act::Reply(eom.clone()),
        _ => Act::Reply(vec![p(rsp::CONTINUE, b"")]),
    })
}

/// Answers `on_code` with `act`, everything else as [`answering`] with `continue` at the end.
pub(crate) fn on(on_code: u8, act: Act) -> Script {
    let rest = answering(vec![p(rsp::CONTINUE, b"")]);
    Arc::new(move |packet: &Packet| if packet.code == on_code { act.clone() } else { rest(packet) })
}

pub(crate) async fn fake(negotiation: Packet, script: Script) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (script, log, negotiation) = (script.clone(), log.clone(), negotiation.clone());
            tokio::spawn(async move {
                while let Ok(packet) = wire::read(&mut conn).await {
                    log.lock().unwrap().push(packet.clone());
                    let act = if packet.code == cmd::OPTNEG {
                        Act::Reply(vec![negotiation.clone()])
                    } else {
                        script(&packet)
                    };
                    match act {
                        Act::Reply(packets) => {
                            for r in packets {
                                if conn.write_all(&r.encode()).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Act::Raw(bytes) => {
                            let _ = conn.write_all(&bytes).await;
                        }
                        Act::Hang => std::future::pending::<()>().await,
                        Act::Close => return,
                    }
                }
            });
        }
    });
    Fake { address: MilterAddress::Inet { host: "127.0.0.1".into(), port }, seen }
}

fn milter(name: &str, address: &MilterAddress, default: MilterDefault) -> Milter {
    Milter {
        id: 1,
        position: 1,
        name: name.into(),
        address: address.clone(),
        default_action: default,
        timeouts: MilterTimeouts { connect_ms: 2000, command_ms: 2000, eom_ms: 2000 },
        listeners: MilterListeners::default(),
        enabled: true,
        created_at: 0,
    }
}

/// Short enough that a hang costs the test a fraction of a second.
fn impatient(mut m: Milter) -> Milter {
    m.timeouts = MilterTimeouts { connect_ms: 300, command_ms: 150, eom_ms: 150 };
    m
}

const MESSAGE: &[u8] = b"From: a@example.com\r\nSubject: hi\r\n\r\nHello\r\n";

fn info() -> ConnectInfo<'static> {
    ConnectInfo {
        hostname: "mx.example.net",
        listener: "smtp",
        local: Some("127.0.0.1:25".parse().unwrap()),
        client: "192.0.2.7:40000".parse::<SocketAddr>().unwrap(),
        client_name: None,
    }
}

/// Runs a whole session: connect, HELO, MAIL, one RCPT, DATA, the message.
async fn session(chain: &mut Chain) -> Result<super::Verdict, (&'static str, crate::smtp::Reply)> {
    if let Some(r) = chain.connect(&info()).await {
        return Err(("connect", r));
    }
    if let Some(r) = chain.helo("client.example", None).await {
        return Err(("helo", r));
    }
    if let Some(r) = chain.mail("a@example.com", &["SIZE=100".into()], None).await {
        return Err(("mail", r));
    }
    if let Some(r) = chain.rcpt("b@example.net", &[]).await {
        return Err(("rcpt", r));
    }
    if let Some(r) = chain.data().await {
        return Err(("data", r));
    }
    Ok(chain.message(MESSAGE.to_vec()).await)
}

fn strings(p: &Packet) -> Vec<String> {
    p.data.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

#[tokio::test]
async fn a_session_sends_every_event_with_its_macros() {
    let f = fake(optneg(act::ALL, 0), answering(vec![p(rsp::ACCEPT, b"")])).await;
    let mut chain = Chain::open([&milter("m", &f.address, MilterDefault::Tempfail)], "smtp").await;
    let v = session(&mut chain).await.unwrap();
    assert!(v.refusal.is_none() && v.discard.is_none() && !v.hold);
    assert_eq!(v.message, MESSAGE);
    chain.quit().await;
    // Macros before connect, HELO, MAIL, RCPT, DATA (none asked: only known ones are sent),
    // end of header and end of message.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f.codes().ends_with('Q') && tokio::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(f.codes(), "ODCHDMDRDTLLDNBDEQ");
    let seen = f.seen();
    let connect_macros = strings(&seen[1]);
    assert_eq!(connect_macros[0], "Cj");
    assert!(connect_macros.windows(2).any(|w| w == ["{client_addr}", "192.0.2.7"]));
    assert!(connect_macros.windows(2).any(|w| w == ["{daemon_name}", "smtp"]));
    let connect = &seen[2].data;
    assert_eq!(connect, b"[192.0.2.7]\x004\x9c\x40192.0.2.7\0");
    assert_eq!(strings(&seen[5]), ["<a@example.com>", "SIZE=100", ""]);
    assert!(strings(&seen[4]).windows(2).any(|w| w == ["{mail_addr}", "a@example.com"]));
    assert_eq!(strings(&seen[7]), ["<b@example.net>", ""]);
    assert_eq!(strings(&seen[10]), ["From", "a@example.com", ""]);
    assert_eq!(seen[14].data, b"Hello\r\n");
}

#[tokio::test]
async fn refusals_at_each_stage() {
    for (code, stage, reply) in [
        (cmd::CONNECT, "connect", "554 5.7.1"),
        (cmd::HELO, "helo", "550 5.7.1"),
        (cmd::MAIL, "mail", "550 5.7.1"),
        (cmd::RCPT, "rcpt", "550 5.7.1"),
        (cmd::DATA, "data", "550 5.7.1"),
    ] {
        let f = fake(optneg(act::ALL, 0), on(code, Act::Reply(vec![p(rsp::REJECT, b"")]))).await;
        let mut chain =
            Chain::open([&milter("m", &f.address, MilterDefault::Accept)], "smtp").await;
        let (at, r) = session(&mut chain).await.unwrap_err();
        assert_eq!((at, r.to_string().get(..9).unwrap()), (stage, reply));
    }
    // Tempfail at connect closes (421), later it is 451; a reply code is used as given.
    let f =
        fake(optneg(act::ALL, 0), on(cmd::CONNECT, Act::Reply(vec![p(rsp::TEMPFAIL, b"")]))).await;
    let mut chain = Chain::open([&milter("m", &f.address, MilterDefault::Accept)], "smtp").await;
    assert_eq!(session(&mut chain).await.unwrap_err().1.code, 421);
    let f = fake(optneg(act::ALL, 0), on(cmd::RCPT, Act::Reply(vec![p(rsp::TEMPFAIL, b"")]))).await;
    let mut chain = Chain::open([&milter("m", &f.address, MilterDefault::Accept)], "smtp").await;
    assert_eq!(
        session(&mut chain).await.unwrap_err().1.to_string(),
        "451 4.7.1 Service unavailable - try again later"
    );
    let custom = p(rsp::REPLYCODE, b"553 5.7.2 Not from you\0");
    let f = fake(optneg(act::ALL, 0), on(cmd::MAIL, Act::Reply(vec![custom]))).await;
    let mut chain = Chain::open([&milter("m", &f.address, MilterDefault::Accept)], "smtp").await;
    assert_eq!(session(&mut chain).await.unwrap_err().1.to_string(), "553 5.7.2 Not from you");
    // At the end of the message: the content is refused, with the milter's reply.
    let virus = p(rsp::REPLYCODE, b"554 5.7.1 virus found\0");
    let f = fake(optneg(act::ALL, 0), answering(vec![virus])).await;
    let mut chain = Chain::open([&milter("m", &f.address, MilterDefault::Accept)], "smtp").await;
    let v = session(&mut chain).await.unwrap();
    assert_eq!(v.refusal.unwrap().to_string(), "554 5.7.1 virus found");
}

#[tokio::test]
async fn modifications_are_applied_and_noted() {
    let at = |index: u32| index.to_be_bytes().to_vec();
    let mut ins = at(0);
    ins.extend_from_slice(b"DKIM-Signature\0v=1; d=example.com;\n\tb=abc\0");
    let mut chg = at(1);
    chg.extend_from_slice(b"Subject\0[SPAM] hi\0");
    let mut del = at(1);
    del.extend_from_slice(b"From\0\0");
    let eom = vec![
        p(rsp::PROGRESS, b""),
        p(rsp::ADDHEADER, b"X-Scanned\0yes\0"),
        p(rsp::INSHEADER, &ins),
        p(rsp::CHGHEADER, &chg),
        p(rsp::CHGHEADER, &del),
        p(rsp::ADDRCPT, b"<c@example.net>\0"),
        p(rsp::DELRCPT, b"<b@example.net>\0"),
        p(rsp::CHGFROM, b"<bounce@example.com>\0"),
        p(rsp::REPLBODY, b"New "),
        p(rsp::REPLBODY, b"body\n"),
        p(rsp::QUARANTINE, b"looks odd\0"),
        p(rsp::CONTINUE, b""),
    ];
    let f = fake(optneg(act::ALL, 0), answering(eom)).await;
    let mut chain = Chain::open([&milter("m", &f.address, MilterDefault::Tempfail)], "smtp").await;
    let v = session(&mut chain).await.unwrap();
    assert_eq!(
        String::from_utf8(v.message).unwrap(),
        "DKIM-Signature: v=1; d=example.com;\r\n\tb=abc\r\nSubject: [SPAM] hi\r\nX-Scanned: yes\r\n\r\nNew body\r\n"
    );
    assert_eq!(v.added, ["c@example.net"]);
    assert_eq!(v.deleted, ["b@example.net"]);
    assert_eq!(v.sender.as_deref(), Some("bounce@example.com"));
    assert!(v.hold);
    assert!(v.notes.contains(&"milter m: quarantine looks odd".to_string()), "{:?}", v.notes);
    assert!(v.notes.contains(&"milter m: added DKIM-Signature".to_string()));
}

#[tokio::test]
async fn a_modification_not_negotiated_breaks_the_protocol() {
    let f = fake(
        optneg(act::ADDHDRS, 0),
        answering(vec![p(rsp::REPLBODY, b"x"), p(rsp::CONTINUE, b"")]),
    )
    .await;
    let mut chain = Chain::open([&milter("m", &f.address, MilterDefault::Reject)], "smtp").await;
    let v = session(&mut chain).await.unwrap();
    assert_eq!(v.refusal.unwrap().to_string(), "550 5.7.1 Service unavailable");
}

#[tokio::test]
async fn discard_and_accept_end_the_message_for_the_milter() {
    let f = fake(optneg(act::ALL, 0), on(cmd::RCPT, Act::Reply(vec![p(rsp::DISCARD, b"")]))).await;
    let mut chain = Chain::open([&milter("m", &f.address, MilterDefault::Tempfail)], "smtp").await;
    let v = session(&mut chain).await.unwrap();
    assert_eq!(v.discard.as_deref(), Some("m"));
    // Accept at MAIL: this milter sees nothing more of the message, the next message it does.
    let f = fake(optneg(act::ALL, 0), on(cmd::MAIL, Act::Reply(vec![p(rsp::ACCEPT, b"")]))).await;
    let mut chain = Chain::open([&milter("m", &f.address, MilterDefault::Tempfail)], "smtp").await;
    session(&mut chain).await.unwrap();
    assert!(chain.mail("x@example.com", &[], None).await.is_none());
    chain.quit().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f.codes().ends_with('Q') && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(f.codes(), "ODCHDMDMAQ");
}

#[tokio::test]
async fn the_second_milter_sees_the_first_ones_changes() {
    let first = fake(
        optneg(act::ALL, 0),
        answering(vec![p(rsp::ADDHEADER, b"X-First\0one\0"), p(rsp::CONTINUE, b"")]),
    )
    .await;
    let second = fake(optneg(act::ALL, 0), answering(vec![p(rsp::CONTINUE, b"")])).await;
    let ms = [
        milter("first", &first.address, MilterDefault::Tempfail),
        milter("second", &second.address, MilterDefault::Tempfail),
    ];
    let mut chain = Chain::open(&ms, "smtp").await;
    session(&mut chain).await.unwrap();
    let headers: Vec<_> = second
        .seen()
        .iter()
        .filter(|p| p.code == cmd::HEADER)
        .map(|p| strings(p)[0].clone())
        .collect();
    assert_eq!(headers, ["From", "Subject", "X-First"]);
    // A refusal by the first at RCPT: the second never sees that RCPT.
    let refuse =
        fake(optneg(act::ALL, 0), on(cmd::RCPT, Act::Reply(vec![p(rsp::REJECT, b"")]))).await;
    let other = fake(optneg(act::ALL, 0), answering(vec![p(rsp::CONTINUE, b"")])).await;
    let ms = [
        milter("refuse", &refuse.address, MilterDefault::Tempfail),
        milter("other", &other.address, MilterDefault::Tempfail),
    ];
    let mut chain = Chain::open(&ms, "smtp").await;
    assert_eq!(session(&mut chain).await.unwrap_err().0, "rcpt");
    assert!(!other.codes().contains('R'));
}

#[tokio::test]
async fn no_reply_and_skip_flags_are_honoured() {
    // The milter answers neither connect nor headers, wants no HELO, and skips the body.
    let protocol = proto::NR_CONN | proto::NR_HDR | proto::NOHELO | proto::SKIP;
    let script: Script = Arc::new(|packet: &Packet| match packet.code {
        cmd::MACRO | cmd::CONNECT | cmd::HEADER | cmd::QUIT | cmd::ABORT => Act::Reply(vec![]),
        cmd::HELO => Act::Close,
        cmd::BODY => Act::Reply(vec![p(rsp::SKIP, b"")]),
        cmd::BODYEOB => Act::Reply(vec![p(rsp::CONTINUE, b"")]),
        _ => Act::Reply(vec![p(rsp::CONTINUE, b"")]),
    });
    let f = fake(optneg(act::ALL, protocol), script).await;
    let mut chain = Chain::open([&milter("m", &f.address, MilterDefault::Reject)], "smtp").await;
    assert!(chain.connect(&info()).await.is_none());
    assert!(chain.helo("c.example", None).await.is_none());
    assert!(chain.mail("a@example.com", &[], None).await.is_none());
    assert!(chain.rcpt("b@example.net", &[]).await.is_none());
    assert!(chain.data().await.is_none());
    // Three body chunks of at most 65535 bytes; the milter skips after the first.
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 150_000));
    let v = chain.message(big).await;
    assert!(v.refusal.is_none());
    let bodies: Vec<usize> =
        f.seen().iter().filter(|p| p.code == cmd::BODY).map(|p| p.data.len()).collect();
    assert_eq!(bodies, [65535]);
    assert!(f.codes().ends_with("LDNBDE"), "{}", f.codes());
    assert!(!f.codes().contains('H'));
}

#[tokio::test]
async fn macros_the_milter_asks_for_are_sent() {
    let mut neg = optneg(act::ALL, 0);
    neg.data
        .extend_from_slice(b"\0\0\0\x02{auth_authen} {auth_type} {client_addr} {daemon_addr}\0");
    let f = fake(neg, answering(vec![p(rsp::CONTINUE, b"")])).await;
    let mut chain = Chain::open([&milter("m", &f.address, MilterDefault::Reject)], "smtp").await;
    chain.connect(&info()).await;
    chain.mail("a@example.com", &[], Some(("a@example.com", "LOGIN"))).await;
    let seen = f.seen();
    let mut mail_macros = seen.iter().filter(|p| p.code == cmd::MACRO && p.data[0] == cmd::MAIL);
    assert_eq!(
        strings(mail_macros.next_back().unwrap()),
        [
            "M{auth_authen}",
            "a@example.com",
            "{auth_type}",
            "LOGIN",
            "{client_addr}",
            "192.0.2.7",
            "{daemon_addr}",
            "127.0.0.1",
            ""
        ]
    );
}

/// A milter that hangs, dies or talks nonsense gets its default, at once or at the next MAIL.
#[tokio::test]
async fn broken_milters_get_their_default_action() {
    // Nobody listens: the default at MAIL (the greeting and HELO go on).
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = gone.local_addr().unwrap().port();
    drop(gone);
    let dead = MilterAddress::Inet { host: "127.0.0.1".into(), port };
    for (default, expect) in [
        (MilterDefault::Tempfail, Some("451 4.7.1")),
        (MilterDefault::Reject, Some("550 5.7.1")),
        (MilterDefault::Accept, None),
    ] {
        let mut chain = Chain::open([&impatient(milter("m", &dead, default))], "smtp").await;
        let got =
            session(&mut chain).await.err().map(|(at, r)| (at, r.to_string()[..9].to_string()));
        assert_eq!(got, expect.map(|e| ("mail", e.to_string())), "{default}");
    }
    // Hangs at RCPT, at the end of message, at negotiation; garbage; closes mid-session.
    let cases: Vec<(Packet, Script, &str)> = vec![
        (optneg(act::ALL, 0), on(cmd::RCPT, Act::Hang), "rcpt"),
        (optneg(act::ALL, 0), on(cmd::BODYEOB, Act::Reply(vec![p(rsp::PROGRESS, b"")])), "eom"),
        (optneg(act::ALL, 0), on(cmd::BODYEOB, Act::Hang), "eom"),
        (optneg(act::ALL, 0), on(cmd::HEADER, Act::Raw(b"\xff\xff\xff\xffjunk".to_vec())), "eom"),
        (optneg(act::ALL, 0), on(cmd::MAIL, Act::Raw(b"\0\0\0\x01Z".to_vec())), "mail"),
        (optneg(act::ALL, 0), on(cmd::DATA, Act::Close), "data"),
        (optneg(act::ALL, 0), on(cmd::HELO, Act::Reply(vec![p(rsp::SKIP, b"")])), "mail"),
        (p(b'Z', b"no"), answering(vec![]), "mail"),
        (optneg(0x8000_0000, 0), answering(vec![]), "mail"),
    ];
    for (i, (neg, script, stage)) in cases.into_iter().enumerate() {
        for default in [MilterDefault::Tempfail, MilterDefault::Accept] {
            let f = fake(neg.clone(), script.clone()).await;
            let m = impatient(milter("m", &f.address, default));
            let mut chain = Chain::open([&m], "smtp").await;
            let result = session(&mut chain).await;
            match (default, stage, result) {
                (MilterDefault::Accept, _, Ok(v)) => {
                    assert!(v.refusal.is_none(), "case {i}");
                    assert_eq!(v.message, MESSAGE, "case {i}");
                }
                (MilterDefault::Tempfail, "eom", Ok(v)) => {
                    assert_eq!(v.refusal.map(|r| r.code), Some(451), "case {i}");
                }
                (MilterDefault::Tempfail, want, Err((at, r))) => {
                    assert_eq!((at, r.code), (want, 451), "case {i}");
                }
                (_, _, other) => panic!("case {i} {default}: {:?}", other.map(|v| v.refusal)),
            }
        }
    }
}

#[tokio::test]
async fn probe_reports_what_was_negotiated() {
    let f = fake(
        optneg(act::ADDHDRS | act::CHGHDRS, proto::NR_CONN | proto::NOHELO),
        answering(vec![]),
    )
    .await;
    let probe = super::probe(&f.address, MilterTimeouts::default()).await.unwrap();
    assert_eq!(probe.version, 6);
    assert_eq!(probe.actions, ["add-header", "change-header"]);
    assert_eq!(probe.protocol, ["no-helo", "no-reply-connect"]);
}

/// A large message goes to the milter a body packet at a time (at most `wire::CHUNK_SIZE`
/// bytes each, made as they are sent), all of it; a replacement body past
/// `client::MAX_REPLACED_BODY` defers the message rather than being held.
#[tokio::test]
async fn a_large_body_goes_in_chunks_and_a_huge_replacement_defers() {
    let f = fake(optneg(act::ALL, 0), answering(vec![p(rsp::CONTINUE, b"")])).await;
    let mut chain = Chain::open([&milter("m", &f.address, MilterDefault::Accept)], "smtp").await;
    let mut message = b"From: a@example.com\r\n\r\n".to_vec();
    message.extend(std::iter::repeat_n(b"0123456789abcde\r\n".as_slice(), 200_000).flatten());
    let body_len = message.len() - 23;
    let _ = chain.connect(&info()).await;
    let _ = chain.helo("client.example", None).await;
    let _ = chain.mail("a@example.com", &[], None).await;
    let _ = chain.rcpt("b@example.net", &[]).await;
    let _ = chain.data().await;
    let v = chain.message(message.clone()).await;
    assert!(v.refusal.is_none());
    assert!(v.message == message, "unchanged");
    let bodies: Vec<Packet> = f.seen().into_iter().filter(|p| p.code == cmd::BODY).collect();
    assert!(bodies.iter().all(|p| !p.data.is_empty() && p.data.len() <= wire::CHUNK_SIZE));
    assert_eq!(bodies.iter().map(|p| p.data.len()).sum::<usize>(), body_len);

    let piece = vec![b'x'; wire::MAX_PACKET - 16];
    let count = super::client::MAX_REPLACED_BODY / piece.len() + 2;
    let mut eom: Vec<Packet> = (0..count).map(|_| p(rsp::REPLBODY, &piece)).collect();
    eom.push(p(rsp::CONTINUE, b""));
    let f = fake(optneg(act::ALL, 0), answering(eom)).await;
    let mut chain = Chain::open([&milter("m", &f.address, MilterDefault::Accept)], "smtp").await;
    let v = session(&mut chain).await.unwrap();
    let refusal = v.refusal.expect("deferred").to_string();
    assert!(refusal.starts_with("451 4.7.1"), "{refusal}");
}
