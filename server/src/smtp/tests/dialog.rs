//! SMTP dialogs kept as data, after chasquid's: each file under `server/tests/dialogs/` is a
//! conversation with a fresh server (the fixture of [`Server`]), read top to bottom. Anyone can
//! read one and add a case without writing Rust; a case that needs to look inside the accepted
//! message stays a Rust test beside this one.
//!
//! The format, one instruction a line:
//!
//! ```text
//! # a comment; blank lines are ignored
//! @listener smtp|submission               which service (before the first exchange; smtp)
//! @peer 192.0.2.10                         the client's address (likewise; 192.0.2.10)
//! @limit max_recipients 3                  a session limit (max_recipients, max_errors,
//!                                          max_message_size, line_limit)
//! C: EHLO client.test                      send a line and CRLF
//! C~ text without CRLF                     send it as it is
//! S: 250 2.1.5                             the next reply starts with this (lines joined by \n)
//! S: <closed>                              the server has closed the connection
//! @starttls                                STARTTLS, then the TLS handshake
//! @auth ann@example.test                   AUTH PLAIN as that mailbox, with the fixture password
//! @accepted 1                              the queue holds this many messages now
//! @rule rcpt to=@x.test -> REJECT 550 5.7.1 no
//!                                          an access rule, added before the session: stage,
//!                                          matchers (client= rdns= helo= from= to= auth=yes|no)
//!                                          and the action (before the first exchange)
//! @held yes                                the last accepted message is held (yes or no)
//! @recipients a@x.test b@y.test            the last accepted message's recipients, in order
//! ```
//!
//! In `C:` and `C~` lines `\r`, `\n`, `\t`, `\\` and `\xHH` are escapes, and `{TEXT*N}` is TEXT
//! N times (for overlong lines).

use std::path::{Path, PathBuf};

use super::*;

/// One instruction of a dialog file, with its line number.
#[derive(Debug)]
enum Step {
    Send(Vec<u8>),
    Expect(String),
    Closed,
    StartTls,
    Auth(String),
    Accepted(usize),
    Held(bool),
    Recipients(Vec<String>),
}

#[derive(Debug)]
struct Dialog {
    listener: ListenerKind,
    peer: String,
    limits: Limits,
    rules: Vec<postern_store::model::NewPolicyRule>,
    steps: Vec<(usize, Step)>,
}

/// `rcpt to=@x.test auth=no -> REJECT 550 5.7.1 no`: the rule of a `@rule` line.
fn parse_rule(text: &str) -> Result<postern_store::model::NewPolicyRule, String> {
    use postern_store::model::{Matcher, NewPolicyRule, PolicyMatch};
    let (left, action) = text.split_once(" -> ").ok_or("no \" -> \" before the action")?;
    let mut words = left.split_whitespace();
    let stage = words.next().ok_or("no stage")?.parse().map_err(|e| format!("{e}"))?;
    let mut matches = PolicyMatch::default();
    for word in words {
        let (key, value) = word.split_once('=').ok_or("a matcher is key=value")?;
        let text = |field| Matcher::parse(field, value).map(Some).map_err(|e| e.to_string());
        match key {
            "client" => matches.client = Some(value.parse().map_err(|_| "bad client")?),
            "rdns" => matches.rdns = text("rdns")?,
            "helo" => matches.helo = text("helo")?,
            "from" => matches.sender = text("sender")?,
            "to" => matches.recipient = text("recipient")?,
            "auth" => matches.authenticated = Some(value == "yes"),
            _ => return Err(format!("unknown matcher {key}")),
        }
    }
    let action = action.parse().map_err(|e| format!("{e}"))?;
    Ok(NewPolicyRule { stage, matches, action, description: String::new() })
}

fn parse(text: &str) -> Result<Dialog, String> {
    let mut dialog = Dialog {
        listener: ListenerKind::Smtp,
        peer: "192.0.2.10".into(),
        limits: Limits::default(),
        rules: Vec::new(),
        steps: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let bad = |why: &str| format!("line {n}: {why}: {line:?}");
        let trimmed = line.trim_end();
        if trimmed.trim_start().is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let step = if let Some(rest) = trimmed.strip_prefix("C: ") {
            let mut bytes = unescape(rest).map_err(|e| bad(&e))?;
            bytes.extend_from_slice(b"\r\n");
            Step::Send(bytes)
        } else if trimmed == "C:" {
            Step::Send(b"\r\n".to_vec())
        } else if let Some(rest) = trimmed.strip_prefix("C~ ") {
            Step::Send(unescape(rest).map_err(|e| bad(&e))?)
        } else if trimmed == "S: <closed>" {
            Step::Closed
        } else if let Some(rest) = trimmed.strip_prefix("S: ") {
            Step::Expect(rest.to_string())
        } else if let Some(rule) = trimmed.strip_prefix("@rule ") {
            dialog.rules.push(parse_rule(rule).map_err(|e| bad(&e))?);
            continue;
        } else if let Some(list) = trimmed.strip_prefix("@recipients ") {
            Step::Recipients(list.split_whitespace().map(String::from).collect())
        } else if let Some(directive) = trimmed.strip_prefix('@') {
            let mut words = directive.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("listener"), Some(kind), None) => {
                    dialog.listener = match kind {
                        "smtp" => ListenerKind::Smtp,
                        "submission" => ListenerKind::Submission,
                        _ => return Err(bad("unknown listener")),
                    };
                    continue;
                }
                (Some("peer"), Some(peer), None) => {
                    dialog.peer = peer.to_string();
                    continue;
                }
                (Some("limit"), Some(name), Some(value)) => {
                    let value: usize = value.parse().map_err(|_| bad("not a number"))?;
                    let limits = &mut dialog.limits;
                    match name {
                        "max_recipients" => limits.max_recipients = value,
                        "max_errors" => limits.max_errors = value as u32,
                        "max_message_size" => limits.max_message_size = value,
                        "line_limit" => limits.line_limit = value,
                        _ => return Err(bad("unknown limit")),
                    }
                    continue;
                }
                (Some("starttls"), None, None) => Step::StartTls,
                (Some("auth"), Some(user), None) => Step::Auth(user.to_string()),
                (Some("held"), Some(yes), None) => Step::Held(yes == "yes"),
                (Some("accepted"), Some(count), None) => {
                    Step::Accepted(count.parse().map_err(|_| bad("not a number"))?)
                }
                _ => return Err(bad("unknown directive")),
            }
        } else {
            return Err(bad("neither C:, C~, S: nor @directive"));
        };
        dialog.steps.push((n, step));
    }
    Ok(dialog)
}

/// The escapes of `C:` lines: `\r \n \t \\ \xHH`, and `{TEXT*N}` for TEXT repeated N times.
fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match c {
            '\\' => {
                let (byte, used) = match rest.as_bytes().get(1) {
                    Some(b'r') => (b'\r', 2),
                    Some(b'n') => (b'\n', 2),
                    Some(b't') => (b'\t', 2),
                    Some(b'\\') => (b'\\', 2),
                    Some(b'x') => {
                        let hex = rest.get(2..4).ok_or("\\x needs two hex digits")?;
                        (u8::from_str_radix(hex, 16).map_err(|_| "bad \\x escape")?, 4)
                    }
                    _ => return Err("unknown escape".into()),
                };
                out.push(byte);
                rest = &rest[used..];
            }
            '{' if rest.contains('}') && rest[..rest.find('}').unwrap()].contains('*') => {
                let end = rest.find('}').unwrap();
                let (what, times) = rest[1..end].rsplit_once('*').unwrap();
                let times: usize = times.parse().map_err(|_| "bad repeat count")?;
                out.extend(what.repeat(times).into_bytes());
                rest = &rest[end + 1..];
            }
            _ => {
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    Ok(out)
}

/// Runs one dialog; the error names the line that did not go as written.
async fn run(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let dialog = parse(&text)?;
    let server = Server::with_limits(dialog.limits).await;
    for rule in dialog.rules {
        server.add_rule(rule).await;
    }
    let mut c = server.connect_silent(dialog.listener, &dialog.peer);
    let mut last_sent = String::from("(the greeting)");
    for (n, step) in dialog.steps {
        match step {
            Step::Send(bytes) => {
                last_sent = String::from_utf8_lossy(&bytes).chars().take(80).collect();
                c.send(&bytes).await;
            }
            Step::Expect(prefix) => {
                let reply = c.reply().await;
                if !reply.starts_with(&prefix) {
                    return Err(format!(
                        "line {n}: after {last_sent:?} the reply was {reply:?}, wanted {prefix:?}"
                    ));
                }
            }
            Step::Closed => {
                if !c.closed().await {
                    return Err(format!("line {n}: the server did not close the connection"));
                }
            }
            Step::StartTls => c.starttls().await,
            Step::Auth(user) => {
                let reply =
                    c.cmd(&format!("AUTH PLAIN {}", base64_plain("", &user, PASSWORD))).await;
                if !reply.starts_with("235") {
                    return Err(format!("line {n}: AUTH as {user} got {reply:?}"));
                }
            }
            Step::Held(wanted) => {
                let held = server.accepted().last().map(|m| m.held);
                if held != Some(wanted) {
                    return Err(format!(
                        "line {n}: the last message held: {held:?}, wanted {wanted}"
                    ));
                }
            }
            Step::Recipients(wanted) => {
                let got: Vec<String> = server
                    .accepted()
                    .last()
                    .map(|m| m.recipients.iter().map(|r| r.address.clone()).collect())
                    .unwrap_or_default();
                if got != wanted {
                    return Err(format!(
                        "line {n}: the last message went to {got:?}, wanted {wanted:?}"
                    ));
                }
            }
            Step::Accepted(count) => {
                let accepted = server.accepted().len();
                if accepted != count {
                    return Err(format!(
                        "line {n}: {accepted} message(s) accepted, wanted {count}"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn dialog_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dialogs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "smtp"))
        .collect();
    files.sort();
    files
}

/// Every dialog file, each against a server of its own; all failures are reported together.
#[tokio::test]
async fn every_dialog_goes_as_written() {
    let files = dialog_files();
    assert!(files.len() >= 5, "the dialog files are missing");
    let mut failures = Vec::new();
    for file in &files {
        if let Err(e) = run(file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{} dialog(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// The runner itself: a wrong expectation must fail, or a broken server would pass.
#[tokio::test]
async fn a_dialog_that_does_not_match_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrong.smtp");
    std::fs::write(
        &path,
        "S: 220\nC: EHLO client.test\nS: 250\nC: RCPT TO:<a@example.test>\nS: 250\n",
    )
    .unwrap();
    let err = run(&path).await.unwrap_err();
    assert!(err.starts_with("line 5: after \"RCPT TO:<a@example.test>"), "{err}");
    assert!(err.contains("503 5.5.1"), "{err}");
}

#[test]
fn escapes_and_repeats() {
    assert_eq!(unescape(r"a\r\n\x00\\").unwrap(), b"a\r\n\0\\");
    assert_eq!(unescape("EHLO {ab*3}.").unwrap(), b"EHLO ababab.");
    assert_eq!(unescape("{a}").unwrap(), b"{a}");
    assert!(parse("@limit bogus 1").is_err());
    assert!(parse("X: nonsense").is_err());
}
