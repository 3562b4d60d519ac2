//! AUTH failures are counted per account and address across sessions (issue 9, item 4), and a
//! flood of AUTHs runs no more argon2 checks at once than the gate allows (item 1).

use std::time::Duration;

use postern_store::auth::{HashGate, PasswordChecks, Policy};

use super::*;

const SUBMISSION: ListenerKind = ListenerKind::Submission;

/// A session from `peer` with TLS and EHLO done, ready for AUTH.
async fn ready(server: &Server, peer: &str) -> Client {
    let mut c = server.connect(SUBMISSION, peer).await;
    c.expect("EHLO client.test", "250").await;
    c.starttls().await;
    c.expect("EHLO client.test", "250").await;
    c
}

fn plain(user: &str, password: &str) -> String {
    format!("AUTH PLAIN {}", base64_plain("", user, password))
}

#[tokio::test]
async fn auth_failures_count_across_sessions() {
    // The delays of a fresh install, measured on the sessions' simulated clock: the test does
    // not depend on its own speed, and shows the delay ending without waiting for it.
    let passwords = PasswordChecks::new(HashGate::for_this_machine(), Policy::default());
    let server = Server::with(Limits::default(), passwords.clone()).await;
    let mut replies = Vec::new();
    // A new session for every guess: reconnecting starts nothing again.
    for n in 0..12 {
        let mut c = ready(&server, "192.0.2.30").await;
        replies.push(c.cmd(&plain("ann@example.test", &format!("guess {n}"))).await);
        c.expect("QUIT", "221").await;
    }
    for (n, reply) in replies.iter().enumerate() {
        let wanted = if n < 5 { "535 5.7.8" } else { "454 4.7.0" };
        assert!(reply.starts_with(wanted), "guess {n}: {reply}");
    }
    assert!(replies[5].contains("try again in 1 seconds"), "{}", replies[5]);
    assert_eq!(passwords.gate.checks_run(), 5, "the refused guesses were not checked");
    // Even the right password waits, from the address that failed…
    let mut c = ready(&server, "192.0.2.30").await;
    c.expect(&plain("ann@example.test", PASSWORD), "454 4.7.0").await;
    // …but not from anywhere else: the account is not locked.
    let mut c = ready(&server, "192.0.2.31").await;
    c.expect(&plain("ann@example.test", PASSWORD), "235 2.7.0").await;
    // A second later on the clock, a sixth guess is checked (and fails), and the next one
    // waits twice as long.
    server.clock.advance(1);
    let mut c = ready(&server, "192.0.2.30").await;
    c.expect(&plain("ann@example.test", "guess 6"), "535 5.7.8").await;
    let mut c = ready(&server, "192.0.2.30").await;
    c.expect(
        &plain("ann@example.test", PASSWORD),
        "454 4.7.0 Temporary authentication failure, try again in 2 seconds",
    )
    .await;
    server.clock.advance(1);
    let mut c = ready(&server, "192.0.2.30").await;
    c.expect(&plain("ann@example.test", PASSWORD), "454 4.7.0").await;
    // Once the delay has passed, the right password gets in from there too.
    server.clock.advance(1);
    let mut c = ready(&server, "192.0.2.30").await;
    c.expect(&plain("ann@example.test", PASSWORD), "235 2.7.0").await;
    assert_eq!(passwords.gate.checks_run(), 8);
    // An unknown user is counted the same way.
    for _ in 0..5 {
        let mut c = ready(&server, "192.0.2.32").await;
        c.expect(&plain("nobody@example.test", "guess"), "535 5.7.8").await;
    }
    let mut c = ready(&server, "192.0.2.32").await;
    c.expect(&plain("NOBODY@example.test", "guess"), "454 4.7.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_auth_flood_is_refused_past_the_gate() {
    // One check at a time and no waiting line: every AUTH that comes while one runs is refused.
    let gate = HashGate::new(1, 0, Duration::from_secs(1));
    let server =
        Server::with(Limits::default(), PasswordChecks::new(gate.clone(), Policy::default())).await;
    let mut clients = Vec::new();
    for n in 0..20 {
        clients.push(ready(&server, &format!("192.0.2.{}", 100 + n)).await);
    }
    for c in &mut clients {
        c.send(format!("{}\r\n", plain("ann@example.test", "wrong password")).as_bytes()).await;
    }
    let mut busy = 0u64;
    for c in &mut clients {
        let reply = c.reply().await;
        if reply.starts_with("454 4.7.0") {
            busy += 1;
        } else {
            assert!(reply.starts_with("535 5.7.8"), "{reply}");
        }
    }
    assert!(busy > 0, "twenty AUTHs at once, one permit: some must be refused");
    assert_eq!(gate.peak_running(), 1);
    assert_eq!(gate.checks_run() + busy, 20);
    // The gate frees up: a later AUTH is checked again.
    let mut c = ready(&server, "192.0.2.99").await;
    c.expect(&plain("ann@example.test", PASSWORD), "235 2.7.0").await;
}
