//! `postern import postfix` end to end: a Postfix configuration directory written as an
//! administrator would (main.cf, source maps, `postmap`/`postalias` run on them), imported, and
//! checked against Postfix's own answers: `postmap -q`/`postalias -q` on each map for the test
//! addresses and domains, and `postconf -x` for the parameters. Access maps and header/body
//! checks likewise, against `postmap -q` on the maps and regexp tables. And a second Postfix
//! started on the same files (an instance of its own, as root) and `postern serve` on the import
//! must route a list of test addresses the same way. Needs Debian's postfix (postmap,
//! postalias, postconf, postfix).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::Setup;
use common::smtp::send;
use postern_store::testing::{TestDb, missing_peer};

const MAIN_CF: &str = "\
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, localhost.$mydomain, localhost
virtual_mailbox_domains = example.org, hash:DIR/vmdomains
virtual_mailbox_maps = hash:DIR/vmailbox
virtual_alias_maps = hash:DIR/virtual, inline:{ { extra@example.org = ann@example.org } }
alias_maps = hash:DIR/aliases
relay_domains = relayed.example
transport_maps = hash:DIR/transport
relayhost = [smarthost.example.net]:587
# a comment between continued lines is allowed
mynetworks = 127.0.0.0/8 [::1]/128 192.0.2.0/24,
    198.51.100.7
message_size_limit = 20480000
smtpd_recipient_restrictions = permit_mynetworks,
    check_sender_access hash:DIR/sender_access, reject_unauth_destination
header_checks = regexp:DIR/header_checks
";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text.replace("DIR", dir.to_str().unwrap())).unwrap();
}

fn tool(name: &str, args: &[&str]) -> String {
    let out = Command::new(format!("/usr/sbin/{name}")).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Postfix's answer for `key` in the hash map `DIR/map` ("" when there is none).
fn postmap_q(dir: &Path, map: &str, key: &str) -> String {
    let spec = format!("hash:{}/{map}", dir.display());
    tool("postmap", &["-c", dir.to_str().unwrap(), "-q", key, &spec])
}

fn list_json(setup: &Setup, what: &str) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&setup.ok(&[what, "list", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_postfix_directory_imports_as_postfix_routes_it() {
    let test = "postfix_import::a_postfix_directory_imports_as_postfix_routes_it";
    if !Path::new("/usr/sbin/postmap").exists() {
        missing_peer(test, "postfix (postmap) is not installed");
        return;
    }
    let pf = tempfile::tempdir().unwrap();
    let dir = pf.path();
    write(dir, "main.cf", MAIN_CF);
    write(dir, "vmdomains", "example.net  OK\n");
    write(
        dir,
        "vmailbox",
        "ann@example.org  example.org/ann/\nbob@example.org example.org/bob/\ncarol@example.net example.net/carol/\n",
    );
    write(
        dir,
        "virtual",
        "# virtual aliases\nsales@example.org  ann@example.org,\n  bob@example.org\n@example.net carol@example.net\n",
    );
    write(dir, "aliases", "postmaster: root\nroot: ann@example.org\nprog: |/usr/bin/true\n");
    write(
        dir,
        "transport",
        "relayed.example  smtp:[10.0.0.5]:25\nlmtp.example.org lmtp:unix:/var/run/dovecot/lmtp\n.sub.example.org  error:no mail here\n",
    );
    write(dir, "sender_access", "spammer@bad.example REJECT\n");
    write(dir, "header_checks", "/^Subject: viagra/ REJECT\n");
    let d = dir.to_str().unwrap();
    for map in ["vmdomains", "vmailbox", "virtual", "transport", "sender_access"] {
        let status = Command::new("/usr/sbin/postmap")
            .args(["-c", d, &format!("hash:{d}/{map}")])
            .status()
            .unwrap();
        assert!(status.success(), "postmap {map}");
    }
    let status = Command::new("/usr/sbin/postalias")
        .args(["-c", d, &format!("hash:{d}/aliases")])
        .status()
        .unwrap();
    assert!(status.success(), "postalias");

    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let dry = setup.ok(&["import", "postfix", d, "--dry-run"]);
    assert!(dry.contains("+ domain example.org (local)") && dry.contains("dry run"), "{dry}");
    assert!(dry.contains("! alias prog -> |/usr/bin/true"), "{dry}");
    assert!(dry.contains("check_sender_access") && dry.contains("header_checks"), "{dry}");
    assert!(setup.ok(&["domain", "list"]).lines().count() <= 1, "a dry run changes nothing");
    setup.ok(&["import", "postfix", d]);

    // Domains: Postfix's own expansion of each list, localhost left out.
    let domains: BTreeMap<String, String> = list_json(&setup, "domain")
        .iter()
        .map(|d| (d["name"].as_str().unwrap().into(), d["kind"].as_str().unwrap().into()))
        .collect();
    let postconf = |p: &str| tool("postconf", &["-c", d, "-h", "-x", p]);
    for name in postconf("mydestination").split([',', ' ']).filter(|s| !s.is_empty()) {
        if !name.starts_with("localhost") {
            assert_eq!(domains.get(name).map(String::as_str), Some("local"), "{name}");
        }
    }
    assert_eq!(domains.get("example.org").map(String::as_str), Some("local"));
    assert!(!postmap_q(dir, "vmdomains", "example.net").is_empty());
    assert_eq!(domains.get("example.net").map(String::as_str), Some("local"));
    assert_eq!(domains.get(&postconf("relay_domains")).map(String::as_str), Some("relay"));

    // Mailboxes: exactly the addresses virtual_mailbox_maps answers for.
    let mailboxes: Vec<String> = list_json(&setup, "mailbox")
        .iter()
        .map(|m| m["address"].as_str().unwrap().to_string())
        .collect();
    for address in ["ann@example.org", "bob@example.org", "carol@example.net", "dave@example.org"] {
        let postfix = !postmap_q(dir, "vmailbox", address).is_empty();
        assert_eq!(mailboxes.contains(&address.to_string()), postfix, "{address}");
    }

    // Aliases: the same destinations postmap/postalias give for each key.
    let aliases: BTreeMap<String, Vec<String>> = list_json(&setup, "alias")
        .iter()
        .map(|a| {
            let dests = a["destinations"].as_array().unwrap();
            (
                a["source"].as_str().unwrap().to_string(),
                dests.iter().map(|d| d.as_str().unwrap().to_string()).collect(),
            )
        })
        .collect();
    let split = |s: String| -> Vec<String> {
        s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()
    };
    for key in ["sales@example.org", "@example.net", "nobody@example.org"] {
        let postfix = split(postmap_q(dir, "virtual", key));
        assert_eq!(aliases.get(key).cloned().unwrap_or_default(), postfix, "{key}");
    }
    let postalias =
        split(tool("postalias", &["-c", d, "-q", "root", &format!("hash:{d}/aliases")]));
    assert_eq!(aliases["root@mx.example.com"], postalias);
    assert_eq!(aliases["postmaster@mx.example.com"], ["root@mx.example.com"]);
    assert_eq!(aliases["extra@example.org"], ["ann@example.org"]);
    assert!(!aliases.contains_key("prog@mx.example.com"), "a program is not an address");

    // Transports: postmap's answer for each domain, and relayhost as the default.
    let transports: BTreeMap<String, String> = list_json(&setup, "transport")
        .iter()
        .map(|t| (t["pattern"].as_str().unwrap().into(), t["transport"].as_str().unwrap().into()))
        .collect();
    for key in ["relayed.example", "lmtp.example.org", ".sub.example.org"] {
        assert_eq!(transports[key], postmap_q(dir, "transport", key), "{key}");
    }
    assert_eq!(transports["*"], format!("smtp:{}", postconf("relayhost")));

    // Networks: mynetworks beyond loopback.
    let networks = setup.ok(&["network", "list"]);
    assert!(
        networks.contains("192.0.2.0/24") && networks.contains("198.51.100.7/32"),
        "{networks}"
    );

    // The audit log names the import, and a second run creates nothing.
    let again = setup.ok(&["import", "postfix", d]);
    assert!(again.contains("nothing to create") && !again.contains("\n+ "), "{again}");
}

const ACCESS_MAIN_CF: &str = "\
myhostname = mx.example.org
mydestination = $myhostname, localhost
virtual_mailbox_domains = example.org
virtual_mailbox_maps = hash:DIR/vmailbox
mynetworks = 127.0.0.0/8, 192.0.2.0/24
smtpd_client_restrictions = check_client_access hash:DIR/client_access,
    check_client_access cidr:DIR/client.cidr
smtpd_helo_restrictions = check_helo_access hash:DIR/helo_access
smtpd_sender_restrictions = check_sender_access hash:DIR/sender_access
smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated,
    check_recipient_access hash:DIR/recipient_access, reject_unauth_destination,
    reject_rbl_client zen.spamhaus.org, check_policy_service inet:127.0.0.1:10023,
    reject_unknown_sender_domain
header_checks = regexp:DIR/header_checks
body_checks = pcre:DIR/body_checks
";

/// Postern's decisions for an envelope (`policy test`): `stage:action` for each stage a rule
/// decided, as the session would meet them.
fn decisions(
    setup: &Setup,
    client: &str,
    rdns: Option<&str>,
    helo: &str,
    from: &str,
    to: &str,
) -> Vec<String> {
    let mut args = vec!["policy", "test", "--client", client, "--helo", helo, "--from", from];
    args.extend(["--to", to, "--json"]);
    if let Some(r) = rdns {
        args.extend(["--rdns", r]);
    }
    let steps: serde_json::Value = serde_json::from_str(&setup.ok(&args)).unwrap();
    steps
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            s["action"].as_str().map(|a| format!("{}:{a}", s["stage"].as_str().unwrap()))
        })
        .collect()
}

/// Postfix's answer for `key` in the table `spec` ("" when none).
fn postfix_q(dir: &Path, spec: &str, key: &str) -> String {
    tool("postmap", &["-c", dir.to_str().unwrap(), "-q", key, spec])
}

/// Postern's decision on a message (`checks test`).
fn checked(setup: &Setup, dir: &Path, message: &str) -> String {
    let file = dir.join("message.eml");
    std::fs::write(&file, message).unwrap();
    let out: serde_json::Value =
        serde_json::from_str(&setup.ok(&["checks", "test", file.to_str().unwrap(), "--json"]))
            .unwrap();
    out["decision"].as_str().unwrap().to_string()
}

#[test]
fn access_maps_and_content_checks_import_as_postfix_decides() {
    let test = "postfix_import::access_maps_and_content_checks_import_as_postfix_decides";
    if !Path::new("/usr/sbin/postmap").exists() {
        missing_peer(test, "postfix (postmap) is not installed");
        return;
    }
    let pf = tempfile::tempdir().unwrap();
    let dir = pf.path();
    let d = dir.to_str().unwrap();
    write(dir, "main.cf", ACCESS_MAIN_CF);
    write(dir, "vmailbox", "ann@example.org example.org/ann/\n");
    write(
        dir,
        "client_access",
        "# blocked clients\n198.51.100.66   REJECT no thanks\n203.0.113  550 5.7.1 network blocked\n\
         bad.example  REJECT\nfriend.example OK\n",
    );
    write(dir, "client.cidr", "198.18.0.0/15   DISCARD\n");
    write(
        dir,
        "helo_access",
        "localhost  550 5.7.1 You are not me\n.dyn.example 450 4.7.1 dynamic\n",
    );
    write(
        dir,
        "sender_access",
        "spammer@bad.example  REJECT\nbad.example  554 spam domain\npostmaster@  OK\n\
         held.example HOLD\nodd.example DUNNO\nprep.example PREPEND X-Tag: yes\n",
    );
    write(
        dir,
        "recipient_access",
        "abuse@example.org OK\nclosed@example.org 550 5.1.1 mailbox closed\n\
         later@example.org 450 4.2.1 try later\ntrap@example.org DISCARD\n\
         copy@example.org BCC archive@example.org\n",
    );
    write(
        dir,
        "header_checks",
        "# header checks\n/^Subject:.*viagra/  REJECT no pills\n/^X-Mailer: BulkMail/i DISCARD\n\
         /^X-Spam-Flag: YES/ HOLD\n/^X-Secret:/ REPLACE X-Secret: removed\n\
         /^Subject: hello/ WARN greeting\n/^From:.*@friend/ PREPEND X-Friend: yes\n\
         !/^Date:/ WARN no date\n/^X-Bad/ FILTER smtp:[10.0.0.1]\n",
    );
    write(
        dir,
        "body_checks",
        "/^buy now/ REJECT 550 5.7.1 spam body\n/unsubscribe/ INFO newsletter\n/(?<=x)y/ WARN lookbehind\n",
    );
    for map in ["vmailbox", "client_access", "helo_access", "sender_access", "recipient_access"] {
        let status = Command::new("/usr/sbin/postmap")
            .args(["-c", d, &format!("hash:{d}/{map}")])
            .status()
            .unwrap();
        assert!(status.success(), "postmap {map}");
    }

    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let dry = setup.ok(&["import", "postfix", d, "--dry-run"]);
    // What cannot be mapped, and why; what belongs elsewhere.
    for unmapped in [
        "odd.example DUNNO: DUNNO",
        "prep.example PREPEND X-Tag: yes: PREPEND",
        "reject_unknown_sender_domain: Postern has no such restriction",
        "PREPEND adds a field",
        "negated pattern",
        "FILTER: Postern routes by transport",
        "(?<=x)y",
    ] {
        assert!(dry.contains(unmapped), "{unmapped:?} is reported:\n{dry}");
    }
    assert!(dry.contains("* smtpd_recipient_restrictions reject_rbl_client zen.spamhaus.org: add the list with `postern dnsbl add zen.spamhaus.org`"), "{dry}");
    assert!(dry.contains("check_policy_service inet:127.0.0.1:10023"), "{dry}");
    assert!(
        dry.contains("+ rule mail from=spammer@bad.example REJECT 554 5.7.1 Access denied"),
        "{dry}"
    );
    assert!(dry.contains("+ check header /^Subject:.*viagra/ REJECT 550 5.7.1 no pills"), "{dry}");
    setup.ok(&["import", "postfix", d]);

    // Each envelope as Postfix's maps answer it, looked up as smtpd does (the whole address,
    // the domain and its parents, then user@; the client's name and parents, then its address
    // and networks), and as Postern's rules decide it.
    let hash = |map: &str| format!("hash:{d}/{map}");
    let (remote, helo, from, to) =
        ("10.9.9.9", "client.test", "someone@remote.test", "ann@example.org");
    let check = |got: Vec<String>, postfix: String, want: &[&str]| {
        assert_eq!(got, want, "Postfix says {postfix:?}");
    };
    check(
        decisions(&setup, "198.51.100.66", None, helo, from, to),
        postfix_q(dir, &hash("client_access"), "198.51.100.66"),
        &["connect:REJECT 554 5.7.1 no thanks"],
    );
    assert_eq!(postfix_q(dir, &hash("client_access"), "198.51.100.66"), "REJECT no thanks");
    assert_eq!(postfix_q(dir, &hash("client_access"), "203.0.113"), "550 5.7.1 network blocked");
    check(
        decisions(&setup, "203.0.113.9", None, helo, from, to),
        postfix_q(dir, &hash("client_access"), "203.0.113"),
        &["connect:REJECT 550 5.7.1 network blocked"],
    );
    let cidr = format!("cidr:{d}/client.cidr");
    assert_eq!(postfix_q(dir, &cidr, "198.19.1.1"), "DISCARD");
    check(
        decisions(&setup, "198.19.1.1", None, helo, from, to),
        postfix_q(dir, &cidr, "198.19.1.1"),
        &["connect:DISCARD"],
    );
    // The client's name: the parent domain's entry answers for mail.bad.example.
    assert_eq!(postfix_q(dir, &hash("client_access"), "bad.example"), "REJECT");
    check(
        decisions(&setup, remote, Some("mail.bad.example"), helo, from, to),
        postfix_q(dir, &hash("client_access"), "bad.example"),
        &["connect:REJECT 554 5.7.1 Access denied"],
    );
    assert_eq!(decisions(&setup, remote, Some("friend.example"), helo, from, to), ["connect:OK"]);
    assert_eq!(postfix_q(dir, &hash("helo_access"), "localhost"), "550 5.7.1 You are not me");
    assert_eq!(
        decisions(&setup, remote, None, "localhost", from, to),
        ["helo:REJECT 550 5.7.1 You are not me"]
    );
    assert_eq!(postfix_q(dir, &hash("helo_access"), ".dyn.example"), "450 4.7.1 dynamic");
    assert_eq!(
        decisions(&setup, remote, None, "h1.dyn.example", from, to),
        ["helo:DEFER 450 4.7.1 dynamic"]
    );
    // Senders: the address, then its domain (and parents), then user@.
    let senders = [
        ("spammer@bad.example", "spammer@bad.example", "mail:REJECT 554 5.7.1 Access denied"),
        ("other@bad.example", "bad.example", "mail:REJECT 554 5.7.1 spam domain"),
        ("x@sub.bad.example", "bad.example", "mail:REJECT 554 5.7.1 spam domain"),
        ("postmaster@bad.example", "bad.example", "mail:REJECT 554 5.7.1 spam domain"),
        ("postmaster@fine.test", "postmaster@", "mail:OK"),
        ("a@held.example", "held.example", "mail:HOLD"),
    ];
    for (sender, key, want) in senders {
        assert!(!postfix_q(dir, &hash("sender_access"), key).is_empty(), "{key}");
        assert_eq!(decisions(&setup, remote, None, helo, sender, to), [want], "{sender}");
    }
    // Recipients, and permit_mynetworks / permit_sasl_authenticated before the map.
    let recipients = [
        ("closed@example.org", "rcpt:REJECT 550 5.1.1 mailbox closed"),
        ("later@example.org", "rcpt:DEFER 450 4.2.1 try later"),
        ("trap@example.org", "rcpt:DISCARD"),
        ("copy@example.org", "rcpt:BCC archive@example.org"),
        ("abuse@example.org", "rcpt:OK"),
    ];
    for (rcpt, want) in recipients {
        assert!(!postfix_q(dir, &hash("recipient_access"), rcpt).is_empty(), "{rcpt}");
        assert_eq!(decisions(&setup, remote, None, helo, from, rcpt), [want], "{rcpt}");
    }
    assert_eq!(
        decisions(&setup, "192.0.2.5", None, helo, from, "closed@example.org"),
        ["rcpt:OK"],
        "a trusted client is exempt, as permit_mynetworks comes first"
    );

    // Header and body checks: Postfix's regexp table answers the header line; Postern's checks
    // decide the message.
    let headers = format!("regexp:{d}/header_checks");
    assert_eq!(postfix_q(dir, &headers, "Subject: cheap viagra"), "REJECT no pills");
    let decision = checked(&setup, dir, "Subject: cheap viagra\n\nhello\n");
    assert!(decision.ends_with("550 5.7.1 no pills"), "{decision}");
    assert_eq!(postfix_q(dir, &headers, "X-Mailer: BulkMail 2"), "DISCARD");
    assert!(checked(&setup, dir, "X-Mailer: BulkMail 2\n\nhi\n").starts_with("dropped"));
    // The `i` flag makes Postfix's pattern case-sensitive, and Postern's too.
    // (Postfix falls through to the negated `!/^Date:/` line, which the import reports.)
    assert_eq!(postfix_q(dir, &headers, "X-Mailer: bulkmail 2"), "WARN no date");
    assert_eq!(checked(&setup, dir, "X-Mailer: bulkmail 2\n\nhi\n"), "accepted");
    assert_eq!(postfix_q(dir, &headers, "X-Spam-Flag: YES"), "HOLD");
    assert_eq!(checked(&setup, dir, "X-Spam-Flag: YES\n\nhi\n"), "accepted and held");
    let body = format!("pcre:{d}/body_checks");
    let decision = checked(&setup, dir, "Subject: offer\n\nbuy now!\n");
    if Path::new("/usr/lib/postfix/postfix-pcre.so").exists() {
        assert_eq!(postfix_q(dir, &body, "buy now!"), "REJECT 550 5.7.1 spam body");
    }
    assert!(decision.ends_with("550 5.7.1 spam body"), "{decision}");

    // A second run creates nothing.
    let again = setup.ok(&["import", "postfix", d]);
    assert!(again.contains("nothing to create") && !again.contains("\n+ "), "{again}");
}

// A second Postfix on the same files: an instance of its own (queue, data and log in the test's
// directory, smtpd on a free loopback port, virtual Maildirs under the directory, relayhost and
// transport_maps pointing at two SMTP sinks of the test), and `postern serve` on what the import
// made of them. Each test address is sent to both; where each put it (which Maildir, which sink,
// or a refusal at RCPT) must agree.

const ROUTING_MAIN_CF: &str = "\
compatibility_level = 3.6
queue_directory = DIR/queue
data_directory = DIR/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = DIR/maillog
maillog_file_prefixes = DIR
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
biff = no
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, localhost
virtual_mailbox_domains = example.org, example.net
virtual_mailbox_maps = hash:DIR/vmailbox
virtual_mailbox_base = DIR/vmail
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_alias_maps = hash:DIR/virtual
alias_maps = hash:DIR/aliases
alias_database = hash:DIR/aliases
relay_domains = relayed.example
transport_maps = hash:DIR/transport
relayhost = [127.0.0.1]:SINK_A
mynetworks = 127.0.0.0/8
";

/// A minimal SMTP server that keeps what it is sent (no extensions, so that neither MTA
/// tries STARTTLS).
struct Sink {
    port: u16,
    got: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Sink {
    fn start() -> Sink {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let mut out = stream.try_clone().unwrap();
                    let mut lines = BufReader::new(stream);
                    let _ = out.write_all(b"220 sink.test ESMTP\r\n");
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" => b"250 sink.test\r\n",
                            "DATA" => {
                                let _ = out.write_all(b"354 go on\r\n");
                                let mut message = String::new();
                                loop {
                                    line.clear();
                                    if lines.read_line(&mut line).unwrap_or(0) == 0 {
                                        return;
                                    }
                                    if line == ".\r\n" || line == ".\n" {
                                        break;
                                    }
                                    message.push_str(&line);
                                }
                                kept.lock().unwrap().push(message);
                                b"250 2.0.0 kept\r\n"
                            }
                            "QUIT" => {
                                let _ = out.write_all(b"221 2.0.0 bye\r\n");
                                return;
                            }
                            _ => b"250 2.0.0 ok\r\n",
                        };
                        let _ = out.write_all(reply);
                    }
                });
            }
        });
        Sink { port, got }
    }

    fn has(&self, marker: &str) -> bool {
        self.got.lock().unwrap().iter().any(|m| m.contains(marker))
    }
}

/// Stops the Postfix instance however the test ends.
struct Instance(std::path::PathBuf);

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/postfix").arg("-c").arg(&self.0).arg("stop").output();
    }
}

/// The Maildirs under `root` (`domain/user/new`) holding a message with `marker`.
fn maildirs_with(root: &Path, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(domains) = std::fs::read_dir(root) else { return found };
    for domain in domains.flatten() {
        let Ok(users) = std::fs::read_dir(domain.path()) else { continue };
        for user in users.flatten() {
            let Ok(files) = std::fs::read_dir(user.path().join("new")) else { continue };
            for file in files.flatten() {
                if std::fs::read_to_string(file.path()).is_ok_and(|t| t.contains(marker)) {
                    found.push(format!(
                        "maildir {}/{}",
                        domain.file_name().to_string_lossy(),
                        user.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn postfix_and_postern_route_the_test_addresses_the_same_way() {
    let test = "postfix_import::postfix_and_postern_route_the_test_addresses_the_same_way";
    if !Path::new("/usr/sbin/postfix").exists()
        || !Path::new("/etc/postfix/master.cf.proto").exists()
    {
        missing_peer(test, "postfix is not installed");
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing_peer(test, "a Postfix instance needs root to start");
        return;
    }
    let pf = tempfile::tempdir().unwrap();
    let dir = pf.path();
    let d = dir.to_str().unwrap();
    // The virtual agent delivers as uid 65534: it must reach its Maildirs.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (a, b) = (Sink::start(), Sink::start());
    let smtpd_port = postern_store::testing::free_port();
    write(dir, "main.cf", &ROUTING_MAIN_CF.replace("SINK_A", &a.port.to_string()));
    write(
        dir,
        "vmailbox",
        "ann@example.org  example.org/ann/\nbob@example.org example.org/bob/\ncarol@example.net example.net/carol/\n",
    );
    write(
        dir,
        "virtual",
        "sales@example.org  ann@example.org, bob@example.org\nfwd@example.org someone@elsewhere.test\n\
         @example.net carol@example.net\n",
    );
    write(dir, "aliases", "postmaster: root\nroot: ann@example.org\n");
    write(dir, "transport", &format!("relayed.example  smtp:[127.0.0.1]:{}\n", b.port));
    for map in ["vmailbox", "virtual", "transport"] {
        let ok =
            Command::new("/usr/sbin/postmap").args(["-c", d, &format!("hash:{d}/{map}")]).status();
        assert!(ok.unwrap().success(), "postmap {map}");
    }
    let ok =
        Command::new("/usr/sbin/postalias").args(["-c", d, &format!("hash:{d}/aliases")]).status();
    assert!(ok.unwrap().success(), "postalias");

    // Postfix: the same main.cf and maps, its smtpd on `smtpd_port`, chroot off.
    for sub in ["queue", "data", "vmail"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    assert!(Command::new("chown").arg("postfix").arg(dir.join("data")).status().unwrap().success());
    assert!(
        Command::new("chown").arg("65534:65534").arg(dir.join("vmail")).status().unwrap().success()
    );
    let proto = std::fs::read_to_string("/etc/postfix/master.cf.proto").unwrap();
    let mut master = String::new();
    for l in proto.lines() {
        if l.starts_with('#')
            || (l.starts_with("smtp ") && l.contains(" inet "))
            || l.starts_with("postlog")
            || l.trim().is_empty()
        {
            continue;
        }
        if l.starts_with(char::is_whitespace) {
            master.push_str(&format!("{l}\n"));
            continue;
        }
        let mut f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 5 && f[4] == "y" {
            f[4] = "n";
        }
        master.push_str(&format!("{}\n", f.join(" ")));
    }
    master.push_str(&format!(
        "127.0.0.1:{smtpd_port} inet n - n - - smtpd\npostlog unix-dgram n - n - 1 postlogd\n"
    ));
    std::fs::write(dir.join("master.cf"), master).unwrap();
    let started =
        Command::new("/usr/sbin/postfix").arg("-c").arg(dir).arg("start").output().unwrap();
    let _instance = Instance(dir.to_path_buf());
    assert!(
        started.status.success(),
        "postfix start: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", smtpd_port)).is_err() {
        let log = std::fs::read_to_string(dir.join("maillog")).unwrap_or_default();
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "Postfix does not listen: {log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // Postern: the import of the same directory, then serve.
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    setup.ok(&["import", "postfix", d]);
    let serve = setup.serve();
    let postern_port = serve.listeners["smtp"].port();
    let postern_mail = setup.dir.path().join("data/mail");

    let addresses = [
        "ann@example.org",           // a virtual mailbox
        "sales@example.org",         // a virtual alias to two mailboxes
        "anyone@example.net",        // a catch-all alias
        "postmaster@mx.example.com", // alias_maps, through root, to a mailbox
        "fwd@example.org",           // an alias to an outside address: the relayhost
        "x@relayed.example",         // a relay domain with a transport_maps entry
        "someone@outside.test",      // relayed for a trusted client: the relayhost
        "zz@example.org",            // an unknown user of a mailbox domain: refused
    ];
    let mut places: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for (mta, port, maildirs) in
        [("postfix", smtpd_port, dir.join("vmail")), ("postern", postern_port, postern_mail)]
    {
        for (n, rcpt) in addresses.iter().enumerate() {
            let marker = format!("probe-{n}-via-{mta}");
            let reply = send(("127.0.0.1", port), "tester@client.test", rcpt, &marker);
            if !reply.starts_with('2') {
                places.insert((mta, rcpt), vec![format!("refused {}", &reply[..1])]);
                continue;
            }
            // Wait for it to land somewhere (a message to two mailboxes: both).
            let start = std::time::Instant::now();
            let found = loop {
                let mut found = maildirs_with(&maildirs, &marker);
                if a.has(&marker) {
                    found.push("sink relayhost".into());
                }
                if b.has(&marker) {
                    found.push("sink relayed.example".into());
                }
                let settled =
                    !found.is_empty() && (*rcpt != "sales@example.org" || found.len() >= 2);
                if settled {
                    break found;
                }
                let log = std::fs::read_to_string(dir.join("maillog")).unwrap_or_default();
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(30),
                    "{mta} never delivered {rcpt}; Postfix's log:\n{log}"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            };
            places.insert((mta, rcpt), found);
        }
    }
    let expected: [&[&str]; 8] = [
        &["maildir example.org/ann"],
        &["maildir example.org/ann", "maildir example.org/bob"],
        &["maildir example.net/carol"],
        &["maildir example.org/ann"],
        &["sink relayhost"],
        &["sink relayed.example"],
        &["sink relayhost"],
        &["refused 5"],
    ];
    for (rcpt, want) in addresses.iter().zip(expected) {
        assert_eq!(places[&("postfix", *rcpt)], want, "Postfix, {rcpt}");
        assert_eq!(places[&("postern", *rcpt)], places[&("postfix", *rcpt)], "{rcpt}");
    }
}
