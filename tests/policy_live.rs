//! Access rules on the running server: a rule added with the CLI is live in `postern serve`
//! without a restart (the store's change feed), refuses with its own reply, and the log names it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{Setup, applied};
use postern_store::testing::TestDb;

/// Speaks SMTP up to RCPT and returns the RCPT reply.
fn rcpt_reply(addr: SocketAddr, from: &str, to: &str) -> String {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut reply = || {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "the server closed");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    };
    assert!(reply().starts_with("220"));
    let mut last = String::new();
    for command in
        ["EHLO client.test".to_string(), format!("MAIL FROM:<{from}>"), format!("RCPT TO:<{to}>")]
    {
        writer.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        last = reply();
    }
    let _ = writer.write_all(b"QUIT\r\n");
    last
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
