//! Several engines on one Postgres (docs/cluster.md): three `postern serve` processes with their
//! own data directories and ports share one database and one Maildir volume. A configuration
//! change made through one console reaches all three; a node killed with SIGKILL while clients
//! send to all of them loses nothing that was acknowledged, its queue being taken over by the
//! others once its lease lapses; a drained node hands its queue over without a restart.
//!
//! Postgres only: without `POSTERN_TEST_POSTGRES_URL` the tests skip (fail under
//! `POSTERN_TEST_REQUIRE_PEERS=1`). The next hop is a small SMTP sink in the test, which counts
//! what it receives per message.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Serve;
use postern_store::Database;
use postern_store::testing::TestDb;

/// One engine: its directory (config, data) and, while it runs, its process.
struct Node {
    dir: tempfile::TempDir,
    url: String,
    serve: Option<Serve>,
}

impl Node {
    /// A node named `name` on `url`, whose Maildirs are `mail` (shared by every node, as a
    /// cluster's mail volume is).
    fn new(name: &str, url: &str, mail: &Path) -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("postern.toml"),
            format!(
                "hostname = \"mail.example.test\"\n\
                 node = \"{name}\"\n\
                 data_dir = \"data\"\n\
                 [smtp]\n\
                 listen = [\"127.0.0.1:0\"]\n\
                 submission = []\n\
                 submissions = []\n\
                 [console]\n\
                 listen = [\"127.0.0.1:0\"]\n\
                 [cluster]\n\
                 dead_after = \"3s\"\n\
                 [delivery]\n\
                 retry_first = \"1s\"\n\
                 retry_max = \"2s\"\n\
                 [log]\n\
                 format = \"json\"\n"
            ),
        )
        .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(mail, data.join("mail")).unwrap();
        Node { dir, url: url.into(), serve: None }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_postern"));
        cmd.current_dir(self.dir.path())
            .env_remove("POSTERN_CONFIG")
            .env_remove("RUST_LOG")
            .env("POSTERN_DATABASE", &self.url)
            .arg("--config")
            .arg(self.dir.path().join("postern.toml"))
            .args(args);
        cmd
    }

    /// `postern ARGS…` against the shared store; its standard output, failing the test if it
    /// fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "postern {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn start(&mut self) {
        self.serve = Some(Serve::start(self.command(&["serve"])));
    }

    fn serve(&self) -> &Serve {
        self.serve.as_ref().expect("the node runs")
    }

    fn smtp(&self) -> SocketAddr {
        self.serve().listeners["smtp"]
    }

    /// SIGKILL: no drain, no goodbye; the lease just stops being renewed.
    fn kill(&mut self) {
        if let Some(mut serve) = self.serve.take() {
            serve.child.kill().unwrap();
            serve.child.wait().unwrap();
        }
    }
}

/// A throwaway Postgres schema, or `None` (the test then skips, or fails under CI).
fn postgres(test: &str) -> Option<TestDb> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(TestDb::postgres(test))
}

fn url(db: &TestDb) -> String {
    match &db.database {
        Database::Postgres { url } => url.clone(),
        Database::Sqlite { .. } => unreachable!("a Postgres test database"),
    }
}

/// A next hop that answers every message with 250 and counts each by its `X-Marker:` header.
struct Sink {
    addr: SocketAddr,
    got: Arc<Mutex<HashMap<String, usize>>>,
}

impl Sink {
    fn start(listener: TcpListener) -> Sink {
        let addr = listener.local_addr().unwrap();
        let got: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let counts = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counts = counts.clone();
                std::thread::spawn(move || {
                    let _ = sink_session(stream, &counts);
                });
            }
        });
        Sink { addr, got }
    }

    fn count(&self, marker: &str) -> usize {
        self.got.lock().unwrap().get(marker).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.got.lock().unwrap().values().sum()
    }
}

fn sink_session(stream: TcpStream, counts: &Mutex<HashMap<String, usize>>) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    out.write_all(b"220 sink.test ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => out.write_all(b"250 sink.test\r\n")?,
            "DATA" => {
                out.write_all(b"354 go ahead\r\n")?;
                let mut marker = None;
                loop {
                    line.clear();
                    if lines.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    if let Some(m) = line.strip_prefix("X-Marker: ") {
                        marker = Some(m.trim().to_string());
                    }
                }
                if let Some(m) = marker {
                    *counts.lock().unwrap().entry(m).or_default() += 1;
                }
                out.write_all(b"250 2.0.0 queued\r\n")?;
            }
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => out.write_all(b"250 ok\r\n")?,
        }
    }
}

/// A plain SMTP client, one command at a time.
struct Client {
    lines: BufReader<TcpStream>,
    out: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let out = stream.try_clone()?;
        let mut client = Client { lines: BufReader::new(stream), out };
        let greeting = client.reply()?;
        if !greeting.starts_with("220") {
            return Err(std::io::Error::other(greeting));
        }
        client.cmd("EHLO client.test")?;
        Ok(client)
    }

    /// The whole reply (its last line).
    fn reply(&mut self) -> std::io::Result<String> {
        loop {
            let mut line = String::new();
            if self.lines.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line);
            }
        }
    }

    fn cmd(&mut self, line: &str) -> std::io::Result<String> {
        self.out.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// Sends one message to `rcpts`; whether it was acknowledged with 250.
    fn send(&mut self, marker: &str, rcpts: &[&str]) -> std::io::Result<bool> {
        if !self.cmd("MAIL FROM:<sender@client.test>")?.starts_with("250") {
            return Ok(false);
        }
        for rcpt in rcpts {
            if !self.cmd(&format!("RCPT TO:<{rcpt}>"))?.starts_with("250") {
                self.cmd("RSET")?;
                return Ok(false);
            }
        }
        if !self.cmd("DATA")?.starts_with("354") {
            return Ok(false);
        }
        let body = format!(
            "From: sender@client.test\r\nSubject: {marker}\r\nX-Marker: {marker}\r\n\r\n\
             Sent to the cluster.\r\n.\r\n"
        );
        self.out.write_all(body.as_bytes())?;
        Ok(self.reply()?.starts_with("250"))
    }

    /// The reply to RCPT TO `rcpt` in a fresh transaction.
    fn rcpt_reply(&mut self, rcpt: &str) -> std::io::Result<String> {
        self.cmd("RSET")?;
        self.cmd("MAIL FROM:<probe@client.test>")?;
        self.cmd(&format!("RCPT TO:<{rcpt}>"))
    }
}

/// The `X-Marker:` of every message in the Maildir `dir`, with how many files carry it.
fn maildir_markers(dir: &Path) -> HashMap<String, usize> {
    let mut found = HashMap::new();
    for sub in ["new", "cur"] {
        for entry in std::fs::read_dir(dir.join(sub)).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.starts_with("X-Marker: ")) {
                *found.entry(line["X-Marker: ".len()..].trim().to_string()).or_default() += 1;
            }
        }
    }
    found
}

/// `POST` (or another method) of a JSON body to the console's API; the status and the body.
fn api(console: SocketAddr, bearer: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(console).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "{method} /api/v1{path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {bearer}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Waits until `pred` holds, up to `within`; whether it did.
fn wait_until(within: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if pred() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pred()
}

fn node_states(node: &Node) -> HashMap<String, (String, u64)> {
    let json = node.ok(&["node", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().to_string(),
                (n["state"].as_str().unwrap().to_string(), n["messages"].as_u64().unwrap()),
            )
        })
        .collect()
}

#[test]
fn three_engines_share_the_configuration_and_survive_a_killed_one() {
    let test = "cluster::three_engines_share_the_configuration_and_survive_a_killed_one";
    let Some(db) = postgres(test) else { return };
    let url = url(&db);
    let mail = tempfile::tempdir().unwrap();
    let sink = Sink::start(TcpListener::bind("127.0.0.1:0").unwrap());

    let mut nodes: Vec<Node> =
        ["n1", "n2", "n3"].iter().map(|n| Node::new(n, &url, mail.path())).collect();
    // The first creates the schema; the others join it.
    nodes[0].start();
    let admin = &nodes[0];
    admin.ok(&["domain", "add", "example.test"]);
    let mut add = admin.command(&["mailbox", "add", "ann@example.test"]);
    let mut add = add
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(b"a long enough password\n").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let next_hop = format!("smtp:[127.0.0.1]:{}", sink.addr.port());
    admin.ok(&["transport", "set", "*", &next_hop, "--tls", "none"]);
    nodes[1].start();
    nodes[2].start();
    let states = node_states(&nodes[0]);
    for n in ["n1", "n2", "n3"] {
        assert_eq!(states[n].0, "alive", "{states:?}");
    }

    // A change through node 1's API reaches all three within a second: RCPT to a new mailbox
    // is refused, then accepted, at every node.
    let bearer = nodes[0].ok(&["token", "create", "--owner", "admin", "--name", "cluster"]);
    let bearer = bearer.trim();
    let console = nodes[0].serve().listeners["console"];
    let (status, body) = api(console, bearer, "POST", "/domains", r#"{"name":"late.test"}"#);
    assert_eq!(status, 201, "{body}");
    let mut probes: Vec<Client> =
        nodes.iter().map(|n| Client::connect(n.smtp()).unwrap()).collect();
    for probe in &mut probes {
        assert!(wait_until(Duration::from_secs(5), || {
            probe.rcpt_reply("carl@late.test").unwrap().starts_with("550")
        }));
    }
    let (status, body) = api(
        console,
        bearer,
        "POST",
        "/mailboxes",
        r#"{"address":"carl@late.test","password":"a long enough password"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let changed = Instant::now();
    for (i, probe) in probes.iter_mut().enumerate() {
        assert!(
            wait_until(Duration::from_secs(1).saturating_sub(changed.elapsed()), || {
                probe.rcpt_reply("carl@late.test").unwrap().starts_with("250")
            }),
            "node {} did not take the new mailbox within a second",
            i + 1
        );
    }
    eprintln!(
        "the new mailbox was live on all three nodes {:?} after the change",
        changed.elapsed()
    );
    drop(probes);

    // 8 clients send to all three; node 2 dies on the way.
    const CLIENTS: usize = 8;
    const EACH: usize = 15;
    let addrs: Vec<SocketAddr> = nodes.iter().map(Node::smtp).collect();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let attempted = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (addrs, acked, attempted) = (addrs.clone(), acked.clone(), attempted.clone());
            std::thread::spawn(move || {
                let mut sessions: Vec<Option<Client>> = (0..addrs.len()).map(|_| None).collect();
                for m in 0..EACH {
                    let node = (c + m) % addrs.len();
                    let marker = format!("c{c}m{m}");
                    attempted.fetch_add(1, Ordering::SeqCst);
                    if sessions[node].is_none() {
                        sessions[node] = Client::connect(addrs[node]).ok();
                    }
                    let Some(session) = sessions[node].as_mut() else { continue };
                    match session.send(&marker, &["ann@example.test", "someone@remote.test"]) {
                        Ok(true) => acked.lock().unwrap().push(marker),
                        Ok(false) => {}
                        Err(_) => sessions[node] = None,
                    }
                }
            })
        })
        .collect();
    assert!(wait_until(Duration::from_secs(60), || {
        attempted.load(Ordering::SeqCst) >= CLIENTS * EACH / 3
    }));
    nodes[1].kill();
    let killed = Instant::now();
    for client in clients {
        client.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    eprintln!("{} of {} messages acknowledged; node 2 killed", acked.len(), CLIENTS * EACH);
    assert!(acked.len() >= CLIENTS * EACH / 2, "too few acknowledged: {}", acked.len());

    // Everything acknowledged arrives: once into the shared Maildir, at least once at the sink.
    let ann = mail.path().join("example.test/ann");
    let all_in = wait_until(Duration::from_secs(60), || {
        let inbox = maildir_markers(&ann);
        acked.iter().all(|m| inbox.contains_key(m) && sink.count(m) > 0)
    });
    let inbox = maildir_markers(&ann);
    let missing: Vec<&String> =
        acked.iter().filter(|m| !inbox.contains_key(*m) || sink.count(m) == 0).collect();
    assert!(all_in, "not delivered after the takeover: {missing:?}");
    eprintln!("all delivered {:?} after the kill", killed.elapsed());
    // Nothing left to deliver anywhere.
    assert!(wait_until(Duration::from_secs(30), || {
        let states = node_states(&nodes[0]);
        states.values().all(|(_, messages)| *messages == 0)
    }));
    let states = node_states(&nodes[0]);
    assert_eq!(states["n2"].0, "dead", "{states:?}");
    let inbox = maildir_markers(&ann);
    let twice: Vec<(&String, &usize)> = inbox.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered into the Maildir more than once: {twice:?}");
    // Remote delivery is at-least-once: only what node 2 had in flight may come twice.
    let again = sink.total() - sink.got.lock().unwrap().len();
    eprintln!("{again} message(s) reached the sink twice (in flight on node 2 when it died)");
    assert!(again <= CLIENTS * EACH / 3, "{again} duplicates at the sink");

    // The dead node can be forgotten once its queue has moved.
    nodes[0].ok(&["node", "remove", "n2"]);
    assert!(!node_states(&nodes[0]).contains_key("n2"));
}

#[test]
fn a_drained_node_hands_its_queue_over() {
    let test = "cluster::a_drained_node_hands_its_queue_over";
    let Some(db) = postgres(test) else { return };
    let url = url(&db);
    let mail = tempfile::tempdir().unwrap();
    // The next hop is down at first: the messages wait, deferred, on the node that took them.
    let sink_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let hop = sink_listener.local_addr().unwrap();
    drop(sink_listener);

    let mut nodes: Vec<Node> =
        ["n1", "n3"].iter().map(|n| Node::new(n, &url, mail.path())).collect();
    nodes[0].start();
    nodes[0].ok(&[
        "transport",
        "set",
        "*",
        &format!("smtp:[127.0.0.1]:{}", hop.port()),
        "--tls",
        "none",
    ]);
    nodes[1].start();
    let mut client = Client::connect(nodes[1].smtp()).unwrap();
    let markers: Vec<String> = (0..5).map(|i| format!("d{i}")).collect();
    for marker in &markers {
        assert!(client.send(marker, &["someone@remote.test"]).unwrap());
    }
    drop(client);
    assert!(wait_until(Duration::from_secs(10), || node_states(&nodes[0])["n3"].1 == 5));

    let out = nodes[0].ok(&["node", "drain", "n3", "--wait", "20"]);
    assert!(out.contains("n3 is drained"), "{out}");
    let states = node_states(&nodes[0]);
    assert_eq!(states["n3"].0, "drained", "{states:?}");
    // n3 takes no more mail, but keeps running.
    assert!(Client::connect(nodes[1].smtp()).is_err());
    assert!(nodes[1].serve.as_mut().unwrap().child.try_wait().unwrap().is_none());
    // n1 holds the queue now.
    assert!(wait_until(Duration::from_secs(10), || {
        let states = node_states(&nodes[0]);
        states["n3"].1 == 0 && states["n1"].1 == 5
    }));

    // The next hop comes back; a retry asked for anywhere reaches the node that holds them.
    let sink = Sink::start(TcpListener::bind(hop).unwrap());
    nodes[1].ok(&["queue", "retry", "--all"]);
    assert!(
        wait_until(Duration::from_secs(20), || markers.iter().all(|m| sink.count(m) > 0)),
        "not delivered after the drain: {:?}",
        sink.got.lock().unwrap()
    );
}
