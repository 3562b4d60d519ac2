//! Taking a backup while `serve` runs: a snapshot of the store, then the files it refers to.

use std::path::{Path, PathBuf};

use anyhow::Context;
use postern_store::boot::BootConfig;
use postern_store::{Database, Store};
use sqlx::{Connection, Row};

use super::archive::{FORMAT, Manifest, Writer};

/// What a backup includes besides the store and the key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub with_spool: bool,
    pub with_maildirs: bool,
}

/// Tables whose row counts the manifest records.
pub const COUNTED: &[&str] = &[
    "domains",
    "mailboxes",
    "aliases",
    "transports",
    "trusted_networks",
    "admins",
    "api_tokens",
    "queue_messages",
    "queue_recipients",
];

/// Writes a backup of `store` (configured by `boot`) to `file`; returns its manifest and size.
pub async fn take(
    store: &Store,
    boot: &BootConfig,
    file: &Path,
    options: Options,
) -> anyhow::Result<(Manifest, u64)> {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Next to the backup file, so that the copy does not fill a small /tmp.
    let work = tempfile::Builder::new()
        .prefix(".postern-backup-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot make a work directory in {}", parent.display()))?;
    let key = std::fs::read(&boot.secret_key_file).with_context(|| {
        format!("cannot read the secret key {}", boot.secret_key_file.display())
    })?;
    let mut writer = Writer::create(file)?;
    let mut manifest = Manifest {
        format: FORMAT,
        postern_version: env!("CARGO_PKG_VERSION").to_string(),
        backend: store.database().backend_name().to_string(),
        schema_version: store.schema_version().await?,
        created_at: postern_store::now(),
        counts: Default::default(),
        spool_files: 0,
        delivered_during_backup: Vec::new(),
        left_out_without_spool: Vec::new(),
        with_maildirs: options.with_maildirs,
    };
    match store.database() {
        Database::Sqlite { path } => {
            let copy = work.path().join("postern.db");
            store.sqlite_snapshot(&copy).await.context("cannot copy the database")?;
            let spool_dir = path.parent().unwrap_or(Path::new(".")).join("spool");
            let mut bodies = Vec::new();
            let mut gone = Vec::new();
            let mut left_out = Vec::new();
            {
                let mut conn = sqlx::sqlite::SqliteConnection::connect_with(
                    &sqlx::sqlite::SqliteConnectOptions::new().filename(&copy).foreign_keys(true),
                )
                .await?;
                let rows = sqlx::query(
                    "SELECT id, body_ref FROM queue_messages WHERE body_ref LIKE 'file:%'",
                )
                .fetch_all(&mut conn)
                .await?;
                for row in rows {
                    let id: String = row.try_get("id")?;
                    let body_ref: String = row.try_get("body_ref")?;
                    let name = body_ref.trim_start_matches("file:").to_string();
                    if !options.with_spool {
                        left_out.push(id);
                        continue;
                    }
                    let source = spool_dir.join(&name);
                    // Read now: a body unlinked after the snapshot belonged to a message
                    // delivered (or deleted) meanwhile.
                    match valid_spool_name(&name).then(|| std::fs::read(&source)) {
                        Some(Ok(bytes)) => bodies.push((name, bytes)),
                        Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => gone.push(id),
                        Some(Err(e)) => {
                            return Err(e).context(format!("cannot read {}", source.display()));
                        }
                        None => gone.push(id),
                    }
                }
                for id in gone.iter().chain(&left_out) {
                    sqlx::query("DELETE FROM queue_messages WHERE id = $1")
                        .bind(id)
                        .execute(&mut conn)
                        .await?;
                }
                for table in COUNTED {
                    let sql = format!("SELECT COUNT(*) FROM {table}");
                    if let Ok(n) = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                        .fetch_one(&mut conn)
                        .await
                    {
                        manifest.counts.insert(table.to_string(), n);
                    }
                }
                conn.close().await?;
            }
            manifest.spool_files = bodies.len() as u64;
            manifest.delivered_during_backup = gone;
            manifest.left_out_without_spool = left_out;
            writer.add_bytes("manifest.json", &serde_json::to_vec_pretty(&manifest)?)?;
            writer.add_bytes("secret.key", &key)?;
            writer.add_file("postern.db", &copy)?;
            for (name, bytes) in bodies {
                writer.add_bytes(&format!("spool/{name}"), &bytes)?;
            }
        }
        Database::Postgres { .. } => {
            let dump_path = work.path().join("tables.jsonl");
            let mut out = std::io::BufWriter::new(std::fs::File::create(&dump_path)?);
            let counts = store.dump_tables(&mut out).await.context("cannot dump the tables")?;
            std::io::Write::flush(&mut out)?;
            drop(out);
            for table in COUNTED {
                if let Some(n) = counts.get(*table) {
                    manifest.counts.insert(table.to_string(), *n);
                }
            }
            writer.add_bytes("manifest.json", &serde_json::to_vec_pretty(&manifest)?)?;
            writer.add_bytes("secret.key", &key)?;
            writer.add_file("tables.jsonl", &dump_path)?;
        }
    }
    if options.with_maildirs {
        writer.add_tree("mail", &boot.data_dir.join("mail"))?;
    }
    let size = writer.finish()?;
    Ok((manifest, size))
}

fn valid_spool_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_hexdigit())
}
