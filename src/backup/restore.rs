//! Restoring a backup into an empty data directory (and, with Postgres, an empty database).

use std::path::Path;

use anyhow::{Context, bail};
use postern_store::boot::BootConfig;
use postern_store::files;
use postern_store::{Database, Store};

use super::archive::{self, Manifest};

/// What a restore put where.
pub struct Restored {
    pub manifest: Manifest,
    pub counts: std::collections::BTreeMap<String, i64>,
}

/// Refuses a data directory that holds anything: a restore never overwrites.
fn check_empty_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if let Some(entry) = entries.next() {
                let name = entry?.file_name();
                bail!(
                    "the data directory {} is not empty (it holds {:?}): restore needs an empty \
                     one, so that nothing is overwritten; move it aside or set data_dir to a new \
                     directory",
                    dir.display(),
                    name
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

pub async fn restore(file: &Path, boot: &BootConfig) -> anyhow::Result<Restored> {
    check_empty_dir(&boot.data_dir)?;
    if boot.secret_key_file.exists() {
        bail!(
            "the secret key file {} exists already: restore will not overwrite it",
            boot.secret_key_file.display()
        );
    }
    if let Database::Sqlite { path } = &boot.database
        && path.exists()
    {
        bail!("the database {} exists already: restore will not overwrite it", path.display());
    }
    let parent = boot.data_dir.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".postern-restore-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot make a work directory in {}", parent.display()))?;
    let manifest = archive::unpack(file, work.path())?;
    let unpacked = work.path();

    let result = async {
        files::private_dir(&boot.data_dir)
            .with_context(|| format!("cannot create {}", boot.data_dir.display()))?;
        files::private_parent(&boot.secret_key_file)?;
        archive::write_private(
            &boot.secret_key_file,
            &std::fs::read(unpacked.join("secret.key"))?,
        )?;
        let counts = match (manifest.backend.as_str(), &boot.database) {
            ("sqlite", Database::Sqlite { path }) => {
                files::private_parent(path)?;
                std::fs::rename(unpacked.join("postern.db"), path)
                    .or_else(|_| std::fs::copy(unpacked.join("postern.db"), path).map(|_| ()))
                    .with_context(|| format!("cannot place the database at {}", path.display()))?;
                let spool = unpacked.join("spool");
                if spool.is_dir() {
                    let target = path.parent().unwrap_or(Path::new(".")).join("spool");
                    move_tree(&spool, &target)?;
                }
                let store = Store::open(&boot.database, &boot.secret_key_file).await?;
                let counts = store.row_counts(super::create::COUNTED).await?;
                store.close().await;
                counts
            }
            ("sqlite", Database::Postgres { .. }) => bail!(
                "this backup is of a SQLite store and the configuration names Postgres: restore \
                 it into SQLite first, then move with `postern backup` from there"
            ),
            ("postgres", _) => {
                let store = Store::open(&boot.database, &boot.secret_key_file).await?;
                if let Some(table) = store.in_use().await? {
                    store.close().await;
                    bail!(
                        "the database {} is not empty ({table}): restore needs an empty one",
                        boot.database
                    );
                }
                let dump = std::fs::File::open(unpacked.join("tables.jsonl"))
                    .context("the backup has no tables.jsonl")?;
                let mut input = std::io::BufReader::new(dump);
                store.load_tables(&mut input).await?;
                let counts = store.row_counts(super::create::COUNTED).await?;
                store.close().await;
                counts
            }
            (other, _) => bail!("the backup is of an unknown backend {other:?}"),
        };
        let mail = unpacked.join("mail");
        if mail.is_dir() {
            move_tree(&mail, &boot.data_dir.join("mail"))?;
        }
        Ok(counts)
    }
    .await;
    match result {
        Ok(counts) => Ok(Restored { manifest, counts }),
        Err(e) => {
            // Leave the directory as empty as it was, so that the restore can be run again.
            let _ = std::fs::remove_file(&boot.secret_key_file);
            if let Database::Sqlite { path } = &boot.database {
                for suffix in ["", "-wal", "-shm", ".lock"] {
                    let mut name = path.as_os_str().to_owned();
                    name.push(suffix);
                    let _ = std::fs::remove_file(name);
                }
                let _ =
                    std::fs::remove_dir_all(path.parent().unwrap_or(Path::new(".")).join("spool"));
            }
            let _ = std::fs::remove_dir_all(boot.data_dir.join("mail"));
            Err(e)
        }
    }
}

/// Moves `from` to `to` (which must not exist), private.
fn move_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    if std::fs::rename(from, to).is_err() {
        // Another file system: copy.
        files::private_dir(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                move_tree(&entry.path(), &target)?;
            } else {
                std::fs::copy(entry.path(), &target)?;
            }
        }
    }
    Ok(())
}
