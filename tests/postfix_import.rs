//! `postern import postfix` end to end: a Postfix configuration directory written as an
//! administrator would (main.cf, source maps, `postmap`/`postalias` run on them), imported, and
//! checked against Postfix's own answers: `postmap -q`/`postalias -q` on each map for the test
//! addresses and domains, and `postconf -x` for the parameters. Needs Debian's postfix
//! (postmap, postalias, postconf).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::Setup;
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
