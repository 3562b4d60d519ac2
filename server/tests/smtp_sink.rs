//! The SMTP client against Postfix's smtp-sink: delivery, per-command failure injection (4xx
//! defers, 5xx fails), a 421 disconnect, a timeout, and a second message on one connection.
//!
//! Needs the Debian package `postfix` (for smtp-sink), installed after
//! `echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections`.

mod support;

use std::time::Duration;

use postern_server::delivery::{Client, DirectConnector, Outcome, Reply, Timeouts, deliver};
use support::peers::sink;
use support::{TRICKY_BODY, delivery, free_port};
use support::{loopback as target, smtp_options as options};

fn rcpts() -> Vec<String> {
    vec!["bob@example.com".to_string(), "carol@example.com".to_string()]
}

#[tokio::test]
async fn delivers_and_the_sink_gets_the_body_unstuffed() {
    let dir = tempfile::tempdir().unwrap();
    let template = format!("{}/%M.", dir.path().display());
    let Some((_peer, port)) = sink("smtp_sink::delivers", dir.path(), &["-d", &template]) else {
        return;
    };
    let rcpts = rcpts();
    let out = deliver(
        &DirectConnector::default(),
        &target(port),
        &options(),
        &delivery(&rcpts, TRICKY_BODY),
    )
    .await;
    assert!(out.iter().all(Outcome::is_delivered), "{out:?}");
    assert!(out[0].text().contains("250"), "{out:?}");

    // The dump holds the envelope and then the message as the sink un-stuffed it.
    let mut dumped = None;
    for _ in 0..50 {
        if let Some(entry) = std::fs::read_dir(dir.path()).unwrap().next() {
            dumped = Some(std::fs::read(entry.unwrap().path()).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dumped = String::from_utf8(dumped.expect("a dump file")).unwrap();
    assert!(dumped.contains("bob@example.com") && dumped.contains("carol@example.com"));
    let body = String::from_utf8(TRICKY_BODY.to_vec()).unwrap().replace("\r\n", "\n");
    assert!(dumped.replace("\r\n", "\n").contains(&body), "dump was:\n{dumped}");
}

#[tokio::test]
async fn a_soft_rcpt_refusal_defers_and_a_hard_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_soft, soft)) = sink("smtp_sink::rcpt_4xx", dir.path(), &["-r", "RCPT"]) else {
        return;
    };
    let Some((_hard, hard)) = sink("smtp_sink::rcpt_5xx", dir.path(), &["-f", "RCPT"]) else {
        return;
    };
    let rcpts = rcpts();
    let d = delivery(&rcpts, b"Subject: x\r\n\r\nx\r\n");
    let out = deliver(&DirectConnector::default(), &target(soft), &options(), &d).await;
    assert_eq!(
        out,
        vec![Outcome::deferred(Reply::new(450, [4, 3, 0], "Error: command failed")); 2]
    );
    let out = deliver(&DirectConnector::default(), &target(hard), &options(), &d).await;
    assert_eq!(out, vec![Outcome::failed(Reply::new(500, [5, 3, 0], "Error: command failed")); 2]);
}

#[tokio::test]
async fn a_refused_mail_or_data_decides_every_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_a, mail)) = sink("smtp_sink::mail_5xx", dir.path(), &["-f", "MAIL"]) else {
        return;
    };
    let Some((_b, data)) = sink("smtp_sink::data_4xx", dir.path(), &["-r", "."]) else {
        return;
    };
    let Some((_c, gone)) = sink("smtp_sink::mail_421", dir.path(), &["-Q", "MAIL"]) else {
        return;
    };
    let rcpts = rcpts();
    let d = delivery(&rcpts, b"Subject: x\r\n\r\nx\r\n");
    let c = DirectConnector::default();
    let out = deliver(&c, &target(mail), &options(), &d).await;
    assert!(out.iter().all(|o| o.is_failed() && o.text().starts_with("500 5.3.0")), "{out:?}");
    let out = deliver(&c, &target(data), &options(), &d).await;
    assert!(out.iter().all(|o| o.is_deferred() && o.text().starts_with("450 4.3.0")), "{out:?}");
    let out = deliver(&c, &target(gone), &options(), &d).await;
    assert!(out.iter().all(|o| o.is_deferred() && o.text().starts_with("421")), "{out:?}");
}

#[tokio::test]
async fn a_silent_peer_times_out_into_a_deferral() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_peer, port)) = sink("smtp_sink::timeout", dir.path(), &["-W", "RCPT:5"]) else {
        return;
    };
    let mut options = options();
    options.timeouts = Timeouts::all(Duration::from_secs(1));
    let rcpts = rcpts();
    let d = delivery(&rcpts, b"x\r\n");
    let out = deliver(&DirectConnector::default(), &target(port), &options, &d).await;
    assert!(
        out.iter().all(|o| o.is_deferred() && o.text().starts_with("451 4.4.2 timed out")),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_defers() {
    let port = free_port();
    let rcpts = rcpts();
    let out = deliver(
        &DirectConnector::default(),
        &target(port),
        &options(),
        &delivery(&rcpts, b"x\r\n"),
    )
    .await;
    assert_eq!(
        out,
        vec![
            Outcome::deferred(Reply::new(
                451,
                [4, 4, 1],
                format!("connection refused by 127.0.0.1:{port}")
            ));
            2
        ]
    );
}

#[tokio::test]
async fn two_messages_go_over_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    // -p: no PIPELINING, so the unpipelined path is exercised too.
    for args in [&[][..], &["-p"][..]] {
        let Some((_peer, port)) = sink("smtp_sink::reuse", dir.path(), args) else {
            return;
        };
        let mut client =
            Client::connect(&DirectConnector::default(), &target(port), &options()).await.unwrap();
        let rcpts = rcpts();
        for _ in 0..2 {
            let out = client.send(&delivery(&rcpts, TRICKY_BODY)).await;
            assert!(out.iter().all(Outcome::is_delivered), "{args:?}: {out:?}");
        }
        assert!(client.is_usable());
        client.quit().await;
    }
}
