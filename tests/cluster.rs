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
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
        Node::with(name, url, mail, "3s")
    }

    /// [`Node::new`] with its own `[cluster] dead_after`. The hand-off lines
    /// (`postern::handoff`) are logged: which remote transfers started, which were recorded.
    fn with(name: &str, url: &str, mail: &Path, dead_after: &str) -> Node {
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
                 dead_after = \"{dead_after}\"\n\
                 [delivery]\n\
                 retry_first = \"1s\"\n\
                 retry_max = \"2s\"\n\
                 [log]\n\
                 format = \"json\"\n\
                 level = \"info,postern::handoff=debug\"\n"
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
        self.start_with(&["serve"]);
    }

    /// `postern serve` with more arguments (`--role …`).
    fn start_with(&mut self, args: &[&str]) {
        self.serve = Some(Serve::start(self.command(args)));
    }

    fn serve(&self) -> &Serve {
        self.serve.as_ref().expect("the node runs")
    }

    fn smtp(&self) -> SocketAddr {
        self.serve().listeners["smtp"]
    }

    /// SIGKILL: no drain, no goodbye; the lease just stops being renewed. Returns the log
    /// lines it wrote (those no `wait_log` took).
    fn kill(&mut self) -> Vec<serde_json::Value> {
        let Some(mut serve) = self.serve.take() else { return Vec::new() };
        serve.child.kill().unwrap();
        serve.child.wait().unwrap();
        serve.logs_to_exit()
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
    /// While set, every transaction is answered `451 4.3.0` at MAIL FROM.
    refuse: Arc<AtomicBool>,
    /// Transactions refused so far.
    refused: Arc<AtomicUsize>,
}

impl Sink {
    fn start(listener: TcpListener) -> Sink {
        let addr = listener.local_addr().unwrap();
        let got: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let refuse = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let (counts, no, said_no) = (got.clone(), refuse.clone(), refused.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (counts, no, said_no) = (counts.clone(), no.clone(), said_no.clone());
                std::thread::spawn(move || {
                    let _ = sink_session(stream, &counts, &no, &said_no);
                });
            }
        });
        Sink { addr, got, refuse, refused }
    }

    fn count(&self, marker: &str) -> usize {
        self.got.lock().unwrap().get(marker).copied().unwrap_or(0)
    }
}

fn sink_session(
    stream: TcpStream,
    counts: &Mutex<HashMap<String, usize>>,
    refuse: &AtomicBool,
    refused: &AtomicUsize,
) -> std::io::Result<()> {
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
            "MAIL" if refuse.load(Ordering::SeqCst) => {
                refused.fetch_add(1, Ordering::SeqCst);
                out.write_all(b"451 4.3.0 not now\r\n")?;
            }
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

    /// Sends one message to `rcpts`; whether it was acknowledged with 250. The sender is
    /// `<marker>@client.test`, so that the engines' log lines (which name the sender) say
    /// which message is which.
    fn send(&mut self, marker: &str, rcpts: &[&str]) -> std::io::Result<bool> {
        if !self.cmd(&format!("MAIL FROM:<{marker}@client.test>"))?.starts_with("250") {
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

/// The senders of the messages whose remote transfer a node's log shows started (`transfer
/// started`) and not recorded (`delivery recorded`, or `attempt recorded` by the bookkeeper) by
/// the time the log ends.
fn in_transfer_at_exit(log: &[serde_json::Value]) -> HashSet<String> {
    let handoff = |l: &&serde_json::Value| l["target"] == "postern::handoff";
    let recorded: HashSet<&str> = log
        .iter()
        .filter(handoff)
        .filter(|l| l["message"] == "delivery recorded" || l["message"] == "attempt recorded")
        .filter_map(|l| l["queue_id"].as_str())
        .collect();
    log.iter()
        .filter(handoff)
        .filter(|l| l["message"] == "transfer started")
        .filter(|l| l["queue_id"].as_str().is_some_and(|id| !recorded.contains(id)))
        .filter_map(|l| l["from"].as_str().map(str::to_string))
        .collect()
}

/// The audit log's node entries through the API: who, what, which node; newest first.
fn node_audit(console: SocketAddr, bearer: &str) -> Vec<(String, String, String)> {
    let (status, body) = api(console, bearer, "GET", "/audit?kind=node", "");
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (text("actor"), text("action"), text("object"))
        })
        .collect()
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
    let n2_log = nodes[1].kill();
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
    // Listed dead once its lease lapses (dead_after 3 s). Its queue may have moved before that,
    // or it may have had nothing left when it died: then the others had nothing to wait for.
    let dead = wait_until(Duration::from_secs(15), || node_states(&nodes[0])["n2"].0 == "dead");
    assert!(dead, "node 2 not listed dead: {:?}", node_states(&nodes[0]));
    let inbox = maildir_markers(&ann);
    let twice: Vec<(&String, &usize)> = inbox.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered into the Maildir more than once: {twice:?}");
    // Remote delivery is at-least-once, and no more: only a message whose transfer node 2 had
    // started and not yet recorded when it died (the next hop may have said 250 just before)
    // may reach the sink twice.
    let in_transfer = in_transfer_at_exit(&n2_log);
    let got = sink.got.lock().unwrap().clone();
    let twice: Vec<&String> = got.iter().filter(|(_, n)| **n > 1).map(|(m, _)| m).collect();
    eprintln!(
        "{} message(s) reached the sink twice; {} were in transfer on node 2 when it was killed \
         (started, not recorded): {:?}",
        twice.len(),
        in_transfer.len(),
        twice
    );
    assert!(got.values().all(|n| *n <= 2), "a message reached the sink three times: {got:?}");
    let unexplained: Vec<&&String> =
        twice.iter().filter(|m| !in_transfer.contains(&format!("{m}@client.test"))).collect();
    assert!(
        unexplained.is_empty(),
        "sent twice though not in transfer on the killed node: {unexplained:?} \
         (in transfer: {in_transfer:?})"
    );

    // The dead node can be forgotten once its queue has moved; the audit log says who did it.
    nodes[0].ok(&["node", "remove", "n2"]);
    assert!(!node_states(&nodes[0]).contains_key("n2"));
    let audit = node_audit(console, bearer);
    assert!(
        audit.iter().any(|(who, what, node)| who.starts_with("cli:")
            && what == "node.remove"
            && node == "n2"),
        "{audit:?}"
    );
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
    let bearer = nodes[0].ok(&["token", "create", "--owner", "admin", "--name", "drain"]);
    let audit = node_audit(nodes[0].serve().listeners["console"], bearer.trim());
    assert!(
        audit.iter().any(|(who, what, node)| who.starts_with("cli:")
            && what == "node.drain"
            && node == "n3"),
        "{audit:?}"
    );
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

#[test]
fn a_stopped_node_hands_its_queue_over_before_its_dead_time() {
    let test = "cluster::a_stopped_node_hands_its_queue_over_before_its_dead_time";
    let Some(db) = postgres(test) else { return };
    let url = url(&db);
    let mail = tempfile::tempdir().unwrap();
    // The next hop answers 451 at first: the messages wait, deferred, on the node that took
    // them.
    let sink = Sink::start(TcpListener::bind("127.0.0.1:0").unwrap());
    sink.refuse.store(true, Ordering::SeqCst);
    // A long dead time, so that a takeover within it can only come from the stop's hand-over.
    let dead_after = Duration::from_secs(30);
    let mut nodes: Vec<Node> =
        ["n1", "n3"].iter().map(|n| Node::with(n, &url, mail.path(), "30s")).collect();
    nodes[0].start();
    let next_hop = format!("smtp:[127.0.0.1]:{}", sink.addr.port());
    nodes[0].ok(&["transport", "set", "*", &next_hop, "--tls", "none"]);
    nodes[1].start();
    let mut client = Client::connect(nodes[1].smtp()).unwrap();
    let markers: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    for marker in &markers {
        assert!(client.send(marker, &["someone@remote.test"]).unwrap());
    }
    drop(client);
    assert!(wait_until(Duration::from_secs(10), || {
        node_states(&nodes[0])["n3"].1 == 5 && sink.refused.load(Ordering::SeqCst) >= 5
    }));

    // SIGTERM: n3 stops, and gives its lease up once its writer and scheduler are done.
    let stopped = Instant::now();
    let status = nodes[1].serve.as_mut().unwrap().terminate();
    assert!(status.success(), "{status}");
    assert!(
        wait_until(dead_after / 2, || {
            let states = node_states(&nodes[0]);
            states["n3"].1 == 0 && states["n1"].1 == 5
        }),
        "not taken over within half the dead time: {:?}",
        node_states(&nodes[0])
    );
    let took = stopped.elapsed();
    eprintln!(
        "n1 took the stopped node's queue over {took:?} after SIGTERM (dead_after {dead_after:?})"
    );
    assert_eq!(node_states(&nodes[0])["n3"].0, "drained");

    // The next hop takes mail again: n1 delivers what it took over, once.
    sink.refuse.store(false, Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(20), || markers.iter().all(|m| sink.count(m) > 0)),
        "not delivered after the hand-over: {:?}",
        sink.got.lock().unwrap()
    );
    assert!(markers.iter().all(|m| sink.count(m) == 1), "{:?}", sink.got.lock().unwrap());
}

/// Form-encodes `fields` (the few characters a CSRF token or a node name may hold).
fn form(fields: &[(&str, &str)]) -> String {
    let encode = |v: &str| {
        v.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
}

/// One request to the console as a browser makes it: the status, the headers and the body.
fn browser(
    console: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<&str>,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(console).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(cookie) = cookie {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    let body = body.unwrap_or("");
    if method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_string(), body.to_string())
}

/// Signs in to the console as `name`: the session cookie.
fn console_login(console: SocketAddr, name: &str, password: &str) -> String {
    let (status, head, body) = browser(
        console,
        "POST",
        "/login",
        None,
        Some(&form(&[("name", name), ("password", password)])),
    );
    assert_eq!(status, 303, "console login: {head}\n{body}");
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie").then(|| value.trim())
        })
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// Posts the Nodes page's form `action` (`drain` or `delete`) for `node`, confirmed, as the
/// signed-in administrator; the status.
fn console_node_action(console: SocketAddr, cookie: &str, action: &str, node: &str) -> u16 {
    let (status, _, page) = browser(console, "GET", "/nodes", Some(cookie), None);
    assert_eq!(status, 200, "{page}");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF field on the Nodes page: {page}"));
    let body = form(&[("csrf", csrf), ("node", node), ("confirm", "yes")]);
    let (status, head, body) =
        browser(console, "POST", &format!("/nodes/{action}"), Some(cookie), Some(&body));
    assert_eq!(status, 303, "{head}\n{body}");
    status
}

#[test]
fn a_console_only_node_and_an_smtp_only_node_share_one_store() {
    let test = "cluster::a_console_only_node_and_an_smtp_only_node_share_one_store";
    let Some(db) = postgres(test) else { return };
    let url = url(&db);
    let mail = tempfile::tempdir().unwrap();
    let mut admin = Node::new("admin", &url, mail.path());
    let mut mx = Node::new("mx", &url, mail.path());
    admin.start_with(&["serve", "--role", "console"]);
    mx.start_with(&["serve", "--role", "smtp"]);
    // Each binds only its role's listeners.
    let (a, m) = (&admin.serve().listeners, &mx.serve().listeners);
    assert!(a.contains_key("console") && !a.contains_key("smtp"), "{a:?}");
    assert!(m.contains_key("smtp") && !m.contains_key("console"), "{m:?}");
    // And the store says so.
    let json = admin.ok(&["node", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    let roles = |name: &str| {
        let n = list.as_array().unwrap().iter().find(|n| n["node"] == name).unwrap();
        (n["smtp"].as_bool().unwrap(), n["console"].as_bool().unwrap())
    };
    assert_eq!(roles("admin"), (false, true), "{json}");
    assert_eq!(roles("mx"), (true, false), "{json}");
    assert!(
        admin
            .serve()
            .wait_log(Duration::from_secs(5), |l| {
                l["message"] == "joined the cluster" && l["smtp"] == false
            })
            .is_some(),
        "the console-only node did not join as such"
    );

    // A change made on the console-only node reaches the SMTP-only one.
    let bearer = admin.ok(&["token", "create", "--owner", "admin", "--name", "roles"]);
    let bearer = bearer.trim();
    let console = admin.serve().listeners["console"];
    let (status, body) = api(console, bearer, "POST", "/domains", r#"{"name":"late.test"}"#);
    assert_eq!(status, 201, "{body}");
    let mut probe = Client::connect(mx.smtp()).unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        probe.rcpt_reply("carl@late.test").unwrap().starts_with("550")
    }));
    let (status, body) = api(
        console,
        bearer,
        "POST",
        "/mailboxes",
        r#"{"address":"carl@late.test","password":"a long enough password"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let changed = Instant::now();
    assert!(
        wait_until(Duration::from_secs(1), || {
            probe.rcpt_reply("carl@late.test").unwrap().starts_with("250")
        }),
        "the SMTP-only node did not take the mailbox made on the console-only node within a second"
    );
    eprintln!("live on the SMTP-only node {:?} after the change", changed.elapsed());
    drop(probe);

    // Drain and forget, from the console and the API, each in the audit log with who did it.
    let mut add = admin.command(&["admin", "create", "ops"]);
    let mut add = add
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(b"operator passphrase 1\noperator passphrase 1\n").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cookie = console_login(console, "ops", "operator passphrase 1");
    console_node_action(console, &cookie, "drain", "mx");
    assert!(wait_until(Duration::from_secs(10), || node_states(&admin)["mx"].0 == "drained"));
    let (status, body) = api(console, bearer, "DELETE", "/nodes/mx", "");
    assert_eq!(status, 204, "{body}");
    let (status, body) = api(console, bearer, "POST", "/nodes/admin/drain", "");
    assert_eq!(status, 202, "{body}");
    assert!(wait_until(Duration::from_secs(10), || node_states(&admin)["admin"].0 == "drained"));
    console_node_action(console, &cookie, "delete", "admin");
    assert!(node_states(&admin).is_empty());
    let mut audit = node_audit(console, bearer);
    audit.reverse();
    let who: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|(who, what, node)| {
            let who = if who.starts_with("api:admin/") { "api" } else { who.as_str() };
            (who, what.as_str(), node.as_str())
        })
        .collect();
    assert_eq!(
        who,
        vec![
            ("console:ops", "node.drain", "mx"),
            ("api", "node.remove", "mx"),
            ("api", "node.drain", "admin"),
            ("console:ops", "node.remove", "admin"),
        ],
        "{audit:?}"
    );

    // Through all this, the console-only node ran no scheduler and claimed nothing.
    let log = admin.serve().logs_now();
    let queue_work = ["queue loaded", "claimed messages loaded", "queued messages claimed"];
    let worked: Vec<&serde_json::Value> =
        log.iter().filter(|l| queue_work.iter().any(|w| l["message"] == *w)).collect();
    assert!(worked.is_empty(), "the console-only node worked a queue: {worked:?}");

    // A console-only node stopped with SIGTERM is listed as drained, not dead.
    let mut desk = Node::new("desk", &url, mail.path());
    desk.start_with(&["serve", "--role", "console"]);
    assert!(wait_until(Duration::from_secs(5), || node_states(&desk).contains_key("desk")));
    assert!(desk.serve.as_mut().unwrap().terminate().success());
    assert_eq!(node_states(&admin)["desk"].0, "drained");
}
