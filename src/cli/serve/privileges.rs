//! Running as an unprivileged user: `postern serve` started as root binds its ports (25, 465,
//! 587 need privileges) and then becomes `[serve] user` / `--user` for good (its groups, its
//! group, its uid: setgroups/initgroups, setgid, setuid, in that order, as a later step could
//! not undo an earlier one). Under systemd the unit starts it as that user already, with
//! `CAP_NET_BIND_SERVICE` for the ports; then there is nothing to drop.

use std::ffi::{CStr, CString};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, bail};

/// A user from the password database.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Looks `name` up (a name, or a numeric uid).
pub fn lookup(name: &str) -> anyhow::Result<Account> {
    let c_name = CString::new(name).context("a user name cannot hold a NUL byte")?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; getpwnam_r/getpwuid_r fill it, pointing into `buffer`,
    // which outlives every read of it below.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = match name.parse::<libc::uid_t>() {
        Ok(uid) => unsafe {
            libc::getpwuid_r(uid, &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found)
        },
        Err(_) => unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut entry,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut found,
            )
        },
    };
    if rc != 0 {
        bail!("cannot look up the user {name}: {}", std::io::Error::from_raw_os_error(rc));
    }
    if found.is_null() {
        bail!(
            "there is no user {name}: create it first (`useradd --system --home-dir /var/lib/postern \
             --shell /usr/sbin/nologin {name}`) or set [serve] user to an existing one"
        );
    }
    // SAFETY: pw_name points to a NUL-terminated string in `buffer`.
    let real_name = unsafe { CStr::from_ptr(entry.pw_name) }.to_string_lossy().into_owned();
    Ok(Account { name: real_name, uid: entry.pw_uid, gid: entry.pw_gid })
}

/// What to do about root before anything is bound: `Err` when serve would stay root on a
/// privileged port without being told it may.
pub fn check_root_policy(
    user: Option<&str>,
    allow_root: bool,
    addresses: &[SocketAddr],
) -> anyhow::Result<()> {
    if !is_root() || user.is_some() {
        return Ok(());
    }
    let privileged: Vec<String> = addresses
        .iter()
        .filter(|a| a.port() != 0 && a.port() < 1024)
        .map(|a| a.to_string())
        .collect();
    if privileged.is_empty() || allow_root {
        tracing::warn!(
            "running as root: set [serve] user (or --user) to drop privileges once the ports are bound"
        );
        return Ok(());
    }
    bail!(
        "refusing to run as root on {}: set [serve] user = \"postern\" in postern.toml or pass \
         --user postern, so that serve drops its privileges once the ports are bound (or run it \
         under dist/systemd/postern.service); --allow-root keeps it root",
        privileged.join(", ")
    )
}

/// Becomes `account` for good. Called once every port is bound and before anything is
/// created on disk, so that what serve creates belongs to the account.
pub fn drop_to(account: &Account) -> anyhow::Result<()> {
    let name = CString::new(account.name.as_str())?;
    // SAFETY: plain system calls on values we own; glibc applies set*id to every thread.
    unsafe {
        // Supplementary groups: the account's own, from /etc/group (none of root's stay).
        if libc::initgroups(name.as_ptr(), account.gid) != 0 {
            let e = std::io::Error::last_os_error();
            bail!("cannot set the groups of {}: {e}", account.name);
        }
        if libc::setgid(account.gid) != 0 {
            bail!("cannot change group to {}: {}", account.gid, std::io::Error::last_os_error());
        }
        if libc::setuid(account.uid) != 0 {
            bail!(
                "cannot become {} (uid {}): {}",
                account.name,
                account.uid,
                std::io::Error::last_os_error()
            );
        }
        // Gone for good: getting root back must fail.
        if account.uid != 0 && libc::setuid(0) == 0 {
            bail!("privileges were not dropped: setuid(0) still works");
        }
    }
    Ok(())
}

/// The data directory (created for the account if missing, while still root) and the files
/// serve must read and write in it must belong to the account; otherwise a clear error now
/// instead of a permission error later.
pub fn prepare_data_dir(account: &Account, data_dir: &Path, files: &[&Path]) -> anyhow::Result<()> {
    if !data_dir.exists() {
        crate::cli::serve::create_private_dir(data_dir)?;
        std::os::unix::fs::chown(data_dir, Some(account.uid), Some(account.gid)).with_context(
            || format!("cannot give the data directory {} to {}", data_dir.display(), account.name),
        )?;
    }
    let mut wrong = Vec::new();
    for path in std::iter::once(data_dir).chain(files.iter().copied()) {
        match std::fs::metadata(path) {
            Ok(meta) if meta.uid() != account.uid => {
                wrong.push(format!("{} (owner uid {})", path.display(), meta.uid()))
            }
            _ => {}
        }
    }
    if !wrong.is_empty() {
        bail!(
            "serve runs as {} (uid {}), but {} belong(s) to someone else: `chown -R {}: {}`{}",
            account.name,
            account.uid,
            wrong.join(", "),
            account.name,
            data_dir.display(),
            files
                .iter()
                .filter(|f| !f.starts_with(data_dir) && f.exists())
                .map(|f| format!(" and `chown {}: {}`", account.name, f.display()))
                .collect::<String>()
        );
    }
    Ok(())
}

/// The account this process runs as now (for the check when systemd started us as the user).
pub fn current_uid() -> libc::uid_t {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}
