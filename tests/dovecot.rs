//! Dovecot logging Postern's mailboxes in over IMAP, and mail sent with `postern sendmail` and
//! `mail(1)`: a real Dovecot (IMAP, and LMTP for delivery) whose passdb and userdb are
//! `postern dovecot checkpassword`, on both stores; mailboxes made with the CLI, the console's form
//! and the API log in at once.
//!
//! Needs the Debian packages `dovecot-core dovecot-imapd dovecot-lmtpd` and `bsd-mailx`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Setup;
use postern_store::testing::free_port;
use postern_store::testing::{TestDb, missing_peer};

const IMAP: &str = "/usr/lib/dovecot/imap";
const LMTP: &str = "/usr/lib/dovecot/lmtp";

struct Dovecot {
    child: Child,
    dir: PathBuf,
    imap: u16,
    lmtp: PathBuf,
    vmail: PathBuf,
}

impl Dovecot {
    /// Dovecot's log, for a failure's message.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Dovecot with IMAP on a free port and LMTP on a socket, authenticating through Postern.
/// `users` are extra accounts Dovecot knows by itself (passwd-file lines), asked before Postern.
fn dovecot(test: &str, s: &Setup, database_url: Option<&str>, users: &str) -> Option<Dovecot> {
    if !Path::new(IMAP).exists() || !Path::new(LMTP).exists() {
        missing_peer(test, "Dovecot is not installed (dovecot-core dovecot-imapd dovecot-lmtpd)");
        return None;
    }
    let dir = s.dir.path().join("dovecot");
    std::fs::create_dir(&dir).unwrap();
    let vmail = dir.join("vmail");
    std::fs::create_dir(&vmail).unwrap();
    // Dovecot will not run mail processes as root: as root, mail belongs to `nobody`.
    let own_users = users;
    let (uid, gid, mut users) = if is_root() {
        for d in [s.dir.path(), &dir] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::os::unix::fs::chown(&vmail, Some(65534), Some(65534)).unwrap();
        (65534, 65534, "default_internal_user = dovecot\ndefault_login_user = dovenull\n".into())
    } else {
        let me = std::env::var("USER").unwrap_or_default();
        let meta = std::fs::metadata(&dir).unwrap();
        (
            meta.uid(),
            meta.gid(),
            format!("default_internal_user = {me}\ndefault_login_user = {me}\n"),
        )
    };
    // checkpassword runs as the auth service: it must be able to open the store, as the user
    // that owns Postern's data (what `postern dovecot config` says too).
    let owner =
        if is_root() { "root".to_string() } else { std::env::var("USER").unwrap_or_default() };
    // The auth-client socket is what SMTP AUTH through Dovecot (`[auth] backend`) connects to.
    users.push_str(&format!(
        "service auth {{\n  user = {owner}\n  unix_listener auth-client {{\n    mode = 0666\n  }}\n}}\n"
    ));
    std::fs::write(dir.join("users"), own_users).unwrap();
    users.push_str(&format!(
        "passdb {{\n  driver = passwd-file\n  args = {}\n}}\n",
        dir.join("users").display()
    ));
    let imap = free_port();
    let checkpassword = format!(
        "{} --config {} dovecot checkpassword --mail dovecot --mail-owner {uid}",
        env!("CARGO_BIN_EXE_postern"),
        s.config().display()
    );
    // Dovecot clears its children's environment: the Postgres store is handed on explicitly.
    let import = database_url.map(|u| format!("import_environment = TZ POSTERN_DATABASE={u}\n"));
    let d = dir.display();
    let config = format!(
        "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
         protocols = imap lmtp\nlisten = 127.0.0.1\nssl = no\n{users}{import}\
         disable_plaintext_auth = no\nauth_mechanisms = plain login\nauth_failure_delay = 0\n\
         mail_home = {d}/vmail/%d/%n\nmail_location = maildir:~/Maildir\n\
         mail_uid = {uid}\nmail_gid = {gid}\nfirst_valid_uid = 1\n\
         passdb {{\n  driver = checkpassword\n  args = {checkpassword}\n}}\n\
         userdb {{\n  driver = prefetch\n}}\n\
         userdb {{\n  driver = checkpassword\n  args = {checkpassword}\n}}\n\
         service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    \
         port = {imap}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
         service lmtp {{\n  unix_listener lmtp {{\n    mode = 0666\n  }}\n}}\n",
        import = import.unwrap_or_default(),
    );
    let path = dir.join("dovecot.conf");
    std::fs::write(&path, config).unwrap();
    let child = Command::new("dovecot").arg("-c").arg(&path).arg("-F").spawn().unwrap();
    let mut dovecot = Dovecot { child, dir: dir.clone(), imap, lmtp: dir.join("run/lmtp"), vmail };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", imap)).is_err() || !dovecot.lmtp.exists() {
        if let Some(status) = dovecot.child.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.join("dovecot.log")).unwrap_or_default();
            panic!("dovecot exited ({status}): {log}");
        }
        assert!(start.elapsed() < Duration::from_secs(20), "dovecot did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(dovecot)
}

/// One IMAP session, command by command (RFC 9051).
struct Imap {
    reader: BufReader<TcpStream>,
    tag: u32,
}

impl Imap {
    fn connect(port: u16) -> Imap {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut imap = Imap { reader: BufReader::new(stream), tag: 0 };
        let greeting = imap.line();
        assert!(greeting.starts_with("* OK"), "{greeting}");
        imap
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        // A reset is the server gone: the caller sees an empty line, as at the end.
        let _ = self.reader.read_line(&mut line);
        line
    }

    /// Sends a command; the untagged lines and the tagged status line.
    fn command(&mut self, command: &str) -> (String, String) {
        self.tag += 1;
        let tag = format!("a{}", self.tag);
        let mut untagged = String::new();
        if write!(self.reader.get_mut(), "{tag} {command}\r\n").is_err() {
            return (untagged, "closed".into());
        }
        loop {
            let line = self.line();
            if line.is_empty() {
                return (untagged, "closed".into());
            }
            if let Some(status) = line.strip_prefix(&format!("{tag} ")) {
                return (untagged, status.trim_end().to_string());
            }
            untagged.push_str(&line);
        }
    }
}

/// Whether `user` logs in with `password`.
fn logs_in(port: u16, user: &str, password: &str) -> bool {
    let mut imap = Imap::connect(port);
    let (_, status) = imap.command(&format!("LOGIN \"{user}\" \"{password}\""));
    status.starts_with("OK")
}

/// Waits until `user`'s INBOX holds `count` messages, and returns the last one.
fn last_message(dovecot: &Dovecot, user: &str, password: &str, count: usize) -> String {
    let (port, log) = (dovecot.imap, || dovecot.log());
    let start = Instant::now();
    loop {
        let mut imap = Imap::connect(port);
        let (_, status) = imap.command(&format!("LOGIN \"{user}\" \"{password}\""));
        assert!(status.starts_with("OK"), "{user} cannot log in: {status}: {}", log());
        let (untagged, status) = imap.command("SELECT INBOX");
        assert!(status.starts_with("OK"), "{status}: {}", log());
        if untagged.contains(&format!("* {count} EXISTS")) {
            let (body, status) = imap.command(&format!("FETCH {count} BODY[]"));
            assert!(status.starts_with("OK"), "{status}");
            return body;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no message {count}: {untagged}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn with_password(s: &Setup, args: &[&str], password: &str) {
    let out = s.run(args, &format!("{password}\n{password}\n"));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn imap_logins(db: &TestDb, test: &str) {
    let s = Setup::new(&db.database);
    let url = match &db.database {
        postern_store::Database::Postgres { url } => Some(url.as_str()),
        _ => None,
    };
    let Some(dovecot) = dovecot(test, &s, url, "") else { return };
    let port = dovecot.imap;
    s.ok(&["domain", "add", "example.test"]);
    with_password(&s, &["mailbox", "add", "ann@example.test"], "correct horse battery");
    let lmtp = format!("lmtp:unix:{}", dovecot.lmtp.display());
    s.ok(&["transport", "set", "example.test", &lmtp]);
    let serve = s.serve();

    // A mailbox made a moment ago logs in at once; a wrong password and a stranger do not.
    assert!(logs_in(port, "ann@example.test", "correct horse battery"), "{}", dovecot.log());
    assert!(!logs_in(port, "ann@example.test", "wrong horse battery"));
    assert!(!logs_in(port, "nobody@example.test", "correct horse battery"));

    // Mail sent with `postern sendmail -t` reaches the mailbox through Postern and LMTP, and
    // reads over IMAP; Bcc: is gone.
    let out = s.run(
        &["sendmail", "-t", "-f", "root@example.test"],
        "To: Ann <ann@example.test>\nBcc: ann@example.test\nSubject: from cron\n\nnightly job done\n",
    );
    assert!(out.status.success(), "sendmail: {}", String::from_utf8_lossy(&out.stderr));
    let body = last_message(&dovecot, "ann@example.test", "correct horse battery", 1);
    assert!(body.contains("Subject: from cron") && body.contains("nightly job done"), "{body}");
    assert!(!body.contains("Bcc:") && body.contains("Message-ID: <"), "{body}");

    // `mail -s` from bsd-mailx, through a link named sendmail.
    if Path::new("/usr/bin/bsd-mailx").exists() {
        let link = s.dir.path().join("sendmail");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_postern"), &link).unwrap();
        let rc = s.dir.path().join("mailrc");
        std::fs::write(&rc, format!("set sendmail={}\n", link.display())).unwrap();
        let mut mail = Command::new("/usr/bin/bsd-mailx")
            .args(["-s", "hello from mail", "ann@example.test"])
            .env("MAILRC", &rc)
            .env("POSTERN_CONFIG", s.config())
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        mail.stdin.take().unwrap().write_all(b"sent with mail(1)\n").unwrap();
        assert!(mail.wait().unwrap().success());
        let body = last_message(&dovecot, "ann@example.test", "correct horse battery", 2);
        assert!(body.contains("Subject: hello from mail") && body.contains("mail(1)"), "{body}");
    } else {
        missing_peer(test, "bsd-mailx is not installed (Debian package bsd-mailx)");
    }

    // Mailboxes made through the console's form and through the API log in at once too.
    let console = format!("http://{}", serve.listeners["console"]);
    with_password(&s, &["admin", "create", "ops"], "operator passphrase 1");
    let bearer = s.ok(&["token", "create", "--owner", "ops", "--name", "dovecot test"]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        add_in_console(&console, "cat@example.test", "kitten battery staple").await;
        add_with_api(&console, bearer.trim(), "dan@example.test", "dapper battery staple").await;
    });
    assert!(logs_in(port, "cat@example.test", "kitten battery staple"), "{}", dovecot.log());
    assert!(logs_in(port, "dan@example.test", "dapper battery staple"), "{}", dovecot.log());

    // A new password applies at once, and the old one stops working.
    with_password(&s, &["mailbox", "passwd", "ann@example.test"], "staple battery horse");
    assert!(logs_in(port, "ann@example.test", "staple battery horse"));
    assert!(!logs_in(port, "ann@example.test", "correct horse battery"));
    // Disabled: refused at once, even with the right password.
    s.ok(&["mailbox", "set", "ann@example.test", "--disable"]);
    assert!(!logs_in(port, "ann@example.test", "staple battery horse"));
    s.ok(&["mailbox", "set", "ann@example.test", "--enable"]);
    assert!(logs_in(port, "ann@example.test", "staple battery horse"));
    drop(serve);
    assert!(dovecot.vmail.join("example.test/ann/Maildir").exists());
}

/// Signs in to the console as `ops` and adds a mailbox with the Mailboxes page's form, as an
/// administrator's browser does (session cookie, CSRF field).
async fn add_in_console(console: &str, address: &str, password: &str) {
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = http
        .post(format!("{console}/login"))
        .form(&[("name", "ops"), ("password", "operator passphrase 1")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::SEE_OTHER, "console login");
    let cookie =
        login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let page =
        http.get(format!("{console}/mailboxes")).header("cookie", &cookie).send().await.unwrap();
    let page = page.text().await.unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF field on the Mailboxes page: {page}"));
    let added = http
        .post(format!("{console}/mailboxes"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf), ("address", address), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), reqwest::StatusCode::SEE_OTHER, "{}", added.text().await.unwrap());
}

/// Adds a mailbox with `POST /api/v1/mailboxes`, as a script does.
async fn add_with_api(console: &str, bearer: &str, address: &str, password: &str) {
    let created = reqwest::Client::new()
        .post(format!("{console}/api/v1/mailboxes"))
        .bearer_auth(bearer)
        .json(&serde_json::json!({"address": address, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED, "{}", created.text().await.unwrap());
}

#[test]
fn imap_logins_sqlite() {
    imap_logins(&TestDb::sqlite(), "dovecot::imap_logins_sqlite");
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_logins_postgres() {
    let Some(db) = TestDb::postgres("dovecot::imap_logins_postgres").await else { return };
    tokio::task::spawn_blocking(move || imap_logins(&db, "dovecot::imap_logins_postgres"))
        .await
        .unwrap();
}

#[test]
fn sendmail_without_a_running_engine_says_so() {
    let s = Setup::new(&TestDb::sqlite().database);
    s.ok(&["domain", "add", "example.test"]);
    let out = s.run(&["sendmail", "ann@example.test"], "Subject: x\n\nbody\n");
    assert_eq!(out.status.code(), Some(75), "EX_TEMPFAIL");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("postern serve") && err.contains("not sent"), "{err}");
    let out = s.run(&["sendmail"], "Subject: x\n\nbody\n");
    assert_eq!(out.status.code(), Some(64), "EX_USAGE without recipients");
    let out = s.run(&["sendmail", "-bp"], "");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("postern queue list"));
}

/// `postern dovecot checkpassword` run as Dovecot runs it: credentials on descriptor 3, the
/// reply program (here `env`, to see what it is handed) run only on success.
fn checkpassword(s: &Setup, input: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "printf '{input}' | {} --config {} dovecot checkpassword --mail-owner 4242 /usr/bin/env 3<&0",
            env!("CARGO_BIN_EXE_postern"),
            s.config().display()
        ))
        .envs(s.env.iter().map(|(k, v)| (k, v)))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), text + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn checkpassword_speaks_dovecots_protocol() {
    let s = Setup::new(&TestDb::sqlite().database);
    s.ok(&["domain", "add", "example.test"]);
    with_password(
        &s,
        &["mailbox", "add", "ann@example.test", "--quota", "1G"],
        "correct horse battery",
    );
    let (code, out) = checkpassword(&s, "Ann@Example.TEST\\0correct horse battery\\0", &[]);
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "USER=ann@example.test",
        "userdb_uid=4242",
        "userdb_mail=maildir:~",
        "userdb_quota_rule=*:bytes=1073741824",
        "EXTRA=userdb_uid userdb_gid userdb_mail userdb_quota_rule",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} missing from {out}");
    }
    assert!(out.lines().any(|l| l.starts_with("HOME=") && l.ends_with("/mail/example.test/ann")));
    // Wrong password 1, unknown user 3, and a userdb lookup (no password) answered AUTHORIZED=2.
    let (code, _) = checkpassword(&s, "ann@example.test\\0wrong\\0", &[]);
    assert_eq!(code, Some(1));
    let (code, _) = checkpassword(&s, "carl@example.test\\0correct horse battery\\0", &[]);
    assert_eq!(code, Some(3));
    let (code, out) = checkpassword(&s, "ann@example.test\\0\\0", &[("AUTHORIZED", "1")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.lines().any(|l| l == "AUTHORIZED=2"), "{out}");
    // A store that cannot be reached is a temporary failure (111), never "unknown user".
    let (code, out) = checkpassword(
        &s,
        "ann@example.test\\0correct horse battery\\0",
        &[("POSTERN_DATABASE", "postgres://postern@127.0.0.1:1/none")],
    );
    assert_eq!(code, Some(111), "{out}");

    // The configuration to paste names this binary, this config and the auth user.
    let config = s.ok(&["dovecot", "config", "--mail", "dovecot"]);
    assert!(config.contains("driver = checkpassword"), "{config}");
    assert!(config.contains(&format!("--config {}", s.config().display())), "{config}");
    assert!(
        config.contains("--mail dovecot --mail-owner vmail") && config.contains("service auth")
    );
}

fn swaks(addr: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(["--server", &addr.ip().to_string(), "--port", &addr.port().to_string()])
        .args(["--timeout", "20", "--tls"])
        .args(args)
        .output()
        .expect("run swaks");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// SMTP AUTH on 587 checked by Dovecot's authentication service (`[auth] backend = "dovecot"`):
/// a user only Dovecot knows logs in and sends as itself, a wrong password is 535, and Dovecot
/// gone is a temporary failure.
#[test]
fn smtp_auth_through_dovecot() {
    let test = "dovecot::smtp_auth_through_dovecot";
    if Command::new("swaks").arg("--version").output().is_err() {
        missing_peer(test, "swaks is not installed (Debian package swaks)");
        return;
    }
    let s = Setup::new(&TestDb::sqlite().database);
    let Some(dovecot) = dovecot(test, &s, None, "dave@example.test:{PLAIN}only in dovecot\n")
    else {
        return;
    };
    s.ok(&["domain", "add", "example.test"]);
    with_password(&s, &["mailbox", "add", "ann@example.test"], "correct horse battery");
    let lmtp = format!("lmtp:unix:{}", dovecot.lmtp.display());
    s.ok(&["transport", "set", "example.test", &lmtp]);
    let socket = dovecot.dir.join("run/auth-client");
    let mut config = std::fs::read_to_string(s.config()).unwrap();
    config.push_str(&format!("[auth]\nbackend = \"dovecot\"\ndovecot_socket = {socket:?}\n"));
    std::fs::write(s.config(), config).unwrap();
    let serve = s.serve();
    let submission = serve.listeners["submission"];

    let dave =
        ["--auth", "PLAIN", "--auth-user", "dave@example.test", "--from", "dave@example.test"];
    let (ok, text) = swaks(
        submission,
        &[&dave[..], &["--auth-password", "only in dovecot", "--to", "ann@example.test"]].concat(),
    );
    assert!(ok && text.contains("235 2.7.0"), "{text}\n{}", dovecot.log());
    assert!(text.contains("250 2.0.0"), "{text}");
    let body = last_message(&dovecot, "ann@example.test", "correct horse battery", 1);
    assert!(body.contains("authenticated as dave@example.test"), "{body}");

    let (ok, text) = swaks(
        submission,
        &[&dave[..], &["--auth-password", "wrong", "--to", "ann@example.test"]].concat(),
    );
    assert!(!ok && text.contains("535 5.7.8"), "{text}");
    // Postern's own mailboxes reach Dovecot through checkpassword: they log in too (LOGIN).
    let (ok, text) = swaks(
        submission,
        &[
            "--auth",
            "LOGIN",
            "--auth-user",
            "ann@example.test",
            "--auth-password",
            "correct horse battery",
            "--from",
            "ann@example.test",
            "--to",
            "ann@example.test",
        ],
    );
    assert!(ok && text.contains("235 2.7.0"), "{text}");

    // Dovecot gone: a temporary failure, never "wrong password".
    drop(dovecot);
    let (ok, text) = swaks(
        submission,
        &[&dave[..], &["--auth-password", "only in dovecot", "--to", "ann@example.test"]].concat(),
    );
    assert!(!ok && text.contains("454 4.7.0"), "{text}");
}
