//! Every refusal in the delivery log (`policy/refusals.rs`): an access rule, a DNS blocklist, a
//! header check and a rate limit each leave an entry naming what decided, with the stage, the
//! client and the envelope as far as it was known; a DISCARD leaves a `discarded` entry.

use postern_store::model::{
    ListKind, Matcher, NewBlocklist, NewContentCheck, NewPolicyRule, PolicyMatch, PolicyStage,
};

use super::*;
use crate::dns::ScriptedResolver;
use crate::policy::Screen;
use crate::policy::dnsbl::Blocklists;
use crate::policy::greylist::Greylist;

const SMTP: ListenerKind = ListenerKind::Smtp;

async fn rule(server: &Server, stage: PolicyStage, matches: PolicyMatch, action: &str) -> i64 {
    let new = NewPolicyRule {
        stage,
        matches,
        action: action.parse().unwrap(),
        description: "test rule".into(),
    };
    let rule = server.store.add_policy_rule("test", new, None).await.unwrap();
    server.caught_up().await;
    rule.id
}

#[tokio::test]
async fn an_access_rule_refusal_is_logged_with_its_rule() {
    let server = Server::new().await;
    let to_bob = PolicyMatch {
        recipient: Some(Matcher::parse("recipient", "bob@example.test").unwrap()),
        ..PolicyMatch::default()
    };
    let id = rule(&server, PolicyStage::Rcpt, to_bob, "REJECT 550 5.7.1 not for bob").await;
    let from_net =
        PolicyMatch { client: Some("198.51.100.0/24".parse().unwrap()), ..Default::default() };
    let connect = rule(&server, PolicyStage::Connect, from_net, "DEFER 450 4.7.1 later").await;

    let mut c = server.connect(SMTP, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<x@remote.test>", "250").await;
    c.expect("RCPT TO:<bob@example.test>", "550 5.7.1 not for bob").await;
    let logged = server.logged("rejected", 1).await;
    let e = &logged[0];
    assert_eq!(e.stage, "rcpt");
    assert_eq!(e.client, "192.0.2.10");
    assert_eq!((e.sender.as_str(), e.recipient.as_str()), ("x@remote.test", "bob@example.test"));
    assert_eq!(e.domain, "example.test");
    assert_eq!(e.message_id, "");
    assert_eq!(e.reply, "550 5.7.1 not for bob");
    assert_eq!(e.reason, format!("access rule {id} REJECT (test rule)"));

    // At the greeting: a temporary refusal, nothing known but the client.
    let mut c = server.connect_silent(SMTP, "198.51.100.7");
    assert!(c.reply().await.starts_with("421 4.7.1 later"));
    let logged = server.logged("tempfailed", 1).await;
    assert_eq!(logged[0].stage, "connect");
    assert_eq!(logged[0].client, "198.51.100.7");
    assert_eq!(logged[0].reason, format!("access rule {connect} DEFER (test rule)"));
    assert_eq!((logged[0].sender.as_str(), logged[0].recipient.as_str()), ("", ""));
}

#[tokio::test]
async fn a_blocklist_refusal_names_the_list() {
    let dns = Arc::new(
        ScriptedResolver::new().address("99.2.0.192.zen.bl.test", "127.0.0.2".parse().unwrap()),
    );
    let mut server = Server::new().await;
    let clock = server.ctx.screen.greylist.clock().clone();
    let screen = Screen {
        blocklists: Blocklists::new(dns, clock.clone()).with_timeout(Duration::from_secs(5)),
        greylist: Greylist::new(server.store.clone(), clock),
    };
    Arc::get_mut(&mut server.ctx).expect("no session yet").screen = Arc::new(screen);
    let list = NewBlocklist {
        zone: "zen.bl.test".parse().unwrap(),
        kind: ListKind::Ip,
        weight: 1,
        codes: Default::default(),
        description: String::new(),
    };
    server.store.add_blocklist("test", list).await.unwrap();
    server.caught_up().await;

    let mut c = server.connect(SMTP, "192.0.2.99").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@sender.test>", "250").await;
    c.expect("RCPT TO:<ann@example.test>", "554 5.7.1").await;
    let logged = server.logged("rejected", 1).await;
    let e = &logged[0];
    assert_eq!((e.stage.as_str(), e.recipient.as_str()), ("rcpt", "ann@example.test"));
    assert!(e.reason.starts_with("DNS blocklist zen.bl.test: client [192.0.2.99] listed"), "{e:?}");
}

#[tokio::test]
async fn a_header_check_refusal_and_a_discard_are_logged_per_recipient() {
    let server = Server::new().await;
    let new =
        NewContentCheck::parse("header", "^Subject: cheap", "REJECT 554 5.7.0 no", "").unwrap();
    let check = server.store.add_content_check("test", new, None).await.unwrap();
    server.caught_up().await;

    let mut c = server.connect(SMTP, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    let reply = c
        .mail(
            "x@remote.test",
            &["ann@example.test", "bob@example.test"],
            "Subject: cheap pills\r\n\r\nhi\r\n",
        )
        .await;
    assert_eq!(reply, "554 5.7.0 no");
    let logged = server.logged("rejected", 2).await;
    let mut recipients: Vec<&str> = logged.iter().map(|e| e.recipient.as_str()).collect();
    recipients.sort();
    assert_eq!(recipients, ["ann@example.test", "bob@example.test"]);
    for e in &logged {
        assert_eq!(e.stage, "data");
        assert_eq!(e.sender, "x@remote.test");
        assert_eq!(e.reason, format!("header check {}", check.id));
    }

    // An access rule's DISCARD: 250 to the client, `discarded` in the log.
    let from_x = PolicyMatch {
        sender: Some(Matcher::parse("sender", "drop@remote.test").unwrap()),
        ..PolicyMatch::default()
    };
    let id = rule(&server, PolicyStage::Mail, from_x, "DISCARD").await;
    let reply =
        c.mail("drop@remote.test", &["ann@example.test"], "Subject: hi\r\n\r\nhi\r\n").await;
    assert!(reply.starts_with("250"), "{reply}");
    let logged = server.logged("discarded", 1).await;
    assert_eq!(logged[0].reason, format!("access rule {id} DISCARD"));
    assert_eq!(logged[0].recipient, "ann@example.test");
    assert!(server.accepted().is_empty());
}

#[tokio::test]
async fn a_rate_limit_refusal_names_the_limit() {
    let server = Server::new().await;
    let new = postern_store::model::NewRateLimit {
        key: postern_store::model::RateKey::ClientIp,
        measure: postern_store::model::RateMeasure::Messages,
        threshold: 1,
        window_secs: 3600,
        description: "t".into(),
    };
    let limit = server.store.add_rate_limit("test", new).await.unwrap();
    server.caught_up().await;
    let mut c = server.connect(SMTP, "192.0.2.10").await;
    c.expect("EHLO client.test", "250").await;
    c.mail("x@remote.test", &["ann@example.test"], "Subject: a\r\n\r\nhi\r\n").await;
    c.expect("MAIL FROM:<x@remote.test>", "450 4.7.1").await;
    let logged = server.logged("tempfailed", 1).await;
    assert_eq!((logged[0].stage.as_str(), logged[0].sender.as_str()), ("mail", "x@remote.test"));
    assert!(logged[0].reason.starts_with(&format!("rate limit {}:", limit.id)), "{:?}", logged[0]);
}
