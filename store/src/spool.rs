//! Where queued message bodies live. A small body stays inline, in `queue_bodies`, written in the
//! envelope's own transaction; a larger one goes to a [`BodyStore`] first, and the envelope
//! names it (`queue_messages.body_ref`). Two stores, chosen by the backend:
//!
//! - [`FileStore`], files under `<data_dir>/spool/` (the default with SQLite): each body is
//!   written and fsynced, and the directory fsynced once for a whole batch ([`BodyStore::sync`]),
//!   before the envelope commit that makes the message exist;
//! - [`DbStore`], rows of [`CHUNK`] bytes in `queue_body_chunks` (the default with Postgres, so
//!   that every engine sharing the database reaches every body), each row committed by a
//!   statement of its own as the body arrives (no connection or transaction is held between
//!   chunks), all of them before the envelope's commit, which is what makes the message exist.
//!
//! Either way `250` is said only once body and envelope are on stable storage. A body whose
//! envelope never committed (a crash, a failed batch, a client gone) is an orphan: swept at
//! start-up and by the upkeep ([`Store::spool_sweep`]). A message's removal (delivered, deleted,
//! expired) removes its chunks in the same transaction, by trigger (migration 0020); a file is
//! noted in `queue_body_trash` by the same trigger and unlinked after the commit
//! ([`Store::spool_empty_trash`]), so that a crash in between leaves nothing behind for good.

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use sqlx::AnyPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Result, StoreError};
use crate::store::{Store, now};

/// Bodies below this size stay inline in the envelope's transaction; a session holds at most
/// this much of a body in memory before it goes to the spool. Measured on the development
/// machine (2 cores, ext4 on virtio; SQLite WAL with `synchronous=FULL`): alone, a file written
/// and fsynced by each session, with one directory fsync per batch, costs less than inline from
/// about 64 KiB (240 µs against 380 µs; inline pays the WAL write and the checkpoint's), but
/// end to end (`bench/throughput.sh`, 100 KB messages relayed at 50 sessions, three runs each)
/// inline moved 516–607 messages/s and files 363–527: each file is one more fsync in the
/// session's path, an open and a read at delivery and an unlink after it, and the WAL's
/// fsync is shared by the whole batch. Messages of a few hundred KB are common, so the line
/// is at 256 KiB; 50 sessions hold at most 12.5 MiB of bodies in memory for it.
pub const INLINE_MAX: usize = 256 * 1024;

/// The size of a row of `queue_body_chunks`, and of a read from a spool file.
pub const CHUNK: usize = 256 * 1024;

/// How old an unreferenced body must be before a sweep while the engine runs removes it: older
/// than any transaction can take to commit (DATA's own limit is 10 minutes).
pub const ORPHAN_AGE: Duration = Duration::from_secs(3600);

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A place for message bodies, written and read as streams of chunks.
pub trait BodyStore: Send + Sync + 'static {
    /// Starts a new body under a name no other has.
    fn create(&self) -> BoxFuture<'_, Result<Box<dyn BodyWriter>>>;
    /// Reads the body named `name` (the part of a `body_ref` after the store's prefix).
    fn open<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Box<dyn BodyReader>>>;
    /// Removes a body; one that is already gone is not an error.
    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Makes the bodies committed so far findable after a crash (a file store's directory
    /// fsync): once for a batch of envelopes, before their commit.
    fn sync(&self) -> BoxFuture<'_, Result<()>>;
    /// The names of the bodies stored before `cutoff`, referenced or not: the sweep keeps those
    /// an envelope names.
    fn stored_before(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<Vec<String>>>;
    /// The prefix of this store's `body_ref`s: `file:` or `db:`.
    fn prefix(&self) -> &'static str;
}

/// A body being written.
pub trait BodyWriter: Send {
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, Result<()>>;
    /// Makes the body durable and returns its `body_ref` for the envelope.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<String>>;
    /// Throws away what was written.
    fn abort(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// A body being read, chunk by chunk.
pub trait BodyReader: Send {
    /// The next chunk; `None` at the end.
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>>>;
}

/// Where a message's body went when it was stored apart, for [`Store::queue_insert_streamed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledBody {
    pub body_ref: String,
    /// Bytes in the body store.
    pub len: u64,
    /// `true`: the body store holds what the client sent, and `NewMessage::body` only the
    /// header fields Postern added in front (stored inline, read first), so that adding them
    /// never copies the body. `false`: the body store holds the whole message.
    pub prefix: bool,
}

/// A queued message's body as delivery reads it ([`Store::queue_body_open`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueuedBody {
    /// Kept inline: small enough to hold.
    Whole(Vec<u8>),
    /// Stored apart: its first [`INLINE_MAX`] bytes (enough for the header block of almost
    /// every message), and its size; the rest is read as a stream.
    Spooled { head: Vec<u8>, size: u64 },
}

/// A fresh name: the time, then randomness (hex, so it is a safe file name anywhere).
fn new_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{nanos:016x}{:016x}", rand::random::<u64>())
}

/// A name this module made: anything else read back from the database (edited by hand) is
/// refused rather than joined to a path.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn spool_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Spool { path: path.display().to_string(), source }
}

/// Bodies as files in one directory, created 0700 on first use; files are 0600.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    /// The directory exists with its mode: checked once, not for every body.
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FileStore {
    pub fn new(dir: PathBuf) -> FileStore {
        FileStore { dir, ready: Default::default() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        if !valid_name(name) {
            return Err(StoreError::Corrupt {
                table: "queue_messages",
                message: format!("body_ref file:{name:?} is not a spool name"),
            });
        }
        Ok(self.dir.join(name))
    }
}

struct FileWriter {
    name: String,
    path: PathBuf,
    file: tokio::fs::File,
}

impl BodyWriter for FileWriter {
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, Result<()>> {
        Box::pin(
            async move { self.file.write_all(chunk).await.map_err(|e| spool_error(&self.path, e)) },
        )
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<String>> {
        Box::pin(async move {
            let FileWriter { name, path, mut file } = *self;
            let done = async {
                file.flush().await?;
                file.sync_all().await
            };
            match done.await {
                Ok(()) => Ok(format!("file:{name}")),
                Err(e) => {
                    drop(file);
                    let _ = tokio::fs::remove_file(&path).await;
                    Err(spool_error(&path, e))
                }
            }
        })
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let FileWriter { path, file, .. } = *self;
            drop(file);
            let _ = tokio::fs::remove_file(&path).await;
        })
    }
}

struct FileReader {
    file: tokio::fs::File,
    path: PathBuf,
}

impl BodyReader for FileReader {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut buf = Vec::with_capacity(CHUNK);
            let n = (&mut self.file)
                .take(CHUNK as u64)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| spool_error(&self.path, e))?;
            Ok((n > 0).then_some(buf))
        })
    }
}

impl BodyStore for FileStore {
    fn create(&self) -> BoxFuture<'_, Result<Box<dyn BodyWriter>>> {
        Box::pin(async move {
            use std::sync::atomic::Ordering;
            if !self.ready.load(Ordering::Relaxed) {
                let dir = self.dir.clone();
                tokio::task::spawn_blocking(move || crate::files::private_dir(&dir))
                    .await
                    .map_err(|e| spool_error(&self.dir, std::io::Error::other(e)))?
                    .map_err(|e| spool_error(&self.dir, e))?;
                self.ready.store(true, Ordering::Relaxed);
            }
            let name = new_name();
            let path = self.path(&name)?;
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(crate::files::FILE_MODE)
                .open(&path)
                .await
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        // Removed under us: made again for the next body.
                        self.ready.store(false, Ordering::Relaxed);
                    }
                    spool_error(&path, e)
                })?;
            Ok(Box::new(FileWriter { name, path, file }) as Box<dyn BodyWriter>)
        })
    }

    fn open<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Box<dyn BodyReader>>> {
        Box::pin(async move {
            let path = self.path(name)?;
            let file = tokio::fs::File::open(&path).await.map_err(|e| spool_error(&path, e))?;
            Ok(Box::new(FileReader { file, path }) as Box<dyn BodyReader>)
        })
    }

    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = self.path(name)?;
            match tokio::fs::remove_file(&path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(spool_error(&path, e)),
                _ => Ok(()),
            }
        })
    }

    fn sync(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let dir = self.dir.clone();
            // A new file's directory entry is durable only once the directory is fsynced; with
            // no directory yet, no body was written and there is nothing to make durable.
            tokio::task::spawn_blocking(move || match std::fs::File::open(&dir) {
                Ok(dir) => dir.sync_all(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            })
            .await
            .map_err(|e| spool_error(&self.dir, std::io::Error::other(e)))?
            .map_err(|e| spool_error(&self.dir, e))
        })
    }

    fn stored_before(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let mut entries = match tokio::fs::read_dir(&self.dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(spool_error(&self.dir, e)),
            };
            let mut names = Vec::new();
            while let Some(entry) =
                entries.next_entry().await.map_err(|e| spool_error(&self.dir, e))?
            {
                let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
                if !valid_name(&name) {
                    continue;
                }
                let modified = entry.metadata().await.and_then(|m| m.modified());
                if modified.is_ok_and(|m| m < cutoff) {
                    names.push(name);
                }
            }
            Ok(names)
        })
    }

    fn prefix(&self) -> &'static str {
        "file:"
    }
}

/// Bodies as rows of `queue_body_chunks`.
#[derive(Debug, Clone)]
pub struct DbStore {
    pool: AnyPool,
}

impl DbStore {
    pub(crate) fn new(pool: AnyPool) -> DbStore {
        DbStore { pool }
    }
}

/// Writes each chunk in a statement of its own (autocommit), so that a slow DATA holds no
/// pooled connection and no transaction between chunks. Until an envelope names it, the body
/// is an orphan: removed by [`BodyWriter::abort`], or by the sweep if the engine dies first.
struct DbWriter {
    pool: AnyPool,
    name: String,
    buf: Vec<u8>,
    seq: i64,
    at: i64,
}

impl DbWriter {
    async fn put(&mut self) -> Result<()> {
        sqlx::query(
            "INSERT INTO queue_body_chunks (body_ref, seq, data, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(format!("db:{}", self.name))
        .bind(self.seq)
        .bind(self.buf.as_slice())
        .bind(self.at)
        .execute(&self.pool)
        .await?;
        self.seq += 1;
        self.buf.clear();
        Ok(())
    }
}

impl BodyWriter for DbWriter {
    fn write<'a>(&'a mut self, mut chunk: &'a [u8]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            while !chunk.is_empty() {
                let take = chunk.len().min(CHUNK - self.buf.len());
                self.buf.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                if self.buf.len() == CHUNK {
                    self.put().await?;
                }
            }
            Ok(())
        })
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<String>> {
        Box::pin(async move {
            // An empty body still gets its row 0: the sweep finds bodies by their rows.
            if !self.buf.is_empty() || self.seq == 0 {
                self.put().await?;
            }
            // Each row was durable at its own commit.
            Ok(format!("db:{}", self.name))
        })
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let removed = sqlx::query("DELETE FROM queue_body_chunks WHERE body_ref = $1")
                .bind(format!("db:{}", self.name))
                .execute(&self.pool)
                .await;
            if let Err(e) = removed {
                // Left for the sweep.
                tracing::warn!(error = %e, name = self.name, "cannot remove an aborted body");
            }
        })
    }
}

struct DbReader {
    pool: AnyPool,
    body_ref: String,
    seq: i64,
}

impl BodyReader for DbReader {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let data: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT data FROM queue_body_chunks WHERE body_ref = $1 AND seq = $2",
            )
            .bind(self.body_ref.as_str())
            .bind(self.seq)
            .fetch_optional(&self.pool)
            .await?;
            self.seq += 1;
            // A zero-length row 0 is an empty body.
            Ok(data.filter(|d| !d.is_empty()))
        })
    }
}

impl BodyStore for DbStore {
    fn create(&self) -> BoxFuture<'_, Result<Box<dyn BodyWriter>>> {
        Box::pin(async move {
            Ok(Box::new(DbWriter {
                pool: self.pool.clone(),
                name: new_name(),
                buf: Vec::with_capacity(CHUNK),
                seq: 0,
                at: now(),
            }) as Box<dyn BodyWriter>)
        })
    }

    fn open<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Box<dyn BodyReader>>> {
        Box::pin(async move {
            let body_ref = format!("db:{name}");
            let exists: Option<i64> = sqlx::query_scalar(
                "SELECT seq FROM queue_body_chunks WHERE body_ref = $1 AND seq = 0",
            )
            .bind(body_ref.as_str())
            .fetch_optional(&self.pool)
            .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound { what: "message body", name: body_ref });
            }
            Ok(Box::new(DbReader { pool: self.pool.clone(), body_ref, seq: 0 })
                as Box<dyn BodyReader>)
        })
    }

    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM queue_body_chunks WHERE body_ref = $1")
                .bind(format!("db:{name}"))
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn sync(&self) -> BoxFuture<'_, Result<()>> {
        // Each body's transaction was durable at its commit.
        Box::pin(async { Ok(()) })
    }

    fn stored_before(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let cutoff = cutoff
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let refs: Vec<String> = sqlx::query_scalar(
                "SELECT body_ref FROM queue_body_chunks WHERE seq = 0 AND created_at < $1",
            )
            .bind(cutoff)
            .fetch_all(&self.pool)
            .await?;
            Ok(refs.into_iter().filter_map(|r| r.strip_prefix("db:").map(str::to_string)).collect())
        })
    }

    fn prefix(&self) -> &'static str {
        "db:"
    }
}

/// The bodies a store holds: the default one, where new bodies go, and the other, for bodies
/// written before the backend's default changed (a `body_ref` says which store has it).
pub(crate) struct Bodies {
    pub(crate) files: Option<FileStore>,
    pub(crate) db: DbStore,
    /// New bodies go to the files (else the database).
    pub(crate) use_files: bool,
}

impl Bodies {
    fn default_store(&self) -> &dyn BodyStore {
        match (&self.files, self.use_files) {
            (Some(files), true) => files as &dyn BodyStore,
            _ => &self.db as &dyn BodyStore,
        }
    }

    /// The store and name of a `body_ref`.
    fn find<'a>(&'a self, body_ref: &'a str) -> Result<(&'a dyn BodyStore, &'a str)> {
        if let Some(name) = body_ref.strip_prefix("db:") {
            return Ok((&self.db as &dyn BodyStore, name));
        }
        match (body_ref.strip_prefix("file:"), &self.files) {
            (Some(name), Some(files)) => Ok((files as &dyn BodyStore, name)),
            _ => Err(StoreError::Corrupt {
                table: "queue_messages",
                message: format!("body_ref {body_ref:?} names no body store of this process"),
            }),
        }
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub orphans: u64,
    pub trash: u64,
}

impl Store {
    /// Stores `body` apart when it is [`INLINE_MAX`] or larger, returning its `body_ref` for
    /// [`Store::queue_insert_spooled`]; `None` keeps it inline. The body is durable on return,
    /// except for the directory entry, which [`Store::spool_sync`] makes so for a whole batch.
    pub async fn spool_body(&self, body: &[u8]) -> Result<Option<String>> {
        if body.len() < INLINE_MAX {
            return Ok(None);
        }
        let mut writer = self.body_writer().await?;
        for chunk in body.chunks(CHUNK) {
            if let Err(e) = writer.write(chunk).await {
                writer.abort().await;
                return Err(e);
            }
        }
        writer.commit().await.map(Some)
    }

    /// A writer for a new body in the default store.
    pub async fn body_writer(&self) -> Result<Box<dyn BodyWriter>> {
        self.inner.bodies.default_store().create().await
    }

    /// The directory fsync for the bodies written since the last; before the envelopes' commit.
    pub async fn spool_sync(&self) -> Result<()> {
        self.inner.bodies.default_store().sync().await
    }

    /// Removes bodies whose envelopes never committed (a failed batch).
    pub async fn spool_discard(&self, refs: &[String]) {
        for body_ref in refs {
            let removed = match self.inner.bodies.find(body_ref) {
                Ok((store, name)) => store.remove(name).await,
                Err(e) => Err(e),
            };
            if let Err(e) = removed {
                tracing::warn!(error = %e, body_ref, "cannot remove an unqueued body");
            }
        }
    }

    /// A stored body read back whole, if it is no longer than `max` bytes (else `None`): for
    /// the checks that need a message in one piece.
    pub async fn spool_read(&self, body_ref: &str, max: usize) -> Result<Option<Vec<u8>>> {
        let mut reader = self.body_reader(body_ref).await?;
        // `max` is the body's size when the caller knows it: one allocation, never doubled.
        let mut body = Vec::with_capacity(max.min(64 << 20));
        while let Some(chunk) = reader.next_chunk().await? {
            if body.len() + chunk.len() > max {
                return Ok(None);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }

    /// Whether the stored body `body_ref` is exactly `bytes`, read a chunk at a time.
    pub async fn spool_equals(&self, body_ref: &str, mut bytes: &[u8]) -> Result<bool> {
        let mut reader = self.body_reader(body_ref).await?;
        while let Some(chunk) = reader.next_chunk().await? {
            match bytes.strip_prefix(chunk.as_slice()) {
                Some(rest) => bytes = rest,
                None => return Ok(false),
            }
        }
        Ok(bytes.is_empty())
    }

    /// Opens a spooled body for reading.
    pub(crate) async fn body_reader(&self, body_ref: &str) -> Result<Box<dyn BodyReader>> {
        let (store, name) = self.inner.bodies.find(body_ref)?;
        store.open(name).await
    }

    /// [`Store::spool_empty_trash`] after a commit that removed messages; a failure is left for
    /// the next pass (or the start-up sweep) and does not fail what was committed.
    pub(crate) async fn spool_tidy(&self) {
        if self.inner.bodies.files.is_none() {
            return;
        }
        if let Err(e) = self.spool_empty_trash().await {
            tracing::warn!(error = %e, "cannot remove the spool files of removed messages");
        }
    }

    /// Unlinks the files of messages that are gone (noted by the trigger of migration 0020).
    /// A batch of up to 500 at a time: the unlinks in one blocking task, then their rows in one
    /// statement, so that a commit that removed many messages costs one more commit, not one
    /// per message (each is a WAL fsync, and they queue behind the writer's and the
    /// bookkeeper's: 100 KB relaying was bound by them).
    pub async fn spool_empty_trash(&self) -> Result<u64> {
        let Some(files) = &self.inner.bodies.files else { return Ok(0) };
        let mut removed = 0;
        loop {
            let refs: Vec<String> =
                sqlx::query_scalar("SELECT body_ref FROM queue_body_trash LIMIT 500")
                    .fetch_all(self.pool())
                    .await?;
            if refs.is_empty() {
                return Ok(removed);
            }
            let mut paths = Vec::with_capacity(refs.len());
            for body_ref in &refs {
                let path = body_ref.strip_prefix("file:").map(|name| files.path(name));
                paths.push((body_ref.clone(), path));
            }
            let gone = tokio::task::spawn_blocking(move || {
                let mut gone = Vec::with_capacity(paths.len());
                for (body_ref, path) in paths {
                    match path {
                        Some(Ok(path)) => match std::fs::remove_file(&path) {
                            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                                // Left for the next pass: an unlink that fails now may work later.
                                tracing::warn!(error = %e, body_ref, "cannot remove a spool file");
                            }
                            _ => gone.push(body_ref),
                        },
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, body_ref, "cannot remove a spool file");
                        }
                        None => gone.push(body_ref),
                    }
                }
                gone
            })
            .await
            .map_err(|e| spool_error(files.dir(), std::io::Error::other(e)))?;
            if !gone.is_empty() {
                let sql = format!(
                    "DELETE FROM queue_body_trash WHERE body_ref IN ({})",
                    crate::repo::queue::placeholders(gone.len(), self.is_postgres())
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
                for body_ref in &gone {
                    query = query.bind(body_ref.as_str());
                }
                query.execute(self.pool()).await?;
                removed += gone.len() as u64;
            }
            if refs.len() < 500 || gone.is_empty() {
                return Ok(removed);
            }
        }
    }

    /// Removes bodies no envelope names, and empties the trash. At an engine's start-up
    /// (`starting`), before any of its sessions runs, every unreferenced spool file is an
    /// orphan; otherwise, and always for bodies in the database (which other engines sharing
    /// it may be writing now), only those older than [`ORPHAN_AGE`], so that a body whose
    /// envelope is about to commit is left alone.
    pub async fn spool_sweep(&self, starting: bool) -> Result<Swept> {
        let trash = self.spool_empty_trash().await?;
        let mut orphans = 0;
        let bodies = &self.inner.bodies;
        let aged = SystemTime::now() - ORPHAN_AGE;
        let mut stores: Vec<(&dyn BodyStore, SystemTime)> =
            vec![(&bodies.db as &dyn BodyStore, aged)];
        if let Some(files) = &bodies.files {
            let cutoff = if starting { SystemTime::now() } else { aged };
            stores.push((files as &dyn BodyStore, cutoff));
        }
        for (store, cutoff) in stores {
            let stored = store.stored_before(cutoff).await?;
            if stored.is_empty() {
                continue;
            }
            // Read after the listing: an envelope committed in between is seen.
            let known: HashSet<String> = sqlx::query_scalar(
                "SELECT body_ref FROM queue_messages WHERE body_ref IS NOT NULL",
            )
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .collect();
            for name in stored {
                if known.contains(&format!("{}{name}", store.prefix())) {
                    continue;
                }
                store.remove(&name).await?;
                orphans += 1;
            }
        }
        if orphans > 0 {
            tracing::info!(orphans, "removed message bodies that no queued message names");
        }
        Ok(Swept { orphans, trash })
    }
}
