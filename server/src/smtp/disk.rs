//! Free space in the data directory, read in the background: MAIL checks it for every message,
//! and a `statvfs` on the session's runtime thread would stall every session on that thread
//! whenever the file system is slow to answer (a busy disk, a network mount).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the reading is refreshed: at a few thousand messages a second, a second's worth
/// of mail is far below the margin MAIL keeps (twice the largest message).
pub const REFRESH: Duration = Duration::from_secs(1);

/// Marks "the file system did not say".
const UNKNOWN: u64 = u64::MAX;

pub struct DiskGauge {
    path: PathBuf,
    free: AtomicU64,
}

impl DiskGauge {
    /// Reads `path` once now, then every [`REFRESH`] until `shutdown`, off the runtime threads.
    pub fn watch(path: PathBuf, shutdown: CancellationToken) -> Arc<DiskGauge> {
        let gauge = Arc::new(DiskGauge { free: AtomicU64::new(read(&path)), path });
        let weak = Arc::downgrade(&gauge);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(gauge) = weak.upgrade() else { return };
                let path = gauge.path.clone();
                if let Ok(free) = tokio::task::spawn_blocking(move || read(&path)).await {
                    gauge.free.store(free, Ordering::Relaxed);
                }
            }
        });
        gauge
    }

    /// Free bytes for us, as of the last reading, if the file system said.
    pub fn free(&self) -> Option<u64> {
        Some(self.free.load(Ordering::Relaxed)).filter(|&f| f != UNKNOWN)
    }
}

fn read(path: &std::path::Path) -> u64 {
    match rustix::fs::statvfs(path) {
        Ok(stat) => stat.f_bavail.saturating_mul(stat.f_frsize).min(UNKNOWN - 1),
        Err(_) => UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_the_directory_at_once_and_stops_with_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let shutdown = CancellationToken::new();
        let gauge = DiskGauge::watch(dir.path().to_path_buf(), shutdown.clone());
        assert!(gauge.free().is_some_and(|f| f > 0));
        let missing = DiskGauge::watch(dir.path().join("missing"), shutdown.clone());
        assert_eq!(missing.free(), None);
        shutdown.cancel();
    }
}
