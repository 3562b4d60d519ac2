//! Test support: a throwaway store on SQLite (a temp file) or Postgres (a private schema), and the
//! rule for peers: a test that needs a missing peer skips, saying so, unless
//! `POSTERN_TEST_REQUIRE_PEERS=1` (set by CI), where it fails.

use std::path::PathBuf;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::{Database, Store};

pub mod certs;
mod ports;

pub use ports::free_port;

/// The Postgres to test against, e.g. `postgres://postgres@127.0.0.1:5432/test`.
pub const POSTGRES_URL_VAR: &str = "POSTERN_TEST_POSTGRES_URL";
/// Set to `1` to make tests that need a peer fail, instead of skip, when it is missing.
pub const REQUIRE_PEERS_VAR: &str = "POSTERN_TEST_REQUIRE_PEERS";

pub fn peers_required() -> bool {
    std::env::var(REQUIRE_PEERS_VAR).is_ok_and(|v| v == "1")
}

/// Reports a missing peer: panics under CI, otherwise prints why the test is skipped and counts
/// it for the summary the test binary prints as it ends.
pub fn missing_peer(test: &str, why: &str) {
    if peers_required() {
        panic!("{test}: {why} ({REQUIRE_PEERS_VAR}=1 makes this a failure)");
    }
    eprintln!("SKIPPED {test}: {why}");
    skipped::record(test, why);
}

/// The skipped tests of this test binary. The harness reports a skipped test as `ok` and hides
/// what it printed, so the binary says at exit, after the harness's own summary, how many
/// tests did not really run and why.
mod skipped {
    use std::io::Write;
    use std::sync::{Mutex, Once};

    static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static AT_EXIT: Once = Once::new();

    pub(super) fn record(test: &str, why: &str) {
        SKIPPED.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{test}: {why}"));
        // libtest ends with `process::exit` or a return from `main`; both run `atexit` handlers.
        AT_EXIT.call_once(|| {
            // SAFETY: `report` is an `extern "C" fn()` that neither unwinds nor calls `exit`.
            unsafe { libc::atexit(report) };
        });
    }

    extern "C" fn report() {
        let skipped = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = format!(
            "\nSKIPPED {} test(s) of this binary for want of a peer ({}=1 makes that a failure):\n",
            skipped.len(),
            super::REQUIRE_PEERS_VAR,
        );
        for line in skipped.iter() {
            text.push_str(&format!("    {line}\n"));
        }
        // Unbuffered, and errors are ignored: nothing may unwind out of an `atexit` handler.
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

/// A database that lives as long as the value: a temp directory, or a Postgres schema dropped
/// on drop.
pub struct TestDb {
    pub database: Database,
    dir: tempfile::TempDir,
    schema: Option<(String, String)>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temp directory");
        let database = Database::Sqlite { path: dir.path().join("postern.db") };
        TestDb { database, dir, schema: None }
    }

    /// A fresh schema in the test Postgres, or `None` (after [`missing_peer`]) when there is none.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let Ok(base) = std::env::var(POSTGRES_URL_VAR) else {
            missing_peer(test, &format!("{POSTGRES_URL_VAR} is not set"));
            return None;
        };
        let mut conn = match PgConnection::connect(&base).await {
            Ok(c) => c,
            Err(e) => {
                missing_peer(test, &format!("cannot connect to {POSTGRES_URL_VAR}: {e}"));
                return None;
            }
        };
        let schema = format!("pt_{:016x}", rand::random::<u64>());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .expect("CREATE SCHEMA in the test database");
        let _ = conn.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let dir = tempfile::tempdir().expect("a temp directory");
        Some(TestDb { database: Database::Postgres { url }, dir, schema: Some((base, schema)) })
    }

    /// A directory that lives as long as the database, for data files of the test.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The key file of this database's sealed secrets, in the test's directory.
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join(crate::secrets::KEY_FILE_NAME)
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.database, &self.key_file()).await.expect("open the test store")
    }

    /// Runs `sql` (one statement, or several on Postgres) on a connection of its own, beside
    /// the store: for tests that break or inspect the database behind the store's back.
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &self.database {
            Database::Postgres { url } => {
                let mut conn =
                    PgConnection::connect(url).await.expect("connect to the test schema");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect("the test's SQL");
                let _ = conn.close().await;
            }
            Database::Sqlite { path } => {
                let url = format!("sqlite://{}", path.display());
                let mut conn =
                    sqlx::SqliteConnection::connect(&url).await.expect("open the test database");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect("the test's SQL");
                let _ = conn.close().await;
            }
        }
    }

    /// The first column of the first row of `sql`, read as [`TestDb::execute`] runs.
    pub async fn fetch_i64(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &self.database {
            Database::Postgres { url } => {
                let mut conn =
                    PgConnection::connect(url).await.expect("connect to the test schema");
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("the test's SQL")
            }
            Database::Sqlite { path } => {
                let url = format!("sqlite://{}", path.display());
                let mut conn =
                    sqlx::SqliteConnection::connect(&url).await.expect("open the test database");
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("the test's SQL")
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((base, schema)) = self.schema.take() else {
            return;
        };
        // Drop runs outside any runtime we may block: clean up on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&base).await.ok()?;
                // A connection a failed test left mid-transaction must not hang the suite.
                sqlx::query("SET lock_timeout = '10s'").execute(&mut conn).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        });
        let _ = cleanup.join();
    }
}

/// Runs each named `async fn name(store: Store)` twice, as the tests `name::sqlite` and
/// `name::postgres`. The functions are ordinary items beside the macro, so that rustfmt formats
/// them:
///
/// ```ignore
/// postern_store::store_tests!(adds_a_domain, refuses_a_duplicate);
///
/// async fn adds_a_domain(store: Store) { /* … */ }
/// ```
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        $(
            // A module and a function may share a name: they live in different namespaces.
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let db = $crate::testing::TestDb::sqlite();
                    let store = db.open().await;
                    super::$name(store.clone()).await;
                    store.close().await;
                }

                #[tokio::test]
                async fn postgres() {
                    let test = concat!(module_path!(), "::postgres");
                    if let Some(db) = $crate::testing::TestDb::postgres(test).await {
                        let store = db.open().await;
                        super::$name(store.clone()).await;
                        store.close().await;
                    }
                }
            }
        )*
    };
}

/// Changes the database behind the store's back, as an administrator with `sqlite3` or `psql`
/// might, and bumps the revision so that engines notice: for testing what happens when the
/// stored configuration breaks a rule the store would have refused.
pub async fn hand_edit(store: &Store, sql: &'static str) {
    let pool = store.pool();
    sqlx::query(sql).execute(pool).await.expect("hand edit");
    let revision: i64 = sqlx::query_scalar(
        "UPDATE config_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision",
    )
    .fetch_one(pool)
    .await
    .expect("bump the revision");
    store.inner.advance(revision);
}
