//! `postern serve`: the data directory, the store, the first-run certificate, the engine's live
//! configuration and the SMTP listeners, until SIGTERM or Ctrl-C.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use postern_server::mta::{Mta, MtaOptions};
use postern_server::queue::RetryPolicy;
use postern_server::smtp::{self, Limits};
use postern_server::tls;
use postern_store::Store;
use postern_store::boot::{BootConfig, LogFormat, Profile};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use super::load_boot;

#[derive(clap::Args)]
pub struct Args {
    /// Use unprivileged ports on loopback (SMTP 2525, submission 2587, submissions 2465, console
    /// 8080) unless the configuration names others: for trying Postern out as any user.
    #[arg(long)]
    dev: bool,
}

pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let profile = if args.dev { Profile::Dev } else { Profile::Standard };
    let boot = load_boot(config, profile)?;
    init_logging(&boot)?;

    // Ports first: a port we cannot have is an error before anything is created on disk.
    let listeners = smtp::bind_all(&boot.listeners()).await?;
    create_private_dir(&boot.data_dir)?;
    let store = Store::open(&boot.database).await?;
    let cert = tls::ensure_self_signed(&boot.data_dir.join("tls"), &boot.hostname)?;

    let shutdown = CancellationToken::new();
    let watcher = store.spawn_watcher(shutdown.clone());
    let bound: Vec<(&'static str, std::net::SocketAddr)> =
        listeners.iter().map(|l| (l.kind.name(), l.local_addr())).collect();
    let options = MtaOptions {
        hostname: boot.hostname.to_string(),
        data_dir: boot.data_dir.clone(),
        certificate: cert.clone(),
        limits: Limits::default(),
        retry: RetryPolicy::default(),
        concurrency: 100,
    };
    let mta = Mta::start(store.clone(), listeners, options, shutdown.clone()).await?;

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
    writeln!(out, "  store        {} (revision {})", boot.database, store.revision().await?)?;
    let how = if cert.created { "self-signed, created now" } else { "existing" };
    writeln!(out, "  certificate  {} ({how})", cert.cert.display())?;
    for (name, addr) in &bound {
        writeln!(out, "  {name:<12} {addr}")?;
    }
    let console: Vec<String> = boot.console.iter().map(ToString::to_string).collect();
    writeln!(out, "  console      not in this build yet (will listen on {})", console.join(", "))?;
    writeln!(out, "ready; stop with Ctrl-C or SIGTERM")?;
    out.flush()?;
    drop(out);

    wait_for_signal().await?;
    tracing::info!("shutting down");
    shutdown.cancel();
    let all = async {
        let _ = tokio::join!(mta.join(), watcher);
    };
    if tokio::time::timeout(Duration::from_secs(10), all).await.is_err() {
        tracing::warn!("some tasks did not stop within 10 s");
    }
    store.close().await;
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

/// The data directory holds mail and keys: owner and group only.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}: set data_dir in postern.toml to a folder you can write", dir.display()))
}

fn init_logging(boot: &BootConfig) -> anyhow::Result<()> {
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
    match boot.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}
