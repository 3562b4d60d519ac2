//! The administration commands as a user types them: clear errors, non-zero exits, `--json`
//! lists, passwords from standard input, and `config example|check`.

mod common;

use common::Setup;
use postern_store::testing::TestDb;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn administration(db: &TestDb) {
    let s = Setup::new(&db.database);
    s.ok(&["domain", "add", "Example.TEST"]);
    s.ok(&["domain", "add", "relay.test", "--relay"]);
    let domains = json(&s.ok(&["domain", "list", "--json"]));
    assert_eq!(domains[0]["name"], "example.test");
    assert_eq!(domains[1]["kind"], "relay");

    let out = s.run(
        &["mailbox", "add", "ann@example.test", "--name", "Ann", "--quota", "1G"],
        "correct horse battery\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mailboxes = s.ok(&["mailbox", "list", "--json"]);
    assert!(!mailboxes.contains("argon2") && !mailboxes.contains("password"), "{mailboxes}");
    assert_eq!(json(&mailboxes)[0]["quota_bytes"], 1u64 << 30);
    let out = s.run(&["mailbox", "passwd", "ann@example.test"], "another long one\n");
    assert!(out.status.success());
    let err = String::from_utf8(s.run(&["mailbox", "add", "bob@example.test"], "").stderr).unwrap();
    assert!(err.contains("no password on standard input"), "{err}");
    let err = String::from_utf8(s.run(&["mailbox", "add", "bob@example.test"], "short\n").stderr)
        .unwrap();
    assert!(err.contains("password: must be at least 8 characters"), "{err}");
    // The most common passwords and the mailbox's own name are refused.
    for (typed, expected) in
        [("Password123\n", "most common passwords"), ("bob@example.test\n", "own name")]
    {
        let out = s.run(&["mailbox", "add", "bob@example.test"], typed);
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success() && err.contains(expected), "{err}");
    }
    let err =
        String::from_utf8(s.run(&["mailbox", "passwd", "ann@example.test"], "iloveyou1\n").stderr)
            .unwrap();
    assert!(err.contains("most common passwords"), "{err}");

    // The send-as list: set, shown, cleared, and refused when malformed.
    let out =
        s.ok(&["mailbox", "set", "ann@example.test", "--send-as", "ceo@example.test, @relay.test"]);
    assert!(out.contains("send as: ceo@example.test,@relay.test"), "{out}");
    let listed = json(&s.ok(&["mailbox", "list", "--json"]));
    assert_eq!(listed[0]["send_as"], serde_json::json!(["ceo@example.test", "@relay.test"]));
    let err = s.fails(&["mailbox", "set", "ann@example.test", "--send-as", "not an address"]);
    assert!(err.contains("send_as"), "{err}");
    s.ok(&["mailbox", "set", "ann@example.test", "--send-as", ""]);
    assert_eq!(json(&s.ok(&["mailbox", "list", "--json"]))[0]["send_as"], serde_json::json!([]));

    let err = s.fails(&["mailbox", "add", "bob@nowhere.test"]);
    assert!(err.contains("domain nowhere.test does not exist"), "{err}");
    let err = s.fails(&["mailbox", "add", "bob@relay.test"]);
    assert!(err.contains("relay domain"), "{err}");

    s.ok(&["alias", "add", "sales@example.test", "ann@example.test", "ext@other.example"]);
    s.ok(&["alias", "add", "a@example.test", "b@example.test"]);
    let err = s.fails(&["alias", "add", "b@example.test", "a@example.test"]);
    assert!(
        err.contains("alias loop: b@example.test -> a@example.test -> b@example.test"),
        "{err}"
    );
    let err = s.fails(&["alias", "add", "x@example.test", "not an address"]);
    assert!(err.contains("address:"), "{err}");
    let aliases = json(&s.ok(&["alias", "list", "--json"]));
    assert_eq!(aliases.as_array().unwrap().len(), 2);

    s.ok(&["transport", "set", "relay.test", "smtp:[127.0.0.1]:2526", "--tls", "encrypt"]);
    let err = s.fails(&["transport", "set", "x.test", "pipe:/bin/sh"]);
    assert!(err.contains("transport: \"pipe:/bin/sh\" is not a transport"), "{err}");
    let err = s.fails(&["transport", "set", "x.test", "mx", "--tls", "sometimes"]);
    assert!(err.contains("tls: \"sometimes\" is not a TLS policy"), "{err}");
    let out = s.run(
        &["transport", "set", "*", "smtp:[relay.example.net]:587", "--auth-user", "me"],
        "relay-password\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let transports = s.ok(&["transport", "list", "--json"]);
    assert!(!transports.contains("relay-password"), "{transports}");

    s.ok(&["network", "add", "192.0.2.0/24", "--description", "office"]);
    let err = s.fails(&["network", "add", "192.0.2.1/24"]);
    assert!(err.contains("did you mean 192.0.2.0/24"), "{err}");
    let networks = json(&s.ok(&["network", "list", "--json"]));
    assert_eq!(networks.as_array().unwrap().len(), 3);

    let err = s.fails(&["domain", "remove", "example.test"]);
    assert!(err.contains("--cascade"), "{err}");
    s.ok(&["domain", "remove", "example.test", "--cascade"]);
    let check = s.ok(&["config", "check"]);
    assert!(check.contains("no problems found"), "{check}");
}

#[test]
fn administration_sqlite() {
    administration(&TestDb::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn administration_postgres() {
    let Some(db) = TestDb::postgres("cli::administration_postgres").await else { return };
    tokio::task::spawn_blocking(move || administration(&db)).await.unwrap();
}

#[test]
fn config_example_passes_check() {
    let db = TestDb::sqlite();
    let s = Setup::new(&db.database);
    let example = s.ok(&["config", "example"]);
    std::fs::write(s.config(), example).unwrap();
    let data = s.dir.path().join("data");
    let out = s.command(&["config", "check"]).env("POSTERN_DATA_DIR", &data).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok       hostname mail.example.com"), "{text}");
    assert!(text.contains("ok       delivery: 100 at once, 20 per destination; retries 5m to 4000s, give up after 5d, delay warning off"), "{text}");
    assert!(text.contains("no domains"), "{text}");
}

#[test]
fn config_check_reports_problems_with_fixes() {
    let db = TestDb::sqlite();
    let s = Setup::new(&db.database);
    std::fs::write(s.config(), "hostname = \"mail.example.test\"\n[log]\nformat = \"xml\"\n")
        .unwrap();
    let out = s.run(&["config", "check"], "");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PROBLEM") && text.contains("log.format = \"xml\""), "{text}");
    assert!(text.contains("fix:"), "{text}");

    std::fs::write(
        s.config(),
        "hostname = \"mail.example.test\"\n[delivery]\ngive_up = \"5 days\"\n",
    )
    .unwrap();
    let out = s.run(&["config", "check"], "");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("delivery.give_up = \"5 days\": must be a whole number and a unit"),
        "{text}"
    );
}

#[test]
fn help_lists_every_command() {
    let db = TestDb::sqlite();
    let s = Setup::new(&db.database);
    let help = s.ok(&["--help"]);
    for cmd in ["serve", "config", "domain", "mailbox", "alias", "transport", "network", "queue"] {
        assert!(help.contains(cmd), "{cmd} missing from --help");
    }
}

/// `postern admin create` then `postern token create`: the printed bearer authenticates as the
/// new administrator, with the scope asked for, and no list shows a hash or a secret.
fn admin_and_token(s: &Setup) -> String {
    for (typed, expected) in
        [("qwerty123\n", "most common passwords"), ("ALICE-ADMIN\n", "own name")]
    {
        let out = s.run(&["admin", "create", "alice-admin", "--role", "admin"], typed);
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success() && err.contains(expected), "{err}");
    }
    let out = s.run(&["admin", "create", "alice", "--role", "admin"], "correct horse battery\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let admins = s.ok(&["admin", "list", "--json"]);
    assert_eq!(json(&admins)[0]["name"], "alice");
    assert!(!admins.contains("argon2"), "{admins}");
    let out = s.run(&["token", "create", "--owner", "alice", "--name", "ci", "--read-only"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown this once"));
    let bearer = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(bearer.starts_with("pst_"), "{bearer}");
    let tokens = s.ok(&["token", "list", "--json"]);
    // `pst_<id>_<secret>`; the secret is URL-safe base64 and may hold `_` itself.
    let secret = bearer.strip_prefix("pst_").and_then(|t| t.split_once('_')).unwrap().1;
    assert!(secret.len() >= 32 && !tokens.contains(secret), "{tokens}");
    let err = s.fails(&["token", "create", "--owner", "nobody", "--name", "x"]);
    assert!(err.contains("nobody"), "{err}");
    bearer
}

async fn token_authenticates(store: &postern_store::Store, bearer: &str) {
    let (token, owner) = store.authenticate_token(bearer).await.unwrap().expect("the token works");
    assert_eq!(owner.name.as_str(), "alice");
    assert_eq!((token.name.as_str(), token.access), ("ci", postern_store::model::Access::Read));
    assert!(store.authenticate_token(&format!("{bearer}x")).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_and_token_from_the_cli_sqlite() {
    let db = TestDb::sqlite();
    let s = Setup::new(&db.database);
    let (s, bearer) = tokio::task::spawn_blocking(move || {
        let bearer = admin_and_token(&s);
        (s, bearer)
    })
    .await
    .unwrap();
    // The CLI used the store of its config: `data/postern.db` next to it.
    let data = s.dir.path().join("data");
    let database = postern_store::Database::Sqlite { path: data.join("postern.db") };
    let store = postern_store::Store::open(&database, &data.join("secret.key")).await.unwrap();
    token_authenticates(&store, &bearer).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_and_token_from_the_cli_postgres() {
    let Some(db) = TestDb::postgres("cli::admin_and_token_from_the_cli_postgres").await else {
        return;
    };
    let database = db.database.clone();
    let bearer =
        tokio::task::spawn_blocking(move || admin_and_token(&Setup::new(&database))).await.unwrap();
    let store = db.open().await;
    token_authenticates(&store, &bearer).await;
    store.close().await;
}

/// Commands started together on a fresh store: each must find the schema whole, none may try
/// to create it a second time (SQLite has no migration lock of its own; Postgres has sqlx's).
fn first_commands_at_once(db: &TestDb) {
    let s = Setup::new(&db.database);
    let children: Vec<_> = (0..8)
        .map(|_| {
            s.command(&["domain", "list", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start postern")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("postern ran");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(json(&String::from_utf8_lossy(&out.stdout)), serde_json::json!([]));
    }
}

#[test]
fn first_commands_at_once_sqlite() {
    for _ in 0..3 {
        first_commands_at_once(&TestDb::sqlite());
    }
}

#[tokio::test]
async fn first_commands_at_once_postgres() {
    let Some(db) = TestDb::postgres("first_commands_at_once_postgres").await else { return };
    first_commands_at_once(&db);
}

/// The safety rails from the command line: an alias over a mailbox needs a choice, an alias to
/// itself alone is refused, an open-relay network needs `--force` and is then reported by
/// `config check`.
fn safety_rails(db: &TestDb) {
    let s = Setup::new(&db.database);
    s.ok(&["domain", "add", "example.test"]);
    let out = s.run(&["mailbox", "add", "ann@example.test"], "correct horse battery\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let err = s.fails(&["alias", "add", "ann@example.test", "boss@other.example"]);
    assert!(err.contains("ann@example.test is a mailbox"), "{err}");
    let out = s.ok(&["alias", "add", "ann@example.test", "boss@other.example", "--also-mailbox"]);
    assert!(out.contains("ann@example.test -> ann@example.test, boss@other.example"), "{out}");
    let err = s.fails(&["alias", "add", "me@example.test", "me@example.test"]);
    assert!(err.contains("cannot point only at itself"), "{err}");
    let out = s.run(&["alias", "add", "team@example.test", "later@example.test"], "");
    assert!(out.status.success());
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("warning: later@example.test is not a mailbox or alias yet"),
        "{warning}"
    );

    let err = s.fails(&["network", "add", "0.0.0.0/0"]);
    assert!(err.contains("open relay") && err.contains("--force"), "{err}");
    let check = s.ok(&["config", "check"]);
    assert!(!check.contains("open relay"), "{check}");
    s.ok(&["network", "add", "0.0.0.0/0", "--force"]);
    let out = s.run(&["config", "check"], "");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PROBLEM  trusted network 0.0.0.0/0: 0.0.0.0/0 reaches beyond private"),
        "{text}"
    );
    assert!(text.contains("fix: postern network remove 0.0.0.0/0"), "{text}");
}

#[test]
fn safety_rails_sqlite() {
    safety_rails(&TestDb::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn safety_rails_postgres() {
    let Some(db) = TestDb::postgres("cli::safety_rails_postgres").await else { return };
    tokio::task::spawn_blocking(move || safety_rails(&db)).await.unwrap();
}
