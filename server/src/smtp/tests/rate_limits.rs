//! Rate limits in the session (issue 13): `421 4.7.0` past a connection rate, `450 4.7.1` past a
//! message or recipient rate, `454 4.7.0` past the AUTH failures, each at its threshold and gone
//! after the window, on the limiter's simulated clock. The fixture's store carries the defaults
//! of a fresh install (30 AUTH failures per address an hour, 60 connections per address a
//! minute, 1000 recipients per user an hour).

use postern_store::auth::{HashGate, PasswordChecks, Policy};
use postern_store::model::{NewRateLimit, RateKey, RateMeasure};

use super::*;

async fn limit(server: &Server, key: RateKey, measure: RateMeasure, threshold: i64, window: i64) {
    let new =
        NewRateLimit { key, measure, threshold, window_secs: window, description: "t".into() };
    server.store.add_rate_limit("test", new).await.unwrap();
    server.caught_up().await;
}

#[tokio::test]
async fn connections_past_the_rate_get_421_and_recover_after_the_window() {
    let server = Server::new().await;
    limit(&server, RateKey::ClientIp, RateMeasure::Connections, 3, 60).await;
    for _ in 0..3 {
        let mut c = server.connect(ListenerKind::Smtp, "192.0.2.40").await;
        c.expect("QUIT", "221").await;
    }
    let mut c = server.connect_silent(ListenerKind::Smtp, "192.0.2.40");
    let reply = c.reply().await;
    assert!(reply.starts_with("421 4.7.0 Error: too many connections from 192.0.2.40"), "{reply}");
    assert!(c.closed().await);
    // Another client is not affected, nor is a trusted network (127.0.0.1 is one by default).
    server.connect(ListenerKind::Smtp, "192.0.2.41").await;
    for _ in 0..5 {
        server.connect(ListenerKind::Smtp, "127.0.0.1").await;
    }
    server.clock.advance(59);
    let mut c = server.connect_silent(ListenerKind::Smtp, "192.0.2.40");
    assert!(c.reply().await.starts_with("421 4.7.0"));
    server.clock.advance(1);
    server.connect(ListenerKind::Smtp, "192.0.2.40").await;
}

#[tokio::test]
async fn messages_and_recipients_past_the_rate_get_450_at_mail_and_rcpt() {
    let server = Server::new().await;
    limit(&server, RateKey::ClientNetwork, RateMeasure::Messages, 2, 3600).await;
    limit(&server, RateKey::SenderDomain, RateMeasure::Recipients, 3, 600).await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.50").await;
    c.expect("EHLO client.test", "250").await;
    for _ in 0..2 {
        c.expect("MAIL FROM:<x@sender.test>", "250 2.1.0").await;
        c.expect("RSET", "250").await;
    }
    // The /24 counts together: a neighbour is over the same limit.
    let mut n = server.connect(ListenerKind::Smtp, "192.0.2.51").await;
    n.expect("EHLO client.test", "250").await;
    n.expect("MAIL FROM:<x@sender.test>", "450 4.7.1 Error: too much mail from 192.0.2.0/24").await;
    let mut other = server.connect(ListenerKind::Smtp, "198.51.100.7").await;
    other.expect("EHLO client.test", "250").await;
    other.expect("MAIL FROM:<y@sender.test>", "250").await;
    for _ in 0..3 {
        other.expect("RCPT TO:<ann@example.test>", "250 2.1.5").await;
    }
    other
        .expect(
            "RCPT TO:<bob@example.test>",
            "450 4.7.1 Error: too many recipients from sender.test",
        )
        .await;
    // The recipients accepted before are kept: the message goes through.
    other.expect("DATA", "354").await;
    other.expect("Subject: hi\r\n\r\nhello\r\n.", "250 2.0.0").await;
    assert_eq!(server.accepted().len(), 1);
    // After the windows, both recover.
    server.clock.advance(3600);
    n.expect("MAIL FROM:<x@sender.test>", "250 2.1.0").await;
    n.expect("RCPT TO:<bob@example.test>", "250 2.1.5").await;
}

#[tokio::test]
async fn a_changed_threshold_is_live_and_removing_a_limit_lifts_it() {
    let server = Server::new().await;
    limit(&server, RateKey::ClientIp, RateMeasure::Messages, 1, 3600).await;
    let mut c = server.connect(ListenerKind::Smtp, "192.0.2.60").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@sender.test>", "250").await;
    c.expect("RSET", "250").await;
    c.expect("MAIL FROM:<x@sender.test>", "450 4.7.1").await;
    let new = NewRateLimit {
        key: RateKey::ClientIp,
        measure: RateMeasure::Messages,
        threshold: 10,
        window_secs: 3600,
        description: String::new(),
    };
    server.store.update_rate_limit("test", 4, new).await.unwrap();
    server.caught_up().await;
    c.expect("MAIL FROM:<x@sender.test>", "250").await;
    c.expect("RSET", "250").await;
    server.store.remove_rate_limit("test", 4).await.unwrap();
    server.caught_up().await;
    for _ in 0..20 {
        c.expect("MAIL FROM:<x@sender.test>", "250").await;
        c.expect("RSET", "250").await;
    }
}

/// A session from `peer` with TLS and EHLO done, ready for AUTH.
async fn ready(server: &Server, peer: &str) -> Client {
    let mut c = server.connect(ListenerKind::Submission, peer).await;
    c.expect("EHLO client.test", "250").await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    c
}

fn plain(user: &str, password: &str) -> String {
    format!("AUTH PLAIN {}", base64_plain("", user, password))
}

/// Issue 13's "done when": 100 wrong AUTH passwords from one IP are slowed and then refused
/// while another IP still logs in at once — with the defaults of a fresh install.
#[tokio::test]
async fn a_hundred_wrong_passwords_are_slowed_then_refused_while_others_log_in() {
    // The delays of a fresh install, on the sessions' simulated clock, which stands still: the
    // test does not depend on its own speed.
    let passwords = PasswordChecks::new(HashGate::for_this_machine(), Policy::default());
    let server = Server::with(Limits::default(), passwords.clone()).await;
    let mut replies = Vec::new();
    let mut c = ready(&server, "192.0.2.70").await;
    for n in 0..100 {
        if n % 10 == 0 {
            // Before the session's error budget runs out, the guesser reconnects.
            c = ready(&server, "192.0.2.70").await;
        }
        replies.push(c.cmd(&plain("ann@example.test", &format!("guess {n}"))).await);
        if n == 50 {
            // Meanwhile, from elsewhere, the right password gets in at once.
            let mut other = ready(&server, "198.51.100.9").await;
            other.expect(&plain("ann@example.test", PASSWORD), "235 2.7.0").await;
        }
    }
    for (n, reply) in replies.iter().enumerate() {
        let wanted = match n {
            0..5 => "535 5.7.8",
            5..30 => "454 4.7.0 Temporary authentication failure, try again in",
            _ => "454 4.7.0 Too many authentication failures from 192.0.2.70",
        };
        assert!(reply.starts_with(wanted), "guess {}: {reply}", n + 1);
    }
    assert_eq!(passwords.gate.checks_run(), 6, "five guesses and the other address's login");
    // The refusal covers every account from that address, even with the right password…
    let mut c = ready(&server, "192.0.2.70").await;
    c.expect(&plain("bob@example.test", PASSWORD), "454 4.7.0 Too many").await;
    // …until the window ends.
    server.clock.advance(3600);
    c.expect(&plain("bob@example.test", PASSWORD), "235 2.7.0").await;
}

/// Past its AUTH-failure limit, a client's EHLO no longer offers AUTH (an AUTH sent anyway
/// still gets 454); another address is offered it; after the window it is offered again.
#[tokio::test]
async fn ehlo_stops_offering_auth_past_the_auth_failure_limit() {
    let server = Server::new().await;
    limit(&server, RateKey::ClientIp, RateMeasure::AuthFailures, 2, 600).await;
    let mut c = ready(&server, "192.0.2.80").await;
    for n in 0..2 {
        c.expect(&plain("ann@example.test", &format!("guess {n}")), "535 5.7.8").await;
    }
    let offered = c.expect("EHLO client.test", "250").await;
    assert!(!offered.contains("AUTH"), "{offered}");
    c.expect(&plain("ann@example.test", PASSWORD), "454 4.7.0").await;
    let mut other = server.connect(ListenerKind::Submission, "198.51.100.80").await;
    other.expect("EHLO client.test", "250").await;
    other.starttls().await;
    assert!(other.expect("EHLO client.test", "250").await.contains("AUTH PLAIN LOGIN"));
    server.clock.advance(600);
    assert!(c.expect("EHLO client.test", "250").await.contains("AUTH PLAIN LOGIN"));
}
