//! What the scheduler's tests share: the node they run as, a message to queue, waiting for a
//! condition, and the DSNs queued so far.

use std::future::Future;
use std::time::Duration;

use postern_store::model::{NewMessage, NewRecipient, Notify, QueueFilter};
use postern_store::{SimClock, Store, now};

/// The node the tests' scheduler runs as.
pub(super) const NODE: &str = "mx1.example.test";

/// A small message from `sender` to `recipients`, received now.
pub(in crate::queue) fn message(sender: &str, recipients: &[&str], subject: &str) -> NewMessage {
    NewMessage {
        sender: sender.into(),
        recipients: recipients
            .iter()
            .map(|a| NewRecipient {
                address: (*a).into(),
                orcpt: Some(format!("rfc822;{a}")),
                notify: Notify::default(),
            })
            .collect(),
        envid: None,
        ret: None,
        smtputf8: false,
        eight_bit: false,
        received_at: now(),
        client: "client.example.org [192.0.2.7]".into(),
        auth_user: None,
        held: false,
        note: None,
        auth_results: None,
        body: format!("Subject: {subject}\r\n\r\nbody\r\n").into_bytes(),
    }
}

/// Waits up to 10 s for `done`.
pub(in crate::queue) async fn until<F, Fut>(what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !done().await {
        assert!(start.elapsed() < Duration::from_secs(10), "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The bodies of the DSNs queued so far.
pub(super) async fn dsns(store: &Store) -> Vec<String> {
    let filter = QueueFilter { sender: Some(String::new()), ..QueueFilter::default() };
    let page = store.queue_list(&filter, Default::default()).await.unwrap();
    let mut bodies = Vec::new();
    for m in page.messages.into_iter().filter(|m| m.client == "bounce") {
        let body = store.queue_body(m.id).await.unwrap().unwrap();
        bodies.push(String::from_utf8(body).unwrap());
    }
    bodies
}

/// Puts `store` (and so every scheduler started on it) on a simulated clock showing the system's
/// time now, which moves only when the test moves it.
pub(super) fn simulate(store: &Store) -> SimClock {
    let sim = SimClock::at_system_now();
    store.set_clock(sim.clone().into());
    sim
}
