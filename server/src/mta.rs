//! Wires the engine together: the live configuration, the queue writer, the scheduler and the
//! SMTP listeners, all stopped by one shutdown token.

use std::path::PathBuf;
use std::sync::Arc;

use postern_store::Store;
use postern_store::auth::PasswordChecks;
use postern_store::boot::DeliveryConfig;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::delivery::{DirectConnector, MtaSts, PoolSettings, StsSettings};
use crate::dns::{HickoryResolver, Resolver, UnconfiguredResolver};
use crate::engine::Engine;
use crate::error::ServerError;
use crate::queue::{Queue, RetryPolicy, Scheduler, SchedulerConfig};
use crate::smtp::{self, Limits, Listener, SessionContext};
use crate::tls::CertResolver;

/// What the MTA needs besides the store and its sockets.
pub struct MtaOptions {
    pub hostname: String,
    pub data_dir: PathBuf,
    /// Chooses the certificate of every STARTTLS and port-465 handshake (shared with the
    /// console's HTTPS; `tls::follow` keeps it current).
    pub certificates: Arc<CertResolver>,
    pub limits: Limits,
    /// Concurrency, connection reuse and the retry schedule (the boot config's `[delivery]`).
    pub delivery: DeliveryConfig,
    /// Shared with the console, so that guesses count the same on both.
    pub passwords: PasswordChecks,
    /// The process's one resolver (the boot configuration's `[dns] servers`); see [`resolver`].
    pub resolver: Arc<dyn Resolver>,
    /// The same resolver as hickory's own, for SPF/DKIM/ARC/DMARC on inbound mail; `None`
    /// leaves inbound mail unchecked.
    pub hickory: Option<HickoryResolver>,
    /// Who checks SMTP AUTH passwords (the boot configuration's `[auth]`).
    pub auth_backend: postern_store::boot::SmtpAuthBackend,
    /// The node's name in the store, and its lease (`node`, `[cluster]`): its queue entries,
    /// engine status and rate counters are kept under the name.
    pub cluster: postern_store::boot::ClusterConfig,
}

/// A running MTA: its tasks end after `shutdown` is cancelled.
pub struct Mta {
    pub engine: Engine,
    pub queue: Queue,
    tasks: JoinSet<()>,
    /// Samples the counters into the store; once more in [`Mta::join`].
    sampler: Arc<crate::counters::Sampler>,
}

impl Mta {
    pub async fn start(
        store: Store,
        listeners: Vec<Listener>,
        options: MtaOptions,
        shutdown: CancellationToken,
    ) -> Result<Mta, ServerError> {
        let mut tasks = JoinSet::new();
        // The store's clock is the process's: the system's, or a test's simulated one.
        let clock = store.clock();
        let node = options.cluster.node.clone();
        // A member before the scheduler loads the queue, so that no other node claims it.
        let membership = membership(&options.cluster);
        crate::cluster::join(&store, &membership).await?;
        let (engine, engine_task) = Engine::start(store.clone(), &node, shutdown.clone()).await?;
        tasks.spawn(async move {
            let _ = engine_task.await;
        });
        // SMTP offers no ALPN protocol: clients that send some are not refused for it.
        let tls = tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
            options.certificates.clone(),
            &[],
        ));
        // Bodies a crash left without an envelope (written, then the commit never came): before
        // any session of ours writes a new one. A failure is not fatal: they are only space.
        match store.spool_sweep(true).await {
            Ok(swept) if swept != Default::default() => {
                tracing::info!(orphans = swept.orphans, removed = swept.trash, "spool swept")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot sweep the spool"),
        }
        let (fresh_tx, fresh_rx) = tokio::sync::mpsc::channel(crate::queue::FRESH_BACKLOG);
        // The writer outlives the sessions: a message whose transfer was under way at shutdown
        // is still committed (and answered 250) while they drain; it stops once they are gone.
        let drained = CancellationToken::new();
        let (queue, writer) =
            Queue::start(store.clone(), node.clone(), Some(fresh_tx), drained.clone());
        let resolver = options.resolver.clone();
        // DNS blocklists through the same resolver; greylisting's triplets in the store.
        let screen =
            Arc::new(crate::policy::Screen::new(store.clone(), resolver.clone(), clock.clone()));
        // Pending keys become active once their record is seen; retiring ones retire.
        let checker = crate::mailauth::DkimChecker {
            store: store.clone(),
            resolver: resolver.clone(),
            actor: format!("engine:{}", options.hostname),
        };
        tasks.spawn(crate::mailauth::run_schedule(
            checker,
            crate::mailauth::CHECK_EVERY,
            shutdown.clone(),
        ));
        let mta_sts = match MtaSts::new(
            resolver.clone(),
            StsSettings { clock: clock.clone(), ..StsSettings::default() },
        ) {
            Ok(sts) => Some(Arc::new(sts)),
            Err(why) => {
                // Without it mail still goes out, as to domains without a policy.
                tracing::error!(error = %why, "cannot set up MTA-STS; policies are ignored");
                None
            }
        };
        let scheduler = SchedulerConfig {
            node: node.clone(),
            hostname: options.hostname.clone(),
            mail_root: options.data_dir.join("mail"),
            retry: RetryPolicy::from(&options.delivery),
            concurrency: options.delivery.concurrency,
            outbound: PoolSettings::from(&options.delivery),
            connector: Arc::new(DirectConnector::with_resolver(resolver.clone())),
            resolver,
            mta_sts,
            extra_roots: Vec::new(),
            bounces: queue.clone(),
            courier: None,
            clock: clock.clone(),
        };
        let rates =
            Arc::new(crate::policy::RateLimiter::new(clock, crate::policy::rate::MAX_ENTRIES));
        tasks.spawn(crate::policy::rate::publish(
            store.clone(),
            node.clone(),
            engine.clone(),
            rates.clone(),
            shutdown.clone(),
        ));
        // Refusals into the delivery log, from one writer task (bounded: see policy/refusals.rs).
        // Like the queue's writer it outlives the sessions: what they refuse while they drain
        // (a message finished after the signal and refused by a check) is still logged.
        let (refusals, refusal_writer) =
            crate::policy::RefusalLog::start(store.clone(), drained.clone());
        tasks.spawn(refusal_writer);
        // A drain stops SMTP without stopping the process: sessions see `smtp_stop`, cancelled
        // by the drain or by the shutdown.
        let smtp_stop = shutdown.child_token();
        let smtp_stopped = CancellationToken::new();
        let (side, link) = crate::cluster::SmtpSide::new(smtp_stop.clone(), smtp_stopped.clone());
        let store_metrics = store.metrics().clone();
        // The dashboard's chart reads the counters from the store, per node and minute.
        let sampler = crate::counters::Sampler::new(store.clone(), node.clone());
        tasks.spawn(sampler.clone().run(shutdown.clone()));
        let heartbeat = options.cluster.heartbeat();
        let members =
            crate::cluster::run(store.clone(), membership, heartbeat, Some(side), shutdown.clone());
        tasks.spawn(async move {
            let _ = members.await;
        });
        let scheduler = tokio::spawn(Scheduler::run_in_cluster(
            store.clone(),
            engine.clone(),
            scheduler,
            fresh_rx,
            shutdown.clone(),
            Some(link),
        ));
        // Stopping (SIGTERM) hands the queue over like a drain: once the scheduler has written
        // its results and the writer has committed the last messages, the lease is given up,
        // so that the other nodes claim the queue at their next heartbeat.
        let leaving = store;
        tasks.spawn(async move {
            let _ = scheduler.await;
            let _ = writer.await;
            crate::cluster::leave(&leaving, &node).await;
        });
        let verifier = options.hickory.as_ref().map(|h| {
            Arc::new(crate::mailauth::Verifier::new(h.hickory().clone(), &options.hostname))
        });
        let ctx = Arc::new(SessionContext {
            hostname: options.hostname,
            engine: engine.clone(),
            sink: Arc::new(queue.clone()),
            tls: Some(tls),
            limits: options.limits,
            disk: smtp::DiskGauge::watch(options.data_dir, shutdown.clone()),
            signer: Arc::new(crate::mailauth::DkimSigner::new(engine.clone())),
            verifier,
            passwords: options.passwords,
            rates,
            screen,
            refusals,
            auth_backend: options.auth_backend,
            directory: Arc::new(crate::directory::Directory::new()),
            draining: smtp_stop.clone(),
            metrics: store_metrics,
        });
        tasks.spawn(async move {
            smtp::serve(listeners, ctx, smtp_stop).await;
            smtp_stopped.cancel();
            // After a drain the writer still queues the DSNs of the last attempts; it stops
            // with the process.
            shutdown.cancelled().await;
            drained.cancel();
        });
        Ok(Mta { engine, queue, tasks, sampler })
    }

    /// Waits for every task to end (after the shutdown token is cancelled).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
        // Everything is counted now: the last minute's increase goes to the store too.
        self.sampler.sample().await;
    }
}

/// How this node registers in the store.
pub fn membership(cluster: &postern_store::boot::ClusterConfig) -> postern_store::Membership {
    postern_store::Membership {
        node: cluster.node.clone(),
        smtp: cluster.smtp,
        console: cluster.console,
        dead_after: i64::try_from(cluster.dead_after.as_secs()).unwrap_or(i64::MAX),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// The process's resolver: `servers` (the boot configuration's `[dns] servers`), or the
/// system's (/etc/resolv.conf) when empty. Without a usable configuration the MTA still starts,
/// so that local mail and fixed transports work, and MX deliveries wait in the queue.
pub fn resolver(servers: &[std::net::SocketAddr]) -> (Arc<dyn Resolver>, Option<HickoryResolver>) {
    match HickoryResolver::new(servers) {
        Ok(resolver) => (Arc::new(resolver.clone()), Some(resolver)),
        Err(why) => {
            tracing::error!(error = %why, "cannot read the DNS configuration; MX delivery waits");
            (Arc::new(UnconfiguredResolver { why: format!("no DNS configuration: {why}") }), None)
        }
    }
}
