//! `postern serve`: the data directory, the store, the first-run certificate, the engine's live
//! configuration and the SMTP listeners, until SIGTERM or Ctrl-C.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use postern_server::mta::{Mta, MtaOptions};
use postern_server::smtp::{self, Limits};
use postern_server::tls;
use postern_store::Store;
use postern_store::boot::{BootConfig, LogFormat, Profile};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use super::load_boot;

mod notify;
mod privileges;
mod reload;

#[derive(clap::Args)]
pub struct Args {
    /// Use unprivileged ports on loopback (SMTP 2525, submission 2587, submissions 2465, console
    /// 8080) unless the configuration names others: for trying Postern out as any user.
    #[arg(long)]
    dev: bool,

    /// On SIGTERM or Ctrl-C, how long (in seconds) to drain before exiting anyway: new
    /// connections are no longer taken, each SMTP session answers its next command with `421
    /// 4.3.2` and closes, a message being transferred is committed and answered first, and
    /// delivery attempts in progress are left to be retried. A second signal exits at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    drain_timeout: u64,

    /// What this node runs, over the configuration's `[roles]`: `smtp` (listeners and
    /// delivery, no console), `console` (console and API, no SMTP, no delivery) or `all`.
    #[arg(long, value_enum)]
    role: Option<Role>,

    /// Started as root: once the ports are bound, run as this user (and its groups) for good.
    /// Overrides `[serve] user`. The data directory must belong to it.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,

    /// Go on as root on privileged ports without a user to become (not recommended).
    #[arg(long)]
    allow_root: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Role {
    Smtp,
    Console,
    All,
}

/// Applies `--role` and `[roles]`: a role the node does not run binds none of its listeners.
fn apply_roles(boot: &mut BootConfig, role: Option<Role>) {
    match role {
        Some(Role::Smtp) => (boot.cluster.smtp, boot.cluster.console) = (true, false),
        Some(Role::Console) => (boot.cluster.smtp, boot.cluster.console) = (false, true),
        Some(Role::All) => (boot.cluster.smtp, boot.cluster.console) = (true, true),
        None => {}
    }
    if !boot.cluster.smtp {
        boot.smtp.clear();
        boot.submission.clear();
        boot.submissions.clear();
    }
    if !boot.cluster.console {
        boot.console.clear();
        boot.console_tls.clear();
    }
}

pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let profile = if args.dev { Profile::Dev } else { Profile::Standard };
    let mut boot = load_boot(config, profile)?;
    apply_roles(&mut boot, args.role);
    let reload_filter = init_logging(&boot)?;

    let user = args.user.clone().or_else(|| boot.serve_user.clone());
    let metrics_listen: Vec<std::net::SocketAddr> =
        boot.metrics.as_ref().and_then(|m| m.listen).into_iter().collect();
    let every_address: Vec<std::net::SocketAddr> = boot
        .listeners()
        .iter()
        .flat_map(|(_, addrs)| addrs.iter().copied())
        .chain(boot.console.iter().copied())
        .chain(boot.console_tls.iter().copied())
        .chain(boot.acme.as_ref().and_then(|a| a.http_listen))
        .chain(metrics_listen.iter().copied())
        .collect();
    privileges::check_root_policy(
        user.as_deref(),
        args.allow_root || boot.allow_root,
        &every_address,
    )?;
    // Looked up before binding: a user that does not exist is an error before anything else.
    let account = user.as_deref().map(privileges::lookup).transpose()?;

    raise_file_limit(boot.max_sessions, boot.console_options.max_connections);
    // Ports first: a port we cannot have is an error before anything is created on disk.
    let listeners = smtp::bind_all(&boot.listeners()).await?;
    let consoles = bind_console(&boot.console).await?;
    let consoles_tls = bind_console(&boot.console_tls).await?;
    let acme_http = postern_server::acme::bind_http(boot.acme.as_ref()).await?;
    let metrics_listeners = bind_console(&metrics_listen).await?;
    // Every port is bound: now become the service's user, before anything is created on disk.
    if let Some(account) = &account {
        if privileges::is_root() {
            let mut files = vec![boot.secret_key_file.as_path()];
            if let postern_store::Database::Sqlite { path } = &boot.database {
                files.push(path.as_path());
            }
            privileges::prepare_data_dir(account, &boot.data_dir, &files)?;
            privileges::drop_to(account)?;
            tracing::info!(user = %account.name, uid = account.uid, gid = account.gid, "privileges dropped");
        } else if privileges::current_uid() != account.uid {
            anyhow::bail!(
                "serve runs as uid {}, not root: it cannot become {} (uid {}); start it as root \
                 or as that user",
                privileges::current_uid(),
                account.name,
                account.uid
            );
        }
    }
    create_private_dir(&boot.data_dir)?;
    let store = Store::open(&boot.database, &boot.secret_key_file).await?;
    let cert = tls::ensure_self_signed(&boot.data_dir.join("tls"), &boot.hostname)?;

    let shutdown = CancellationToken::new();
    let watcher = store.spawn_watcher(shutdown.clone());
    // One resolver for every TLS listener: the stored certificates by SNI, the self-signed one
    // until a stored one fits; reloaded on every revision that changes them.
    let certificates = tls::CertResolver::new(
        boot.hostname.clone(),
        tls::certified_key_from_files(&cert.cert, &cert.key)?,
    );
    let certificate_task =
        tokio::spawn(tls::follow(store.clone(), certificates.clone(), shutdown.clone()));
    let bound: Vec<(&'static str, std::net::SocketAddr)> =
        listeners.iter().map(|l| (l.kind.name(), l.local_addr())).collect();
    // One limiter and one hashing bound for SMTP AUTH and the console's logins.
    // Its delays are measured on the store's clock, as every other schedule is.
    let passwords = postern_store::auth::PasswordChecks::new(
        postern_store::auth::HashGate::for_this_machine(),
        boot.password_attempts,
    )
    .on_clock(store.clock());
    // One resolver for the process (`[dns] servers`): delivery, MTA-STS, DKIM and the console.
    let (resolver, hickory) = postern_server::mta::resolver(&boot.dns_servers);
    let options = MtaOptions {
        hostname: boot.hostname.to_string(),
        data_dir: boot.data_dir.clone(),
        certificates: certificates.clone(),
        limits: Limits {
            max_message_size: usize::try_from(boot.max_message_size).unwrap_or(usize::MAX),
            // Room for two messages of the largest size, as with the default.
            min_free_disk: boot.max_message_size.saturating_mul(2),
            max_sessions: boot.max_sessions,
            max_sessions_per_address: boot.smtp_clients.per_address,
            max_sessions_per_network: boot.smtp_clients.per_network,
            idle_timeout: boot.smtp_clients.idle_timeout,
            ..Limits::default()
        },
        delivery: boot.delivery.clone(),
        passwords: passwords.clone(),
        resolver: resolver.clone(),
        hickory: hickory.clone(),
        auth_backend: boot.smtp_auth.clone(),
        cluster: boot.cluster.clone(),
    };
    // A console-only node is a member too (the console lists it), but holds no queue.
    let mta = if boot.cluster.smtp {
        Some(Mta::start(store.clone(), listeners, options, shutdown.clone()).await?)
    } else {
        let membership = postern_server::mta::membership(&boot.cluster);
        postern_server::cluster::join(&store, &membership).await?;
        let heartbeat = boot.cluster.heartbeat();
        // Detached: it ends with `shutdown`.
        drop(postern_server::cluster::run(
            store.clone(),
            membership,
            heartbeat,
            None,
            shutdown.clone(),
        ));
        None
    };
    let first_admin = ensure_admin(&store).await?;
    let retention = postern_store::Retention {
        delivery_log: boot.log_retention,
        // The engines' tail of administrator actions: a day leaves room for a stopped engine.
        queue_events: boot.log_retention.min(postern_store::Retention::default().queue_events),
    };
    let maintenance = tokio::spawn(trim_history(store.clone(), retention, shutdown.clone()));
    let backups =
        tokio::spawn(crate::backup::schedule::run(store.clone(), boot.clone(), shutdown.clone()));
    let settings = postern_web::Settings {
        hostname: boot.hostname.to_string(),
        certificate: super::console::certificate_info(&cert.cert),
        options: boot.console_options.clone(),
        // Plain HTTP redirects to the first HTTPS listener (see `[console] redirect_http`).
        https_port: consoles_tls.first().and_then(|l| l.local_addr().ok()).map(|a| a.port()),
        acme: super::cert::acme_enabled(&boot),
        // What presents the stored certificates, as the Certificates page lists it.
        tls_listeners: bound
            .iter()
            .map(|(name, addr)| format!("{name} {addr}"))
            .chain(
                consoles_tls
                    .iter()
                    .filter_map(|l| l.local_addr().ok())
                    .map(|a| format!("console-tls {a}")),
            )
            .collect(),
        ..Default::default()
    };
    let mut console_state =
        postern_web::AppState::new(store.clone(), settings).with_passwords(passwords);
    // The Blocklists page's live test asks the lists through the engine's resolver.
    console_state = console_state.with_dnsbl_check(std::sync::Arc::new(
        super::dnsbl::ConsoleBlocklists::new(resolver.clone()),
    ));
    console_state = console_state.with_health_check(Arc::new(super::console::ConsoleHealth {
        store: store.clone(),
        resolver: resolver.clone(),
        hostname: boot.hostname.to_string(),
    }));
    console_state = console_state.with_dkim_check(std::sync::Arc::new(
        super::console::ConsoleDkim(postern_server::mailauth::DkimChecker {
            store: store.clone(),
            resolver,
            actor: format!("engine:{}", boot.hostname),
        }),
    ));
    console_state =
        console_state.with_policy_probe(std::sync::Arc::new(super::console::ConsolePolicyProbe));
    if let Some(dns) = super::console::ConsoleDns::lookup(hickory) {
        console_state = console_state.with_dns(dns);
    }
    console_state =
        console_state.with_milter_probe(std::sync::Arc::new(super::milter::ConsoleMilterProbe));
    console_state =
        console_state.with_directory_probe(std::sync::Arc::new(super::directory::EngineDirectory));
    // `/metrics` on the console (and on `[metrics] listen`), for whom `[metrics]` admits; SIGHUP
    // replaces who that is.
    let metrics_access: postern_web::MetricsAccess =
        Arc::new(std::sync::RwLock::new(boot.metrics.clone()));
    console_state = console_state.with_metrics(metrics_access.clone());
    let mut console_bound = Vec::new();
    let mut console_tasks = Vec::new();
    for listener in consoles {
        console_bound.push(listener.local_addr()?);
        let (state, shutdown) = (console_state.clone(), shutdown.clone());
        console_tasks.push(tokio::spawn(async move {
            if let Err(e) = postern_web::run(listener, state, shutdown).await {
                tracing::error!(error = %e, "the console stopped");
            }
        }));
    }
    let mut metrics_bound = Vec::new();
    for listener in metrics_listeners {
        metrics_bound.push(listener.local_addr()?);
        let (state, shutdown) = (console_state.clone(), shutdown.clone());
        console_tasks.push(tokio::spawn(async move {
            if let Err(e) = postern_web::metrics::run(listener, state, shutdown).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        }));
    }
    // The console over HTTPS, with the same certificates as SMTP's STARTTLS and port 465, and
    // TLS-ALPN-01 challenges (RFC 8737) answered by ALPN `acme-tls/1`.
    let mut console_tls_bound = Vec::new();
    if !consoles_tls.is_empty() {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(
            certificates.clone(),
            &[b"http/1.1", tls::ACME_TLS_ALPN],
        ));
        for listener in consoles_tls {
            console_tls_bound.push(listener.local_addr()?);
            let (state, shutdown) = (console_state.clone(), shutdown.clone());
            let acceptor = acceptor.clone();
            console_tasks.push(tokio::spawn(async move {
                if let Err(e) = postern_web::run_tls(listener, acceptor, state, shutdown).await {
                    tracing::error!(error = %e, "the console over HTTPS stopped");
                }
            }));
        }
    }

    // Certificates from the ACME CA of `[acme]`: the host name's at once, more on order.
    let acme_tasks = boot.acme.clone().map(|config| {
        let acme_http_bound = acme_http.as_ref().and_then(|l| l.local_addr().ok());
        let start = postern_server::acme::AcmeStart {
            config,
            hostname: (!boot.hostname_is_fallback).then(|| boot.hostname.clone()),
            redirect_host: boot.hostname.to_string(),
            http_listener: acme_http,
            // TLS-ALPN-01 is answered on the console's HTTPS listener (443), by the resolver.
            tls_alpn01: console_tls_bound.first().map(|addr: &std::net::SocketAddr| {
                let alpn: Arc<dyn postern_server::acme::AlpnChallenges> = certificates.clone();
                (alpn, addr.port())
            }),
        };
        let tasks = postern_server::acme::start(store.clone(), start, shutdown.clone());
        (tasks, acme_http_bound)
    });

    write_listening(&boot.data_dir, &bound, &console_bound);
    let signals = catch_signals()?;
    let reloader = reload::Reloader {
        path: postern_store::boot::locate(config),
        profile,
        running: boot.clone(),
        filter: reload_filter,
        metrics: metrics_access,
    };
    let reload_task = match catch_hangup() {
        Some(hangup) => tokio::spawn(reload_on_hangup(reloader, hangup, shutdown.clone())),
        None => tokio::spawn(async {}),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "postern {} on {}", env!("CARGO_PKG_VERSION"), boot.hostname)?;
    if boot.hostname_is_fallback {
        writeln!(
            out,
            "  note: the machine's name is not fully qualified; set `hostname` in postern.toml"
        )?;
    }
    if let Some(source) = &boot.source {
        writeln!(out, "  config       {}", source.display())?;
    }
    writeln!(out, "  data         {}", boot.data_dir.display())?;
    let roles = match (boot.cluster.smtp, boot.cluster.console) {
        (true, true) => "smtp, console",
        (true, false) => "smtp",
        _ => "console",
    };
    writeln!(out, "  node         {} ({roles})", boot.cluster.node)?;
    writeln!(out, "  store        {} (revision {})", boot.database, store.revision().await?)?;
    writeln!(
        out,
        "  secret key   {} (back it up, apart from the store)",
        store.key_file().display()
    )?;
    let how = if cert.created { "self-signed, created now" } else { "existing" };
    writeln!(out, "  certificate  {} ({how})", cert.cert.display())?;
    for (name, addr) in &bound {
        writeln!(out, "  {name:<12} {addr}")?;
    }
    for addr in &console_bound {
        writeln!(out, "  console      {addr}")?;
    }
    for addr in &console_tls_bound {
        writeln!(out, "  console-tls  {addr}")?;
    }
    for addr in &metrics_bound {
        writeln!(out, "  metrics      {addr}")?;
    }
    if let Some(account) = &account {
        writeln!(
            out,
            "  user         {} (uid {}, gid {})",
            account.name, account.uid, account.gid
        )?;
    }
    if let (Some(acme), Some((_, http))) = (&boot.acme, &acme_tasks) {
        writeln!(out, "  acme         {}", acme.directory)?;
        if let Some(addr) = http {
            writeln!(out, "  acme-http    {addr}")?;
        }
    }
    if let Some(password) = first_admin {
        // Printed, never logged: this is the one time it exists outside the hash.
        writeln!(
            out,
            "  first run    administrator `admin`, one-time password {password} (a new one is \
             asked for at the first login)"
        )?;
    }
    writeln!(out, "ready; stop with Ctrl-C or SIGTERM")?;
    out.flush()?;
    drop(out);
    // Listeners bound, store migrated, engine and console running: systemd may start what
    // waits for us (Type=notify).
    notify::notify(&format!(
        "READY=1\nSTATUS=serving as {}\nMAINPID={}",
        boot.hostname,
        std::process::id()
    ));

    let mut signals = signals;
    wait_for_signal(&mut signals).await;
    tracing::info!(drain_timeout_secs = args.drain_timeout, "shutting down: draining sessions");
    notify::notify("STOPPING=1\nSTATUS=draining");
    shutdown.cancel();
    reload_task.abort();
    let (leaving, node) = (store.clone(), boot.cluster.node.clone());
    let all = async {
        let mta = async {
            match mta {
                Some(mta) => mta.join().await,
                // A console-only node holds no queue: it gives its lease up at once, and the
                // others list it as drained (stopped on purpose) rather than dead.
                None => postern_server::cluster::leave(&leaving, &node).await,
            }
        };
        let _ = tokio::join!(mta, watcher, certificate_task);
        let _ = maintenance.await;
        let _ = backups.await;
        if let Some((tasks, _)) = acme_tasks {
            tasks.join_all().await;
        }
        for task in console_tasks {
            let _ = task.await;
        }
    };
    let bound = Duration::from_secs(args.drain_timeout);
    tokio::select! {
        done = tokio::time::timeout(bound, all) => if done.is_err() {
            tracing::warn!(drain_timeout_secs = args.drain_timeout, "some tasks did not stop within the drain timeout");
        },
        _ = wait_for_signal(&mut signals) => {
            // Whatever was answered 250 is committed already; the rest was not acknowledged.
            tracing::warn!("second signal: exiting without waiting for the drain");
            println!("stopped (not drained)");
            std::process::exit(1);
        }
    }
    store.close().await;
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Descriptors kept for what is neither an SMTP session nor a console connection: outbound
/// deliveries (100 at once by default), the store, the spool, listeners, DNS.
const FILE_RESERVE: u64 = 1024;

/// Raises the soft limit on open files to the hard one: every SMTP session, console
/// connection, outbound connection and store file takes a descriptor, and the usual soft limit
/// (1,024) is far below what the limits allow. SMTP sessions and console connections each have
/// their own cap, so that one cannot take the other's descriptors; a hard limit below both
/// caps and a reserve is logged, as it is the administrator's to raise (`LimitNOFILE=` under
/// systemd).
fn raise_file_limit(max_sessions: usize, console_connections: usize) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by reference.
    let raised = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let wanted = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        limit.rlim_cur < limit.rlim_max && libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0
    };
    let now = if raised { limit.rlim_max } else { limit.rlim_cur };
    let wanted = max_sessions as u64 + console_connections as u64 + FILE_RESERVE;
    if now < wanted {
        tracing::warn!(
            open_files = now,
            wanted,
            smtp_max_sessions = max_sessions,
            console_max_connections = console_connections,
            reserve = FILE_RESERVE,
            "the open-file limit is below smtp.max_sessions + console.max_connections + a \
             reserve: a flood could run out of descriptors; raise LimitNOFILE or lower the limits"
        );
    }
}

async fn bind_console(
    addrs: &[std::net::SocketAddr],
) -> anyhow::Result<Vec<tokio::net::TcpListener>> {
    let mut listeners = Vec::new();
    for addr in addrs {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on {addr} for the console: another program has the port, or it \
                 needs privileges; set [console] listen in postern.toml"
            )
        })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// On the first run, creates the administrator `admin` with a random one-time password, which
/// it returns to be printed once.
async fn ensure_admin(store: &Store) -> anyhow::Result<Option<String>> {
    use postern_store::model::{PasswordHash, Role};
    if store.has_admins().await? {
        return Ok(None);
    }
    let password = postern_store::new_secret()[..20].to_string();
    let hash = PasswordHash::create(&password)?;
    let name = "admin".parse()?;
    store.create_admin("serve:first-run", &name, Role::Admin, &[], &hash, true).await?;
    Ok(Some(password))
}

/// Trims the history tables once an hour (and once at start-up).
async fn trim_history(
    store: Store,
    retention: postern_store::Retention,
    shutdown: CancellationToken,
) {
    // On the store's clock, as everything the history's age is measured by.
    let clock = store.clock();
    let mut first = true;
    loop {
        let wait = if first { Duration::ZERO } else { Duration::from_secs(3600) };
        first = false;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = clock.sleep(wait) => {}
        }
        match store.trim_history(retention).await {
            Ok(t) if t != postern_store::Trimmed::default() => tracing::info!(
                delivery_log = t.delivery_log,
                queue_events = t.queue_events,
                sessions = t.sessions,
                metric_samples = t.metric_samples,
                "history trimmed"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot trim the history tables"),
        }
        // Orphaned message bodies (older than an hour) and spool files left by a failed unlink.
        if let Err(e) = store.spool_sweep(false).await {
            tracing::warn!(error = %e, "cannot sweep the spool");
        }
        // After the trim: what it freed goes back to the file system, and the WAL is emptied.
        match store.compact().await {
            Ok(c) if c.vacuumed > 0 => tracing::info!(bytes = c.vacuumed, "store compacted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot compact the store"),
        }
    }
}

/// SIGTERM and SIGINT (Ctrl-C), caught from now on: installed before `ready` is printed, so
/// that a signal sent right after it stops serve cleanly instead of killing it.
fn catch_signals() -> anyhow::Result<[tokio::signal::unix::Signal; 2]> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok([term, int])
}

async fn wait_for_signal(signals: &mut [tokio::signal::unix::Signal; 2]) {
    let [term, int] = signals;
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// The data directory holds the store, mail, keys and the secret key: the owner's alone. One
/// left open by an earlier version is tightened (and logged).
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    postern_store::files::private_dir(dir).with_context(|| {
        format!(
            "cannot create the data directory {}: set data_dir in postern.toml to a folder you \
             can write",
            dir.display()
        )
    })
}

/// Catches SIGHUP. Called before readiness is announced, not inside the task that waits for
/// it: a SIGHUP that came between `READY=1` and the task's first poll would otherwise meet the
/// default action and end the process.
fn catch_hangup() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot catch SIGHUP; the configuration reloads only on restart");
            None
        }
    }
}

/// Reloads the boot configuration on each SIGHUP until `shutdown`.
async fn reload_on_hangup(
    mut reloader: reload::Reloader,
    mut hangup: tokio::signal::unix::Signal,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hangup.recv() => if got.is_none() { return },
        }
        notify::reloading();
        reloader.reload();
        notify::notify("READY=1");
    }
}

fn init_logging(boot: &BootConfig) -> anyhow::Result<reload::ReloadFilter> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) => EnvFilter::try_new(env).context("RUST_LOG")?,
        Err(_) => EnvFilter::try_new(&boot.log_level)
            .with_context(|| format!("log.level = {:?}", boot.log_level))?,
    };
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // The filter behind a reload handle, so that SIGHUP can change the level.
    Ok(match boot.log_format {
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()))
        }
        LogFormat::Json => {
            let builder = builder.json().flatten_event(true).with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()))
        }
    })
}

/// The file in the data directory that names the addresses `serve` listens on, one
/// `NAME ADDRESS` per line: how `postern sendmail` finds the engine, also on ports the
/// system chose.
pub const LISTENING_FILE: &str = "listening";

/// Writes [`LISTENING_FILE`]; a failure only costs `sendmail` its hint, so it is logged.
fn write_listening(
    data_dir: &std::path::Path,
    bound: &[(&str, std::net::SocketAddr)],
    console: &[std::net::SocketAddr],
) {
    let mut text = String::new();
    for (name, addr) in bound {
        text.push_str(&format!("{name} {addr}\n"));
    }
    for addr in console {
        text.push_str(&format!("console {addr}\n"));
    }
    if let Err(e) = std::fs::write(data_dir.join(LISTENING_FILE), text) {
        tracing::warn!(error = %e, "cannot write the listening file for `postern sendmail`");
    }
}
