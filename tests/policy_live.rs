//! Access rules on the running server: a rule added with the CLI is live in `postern serve`
//! without a restart (the store's change feed), refuses with its own reply, and the log names it.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::smtp::Smtp;
use common::{Setup, applied};
use postern_store::testing::TestDb;

/// Speaks SMTP up to RCPT and returns the RCPT reply.
fn rcpt_reply(addr: SocketAddr, from: &str, to: &str) -> String {
    let mut smtp = Smtp::connect(addr);
    smtp.command("EHLO client.test");
    smtp.command(&format!("MAIL FROM:<{from}>"));
    let reply = smtp.command(&format!("RCPT TO:<{to}>"));
    smtp.quit();
    reply
}

#[test]
fn a_rule_added_with_the_cli_is_live_in_serve() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let serve = setup.serve();
    setup.ok(&["domain", "add", "example.test"]);
    setup.ok(&["alias", "add", "info@example.test", "someone@elsewhere.test"]);
    serve.wait_log(Duration::from_secs(5), |l| applied(l) && l["aliases"] == 1).expect("live");
    let smtp = serve.listeners["smtp"];
    assert!(rcpt_reply(smtp, "a@spam.test", "info@example.test").starts_with("250"));

    let out = setup.ok(&[
        "policy",
        "rule",
        "add",
        "--stage",
        "rcpt",
        "--from",
        "@spam.test",
        "REJECT",
        "550",
        "5.7.1",
        "no mail from spam.test",
    ]);
    assert!(out.contains("added rule 1"), "{out}");
    serve
        .wait_log(Duration::from_secs(5), |l| applied(l) && l["policy_rules"] == 1)
        .expect("the rule is live");
    let reply = rcpt_reply(smtp, "a@spam.test", "info@example.test");
    assert_eq!(reply.trim_end(), "550 5.7.1 no mail from spam.test");
    let (line, _) = serve
        .wait_log(Duration::from_secs(5), |l| l["message"] == "policy rule matched")
        .expect("the decision is logged");
    assert_eq!(line["rule"], 1, "{line}");
    assert_eq!(line["stage"], "rcpt", "{line}");
    assert!(rcpt_reply(smtp, "a@ham.test", "info@example.test").starts_with("250"));
}
