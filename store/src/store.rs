//! The `Store` handle: a connection pool, the backend it talks to, and the local end of the change
//! feed. Every configuration change goes through a [`Change`], which bumps the revision, writes an
//! audit record and announces itself on commit, all in one transaction.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::watch;

use crate::database::Database;
use crate::error::{Result, StoreError};
use crate::model::{Config, QueueId};
use crate::secrets::SecretKey;
use crate::{files, postgres, repo, sqlite};

/// A cheap, cloneable handle on the store.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: AnyPool,
    pub(crate) database: Database,
    /// Seals and opens the secrets the store must give back (smarthost passwords).
    pub(crate) secrets: SecretKey,
    /// The newest revision this process knows of: set by local commits at once, and by the
    /// watcher for commits made elsewhere.
    pub(crate) revision: watch::Sender<i64>,
    /// The newest queue event this process wrote (see `repo::queue`).
    pub(crate) queue_event: watch::Sender<i64>,
    /// The last queue ID this process made: the next one must be greater.
    pub(crate) last_queue_id: std::sync::Mutex<Option<QueueId>>,
    /// What the queue's records are stamped with: the system clock, or a test's simulated one
    /// (so that the store and the scheduler agree on what "now" is).
    pub(crate) clock: std::sync::RwLock<crate::clock::Clock>,
    /// Where message bodies too large to stay inline go (`crate::spool`).
    pub(crate) bodies: crate::spool::Bodies,
    /// The Prometheus counters of this appliance (`crate::metrics`).
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("database", &self.inner.database).finish()
    }
}

impl Inner {
    /// Records that `revision` exists, waking subscribers if it is newer than what they saw.
    pub(crate) fn advance(&self, revision: i64) {
        self.revision.send_if_modified(|known| {
            let newer = revision > *known;
            if newer {
                *known = revision;
            }
            newer
        });
    }

    /// Records that queue event `event` exists, waking subscribers if it is newer.
    pub(crate) fn advance_queue_event(&self, event: i64) {
        self.queue_event.send_if_modified(|known| {
            let newer = event > *known;
            if newer {
                *known = event;
            }
            newer
        });
    }
}

pub(crate) use crate::clock::now;

impl Store {
    /// The clock the queue's records are stamped with.
    pub fn clock(&self) -> crate::clock::Clock {
        self.inner.clock.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stamps the queue's records with `clock` from now on (tests: a simulated clock).
    pub fn set_clock(&self, clock: crate::clock::Clock) {
        *self.inner.clock.write().unwrap_or_else(|p| p.into_inner()) = clock;
    }

    /// Connects, creating the SQLite file if needed, brings the schema up to date, and loads the
    /// key that seals stored secrets from `key_file` (created if the database holds none yet;
    /// refused, naming the file, if it does not open what is sealed).
    pub async fn open(database: &Database, key_file: &Path) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let pool = match database {
            Database::Sqlite { path } => {
                let fail = |e: std::io::Error| StoreError::Connect {
                    url: database.to_string(),
                    message: format!("cannot create or chmod {} (mode 0600): {e}", path.display()),
                };
                // Created by us with mode 0600 before SQLite sees it: SQLite would create it
                // 0644 (less the umask), and gives the -wal and -shm files it makes the
                // database file's mode.
                files::private_file(path).map_err(fail)?;
                let pool = sqlite::connect(path).await?;
                sqlite::migrate(&pool, path).await?;
                // Once, for a file made before incremental vacuum was on; not fatal (another
                // process holding the file makes the VACUUM wait, then give up).
                if let Err(e) = crate::upkeep::enable_incremental_vacuum(&pool).await {
                    tracing::warn!(error = %e, "cannot turn on incremental vacuum; will try again");
                }
                // Ones an earlier version left behind may be looser.
                for suffix in ["-wal", "-shm"] {
                    let mut name = path.clone().into_os_string();
                    name.push(suffix);
                    files::tighten_file(Path::new(&name)).map_err(fail)?;
                }
                pool
            }
            Database::Postgres { url } => {
                let pool = postgres::connect(url).await?;
                postgres::MIGRATOR.run(&pool).await?;
                pool
            }
        };
        let secrets = repo::sealed::prepare(&pool, key_file).await?;
        let current = read_revision(&pool).await?;
        let (revision, _) = watch::channel(current);
        // Where an engine's tail of queue events starts: what exists already is history.
        let last_event: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM queue_events")
            .fetch_one(&pool)
            .await?;
        let (queue_event, _) = watch::channel(last_event);
        // Files beside the SQLite database (`<data_dir>/spool` by default); rows in the
        // database with Postgres, which every engine sharing it can reach.
        let files = match database {
            Database::Sqlite { path } => Some(crate::spool::FileStore::new(
                path.parent().unwrap_or(Path::new(".")).join("spool"),
            )),
            Database::Postgres { .. } => None,
        };
        let bodies = crate::spool::Bodies {
            use_files: files.is_some(),
            files,
            db: crate::spool::DbStore::new(pool.clone()),
        };
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                database: database.clone(),
                secrets,
                revision,
                queue_event,
                last_queue_id: std::sync::Mutex::new(None),
                clock: Default::default(),
                bodies,
                metrics: Arc::default(),
            }),
        })
    }

    /// The counters the engine bumps and `/metrics` shows.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.inner.metrics
    }

    pub fn database(&self) -> &Database {
        &self.inner.database
    }

    /// The file the key to sealed secrets came from.
    pub fn key_file(&self) -> &Path {
        self.inner.secrets.path()
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.inner.database, Database::Postgres { .. })
    }

    /// The revision as the database has it now.
    pub async fn revision(&self) -> Result<i64> {
        read_revision(&self.inner.pool).await
    }

    /// The whole configuration, read in one consistent transaction.
    pub async fn load_config(&self) -> Result<Config> {
        let mut tx = self.inner.pool.begin().await?;
        if self.is_postgres() {
            // Read committed would let a commit land between two of the reads below.
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let config = repo::config::load(&mut tx, &self.inner.secrets).await?;
        tx.rollback().await?;
        Ok(config)
    }

    /// Starts a configuration change made by `actor` (`cli:alice`, `console:admin`…).
    pub(crate) async fn change(&self, actor: &str) -> Result<Change> {
        let mut tx = self.inner.pool.begin().await?;
        // Writing first takes the write lock at once: on SQLite no deferred transaction has to be
        // upgraded later (which can fail with SQLITE_BUSY), on Postgres the row lock serialises
        // configuration changes so that whole-configuration checks see every earlier commit.
        let revision: i64 = sqlx::query_scalar(
            "UPDATE config_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision",
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok(Change { tx, revision, actor: actor.to_string(), store: self.clone() })
    }

    /// Closes the pool; pending changes are finished first.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }
}

pub(crate) async fn read_revision(pool: &AnyPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT revision FROM config_revision WHERE id = 1")
        .fetch_one(pool)
        .await?)
}

/// One configuration change in progress: a transaction that has already claimed its revision.
/// Dropped without [`Change::commit`], it rolls back and nothing is announced.
pub(crate) struct Change {
    tx: Transaction<'static, Any>,
    revision: i64,
    actor: String,
    store: Store,
}

impl Change {
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Records what changed. `before`/`after` are the public (secret-free) JSON of the object.
    pub(crate) async fn audit(
        &mut self,
        action: &str,
        object: &str,
        before: Option<&impl Serialize>,
        after: Option<&impl Serialize>,
    ) -> Result<()> {
        // Always an object (the API documents `before`/`after` so): a plain value is wrapped.
        fn json(v: Option<&impl Serialize>) -> Option<String> {
            v.map(|v| {
                let text = serde_json::to_string(v).expect("model types serialise to JSON");
                if text.starts_with('{') || text == "null" {
                    text
                } else {
                    format!("{{\"value\":{text}}}")
                }
            })
        }
        sqlx::query(
            "INSERT INTO audit_log (revision, at, actor, action, object, before_json, after_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(self.revision)
        .bind(now())
        .bind(&self.actor)
        .bind(action)
        .bind(object)
        .bind(json(before))
        .bind(json(after))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Refuses the change if the configuration it leaves behind breaks a cross-resource rule,
    /// reporting the problem of `object` (the thing being changed) when it has one.
    pub(crate) async fn check_consistency(&mut self, object: &str) -> Result<()> {
        let config = repo::config::load(&mut self.tx, &self.store.inner.secrets).await?;
        let mut problems = config.problems();
        problems.sort_by_key(|p| p.object != object);
        if let Some(problem) = problems.into_iter().next() {
            return Err(StoreError::Conflict(format!("{}: {}", problem.object, problem.message)));
        }
        Ok(())
    }

    /// Ends the change: commits when `result` is `Ok`, rolls back at once when it is an error (a
    /// dropped transaction would only roll back when sqlx next touches the connection, holding the
    /// revision lock until then).
    pub(crate) async fn finish<T>(self, result: Result<T>) -> Result<T> {
        match result {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(e) => {
                if let Err(rollback) = self.tx.rollback().await {
                    tracing::warn!(error = %rollback, "rollback of a refused change failed");
                }
                Err(e)
            }
        }
    }

    /// Commits and announces the new revision: at once to this process, by NOTIFY (Postgres) or
    /// the revision poll (SQLite) to the others.
    async fn commit(mut self) -> Result<i64> {
        if self.store.is_postgres() {
            // Delivered to listeners only when the transaction commits.
            sqlx::query("NOTIFY postern_config").execute(&mut *self.tx).await?;
        }
        self.tx.commit().await?;
        self.store.inner.advance(self.revision);
        Ok(self.revision)
    }
}
