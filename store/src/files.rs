//! Files Postern keeps on disk hold password hashes, queued mail and the key to sealed secrets:
//! they are private to the user that runs Postern (directories 0700, files 0600), whatever the
//! umask, and loose modes left by an earlier version are tightened.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of a private directory: owner only.
pub const DIR_MODE: u32 = 0o700;
/// Mode of a private file: owner read and write.
pub const FILE_MODE: u32 = 0o600;

/// The effective user: the one that should own what Postern writes.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `dir` (and missing parents) with mode 0700, or tightens an existing directory of ours
/// that group or others can enter; one owned by another user is left alone with a warning.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
            // mkdir(2) masks the mode with the umask: set it exactly.
            std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
        }
        Err(e) => Err(e),
        Ok(meta) if !meta.is_dir() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", dir.display()),
        )),
        Ok(meta) => tighten(dir, &meta, DIR_MODE),
    }
}

/// Creates the parent directories of `path` that are missing, with mode 0700; existing ones are
/// left as they are (a file named by the administrator may live in /etc or /tmp).
pub fn private_parent(path: &Path) -> io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) if !parent.exists() => private_dir(parent),
        _ => Ok(()),
    }
}

/// Makes sure `path` exists as a file with mode 0600: creates it empty if missing (with the
/// owner of its directory when running as root, so that `postern` run by root does not leave
/// files the service user cannot read), tightens it if it is ours and loose.
pub fn private_file(path: &Path) -> io::Result<()> {
    private_parent(path)?;
    match OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(path) {
        Ok(file) => {
            file.set_permissions(Permissions::from_mode(FILE_MODE))?;
            give_to_dir_owner(&file, path)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tighten_file(path),
        Err(e) => Err(e),
    }
}

/// Tightens an existing file of ours to 0600; a missing file is fine.
pub fn tighten_file(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => tighten(path, &meta, FILE_MODE),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `contents` to a new file at `path`, mode 0600, durably; fails if `path` exists. The
/// file appears whole or not at all: it is written aside and linked into place.
pub fn create_private_new(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    private_parent(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file =
            OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(&tmp)?;
        file.set_permissions(Permissions::from_mode(FILE_MODE))?;
        give_to_dir_owner(&file, path)?;
        file.write_all(contents)?;
        file.sync_all()?;
        // link(2) fails if the name is taken: two processes starting at once keep one file.
        std::fs::hard_link(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

fn give_to_dir_owner(file: &File, path: &Path) -> io::Result<()> {
    if euid() != 0 {
        return Ok(());
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let owner = std::fs::metadata(dir)?;
    if owner.uid() != 0 {
        std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid()))?;
    }
    Ok(())
}

fn tighten(path: &Path, meta: &std::fs::Metadata, wanted: u32) -> io::Result<()> {
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    if meta.uid() != euid() && euid() != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:04o}"),
            owner = meta.uid(),
            "this is not ours to change, and group or others can read it: make it {:04o}",
            wanted
        );
        return Ok(());
    }
    std::fs::set_permissions(path, Permissions::from_mode(wanted))?;
    tracing::info!(
        path = %path.display(),
        from = format!("{mode:04o}"),
        to = format!("{wanted:04o}"),
        "tightened the permissions of a private file or directory"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn created_private_whatever_the_umask_and_loose_ones_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        private_dir(&dir).unwrap();
        assert_eq!((mode(&tmp.path().join("a")), mode(&dir)), (0o700, 0o700));
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        let file = dir.join("f");
        private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        std::fs::write(&file, b"kept").unwrap();
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        private_file(&file).unwrap();
        assert_eq!((mode(&file), std::fs::read(&file).unwrap()), (0o600, b"kept".to_vec()));

        let new = dir.join("n");
        create_private_new(&new, b"x").unwrap();
        assert_eq!(mode(&new), 0o600);
        let err = create_private_new(&new, b"y").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&new).unwrap(), b"x", "an existing file is never replaced");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2, "no temporary file left");
    }
}
