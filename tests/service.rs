//! Running as a service: the systemd unit passes `systemd-analyze verify`; `serve` tells
//! `$NOTIFY_SOCKET` when it is ready, reloading and stopping; started as root with `--user` it
//! drops to that user once its ports are bound and still takes mail; as a plain user with
//! `CAP_NET_BIND_SERVICE` (what the unit grants) it binds a port below 1024; and as root
//! without a user it refuses a privileged port.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::smtp::send;
use common::{Serve, Setup, applied};
use postern_store::testing::{TestDb, missing_peer};

const UNIT: &str = include_str!("../dist/systemd/postern.service");
const PASSWORD: &str = "correct horse battery";

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn has(command: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {command}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The `Uid:`/`Gid:`/`Groups:`/`CapAmb:` line of a process, after the name.
fn status_line(pid: u32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The smtp listener on `addr` instead of port 0, in the setup's config.
fn listen_smtp_on(setup: &Setup, addr: &str) {
    let config = std::fs::read_to_string(setup.config()).unwrap();
    let config =
        config.replacen("listen = [\"127.0.0.1:0\"]", &format!("listen = [\"{addr}\"]"), 1);
    std::fs::write(setup.config(), config).unwrap();
}

/// A free loopback port below 1024 (the test runs as root, so it can try).
fn free_privileged_port() -> u16 {
    (600..1000)
        .rev()
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024")
}

/// The tempdir readable by `nobody`, who serve becomes.
fn open_to_others(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `postern ARGS…` as `nobody`, as an administrator types `sudo -u postern postern …`.
fn as_nobody(setup: &Setup, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--init-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_postern"))
        .arg("--config")
        .arg(setup.config())
        .args(args)
        .current_dir(setup.dir.path())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "postern {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn wait_for_files(dir: &Path, count: usize) -> Vec<std::path::PathBuf> {
    let start = Instant::now();
    loop {
        let files: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if files.len() >= count || start.elapsed() > Duration::from_secs(10) {
            return files;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if !has("systemd-analyze") {
        missing_peer(
            "service::the_unit_passes_systemd_analyze_verify",
            "systemd-analyze is not installed",
        );
        return;
    }
    for needed in [
        "Type=notify",
        "User=postern",
        "LimitNOFILE=65536",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/postern",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ] {
        assert!(UNIT.lines().any(|l| l == needed), "the unit lacks {needed}");
    }
    // On a copy whose ExecStart names the binary just built: verify checks that it exists.
    let dir = tempfile::tempdir().unwrap();
    let unit = UNIT.replace("/usr/local/bin/postern", env!("CARGO_BIN_EXE_postern"));
    assert_ne!(unit, UNIT, "the unit starts /usr/local/bin/postern");
    let path = dir.path().join("postern.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("postern.service")).collect();
    assert!(ours.is_empty(), "systemd-analyze complains: {ours:?}");
}

/// Receives the next datagram within 15 s.
fn next_notice(socket: &UnixDatagram) -> String {
    let mut buffer = [0u8; 4096];
    let n = socket.recv(&mut buffer).expect("a datagram on NOTIFY_SOCKET");
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[test]
fn serve_notifies_systemd_when_ready_reloading_and_stopping() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let socket_path = setup.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut cmd = setup.command(&["serve"]);
    cmd.env("NOTIFY_SOCKET", &socket_path);
    let mut serve = Serve::start(cmd);
    let ready = next_notice(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    assert!(ready.contains(&format!("MAINPID={}", serve.child.id())), "{ready}");
    // Ready means the listeners take connections.
    let smtp = TcpStream::connect(serve.listeners["smtp"]).unwrap();
    drop(smtp);

    // SIGHUP: the log level applies at once, a new listener is logged as needing a restart.
    let config = std::fs::read_to_string(setup.config()).unwrap();
    let config = config.replace("format = \"json\"\n", "format = \"json\"\nlevel = \"debug\"\n");
    let config = config.replacen("listen = [\"127.0.0.1:0\"]", "listen = [\"127.0.0.1:1\"]", 1);
    std::fs::write(setup.config(), config).unwrap();
    let hup = Command::new("kill").arg("-HUP").arg(serve.child.id().to_string()).status().unwrap();
    assert!(hup.success());
    let reloading = next_notice(&socket);
    assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reloading}");
    assert_eq!(next_notice(&socket), "READY=1");
    let (line, _) = serve
        .wait_log(Duration::from_secs(10), |l| {
            l["message"] == "SIGHUP: boot configuration reloaded"
        })
        .expect("the reload is logged");
    let applied_fields = line["applied"].as_str().unwrap_or_default();
    assert!(applied_fields.contains("log.level"), "{line}");
    assert!(line["needs_restart"].as_str().unwrap_or_default().contains("smtp.listen"), "{line}");
    // Still serving on the port it had.
    TcpStream::connect(serve.listeners["smtp"]).unwrap();

    let status = serve.terminate();
    assert!(status.success(), "{status}");
    let stopping = next_notice(&socket);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
}

#[test]
fn as_root_with_a_user_serve_drops_privileges_and_still_takes_mail() {
    if !is_root() {
        eprintln!("SKIPPED as_root_with_a_user_serve_drops_privileges: the test is not root");
        return;
    }
    if !has("setpriv") {
        missing_peer("service::drops_privileges", "setpriv (util-linux) is not installed");
        return;
    }
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    open_to_others(setup.dir.path());
    let serve = Serve::start(setup.command(&["serve", "--user", "nobody"]));
    let pid = serve.child.id();
    assert_eq!(status_line(pid, "Uid"), "65534 65534 65534 65534");
    assert_eq!(status_line(pid, "Gid"), "65534 65534 65534 65534");
    let groups = status_line(pid, "Groups");
    assert!(!groups.split(' ').any(|g| g == "0"), "root's groups are gone: {groups}");
    assert!(
        serve.stdout.iter().any(|l| l.contains("user         nobody (uid 65534")),
        "{:?}",
        serve.stdout
    );
    let data = setup.dir.path().join("data");
    assert_eq!(std::fs::metadata(&data).unwrap().uid(), 65534, "the data directory is the user's");
    assert_eq!(std::fs::metadata(data.join("postern.db")).unwrap().uid(), 65534);

    as_nobody(&setup, &["domain", "add", "example.test"], "");
    as_nobody(&setup, &["mailbox", "add", "ann@example.test"], &format!("{PASSWORD}\n"));
    serve
        .wait_log(Duration::from_secs(10), |l| applied(l) && l["mailboxes"] == 1)
        .expect("the mailbox is live");
    let reply = send(serve.listeners["smtp"], "a@remote.test", "ann@example.test", "as a service");
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let delivered = wait_for_files(&data.join("mail/example.test/ann/new"), 1);
    assert_eq!(delivered.len(), 1, "delivered to the Maildir");
    assert_eq!(std::fs::metadata(&delivered[0]).unwrap().uid(), 65534);
}

#[test]
fn a_data_directory_of_another_user_is_a_clear_error() {
    if !is_root() {
        eprintln!(
            "SKIPPED a_data_directory_of_another_user_is_a_clear_error: the test is not root"
        );
        return;
    }
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    open_to_others(setup.dir.path());
    std::fs::create_dir(setup.dir.path().join("data")).unwrap();
    let err = setup.fails(&["serve", "--user", "nobody"]);
    assert!(err.contains("belong(s) to someone else") && err.contains("chown -R nobody:"), "{err}");
    let err = setup.fails(&["serve", "--user", "no-such-user-here"]);
    assert!(err.contains("there is no user no-such-user-here"), "{err}");
}

#[test]
fn as_root_without_a_user_a_privileged_port_is_refused() {
    if !is_root() {
        eprintln!(
            "SKIPPED as_root_without_a_user_a_privileged_port_is_refused: the test is not root"
        );
        return;
    }
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    listen_smtp_on(&setup, &format!("127.0.0.1:{}", free_privileged_port()));
    let err = setup.fails(&["serve"]);
    assert!(err.contains("refusing to run as root") && err.contains("[serve] user"), "{err}");
    assert!(!setup.dir.path().join("data").exists(), "nothing is created before the refusal");
}

#[test]
fn a_plain_user_with_the_capability_binds_a_privileged_port() {
    if !is_root() {
        eprintln!("SKIPPED a_plain_user_with_the_capability_binds_a_privileged_port: not root");
        return;
    }
    if !has("setpriv") {
        missing_peer("service::privileged_port", "setpriv (util-linux) is not installed");
        return;
    }
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    open_to_others(setup.dir.path());
    let data = setup.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    let port = free_privileged_port();
    listen_smtp_on(&setup, &format!("127.0.0.1:{port}"));
    // What the unit does: an ordinary user, CAP_NET_BIND_SERVICE alone, inherited by exec.
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "--inh-caps=-all,+net_bind_service",
        "--ambient-caps=+net_bind_service",
        "--bounding-set=-all,+net_bind_service",
        "--",
    ])
    .arg(env!("CARGO_BIN_EXE_postern"))
    .arg("--config")
    .arg(setup.config())
    .arg("serve")
    .current_dir(setup.dir.path())
    .env_remove("RUST_LOG");
    let serve = Serve::start(cmd);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(serve.listeners["smtp"], addr);
    let pid = serve.child.id();
    // setpriv execs serve: the child is serve itself.
    assert_eq!(status_line(pid, "Uid"), "65534 65534 65534 65534");
    // CAP_NET_BIND_SERVICE is bit 10, and no other.
    assert_eq!(status_line(pid, "CapEff"), "0000000000000400");
    let mut stream = BufReader::new(TcpStream::connect(addr).unwrap());
    let mut greeting = String::new();
    stream.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");
}
