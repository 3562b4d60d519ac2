//! DKIM signing checked by an independent verifier, Debian's python3-dkim (dkimpy, run with
//! /usr/bin/python3) given the records `postern dkim list` says to publish; and the rollout
//! against a real DNS server, pebble-challtestsrv (Debian package pebble), which serves the
//! Ed25519 records (it cannot serve TXT records over 255 octets: RSA goes through the
//! scripted resolver).
//!
//! opendkim-testmsg does not apply: it verifies only through the system's DNS, which a test
//! cannot fill.

mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_server::Engine;
use postern_server::dns::{HickoryResolver, Resolver, ScriptedResolver};
use postern_server::mailauth::{DkimChecker, DkimSigner, Signer};
use postern_store::Store;
use postern_store::model::{DkimAlgorithm, DkimKey, DkimState, DnsCheck, DomainKind};
use postern_store::testing::{TestDb, missing_peer};
use support::peers::challtestsrv;
use tokio_util::sync::CancellationToken;

const PYTHON: &str = "/usr/bin/python3";
const DKIMPY: &str = "/usr/lib/python3/dist-packages/dkim/__init__.py";
const ACTOR: &str = "test:dkim";

const MESSAGE: &str = "Received: from client by mail.example.test; Mon, 7 Dec 2026 02:00:00 +0000\r\n\
From: Ann <ann@example.test>\r\n\
To: bob@elsewhere.test\r\n\
Subject: signed\r\n\
Date: Mon, 7 Dec 2026 02:00:00 +0000\r\n\
Message-ID: <1@example.test>\r\n\
\r\n\
Hello,  world.\r\n\
.leading dot\r\n\
\r\n\
\r\n";

/// Verifies every DKIM-Signature of `message` with dkimpy, the DNS answers given by `records`
/// (name, value); one bool per signature, or `None` (skipped) without python3-dkim.
fn dkimpy(test: &str, message: &[u8], records: &[(String, String)]) -> Option<Vec<bool>> {
    if !std::path::Path::new(DKIMPY).exists() {
        missing_peer(test, "python3-dkim is not installed (Debian package python3-dkim)");
        return None;
    }
    let script = r#"
import sys, json, dkim
records = {k.encode(): v.encode() for k, v in json.loads(sys.argv[1]).items()}
def dnsfunc(name, timeout=5):
    return records.get(name.rstrip(b"."), None)
msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
count = sum(1 for (n, _) in dkim.rfc822_parse(msg)[0] if n.lower() == b"dkim-signature")
def ok(i):
    try:
        return bool(d.verify(idx=i, dnsfunc=dnsfunc))
    except dkim.ValidationError:
        return False
print(json.dumps([ok(i) for i in range(count)]))
"#;
    let records: serde_json::Map<String, serde_json::Value> =
        records.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
    let mut child = Command::new(PYTHON)
        .args(["-c", script, &serde_json::Value::Object(records).to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dkimpy: {}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).expect("a JSON list"))
}

fn published(keys: &[DkimKey]) -> Vec<(String, String)> {
    keys.iter().map(|k| (k.record_name(), k.record_value())).collect()
}

async fn store_with_domain(db: &TestDb) -> Store {
    let store = db.open().await;
    store.add_domain(ACTOR, &"example.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    store
}

/// Waits until the engine runs the store's current revision.
async fn caught_up(engine: &Engine, store: &Store) {
    let want = store.revision().await.unwrap();
    let start = Instant::now();
    while engine.snapshot().revision() < want {
        assert!(start.elapsed() < Duration::from_secs(10), "the engine never saw revision {want}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn signed(signer: &DkimSigner, message: &str) -> Vec<u8> {
    let fields = signer.sign("example.test", message.as_bytes());
    format!("{fields}{message}").into_bytes()
}

#[tokio::test]
async fn ed25519_and_rsa_signatures_verify_with_dkimpy() {
    let test = "ed25519_and_rsa_signatures_verify_with_dkimpy";
    let db = TestDb::sqlite();
    let store = store_with_domain(&db).await;
    let domain = "example.test".parse().unwrap();
    let shutdown = CancellationToken::new();
    let (engine, _task) = Engine::start(store.clone(), "test", shutdown.clone()).await.unwrap();
    let signer = DkimSigner::new(engine.clone());
    assert!(signer.sign("example.test", MESSAGE.as_bytes()).is_empty(), "no key yet");

    let mut keys = Vec::new();
    for (selector, algorithm, bits) in [
        ("ed", DkimAlgorithm::Ed25519, None),
        ("rsa2048", DkimAlgorithm::Rsa, None),
        ("rsa4096", DkimAlgorithm::Rsa, Some(4096)),
    ] {
        let key = store
            .generate_dkim_key(ACTOR, &domain, algorithm, bits, Some(selector))
            .await
            .unwrap();
        keys.push(key);
    }
    // Pending keys sign nothing.
    caught_up(&engine, &store).await;
    assert!(signer.sign("example.test", MESSAGE.as_bytes()).is_empty());
    // Once active they sign from the next message on, without a restart: an Ed25519 and an
    // RSA key side by side.
    for key in &keys[..2] {
        store.activate_dkim_key(ACTOR, &domain, &key.selector).await.unwrap();
    }
    caught_up(&engine, &store).await;
    let message = signed(&signer, MESSAGE);
    let text = String::from_utf8_lossy(&message).into_owned();
    assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
    assert!(text.contains("a=ed25519-sha256") && text.contains("a=rsa-sha256"), "{text}");
    let verified = dkimpy(test, &message, &published(&keys));
    if let Some(results) = &verified {
        assert_eq!(results, &[true, true], "{text}");
    }
    // A 4096-bit RSA key replaces the 2048-bit one.
    store.activate_dkim_key(ACTOR, &domain, "rsa4096").await.unwrap();
    caught_up(&engine, &store).await;
    let message = signed(&signer, MESSAGE);
    let text = String::from_utf8_lossy(&message);
    assert!(text.contains("s=rsa4096;") && !text.contains("s=rsa2048;"), "{text}");
    assert!(signer.sign("elsewhere.test", MESSAGE.as_bytes()).is_empty(), "not our domain");

    let Some(results) = dkimpy(test, &message, &published(&keys)) else { return };
    assert_eq!(results, [true, true], "{text}");
    // A changed body or header fails, as it must.
    let tampered = String::from_utf8(message.clone()).unwrap().replace("world", "w0rld");
    assert_eq!(dkimpy(test, tampered.as_bytes(), &published(&keys)).unwrap(), [false, false]);
    let tampered = String::from_utf8(message).unwrap().replace("Subject: signed", "Subject: x");
    assert_eq!(dkimpy(test, tampered.as_bytes(), &published(&keys)).unwrap(), [false, false]);
    shutdown.cancel();
}
