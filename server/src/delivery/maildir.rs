//! Local delivery into Maildir (<https://cr.yp.to/proto/maildir.html>) under
//! `<mail_root>/<domain>/<localpart>/`: written to tmp/, fsynced, renamed into new/, and the
//! directory fsynced before the recipient counts as delivered. Optional per-mailbox quotas.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Delivery, Handoff, Outcome, Reply};

/// How long a mailbox's measured size is trusted before it is measured again. Between
/// measurements, our own deliveries are added to it; what an IMAP server removes or another
/// agent adds is seen at the next measurement.
const USAGE_TTL: Duration = Duration::from_secs(600);

/// Maildir delivery. Cheap to clone; clones share the quota cache.
///
/// Quota: a mailbox's size is measured once (the sum of its files in new/ and cur/, read from
/// the Maildir++ `,S=` size in each name where present) and then kept in memory, raised by each
/// delivery, and measured afresh after [`USAGE_TTL`] or whenever it would refuse a message, so
/// that a refusal never rests on a stale figure. A `maildirsize` file would be shared with
/// Dovecot, but only if Dovecot is set to Maildir++ quota too; an in-memory figure needs nothing.
#[derive(Clone)]
pub struct Maildir {
    root: PathBuf,
    /// The host name as Maildir file names spell it.
    host: String,
    usage: Arc<Mutex<HashMap<PathBuf, Usage>>>,
}

#[derive(Clone, Copy)]
struct Usage {
    bytes: u64,
    measured: Instant,
}

impl Maildir {
    pub fn new(root: impl Into<PathBuf>, hostname: &str) -> Maildir {
        // The spec: '/' and ':' in the host name are written as \057 and \072.
        let host = hostname.replace('/', "\\057").replace(':', "\\072");
        Maildir { root: root.into(), host, usage: Arc::default() }
    }

    /// Delivers to each recipient; `quota` gives a mailbox's limit in bytes, if it has one.
    /// This blocks on the disk (fsync): call it from `spawn_blocking`.
    ///
    /// With `recovered` (a message found in the queue at start-up, whose earlier attempt may have
    /// written the file before the process died without recording it), a mailbox that already
    /// holds a file of this queue ID counts as delivered: local delivery stays exactly-once
    /// across a crash.
    pub fn deliver(
        &self,
        d: &Delivery<'_>,
        quota: impl Fn(&str) -> Option<u64>,
        recovered: bool,
    ) -> Vec<Outcome> {
        d.recipients
            .iter()
            .map(|rcpt| {
                if recovered && let Some(found) = self.already_delivered(d.queue_id, rcpt) {
                    return Outcome::Delivered {
                        detail: format!("already in the mailbox as {}", found.display()),
                        handoff: Handoff::Mailbox,
                    };
                }
                self.deliver_one(d, rcpt, quota(rcpt))
            })
            .collect()
    }

    /// A file of queue ID `queue_id` in the recipient's new/ or cur/ (where an IMAP server moves
    /// it once seen).
    fn already_delivered(&self, queue_id: &str, rcpt: &str) -> Option<PathBuf> {
        if queue_id.is_empty() {
            return None;
        }
        let dir = self.mailbox_dir(rcpt)?;
        let tag = format!("Q{queue_id}R");
        ["new", "cur"].iter().find_map(|sub| {
            fs::read_dir(dir.join(sub))
                .ok()?
                .flatten()
                .map(|e| e.path())
                .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(&tag)))
        })
    }

    /// The mailbox directory for an address, or `None` when the address cannot safely name a
    /// directory under the root.
    pub fn mailbox_dir(&self, address: &str) -> Option<PathBuf> {
        let (local, domain) = address.rsplit_once('@')?;
        // Lower-cased as the store keeps addresses, so that "Bob@" and "bob@" share a mailbox.
        let (local, domain) = (local.to_lowercase(), domain.to_ascii_lowercase());
        (safe_component(&local) && safe_component(&domain))
            .then(|| self.root.join(domain).join(local))
    }

    fn deliver_one(&self, d: &Delivery<'_>, rcpt: &str, quota: Option<u64>) -> Outcome {
        let Some(dir) = self.mailbox_dir(rcpt) else {
            return Outcome::failed(Reply::new(
                550,
                [5, 1, 3],
                format!("<{rcpt}>: this address cannot name a mailbox on disk"),
            ));
        };
        let header = format!("Return-Path: <{}>\r\nDelivered-To: <{rcpt}>\r\n", d.sender);
        let size = header.len() as u64 + d.stream.map_or(d.body.len() as u64, |s| s.size);
        if let Some(limit) = quota {
            // A message bigger than the whole quota will never fit: bounce it now. A mailbox
            // that is merely full defers, as Postfix's virtual(8) and Dovecot do by default:
            // its owner can make room, and the queue's lifetime bounds the wait (RFC 3463:
            // X.2.2 is usually transient).
            if size > limit {
                return Outcome::failed(Reply::new(
                    552,
                    [5, 2, 2],
                    format!(
                        "<{rcpt}>: message of {size} bytes is larger than the mailbox \
                     quota of {limit} bytes"
                    ),
                ));
            }
            match self.fits(&dir, size, limit) {
                Ok(true) => {}
                Ok(false) => {
                    return Outcome::deferred(Reply::new(
                        452,
                        [4, 2, 2],
                        format!("<{rcpt}>: mailbox full"),
                    ));
                }
                Err(e) => {
                    return Outcome::deferred(Reply::new(451, [4, 3, 0], format!("<{rcpt}>: {e}")));
                }
            }
        }
        match self.write(&dir, d.queue_id, header.as_bytes(), d, size) {
            Ok(name) => {
                self.add_usage(&dir, size);
                Outcome::Delivered {
                    detail: format!(
                        "delivered to maildir {}",
                        dir.join("new").join(name).display()
                    ),
                    handoff: Handoff::Mailbox,
                }
            }
            Err(e) => Outcome::deferred(Reply::new(
                451,
                [4, 3, 0],
                format!("<{rcpt}>: cannot write to the mailbox {}: {e}", dir.display()),
            )),
        }
    }

    /// Writes the message into tmp/, makes it durable, and moves it into new/.
    fn write(
        &self,
        dir: &Path,
        queue_id: &str,
        header: &[u8],
        d: &Delivery<'_>,
        size: u64,
    ) -> std::io::Result<String> {
        self.ensure_dirs(dir)?;
        let name = self.unique_name(queue_id, size);
        let tmp = dir.join("tmp").join(&name);
        let result = (|| {
            let mut file =
                OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            file.write_all(header)?;
            match d.stream {
                None => file.write_all(d.body)?,
                // Copied from the spool a chunk at a time, never whole in memory.
                Some(stream) => {
                    let mut out = std::io::BufWriter::with_capacity(256 * 1024, &mut file);
                    stream.copy_blocking(&mut out)?;
                    out.flush()?;
                }
            }
            file.sync_all()?;
            let new = dir.join("new");
            fs::rename(&tmp, new.join(&name))?;
            // The rename is durable only once the directory holding it is.
            File::open(&new)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| name)
    }

    /// Creates tmp/, new/ and cur/ (mode 0700) if missing; a newly made mailbox's directory
    /// entries are fsynced up to the root, so that the first message does not vanish with them.
    fn ensure_dirs(&self, dir: &Path) -> std::io::Result<()> {
        if dir.join("new").is_dir() && dir.join("tmp").is_dir() && dir.join("cur").is_dir() {
            return Ok(());
        }
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        for sub in ["tmp", "new", "cur"] {
            builder.create(dir.join(sub))?;
        }
        let mut at = Some(dir);
        while let Some(path) = at {
            File::open(path)?.sync_all()?;
            if path == self.root {
                break;
            }
            at = path.parent();
        }
        Ok(())
    }

    /// `<seconds>.M<microseconds>P<pid>Q<queue id>R<random>.<host>,S=<size>`: unique by the
    /// spec's rules (time, process, and a random part, since many deliveries share a process),
    /// with the queue ID (so a redelivery after a crash can be recognised) and the Maildir++ size
    /// (so measuring a mailbox needs no stat per file). Queue IDs are base32: safe in a name.
    fn unique_name(&self, queue_id: &str, size: u64) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let queue_id: String = queue_id.chars().filter(char::is_ascii_alphanumeric).collect();
        format!(
            "{}.M{}P{}Q{queue_id}R{:016x}.{},S={size}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            rand::random::<u64>(),
            self.host
        )
    }

    fn fits(&self, dir: &Path, size: u64, limit: u64) -> std::io::Result<bool> {
        let cached = self.lock().get(dir).copied();
        if let Some(usage) = cached
            && usage.measured.elapsed() < USAGE_TTL
            && usage.bytes + size <= limit
        {
            return Ok(true);
        }
        let bytes = measure(dir)?;
        self.lock().insert(dir.to_path_buf(), Usage { bytes, measured: Instant::now() });
        Ok(bytes + size <= limit)
    }

    fn add_usage(&self, dir: &Path, size: u64) {
        if let Some(usage) = self.lock().get_mut(dir) {
            usage.bytes += size;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Usage>> {
        // A panic while holding the lock leaves only a number behind: still usable.
        self.usage.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A path component that stays where it is put: not empty, not "." or "..", no leading dot
/// (hidden files and "..") and no separator or NUL.
fn safe_component(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 255
        && !part.starts_with('.')
        && !part.contains(['/', '\0'])
        && !part.chars().any(char::is_control)
}

/// The bytes in new/ and cur/: from each name's `,S=` when present, else from its metadata.
fn measure(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for sub in ["new", "cur"] {
        let entries = match fs::read_dir(dir.join(sub)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let from_name = name.to_str().and_then(size_in_name);
            total += match from_name {
                Some(size) => size,
                // A file that went away (expunged, moved to cur/) while we looked is not ours.
                None => entry.metadata().map(|m| m.len()).unwrap_or(0),
            };
        }
    }
    Ok(total)
}

/// The `S=` field of a Maildir++ name such as `...,S=1234:2,S` or `...,S=1234,W=1260`.
fn size_in_name(name: &str) -> Option<u64> {
    let base = name.split(':').next()?;
    base.split(',').find_map(|field| field.strip_prefix("S=")?.parse().ok())
}

#[cfg(test)]
#[path = "maildir_tests.rs"]
mod tests;
