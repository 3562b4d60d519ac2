//! What `postern` leaves on disk, as a user runs it: the data directory and the store's files are
//! the owner's alone whatever the umask.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Serve, Setup};
use postern_store::testing::TestDb;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `cmd` run with the usual umask, 022, whatever the test's own.
fn with_umask_022(mut cmd: Command) -> Command {
    // SAFETY: only umask between fork and exec, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    cmd
}

fn assert_private(data: &Path) {
    assert_eq!(mode(data), 0o700, "the data directory");
    for file in ["postern.db", "postern.db-wal", "postern.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&data.join("tls")), 0o700, "the certificate directory");
    assert_eq!(mode(&data.join("tls/mail.example.test.key")), 0o600, "the TLS key");
}

#[test]
fn serve_keeps_a_fresh_data_directory_private() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let _serve = Serve::start(with_umask_022(setup.command(&["serve"])));
    assert_private(&setup.dir.path().join("data"));
}

#[test]
fn the_cli_on_a_fresh_data_directory_keeps_it_private() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let out = with_umask_022(setup.command(&["domain", "add", "example.test"])).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let data = setup.dir.path().join("data");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("postern.db")), 0o600);
}

/// A data directory and database left open by an earlier version are tightened, and the
/// change is logged.
#[test]
fn serve_tightens_what_an_earlier_version_left_open() {
    let db = TestDb::sqlite();
    let setup = Setup::new(&db.database);
    let data = setup.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("postern.db"), b"").unwrap();
    std::fs::set_permissions(data.join("postern.db"), std::fs::Permissions::from_mode(0o644))
        .unwrap();
    let serve = Serve::start(with_umask_022(setup.command(&["serve"])));
    assert_private(&data);
    let tightened = |l: &serde_json::Value| {
        l["message"].as_str().is_some_and(|m| m.contains("tightened"))
            && l["from"] == "0755"
            && l["path"].as_str().is_some_and(|p| p.ends_with("data"))
    };
    serve.wait_log(Duration::from_secs(5), tightened).expect("a log line saying so");
}
