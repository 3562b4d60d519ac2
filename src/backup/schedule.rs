//! Scheduled backups, run by `serve` on the store's clock: every `interval` seconds a backup
//! named `postern-<UTC time>.tar.gz` in the configured directory, the oldest removed beyond
//! the retention count, the result recorded for the dashboard.

use std::path::{Path, PathBuf};
use std::time::Duration;

use postern_store::boot::BootConfig;
use postern_store::{BackupResult, Store};
use tokio_util::sync::CancellationToken;

use super::create::{self, Options};

/// The settings are read again this often, so that a change in the console takes effect
/// without a restart.
const RECHECK: Duration = Duration::from_secs(60);

pub async fn run(store: Store, boot: BootConfig, shutdown: CancellationToken) {
    loop {
        let clock = store.clock();
        let due = match store.next_backup_due().await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the backup settings");
                None
            }
        };
        let now = clock.now();
        if let Some(due) = due.filter(|due| *due <= now) {
            let _ = due;
            run_once(&store, &boot).await;
            continue;
        }
        let wait = match due {
            Some(due) => Duration::from_secs((due - now).max(1) as u64).min(RECHECK),
            None => RECHECK,
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = clock.sleep(wait) => {}
        }
    }
}

/// Takes one scheduled backup now and records its result.
pub async fn run_once(store: &Store, boot: &BootConfig) -> BackupResult {
    let clock = store.clock();
    let result = match store.backup_settings().await {
        Ok(settings) => {
            let dir = PathBuf::from(&settings.directory);
            let file = dir.join(file_name(clock.now()));
            let options =
                Options { with_spool: settings.with_spool, with_maildirs: settings.with_maildirs };
            let taken = async {
                postern_store::files::private_dir(&dir)?;
                create::take(store, boot, &file, options).await
            }
            .await;
            match taken {
                Ok((_, size)) => {
                    if let Err(e) = prune(&dir, settings.retention) {
                        tracing::warn!(error = %e, "cannot remove old backups");
                    }
                    tracing::info!(file = %file.display(), size, "scheduled backup written");
                    BackupResult {
                        at: clock.now(),
                        file: Some(file.display().to_string()),
                        size: Some(size as i64),
                        error: None,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "scheduled backup failed");
                    BackupResult {
                        at: clock.now(),
                        file: None,
                        size: None,
                        error: Some(format!("{e:#}")),
                    }
                }
            }
        }
        Err(e) => {
            BackupResult { at: clock.now(), error: Some(e.to_string()), ..Default::default() }
        }
    };
    if let Err(e) = store.record_backup(&result).await {
        tracing::warn!(error = %e, "cannot record the backup's result");
    }
    result
}

/// `postern-20261207T101500Z.tar.gz`: names that sort in time order.
pub fn file_name(at: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(at).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "postern-{:04}{:02}{:02}T{:02}{:02}{:02}Z.tar.gz",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Removes the oldest scheduled backups in `dir` beyond `keep`.
pub fn prune(dir: &Path, keep: i64) -> std::io::Result<Vec<PathBuf>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("postern-") && n.ends_with("Z.tar.gz"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep.max(1) as usize);
    let mut removed = Vec::new();
    for name in names.into_iter().take(excess) {
        let path = dir.join(name);
        std::fs::remove_file(&path)?;
        removed.push(path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_time_order_and_retention_keeps_the_newest() {
        assert_eq!(file_name(0), "postern-19700101T000000Z.tar.gz");
        let dir = tempfile::tempdir().unwrap();
        for at in [100, 5_000, 90_000, 3_000_000] {
            std::fs::write(dir.path().join(file_name(at)), b"x").unwrap();
        }
        std::fs::write(dir.path().join("other.tar.gz"), b"x").unwrap();
        let removed = prune(dir.path(), 2).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(dir.path().join(file_name(3_000_000)).exists());
        assert!(dir.path().join(file_name(90_000)).exists());
        assert!(!dir.path().join(file_name(100)).exists());
        assert!(dir.path().join("other.tar.gz").exists());
    }

    /// The task `serve` runs, on a simulated clock: a backup at once, the next one an interval
    /// later (not before), and the oldest removed beyond the retention count.
    #[tokio::test]
    async fn backups_come_every_interval_on_the_stores_clock() {
        use std::time::Instant;

        let db = postern_store::testing::TestDb::sqlite();
        let store = db.open().await;
        let sim = postern_store::SimClock::at_system_now();
        store.set_clock(sim.clone().into());
        let out = tempfile::tempdir().unwrap();
        let mut boot =
            BootConfig::from_toml("", postern_store::boot::Profile::Dev).expect("defaults");
        boot.data_dir = db.dir();
        boot.secret_key_file = db.key_file();
        boot.database = db.database.clone();
        let settings = postern_store::BackupSettings {
            directory: out.path().display().to_string(),
            interval: 300,
            retention: 2,
            with_spool: true,
            with_maildirs: false,
        };
        store.set_backup_settings("test", settings).await.unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(store.clone(), boot, shutdown.clone()));
        let files = || {
            let mut names: Vec<String> = std::fs::read_dir(out.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect();
            names.sort();
            names
        };
        // Moves the clock a minute at a time (the task rechecks at least every minute) until
        // `n` backups have been recorded; returns the files then and the minutes it took.
        let mut taken: Vec<String> = Vec::new();
        let until = async |n: usize, taken: &mut Vec<String>| -> u32 {
            let start = Instant::now();
            let mut minutes = 0;
            loop {
                for _ in 0..100 {
                    if let Some(last) = store.last_backup().await.unwrap() {
                        assert!(last.error.is_none(), "{last:?}");
                        let file = last.file.unwrap_or_default();
                        let name = file.rsplit('/').next().unwrap_or_default().to_string();
                        if taken.last() != Some(&name) {
                            taken.push(name);
                        }
                    }
                    if taken.len() >= n {
                        return minutes;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                assert!(start.elapsed() < Duration::from_secs(20), "only {taken:?}");
                sim.advance_secs(60);
                minutes += 1;
            }
        };
        assert_eq!(until(1, &mut taken).await, 0, "the first one is due at once");
        assert_eq!(files().len(), 1);
        let minutes = until(2, &mut taken).await;
        assert!((5..=6).contains(&minutes), "the next one an interval later: {minutes} min");
        until(3, &mut taken).await;
        let names = files();
        assert_eq!(names, [taken[1].clone(), taken[2].clone()], "the oldest is removed");
        shutdown.cancel();
        task.await.unwrap();
    }
}
