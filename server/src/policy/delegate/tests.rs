//! The protocol against an in-process fake policy server: encoding, answers, kept connections,
//! and a service that hangs, dies or talks nonsense.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_store::model::{OnFailure, PolicyService, ServiceStage};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;

/// How the fake answers each request.
#[derive(Clone)]
enum Script {
    /// These answers in turn (the last one repeated), each followed by the empty line.
    Answer(Vec<&'static str>),
    /// Reads the request and never answers.
    Hang,
    /// Reads the request and closes the connection.
    Die,
    /// Answers raw bytes as they are.
    Raw(&'static str),
}

struct Fake {
    port: u16,
    /// Every request received, as text.
    requests: Arc<Mutex<Vec<String>>>,
    /// Connections accepted.
    connections: Arc<Mutex<usize>>,
}

async fn fake(script: Script) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(Mutex::new(0));
    let (r, c) = (requests.clone(), connections.clone());
    tokio::spawn(async move {
        let mut served = 0usize;
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            *c.lock().unwrap() += 1;
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            loop {
                let mut request = String::new();
                loop {
                    let mut line = String::new();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        break;
                    }
                    if line == "\n" {
                        break;
                    }
                    request.push_str(&line);
                }
                if request.is_empty() {
                    break;
                }
                r.lock().unwrap().push(request);
                match &script {
                    Script::Answer(answers) => {
                        let a = answers[served.min(answers.len() - 1)];
                        served += 1;
                        let _ = write.write_all(format!("action={a}\n\n").as_bytes()).await;
                    }
                    Script::Hang => std::future::pending::<()>().await,
                    Script::Die => break,
                    Script::Raw(bytes) => {
                        let _ = write.write_all(bytes.as_bytes()).await;
                    }
                }
            }
        }
    });
    Fake { port, requests, connections }
}

fn service(port: u16, on_failure: OnFailure, timeout: Duration) -> PolicyService {
    PolicyService {
        name: "fake".into(),
        address: format!("inet:127.0.0.1:{port}").parse().unwrap(),
        stage: ServiceStage::Rcpt,
        timeout,
        on_failure,
        enabled: true,
        description: String::new(),
        created_at: 0,
    }
}

fn query() -> Query {
    Query {
        protocol_name: "ESMTP".into(),
        helo_name: "client.test".into(),
        sender: "ann@example.test".into(),
        recipient: "bob@example.test".into(),
        recipient_count: 0,
        client: Some("192.0.2.7:40000".parse().unwrap()),
        client_name: "unknown".into(),
        instance: "1.1".into(),
        ..Default::default()
    }
}

async fn consult(d: &mut Delegation, s: &PolicyService, effects: &mut Effects) -> Decision {
    d.consult(std::slice::from_ref(s), ServiceStage::Rcpt, &query(), effects, "client").await
}

fn refused(decision: Decision) -> String {
    match decision {
        Decision::Refuse(r, _) => r.to_string(),
        Decision::Continue => panic!("not refused"),
    }
}

#[test]
fn requests_carry_the_standard_attributes_one_per_line() {
    let mut q = query();
    q.helo_name = "evil\r\nrecipient=x@y".into();
    let text = String::from_utf8(q.encode(ServiceStage::Data)).unwrap();
    assert!(text.starts_with("request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\n"));
    assert!(text.contains("\nclient_address=192.0.2.7\n"), "{text}");
    assert!(text.contains("\nsender=ann@example.test\n"), "{text}");
    assert!(text.contains("\nhelo_name=evil  recipient=x@y\n"), "{text}");
    assert!(text.ends_with("\n\n"));
    assert_eq!(text.matches("\nrecipient=").count(), 1);
}

#[test]
fn actions_mean_what_access_5_says() {
    let mut e = Effects::default();
    assert_eq!(act("s", "OK", &mut e), Acted::Stop);
    assert_eq!(act("s", "dunno", &mut e), Acted::Next);
    let reply = |a: &str| match act("s", a, &mut Effects::default()) {
        Acted::Refuse(r) => r.to_string(),
        other => panic!("{a}: {other:?}"),
    };
    assert_eq!(reply("REJECT"), "554 5.7.1 Access denied");
    assert_eq!(reply("REJECT go away"), "554 5.7.1 go away");
    assert_eq!(reply("DEFER_IF_PERMIT Greylisted"), "450 4.7.1 Greylisted");
    assert_eq!(reply("550 5.7.23 SPF fail"), "550 5.7.23 SPF fail");
    // The enhanced code is added when missing or of the wrong class.
    assert_eq!(reply("550 no such user"), "550 5.7.1 no such user");
    assert_eq!(reply("451 5.1.1 mixed up"), "451 4.7.1 5.1.1 mixed up");
    assert_eq!(reply("421 busy"), "450 4.7.1 busy");
    assert_eq!(act("s", "250 fine", &mut e), Acted::Next);
    assert_eq!(act("s", "FROBNICATE now", &mut e), Acted::Next);
    assert_eq!(e, Effects::default());

    assert_eq!(act("grey", "PREPEND X-Greylist: delayed 2 seconds", &mut e), Acted::Next);
    assert_eq!(e.prepend, ["X-Greylist: delayed 2 seconds"]);
    assert_eq!(act("s", "PREPEND not a header", &mut e), Acted::Next);
    assert_eq!(e.prepend.len(), 1);
    act("s", "HOLD", &mut e);
    act("s", "DISCARD", &mut e);
    act("s", "REDIRECT archive@example.test", &mut e);
    act("s", "BCC copy@example.test", &mut e);
    assert_eq!((e.hold, e.discard), (Some(0), Some(0)));
    assert_eq!(e.redirect, Some((0, "archive@example.test".to_string())));
    assert_eq!(e.bcc, [(0, "copy@example.test".to_string())]);
    let note = e.note().unwrap();
    assert!(note.contains("held by policy service s"), "{note}");
    assert!(!note.contains("policy rule"), "{note}");
}

#[tokio::test]
async fn answers_are_read_and_the_connection_is_kept() {
    let f = fake(Script::Answer(vec![
        "DUNNO",
        "DEFER_IF_PERMIT Greylisted, come back later",
        "PREPEND X-Greylist: delayed",
    ]))
    .await;
    let s = service(f.port, OnFailure::Dunno, Duration::from_secs(10));
    let mut d = Delegation::default();
    let mut effects = Effects::default();
    assert!(matches!(consult(&mut d, &s, &mut effects).await, Decision::Continue));
    let r = refused(consult(&mut d, &s, &mut effects).await);
    assert_eq!(r, "450 4.7.1 Greylisted, come back later");
    assert!(matches!(consult(&mut d, &s, &mut effects).await, Decision::Continue));
    assert_eq!(effects.prepend, ["X-Greylist: delayed"]);
    assert_eq!(*f.connections.lock().unwrap(), 1, "one connection for the session");
    let requests = f.requests.lock().unwrap();
    assert_eq!(requests.len(), 3);
    assert!(requests[0].contains("protocol_state=RCPT\n"), "{}", requests[0]);
    assert!(requests[0].contains("recipient=bob@example.test\n"), "{}", requests[0]);
}

#[tokio::test]
async fn a_hung_service_gets_its_default_after_the_timeout() {
    let f = fake(Script::Hang).await;
    let mut d = Delegation::default();
    let open = service(f.port, OnFailure::Dunno, Duration::from_millis(100));
    let mut effects = Effects::default();
    let started = std::time::Instant::now();
    assert!(matches!(consult(&mut d, &open, &mut effects).await, Decision::Continue));
    assert!(started.elapsed() < Duration::from_secs(5));
    let closed = service(f.port, OnFailure::Defer, Duration::from_millis(100));
    assert_eq!(
        refused(consult(&mut d, &closed, &mut effects).await),
        "451 4.3.5 Server configuration problem, try again later"
    );
    assert_eq!(effects, Effects::default());
}

#[tokio::test]
async fn a_dead_or_babbling_service_gets_its_default() {
    for script in [Script::Die, Script::Raw("what?\n\n"), Script::Raw("size=1\n\n")] {
        let f = fake(script).await;
        let mut d = Delegation::default();
        let closed = service(f.port, OnFailure::Defer, Duration::from_secs(10));
        let r = refused(consult(&mut d, &closed, &mut Effects::default()).await);
        assert!(r.starts_with("451 4.3.5"), "{r}");
        let open = service(f.port, OnFailure::Dunno, Duration::from_secs(10));
        assert!(matches!(
            consult(&mut d, &open, &mut Effects::default()).await,
            Decision::Continue
        ));
    }
    // Nobody listens at all.
    let port = postern_store::testing::free_port();
    let closed = service(port, OnFailure::Defer, Duration::from_secs(10));
    let err = Delegation::default().ask(&closed, ServiceStage::Rcpt, &query()).await.unwrap_err();
    assert!(matches!(err, Failure::Connect(_)), "{err}");
}

#[tokio::test]
async fn a_kept_connection_the_service_closed_is_opened_again() {
    // The fake answers one request per connection and closes it, like a restarted service.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let mut stream = BufReader::new(stream);
            let mut line = String::new();
            while stream.read_line(&mut line).await.unwrap_or(0) > 0 && !line.ends_with("\n\n") {}
            let _ = stream.get_mut().write_all(b"action=OK\n\n").await;
        }
    });
    let s = service(port, OnFailure::Defer, Duration::from_secs(10));
    let mut d = Delegation::default();
    for _ in 0..3 {
        assert_eq!(d.ask(&s, ServiceStage::Rcpt, &query()).await.unwrap(), "OK");
    }
}

#[tokio::test]
async fn ok_stops_and_disabled_or_other_stage_services_are_not_asked() {
    let first = fake(Script::Answer(vec!["OK"])).await;
    let second = fake(Script::Answer(vec!["REJECT no"])).await;
    let mut a = service(first.port, OnFailure::Dunno, Duration::from_secs(10));
    a.name = "a".into();
    let mut b = service(second.port, OnFailure::Dunno, Duration::from_secs(10));
    b.name = "b".into();
    let mut d = Delegation::default();
    let mut e = Effects::default();
    let services = [a.clone(), b.clone()];
    assert!(matches!(
        d.consult(&services, ServiceStage::Rcpt, &query(), &mut e, "c").await,
        Decision::Continue
    ));
    assert!(second.requests.lock().unwrap().is_empty());
    a.enabled = false;
    let services = [a.clone(), b.clone()];
    assert!(matches!(
        d.consult(&services, ServiceStage::Rcpt, &query(), &mut e, "c").await,
        Decision::Refuse(..)
    ));
    assert!(matches!(
        d.consult(&services, ServiceStage::Data, &query(), &mut e, "c").await,
        Decision::Continue
    ));
    assert_eq!(second.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn probe_says_what_the_service_answered() {
    let f = fake(Script::Answer(vec!["DUNNO"])).await;
    let s = service(f.port, OnFailure::Dunno, Duration::from_secs(10));
    assert_eq!(probe(&s, &query()).await.unwrap(), "DUNNO");
}
