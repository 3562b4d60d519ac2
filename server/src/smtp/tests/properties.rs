//! Property-based fuzzing of the SMTP side (issue 15): random command sequences from every state
//! over the in-memory stream, DATA and BDAT bodies read back exactly, SASL decoders, DSN
//! parameters and the author-field check, on generated input.
//!
//! A short run by default (a few seconds each); `PROPTEST_CASES=N` raises every property to N
//! cases (`.ci/fuzz-long`). Inputs that failed once are kept in
//! `properties.proptest-regressions` beside this file and replayed first on every run.

use base64::Engine as _;
use postern_store::model::Notify;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

use super::*;
use crate::smtp::dsn;
use crate::smtp::verbs::auth::{Sasl, login_text, plain_credentials};

/// `default` cases, or `PROPTEST_CASES` when set.
fn config(default: u32) -> Config {
    let cases =
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// Connects from `peer` after moving the rate limiter's clock on by an hour: each case is a
/// client of its own, never over the connection rate limits the store starts with.
async fn fresh_client(server: &Server, kind: ListenerKind, peer: &str) -> Client {
    server.clock.advance(3600);
    server.connect(kind, peer).await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Checks one reply as the client read it (lines joined by "\n", CRLF removed): every line
/// `ddd-text` but the last `ddd text`, one code throughout, a code of RFC 5321 §4.2 (first digit
/// 2 to 5, second 0 to 5), no control character in the text, and an enhanced status code, when
/// there is one, of the reply's class (RFC 3463 §3.1). Returns the code.
fn well_formed(reply: &str) -> Result<u16, TestCaseError> {
    let fail = |why: &str| Err(TestCaseError::fail(format!("{why}: {reply:?}")));
    if reply.is_empty() {
        return fail("no reply");
    }
    let lines: Vec<&str> = reply.split('\n').collect();
    let code = lines[0].get(..3).unwrap_or("");
    for (i, line) in lines.iter().enumerate() {
        let b = line.as_bytes();
        if b.len() < 3 || line.get(..3) != Some(code) {
            return fail("a line without the reply's code");
        }
        let last = i + 1 == lines.len();
        match (b.get(3), last) {
            (Some(b' '), true) | (Some(b'-'), false) => {}
            (None, true) => {}
            _ => return fail("a bad separator after the code"),
        }
        if line.chars().any(char::is_control) {
            return fail("a control character in a reply");
        }
    }
    let digits = code.as_bytes();
    if digits.len() != 3
        || !digits.iter().all(u8::is_ascii_digit)
        || !(b'2'..=b'5').contains(&digits[0])
        || !(b'0'..=b'5').contains(&digits[1])
    {
        return fail("not a reply code");
    }
    let text = lines.last().and_then(|l| l.get(4..)).unwrap_or("");
    if let Some(status) = text.split(' ').next()
        && status.split('.').count() == 3
        && status.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && digits[0] != b'3'
        && status.as_bytes()[0] != digits[0]
    {
        return fail("an enhanced status code of another class");
    }
    Ok(code.parse().expect("three digits"))
}

/// Dot-stuffs `content` as a client must (RFC 5321 §4.5.2): a `.` at the start of a line gets
/// another. Afterwards `<CRLF>.<CRLF>` cannot occur in it.
fn stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 8);
    let mut line_start = true;
    for (i, &b) in content.iter().enumerate() {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n' && i > 0 && content[i - 1] == b'\r';
    }
    out
}

/// `content` terminated for DATA.
fn terminated(content: &[u8]) -> Vec<u8> {
    let mut out = stuff(content);
    if !content.is_empty() && !content.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// What the queue must hold of a clean `content` (CRLF lines, no bare CR or LF, no NUL): the
/// same bytes, a final CRLF added, lines over 998 octets folded with CRLF SPACE every 998
/// (RFC 5321 §4.5.3.1.6; Postfix does the same).
fn stored(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 16);
    let text = content.strip_suffix(b"\r\n").unwrap_or(content);
    if content.is_empty() {
        return out;
    }
    for line in split_crlf(text) {
        let mut len = 0;
        for &b in line {
            if len == 998 {
                out.extend_from_slice(b"\r\n ");
                len = 1;
            }
            out.push(b);
            len += 1;
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn split_crlf(text: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < text.len() {
        if &text[i..i + 2] == b"\r\n" {
            lines.push(&text[start..i]);
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    lines.push(&text[start..]);
    lines
}

/// One line of a clean body: any octet but CR, LF and NUL; often a leading dot; sometimes
/// longer than a line may be.
fn clean_line() -> impl Strategy<Value = Vec<u8>> {
    let octet = any::<u8>().prop_filter("no CR, LF or NUL", |b| !matches!(b, b'\r' | b'\n' | 0));
    prop_oneof![
        6 => prop::collection::vec(octet.clone(), 0..80),
        2 => prop::collection::vec(octet.clone(), 0..80).prop_map(|mut l| {
            l.insert(0, b'.');
            l
        }),
        1 => Just(b".".to_vec()),
        1 => Just(b"..".to_vec()),
        1 => prop::collection::vec(octet, 990..3000),
    ]
}

/// A clean message: lines joined by CRLF, with or without a final CRLF.
fn clean_content() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(clean_line(), 0..12), any::<bool>()).prop_map(|(lines, crlf)| {
        let mut out = lines.join(&b"\r\n"[..]);
        if crlf && !lines.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        out
    })
}

/// Any body at all, with the smuggling sequences, bare endings and NULs a hostile client sends.
fn hostile_content() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        clean_line(),
        Just(b"\r\n".to_vec()),
        Just(b"\n.\n".to_vec()),
        Just(b"\r.\r".to_vec()),
        Just(b"\r\n.\r\r\n".to_vec()),
        Just(b"\r\r\n.\r\r\n".to_vec()),
        Just(b"\n.\r\n".to_vec()),
        Just(b"\r\n.\n".to_vec()),
        Just(b"\r\n\x00.\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<ann@example.test>\r\nDATA\r\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    prop::collection::vec(piece, 0..10).prop_map(|p| p.concat())
}

/// What a client may say, in any order and any state.
#[derive(Debug, Clone)]
enum Cmd {
    Ehlo(String),
    Helo(String),
    Mail(String, Vec<String>),
    Rcpt(String, Vec<String>),
    /// DATA, then (after a 354) this body, terminated.
    Data(Vec<u8>),
    /// `BDAT <len of chunk> [LAST]` and the chunk.
    Bdat(Vec<u8>, bool),
    Rset,
    Noop,
    Vrfy(String),
    Auth(String),
    /// A line of anything (never a verb that would take more than a line: see `raw_line`).
    Raw(Vec<u8>),
    /// A line longer than the command line limit.
    Long(usize),
}

/// How a session ends.
#[derive(Debug, Clone)]
enum End {
    Quit,
    /// The client just leaves.
    Leave,
    /// DATA, then a body without its terminator, then the client leaves: never a 250.
    Unterminated(Vec<u8>),
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ann@example.test".to_string()),
        Just("sales@example.test".to_string()),
        Just("Bob@Example.Test".to_string()),
        Just("nobody@example.test".to_string()),
        Just("x@catchall.test".to_string()),
        Just("someone@relay.test".to_string()),
        Just("far@gone.test".to_string()),
        Just("outside@elsewhere.test".to_string()),
        Just(String::new()),
        Just("\"quoted > local\"@example.test".to_string()),
        Just("@route.test:ann@example.test".to_string()),
        Just("jos\u{e9}@example.test".to_string()),
        "[ -~]{0,30}",
        any::<String>().prop_map(|s| s.chars().filter(|c| *c != '\r' && *c != '\n').collect()),
    ]
}

fn xtext() -> impl Strategy<Value = String> {
    prop_oneof!["[!-*,-<>-~]{0,20}", "[ -~]{0,20}", "([A-Za-z0-9]|\\+[0-9A-Fa-f]{2}){0,20}"]
}

fn mail_param() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("RET=FULL".to_string()),
        Just("RET=HDRS".to_string()),
        "RET=[A-Za-z]{0,5}",
        xtext().prop_map(|x| format!("ENVID={x}")),
        "SIZE=[0-9]{1,22}",
        Just("BODY=8BITMIME".to_string()),
        Just("BODY=7BIT".to_string()),
        Just("BODY=BINARYMIME".to_string()),
        Just("SMTPUTF8".to_string()),
        "[A-Za-z-]{1,10}(=[ -~]{0,10})?",
    ]
}

fn rcpt_param() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec!["NEVER", "SUCCESS", "FAILURE", "DELAY", "never", "X"]);
    prop_oneof![
        prop::collection::vec(word, 0..4).prop_map(|w| format!("NOTIFY={}", w.join(","))),
        xtext().prop_map(|x| format!("ORCPT=rfc822;{x}")),
        xtext().prop_map(|x| format!("ORCPT={x}")),
        "[A-Za-z-]{1,10}(=[ -~]{0,10})?",
    ]
}

/// A command line that is not one of the verbs that read more than the line itself (DATA, BDAT,
/// STARTTLS): those are generated as such, so that the client knows what to send next.
fn raw_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..60),
        "[ -~]{0,60}".prop_map(String::into_bytes),
        prop::sample::select(vec![
            "MAIL FROM:",
            "MAIL FROM:<",
            "RCPT TO:<>",
            "HELP",
            "EXPN x",
            "ETRN x",
            "LHLO x",
            "GET / HTTP/1.1",
            "MAIL FROM:<a@b> SIZE=99999999999999999999999",
            "AUTH CRAM-MD5",
            "AUTH PLAIN =",
            "RSET x",
            "QUIT now",
            "\u{0}",
            "EHLO",
            "BURL x",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
    .prop_filter("not a verb that reads more", |line| {
        let verb: String = line
            .iter()
            .take_while(|b| !b.is_ascii_whitespace())
            .map(|&b| b.to_ascii_uppercase() as char)
            .collect();
        !matches!(verb.as_str(), "DATA" | "BDAT" | "STARTTLS")
    })
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("client.test".to_string()),
        Just("[192.0.2.30]".to_string()),
        "[ -~]{0,30}",
        any::<String>().prop_map(|s| s.chars().filter(|c| *c != '\r' && *c != '\n').collect()),
    ]
}

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        2 => host().prop_map(Cmd::Ehlo),
        1 => host().prop_map(Cmd::Helo),
        3 => (path(), prop::collection::vec(mail_param(), 0..3)).prop_map(|(p, a)| Cmd::Mail(p, a)),
        4 => (path(), prop::collection::vec(rcpt_param(), 0..3)).prop_map(|(p, a)| Cmd::Rcpt(p, a)),
        2 => prop_oneof![clean_content(), hostile_content()].prop_map(Cmd::Data),
        2 => (prop_oneof![clean_content(), hostile_content()], any::<bool>())
            .prop_map(|(c, last)| Cmd::Bdat(c, last)),
        1 => Just(Cmd::Rset),
        1 => Just(Cmd::Noop),
        1 => "[ -~]{0,20}".prop_map(Cmd::Vrfy),
        1 => "(PLAIN|LOGIN|XOAUTH2|plain)( [A-Za-z0-9+/=]{0,20})?".prop_map(Cmd::Auth),
        2 => raw_line().prop_map(Cmd::Raw),
        1 => (2049usize..5000).prop_map(Cmd::Long),
    ]
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        2 => Just(End::Quit),
        1 => Just(End::Leave),
        2 => hostile_content().prop_map(|c| End::Unterminated(stuff(&c))),
    ]
}

/// Which listener and which client: port 25 from outside, from a trusted-looking address, and
/// the submission port without TLS.
fn listener() -> impl Strategy<Value = ListenerKind> {
    prop_oneof![
        4 => Just(ListenerKind::Smtp),
        1 => Just(ListenerKind::Submission),
    ]
}

/// Sends `line` and reads the reply, answering a 354 or a 334 the command did not expect (the
/// empty message, `*`) so that client and server stay in step. Whether it sent a message is
/// told by a 354 among the replies.
async fn exchange(c: &mut Client, line: &[u8]) -> Vec<String> {
    let mut with_crlf = line.to_vec();
    with_crlf.extend_from_slice(b"\r\n");
    c.send(&with_crlf).await;
    let mut replies = vec![c.reply().await];
    loop {
        let last = replies.last().expect("one reply");
        if last.starts_with("354") {
            c.send(b".\r\n").await;
        } else if last.starts_with("334") {
            c.send(b"*\r\n").await;
        } else {
            return replies;
        }
        replies.push(c.reply().await);
    }
}

/// Random sessions: every reply well formed, a closing reply (221, 421) followed by the end of
/// the connection, a message in the queue exactly when a 250 ends DATA or BDAT LAST, and a body
/// without its terminator never accepted.
#[test]
fn random_sessions_keep_the_protocol() {
    let rt = runtime();
    let server = rt.block_on(Server::new());
    let strategy = (listener(), prop::collection::vec(cmd(), 0..14), end());
    let mut runner = TestRunner::new(config(48));
    let result = runner.run(&strategy, |(kind, cmds, end)| {
        rt.block_on(async { session_case(&server, kind, cmds, end).await })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

async fn session_case(
    server: &Server,
    kind: ListenerKind,
    cmds: Vec<Cmd>,
    end: End,
) -> Result<(), TestCaseError> {
    let mut c = fresh_client(server, kind, "192.0.2.31").await;
    let count = || server.accepted().len();
    for cmd in cmds {
        let before = count();
        let (replies, ends_message) = match &cmd {
            Cmd::Ehlo(h) => (exchange(&mut c, format!("EHLO {h}").as_bytes()).await, false),
            Cmd::Helo(h) => (exchange(&mut c, format!("HELO {h}").as_bytes()).await, false),
            Cmd::Mail(p, params) => {
                let line = format!("MAIL FROM:<{p}> {}", params.join(" "));
                (exchange(&mut c, line.trim_end().as_bytes()).await, false)
            }
            Cmd::Rcpt(p, params) => {
                let line = format!("RCPT TO:<{p}> {}", params.join(" "));
                (exchange(&mut c, line.trim_end().as_bytes()).await, false)
            }
            Cmd::Data(content) => {
                c.send(b"DATA\r\n").await;
                let first = c.reply().await;
                if first.starts_with("354") {
                    c.send(&terminated(content)).await;
                    (vec![first, c.reply().await], true)
                } else {
                    (vec![first], false)
                }
            }
            Cmd::Bdat(chunk, last) => {
                let last_word = if *last { " LAST" } else { "" };
                let mut bytes = format!("BDAT {}{last_word}\r\n", chunk.len()).into_bytes();
                bytes.extend_from_slice(chunk);
                c.send(&bytes).await;
                (vec![c.reply().await], *last)
            }
            Cmd::Rset => (exchange(&mut c, b"RSET").await, false),
            Cmd::Noop => (exchange(&mut c, b"NOOP").await, false),
            Cmd::Vrfy(x) => (exchange(&mut c, format!("VRFY {x}").as_bytes()).await, false),
            Cmd::Auth(x) => (exchange(&mut c, format!("AUTH {x}").as_bytes()).await, false),
            Cmd::Raw(line) => (exchange(&mut c, line).await, false),
            Cmd::Long(n) => (exchange(&mut c, &vec![b'N'; *n]).await, false),
        };
        // A lenient parse of a junk line as STARTTLS: the server now waits for a handshake
        // this client does not make, and the session ends there.
        if replies.iter().any(|r| r.starts_with("220 ")) {
            return Ok(());
        }
        let mut closing = false;
        for reply in &replies {
            let code = well_formed(reply).map_err(|e| {
                TestCaseError::fail(format!("after {cmd:?}: {e}, replies {replies:?}"))
            })?;
            closing |= code == 221 || code == 421;
        }
        let last = replies.last().expect("a reply");
        let queued = last.starts_with("250") && last.contains("queued as");
        // A line smtp-proto took for DATA after all was answered with an empty message.
        let ends_message = ends_message || replies.iter().any(|r| r.starts_with("354"));
        prop_assert_eq!(
            count(),
            before + usize::from(queued),
            "after {:?} the queue changed without a 250 queued as (or the reverse): {:?}",
            cmd,
            replies
        );
        prop_assert!(!queued || ends_message, "{:?} got {:?}", cmd, replies);
        if queued {
            // What is queued goes out again in MAIL and RCPT commands and DSN fields: a control
            // character there (a bare CR above all) would be a smuggling hazard downstream.
            let message = server.accepted().pop().expect("queued");
            let addresses = std::iter::once(&message.sender)
                .chain(message.recipients.iter().map(|r| &r.address));
            for address in addresses {
                prop_assert!(!address.chars().any(char::is_control), "queued {:?}", address);
            }
        }
        if closing {
            prop_assert!(c.closed().await, "the connection stayed open after {:?}", replies);
            return Ok(());
        }
    }
    let before = count();
    match end {
        End::Quit => {
            let reply = c.cmd("QUIT").await;
            prop_assert!(reply.starts_with("221"), "QUIT got {:?}", reply);
            prop_assert!(c.closed().await);
        }
        End::Leave => {
            let _ = c.conn.get_mut().shutdown().await;
            prop_assert!(c.closed().await);
        }
        End::Unterminated(body) => {
            c.send(b"DATA\r\n").await;
            let first = c.reply().await;
            well_formed(&first)?;
            if first.starts_with("354") {
                c.send(&body).await;
            }
            let _ = c.conn.get_mut().shutdown().await;
            let mut rest = String::new();
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                tokio::io::AsyncReadExt::read_to_string(&mut c.conn, &mut rest),
            )
            .await
            .map_err(|_| TestCaseError::fail("the server kept the connection open"))?;
            prop_assert!(
                !rest.lines().any(|l| l.starts_with("250")),
                "a body without its terminator got {:?}",
                rest
            );
            prop_assert_eq!(count(), before, "a body without its terminator was queued");
        }
    }
    Ok(())
}

/// Whether the header we add in front of `content` is whole: `Received: from …` and its
/// continuation lines only, each ending in CRLF, whatever the client called itself.
fn our_header_is_whole(prefix: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(prefix);
    prop_assert!(text.starts_with("Received: from "), "{:?}", text);
    prop_assert!(text.ends_with("\r\n"), "{:?}", text);
    for (i, line) in text.trim_end_matches("\r\n").split("\r\n").enumerate() {
        prop_assert!(!line.contains(['\r', '\n']), "a bare line ending in {:?}", text);
        prop_assert!(
            i == 0 || line.starts_with('\t'),
            "a line that is not a continuation: {:?}",
            text
        );
    }
    Ok(())
}

/// DATA round trip: a clean body, dot-stuffed by the client, arrives in the queue exactly, its
/// dots unstuffed and its long lines folded, after the one header we add.
#[test]
fn data_bodies_arrive_exactly() {
    let rt = runtime();
    let server = rt.block_on(Server::new());
    let mut runner = TestRunner::new(config(64));
    let strategy = (clean_content(), host());
    let result = runner.run(&strategy, |(content, helo)| {
        rt.block_on(async {
            let mut c = fresh_client(&server, ListenerKind::Smtp, "192.0.2.32").await;
            // Whatever name the client gives that we take goes into Received: whole.
            if !c.cmd(&format!("EHLO {helo}")).await.starts_with("250") {
                c.expect("EHLO client.test", "250").await;
            }
            c.expect("MAIL FROM:<x@remote.test>", "250").await;
            c.expect("RCPT TO:<ann@example.test>", "250").await;
            c.expect("DATA", "354").await;
            let before = server.accepted().len();
            c.send(&terminated(&content)).await;
            let reply = c.reply().await;
            prop_assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{:?}", reply);
            let all = server.accepted();
            prop_assert_eq!(all.len(), before + 1);
            let body = &all[before].body;
            let want = stored(&content);
            prop_assert!(
                body.ends_with(&want),
                "stored {:?}, wanted it to end with {:?}",
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&want)
            );
            our_header_is_whole(&body[..body.len() - want.len()])?;
            prop_assert!(body.split(|&b| b == b'\n').all(|l| l.len() <= 999));
            c.expect("QUIT", "221").await;
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// BDAT round trip: a message cut into chunks anywhere (between CR and LF too, empty chunks,
/// an empty `BDAT 0 LAST`) arrives whole; with a bare line ending anywhere it is refused whole.
#[test]
fn bdat_chunks_arrive_whole() {
    let rt = runtime();
    let server = rt.block_on(Server::new());
    let mut runner = TestRunner::new(config(64));
    let strategy = (
        prop_oneof![3 => clean_content(), 1 => hostile_content()],
        prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        any::<bool>(),
    );
    let result = runner.run(&strategy, |(content, cuts, empty_last)| {
        rt.block_on(async {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(content.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts {
                chunks.push(&content[start..cut]);
                start = cut;
            }
            chunks.push(&content[start..]);
            if empty_last {
                chunks.push(&[]);
            }
            let mut c = fresh_client(&server, ListenerKind::Smtp, "192.0.2.33").await;
            c.expect("EHLO client.test", "250").await;
            c.expect("MAIL FROM:<x@remote.test>", "250").await;
            c.expect("RCPT TO:<ann@example.test>", "250").await;
            let before = server.accepted().len();
            let mut replies = Vec::new();
            for (i, chunk) in chunks.iter().enumerate() {
                let last = if i + 1 == chunks.len() { " LAST" } else { "" };
                let mut bytes = format!("BDAT {}{last}\r\n", chunk.len()).into_bytes();
                bytes.extend_from_slice(chunk);
                c.send(&bytes).await;
                let reply = c.reply().await;
                well_formed(&reply)?;
                replies.push(reply);
            }
            let clean = !content.contains(&0)
                && split_crlf(&content).iter().all(|l| !l.contains(&b'\r') && !l.contains(&b'\n'));
            let all = server.accepted();
            let last = replies.last().expect("at least one chunk");
            if clean {
                prop_assert!(last.starts_with("250 2.0.0 Ok: queued as"), "{:?}", replies);
                prop_assert_eq!(all.len(), before + 1);
                let body = &all[before].body;
                let want = stored(&content);
                prop_assert!(
                    body.ends_with(&want),
                    "stored {:?}, wanted it to end with {:?}",
                    String::from_utf8_lossy(body),
                    String::from_utf8_lossy(&want)
                );
                our_header_is_whole(&body[..body.len() - want.len()])?;
            } else {
                prop_assert!(!last.starts_with("250"), "a dirty body was accepted: {:?}", replies);
                prop_assert_eq!(all.len(), before);
            }
            c.expect("RSET", "250").await;
            c.expect("QUIT", "221").await;
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// PLAIN (RFC 4616 §2): what a client encodes is what we read; anything else is refused,
    /// never a panic.
    #[test]
    fn sasl_plain_round_trips(
        authzid in "[^\u{0}]{0,12}",
        user in "[^\u{0}]{0,20}",
        password in "[^\u{0}]{0,30}",
        junk in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let message = format!("{authzid}\0{user}\0{password}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(&message);
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        match plain_credentials(&decoded) {
            Ok((u, p)) => {
                prop_assert!(authzid.is_empty() || authzid.eq_ignore_ascii_case(&user));
                prop_assert_eq!((u, p), (user, password));
            }
            Err(e) => {
                prop_assert_eq!(e, Sasl::OtherIdentity);
                prop_assert!(!authzid.eq_ignore_ascii_case(&user));
            }
        }
        // Anything at all: credentials only from exactly two NULs and UTF-8.
        if let Ok((u, p)) = plain_credentials(&junk) {
            prop_assert_eq!(junk.iter().filter(|&&b| b == 0).count(), 2);
            prop_assert!(!u.contains('\0') && !p.contains('\0'));
        }
        match login_text(junk.clone()) {
            Some(text) => prop_assert_eq!(text.as_bytes(), &junk[..]),
            None => prop_assert!(junk.contains(&0) || std::str::from_utf8(&junk).is_err()),
        }
    }

    /// xtext (RFC 3461 §4): every octet string, encoded, decodes to itself.
    #[test]
    fn xtext_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..60)) {
        let mut encoded = String::new();
        for &b in &bytes {
            if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
                encoded.push(b as char);
            } else {
                encoded.push_str(&format!("+{b:02X}"));
            }
        }
        prop_assert_eq!(dsn::decode_xtext(&encoded, false).unwrap(), bytes);
    }

    /// MAIL and RCPT parameter lines: any line is parsed or refused with 501 5.5.4, and what is
    /// kept is what RFC 3461 allows (printable US-ASCII, ENVID at most 100 characters, NOTIFY
    /// NEVER alone).
    #[test]
    fn dsn_parameters_are_kept_only_when_valid(
        path in path(),
        mail_params in prop::collection::vec(mail_param(), 0..4),
        rcpt_params in prop::collection::vec(rcpt_param(), 0..4),
        junk in prop::collection::vec(any::<u8>(), 0..80),
        utf8 in any::<bool>(),
    ) {
        let mail = format!("MAIL FROM:<{path}> {}", mail_params.join(" "));
        match dsn::mail(mail.as_bytes()) {
            Ok(found) => {
                if let Some(envid) = found.envid {
                    prop_assert!(envid.len() <= 100 && envid.bytes().all(|b| (b' '..=b'~').contains(&b)));
                }
            }
            Err(reply) => prop_assert_eq!((reply.code, reply.status), (501, Some("5.5.4"))),
        }
        let rcpt = format!("RCPT TO:<{path}> {}", rcpt_params.join(" "));
        for line in [rcpt.as_bytes(), &junk[..]] {
            match dsn::rcpt(line, utf8) {
                Ok(found) => {
                    let n = found.notify;
                    prop_assert!(!n.contains(Notify::NEVER) || n == Notify::NEVER, "{:?}", n);
                    if let Some(orcpt) = found.orcpt {
                        prop_assert!(orcpt.contains(';'));
                        prop_assert!(!orcpt.chars().any(char::is_control), "{:?}", orcpt);
                        prop_assert!(utf8 || orcpt.is_ascii());
                    }
                }
                Err(reply) => prop_assert_eq!((reply.code, reply.status), (501, Some("5.5.4"))),
            }
            let _ = dsn::mail(line);
        }
    }

    /// NOTIFY: every non-empty set of SUCCESS, FAILURE and DELAY in any order and case, or NEVER
    /// alone, is accepted as exactly that set.
    #[test]
    fn notify_lists_are_read_as_sets(
        words in prop::sample::subsequence(vec!["SUCCESS", "FAILURE", "DELAY"], 1..=3).prop_shuffle(),
        lower in any::<bool>(),
    ) {
        let mut text = words.join(",");
        if lower {
            text = text.to_lowercase();
        }
        let got = dsn::rcpt(format!("RCPT TO:<a@b.test> NOTIFY={text}").as_bytes(), false).unwrap();
        let want = words.iter().fold(Notify(0), |n, w| {
            n | match *w {
                "SUCCESS" => Notify::SUCCESS,
                "FAILURE" => Notify::FAILURE,
                _ => Notify::DELAY,
            }
        });
        prop_assert_eq!(got.notify, want);
        let never = dsn::rcpt(format!("RCPT TO:<a@b.test> NOTIFY=NEVER,{text}").as_bytes(), false);
        prop_assert!(never.is_err());
    }
}

/// The author check of submissions (`From:`/`Sender:`, `smtp/authors.rs`) on any header block:
/// a refusal is a 550 5.7.1, never a panic.
#[test]
fn author_fields_of_any_message() {
    let rt = runtime();
    let server = rt.block_on(Server::new());
    let snapshot = server.ctx.engine.snapshot();
    let user: postern_store::model::Address = "bob@example.test".parse().unwrap();
    let field = prop_oneof![
        Just(b"From: bob@example.test\r\n".to_vec()),
        Just(b"From: \"Boss\" <boss@elsewhere.test>, bob@example.test\r\n".to_vec()),
        Just(b"Sender: <>\r\n".to_vec()),
        Just(b"From :ceo@example.test\r\n".to_vec()),
        Just(b"From: =?utf-8?q?x?= <\r\n bob@example.test>\r\n".to_vec()),
        Just(b"FROM: (comment) bob@example.test (x)\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b" folded\r\n".to_vec()),
        "(From|Sender|Subject|X): [ -~]{0,40}\r\n".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..60),
    ];
    let mut runner = TestRunner::new(config(1024));
    let result = runner.run(&prop::collection::vec(field, 0..8), |fields| {
        let message = fields.concat();
        let _ = crate::smtp::authors::from_domains(&message);
        if let Some(reply) = crate::smtp::authors::check(&snapshot.config, &user, &message) {
            prop_assert_eq!((reply.code, reply.status), (550, Some("5.7.1")), "{}", reply);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
