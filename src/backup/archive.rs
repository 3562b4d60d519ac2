//! The backup file: a gzip-compressed tar archive whose first member is `manifest.json`.
//!
//! ```text
//! manifest.json   what the backup holds (format, backend, schema version, time, counts)
//! secret.key      the key sealed secrets need: the archive is as secret as the key
//! postern.db      SQLite: a consistent copy (`VACUUM INTO`)
//! tables.jsonl    Postgres: every table as JSON lines, read in one transaction
//! spool/NAME      SQLite: the bodies of queued messages the copy refers to
//! mail/…          the Maildirs, when asked for
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The archive layout's version: a restore refuses one newer than it knows.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The Postern that wrote it.
    pub postern_version: String,
    /// `sqlite` (the archive holds `postern.db`) or `postgres` (`tables.jsonl`).
    pub backend: String,
    /// The newest migration applied to the store it came from.
    pub schema_version: i64,
    /// When the snapshot was taken (epoch seconds).
    pub created_at: i64,
    /// Rows per table of interest (domains, mailboxes, queued messages…).
    pub counts: BTreeMap<String, i64>,
    /// Spool files included (SQLite), and queued messages whose body file went between the
    /// snapshot and its copy: delivered meanwhile, so left out of the copy.
    pub spool_files: u64,
    pub delivered_during_backup: Vec<String>,
    /// Queued messages left out because their bodies live in the spool and the spool was not
    /// asked for.
    pub left_out_without_spool: Vec<String>,
    pub with_maildirs: bool,
}

/// Writes the archive to `file`, created 0600 and not there before: under a temporary name
/// first, renamed once whole, so that a backup file that exists is complete.
pub struct Writer {
    builder: tar::Builder<flate2::write::GzEncoder<File>>,
    done: bool,
    temp: PathBuf,
    target: PathBuf,
}

impl Writer {
    pub fn create(target: &Path) -> anyhow::Result<Writer> {
        if target.exists() {
            bail!("{} exists already: choose another file name", target.display());
        }
        let mut temp = target.as_os_str().to_owned();
        temp.push(format!(".partial-{}", std::process::id()));
        let temp = PathBuf::from(temp);
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .with_context(|| format!("cannot create {}", temp.display()))?
        };
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        builder.mode(tar::HeaderMode::Deterministic);
        builder.follow_symlinks(false);
        Ok(Writer { builder, done: false, temp, target: target.to_path_buf() })
    }

    pub fn add_bytes(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(0);
        header.set_cksum();
        self.builder.append_data(&mut header, name, bytes)?;
        Ok(())
    }

    pub fn add_file(&mut self, name: &str, path: &Path) -> std::io::Result<()> {
        let mut file = File::open(path)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(file.metadata()?.len());
        header.set_mode(0o600);
        header.set_mtime(0);
        header.set_cksum();
        self.builder.append_data(&mut header, name, &mut file)
    }

    /// Adds the tree under `dir` as `name/…` (regular files and directories).
    pub fn add_tree(&mut self, name: &str, dir: &Path) -> anyhow::Result<u64> {
        let mut files = 0;
        if !dir.is_dir() {
            return Ok(0);
        }
        let mut stack = vec![(dir.to_path_buf(), name.to_string())];
        while let Some((dir, prefix)) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                let member = format!("{prefix}/{}", entry.file_name().to_string_lossy());
                if kind.is_dir() {
                    self.builder.append_dir(&member, entry.path())?;
                    stack.push((entry.path(), member));
                } else if kind.is_file() {
                    match self.add_file(&member, &entry.path()) {
                        Ok(()) => files += 1,
                        // A message moved from new/ to cur/ meanwhile: it is there under
                        // its other name, or the next backup has it.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(files)
    }

    /// Finishes the archive, makes it durable and gives it its name; returns its size.
    pub fn finish(mut self) -> anyhow::Result<u64> {
        self.builder.finish()?;
        self.builder.get_mut().try_finish()?;
        let file = self.builder.get_ref().get_ref();
        file.sync_all()?;
        let size = file.metadata()?.len();
        std::fs::rename(&self.temp, &self.target)
            .with_context(|| format!("cannot rename to {}", self.target.display()))?;
        if let Some(dir) = self.target.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        self.done = true;
        Ok(size)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Left over only when the backup failed before `finish` renamed it.
        if !self.done {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Unpacks `file` into `into` (an empty private directory) and returns its manifest.
pub fn unpack(file: &Path, into: &Path) -> anyhow::Result<Manifest> {
    let input = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(input));
    archive.set_preserve_permissions(false);
    for entry in archive.entries().context("not a Postern backup (tar.gz)")? {
        let mut entry = entry.context("the backup file is damaged")?;
        // `unpack_in` refuses names that would leave `into` (`..`, absolute paths).
        if !entry.unpack_in(into)? {
            bail!("the backup holds a file outside its own tree: {:?}", entry.path()?);
        }
    }
    let mut text = String::new();
    File::open(into.join("manifest.json"))
        .context("the backup has no manifest.json: not a Postern backup")?
        .read_to_string(&mut text)?;
    let manifest: Manifest = serde_json::from_str(&text).context("manifest.json is damaged")?;
    if manifest.format > FORMAT {
        bail!(
            "the backup's format {} is newer than this Postern knows ({FORMAT}): restore it with \
             the version that wrote it ({})",
            manifest.format,
            manifest.postern_version
        );
    }
    Ok(manifest)
}

/// Writes `bytes` to `path`, created 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
