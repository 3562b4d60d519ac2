//! The engine's view of the configuration: an immutable [`Snapshot`] swapped in atomically each
//! time the store's change feed reports a new revision. Sessions read whichever snapshot is
//! current when they decide; a snapshot that fails validation is not applied.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use postern_store::Store;
use postern_store::model::Config;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::ServerError;

/// The configuration as the engine uses it, at one revision.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub applied_at: SystemTime,
}

impl Snapshot {
    pub fn revision(&self) -> i64 {
        self.config.revision
    }
}

/// A refused snapshot, kept so that an administrator can be shown why a change is not live.
#[derive(Debug, Clone)]
pub struct RefusedSnapshot {
    pub revision: i64,
    pub problems: Vec<String>,
}

/// Cheap to clone: handles on the live snapshot and the reload task's state.
#[derive(Clone)]
pub struct Engine {
    snapshot: Arc<ArcSwap<Snapshot>>,
    refused: Arc<ArcSwapOption<RefusedSnapshot>>,
}

impl Engine {
    /// Loads the current configuration and keeps following the store's change feed until
    /// `shutdown`. Commits from other processes arrive only if the store's watcher runs
    /// ([`Store::spawn_watcher`]).
    pub async fn start(
        store: Store,
        node: &str,
        shutdown: CancellationToken,
    ) -> Result<(Engine, JoinHandle<()>), ServerError> {
        // Subscribe before loading, so that a commit in between is not missed.
        let mut changes = store.subscribe();
        let config = store.load_config().await?;
        for problem in config.problems() {
            tracing::error!(object = %problem.object, fix = %problem.fix, "configuration problem: {}", problem.message);
        }
        log_applied(&config);
        report(&store, node, config.revision, None).await;
        let engine = Engine {
            snapshot: Arc::new(ArcSwap::from_pointee(Snapshot {
                config,
                applied_at: SystemTime::now(),
            })),
            refused: Arc::new(ArcSwapOption::empty()),
        };
        let task = {
            let engine = engine.clone();
            let node = node.to_string();
            tokio::spawn(async move {
                // The console counts an engine as running while it renews its status.
                let mut heartbeat = tokio::time::interval(HEARTBEAT);
                heartbeat.tick().await;
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        changed = changes.changed() => if changed.is_err() { return },
                        _ = heartbeat.tick() => {
                            let refused = engine.refused();
                            let refused = refused.as_ref().map(|r| (r.revision, r.problems.join("; ")));
                            let refused = refused.as_ref().map(|(r, p)| (*r, p.as_str()));
                            report(&store, &node, engine.snapshot().revision(), refused).await;
                            continue;
                        }
                    }
                    let wanted = *changes.borrow_and_update();
                    if wanted > engine.snapshot().revision() {
                        engine.reload(&store, &node).await;
                    }
                }
            })
        };
        Ok((engine, task))
    }

    /// The snapshot current now. Hold it for one decision, not for a whole session.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The newest snapshot that was refused, if it is newer than the live one.
    pub fn refused(&self) -> Option<Arc<RefusedSnapshot>> {
        self.refused.load_full().filter(|r| r.revision > self.snapshot().revision())
    }

    async fn reload(&self, store: &Store, node: &str) {
        let config = match store.load_config().await {
            Ok(config) => config,
            Err(e) => {
                // The revision stays ahead of the snapshot; the next change or poll retries.
                tracing::error!(error = %e, "cannot load the configuration; keeping the last good one");
                return;
            }
        };
        let problems = config.problems();
        if !problems.is_empty() {
            let problems: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {} (fix: {})", p.object, p.message, p.fix))
                .collect();
            tracing::error!(
                revision = config.revision,
                live = self.snapshot().revision(),
                "configuration refused, keeping the last good one: {}",
                problems.join("; ")
            );
            let live = self.snapshot().revision();
            report(store, node, live, Some((config.revision, &problems.join("; ")))).await;
            self.refused
                .store(Some(Arc::new(RefusedSnapshot { revision: config.revision, problems })));
            return;
        }
        // Swapped in before it is announced: the log line and the console's "live" say that
        // sessions now decide with it, and a client acting on either must find it so.
        let revision = config.revision;
        self.snapshot.store(Arc::new(Snapshot { config, applied_at: SystemTime::now() }));
        log_applied(&self.snapshot().config);
        report(store, node, revision, None).await;
    }
}

/// How often a running engine renews its status (the console drops one silent for two minutes).
const HEARTBEAT: Duration = Duration::from_secs(30);

/// Tells the console which revision runs here. A failure to write it costs only the console's
/// "live" message, so it is logged and not fatal.
async fn report(store: &Store, node: &str, revision: i64, refused: Option<(i64, &str)>) {
    if let Err(e) = store.record_engine_status(node, revision, refused).await {
        tracing::warn!(error = %e, "cannot record the engine's revision for the console");
    }
}

fn log_applied(config: &Config) {
    let n = config.summary();
    tracing::info!(
        revision = config.revision,
        domains = n.domains,
        mailboxes = n.mailboxes,
        aliases = n.aliases,
        transports = n.transports,
        networks = n.networks,
        policy_rules = n.policy_rules,
        "configuration applied"
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use postern_store::model::DomainKind;
    use postern_store::testing::TestDb;

    use super::*;

    async fn wait_for(engine: &Engine, revision: i64, within: Duration) -> Duration {
        let start = std::time::Instant::now();
        while engine.snapshot().revision() < revision {
            assert!(
                start.elapsed() < within,
                "snapshot still at {} after {within:?}",
                engine.snapshot().revision()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        start.elapsed()
    }

    #[tokio::test]
    async fn a_change_in_this_process_is_live_within_100ms() {
        let db = TestDb::sqlite();
        let store = db.open().await;
        let shutdown = CancellationToken::new();
        let (engine, task) = Engine::start(store.clone(), "test", shutdown.clone()).await.unwrap();
        let domain = "example.com".parse().unwrap();
        store.add_domain("test", &domain, DomainKind::Local).await.unwrap();
        let revision = store.revision().await.unwrap();
        wait_for(&engine, revision, Duration::from_millis(100)).await;
        assert!(engine.snapshot().config.domains.contains_key(&domain));
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_bad_configuration_is_not_applied() {
        let db = TestDb::sqlite();
        let store = db.open().await;
        let shutdown = CancellationToken::new();
        let (engine, _task) = Engine::start(store.clone(), "test", shutdown.clone()).await.unwrap();
        store.add_domain("test", &"example.com".parse().unwrap(), DomainKind::Local).await.unwrap();
        let good = store.revision().await.unwrap();
        wait_for(&engine, good, Duration::from_millis(500)).await;

        // Turning the domain into a relay domain orphans nothing yet, but an alias loop written
        // by hand must not reach the engine.
        postern_store::testing::hand_edit(
            &store,
            "INSERT INTO aliases (source, domain, created_at) VALUES ('a@example.com', 'example.com', 0); \
             INSERT INTO alias_destinations (source, position, destination) VALUES ('a@example.com', 0, 'a+x@example.com')",
        )
        .await;
        let bad = store.revision().await.unwrap();
        let start = std::time::Instant::now();
        while engine.refused().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "the bad revision was never considered"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let refused = engine.refused().unwrap();
        assert_eq!(refused.revision, bad);
        assert!(refused.problems[0].contains("alias loop"), "{:?}", refused.problems);
        assert_eq!(engine.snapshot().revision(), good, "the last good snapshot stays live");
        shutdown.cancel();
    }
}
