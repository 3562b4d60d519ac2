//! An independent DKIM verifier: Debian's python3-dkim (dkimpy), run with /usr/bin/python3,
//! given the DNS answers a test publishes. Used by the DKIM signing tests and, through
//! `tests/stream.rs`, by the large-mail test.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use postern_store::testing::missing_peer;

const PYTHON: &str = "/usr/bin/python3";
const DKIMPY: &str = "/usr/lib/python3/dist-packages/dkim/__init__.py";

const SCRIPT: &str = r#"
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

/// Verifies every DKIM-Signature of `message`, the DNS answers given by `records` (name,
/// value): one bool per signature, or `None` (skipped, or failed under CI) without python3-dkim.
pub fn verify(test: &str, message: &[u8], records: &[(String, String)]) -> Option<Vec<bool>> {
    if !Path::new(DKIMPY).exists() {
        missing_peer(test, "python3-dkim is not installed (Debian package python3-dkim)");
        return None;
    }
    let records: serde_json::Map<String, serde_json::Value> =
        records.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
    let mut child = Command::new(PYTHON)
        .args(["-c", SCRIPT, &serde_json::Value::Object(records).to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3");
    // Written from a thread of its own: a message larger than the pipe would otherwise wait on
    // a reader that waits for the end of it.
    let mut stdin = child.stdin.take().expect("piped");
    let message = message.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&message));
    let out = child.wait_with_output().expect("python3 runs");
    writer.join().expect("the writer ends").expect("python3 reads the message");
    assert!(out.status.success(), "dkimpy: {}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).expect("a JSON list"))
}
