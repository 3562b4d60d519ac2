//! The store's files on disk are the owner's alone.

use super::*;

/// The SQLite file, its -wal and -shm are 0600 whatever the umask, and an older store's looser
/// files are tightened when it is opened.
#[tokio::test]
async fn sqlite_files_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let db = crate::testing::TestDb::sqlite();
    let crate::Database::Sqlite { path } = &db.database else { unreachable!() };
    let files =
        ["", "-wal", "-shm"].map(|s| std::path::PathBuf::from(format!("{}{s}", path.display())));
    let modes = || {
        files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().permissions().mode() & 0o777)
            .collect::<Vec<_>>()
    };

    let store = db.open().await;
    domain(&store, "example.com").await;
    assert_eq!(modes(), [0o600; 3]);
    assert_eq!(std::fs::metadata(db.key_file()).unwrap().permissions().mode() & 0o777, 0o600);
    for f in &files {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let again = db.open().await;
    assert_eq!(modes(), [0o600; 3]);
    again.close().await;
    store.close().await;
}
