//! `postern backup FILE`, `postern restore FILE`, and `postern backup schedule` for the
//! scheduled backups `serve` takes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::BackupSettings;

use super::{actor, load_boot, open_store};
use crate::backup::{create, restore, schedule};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// The backup file to write (a .tar.gz, created 0600; it must not exist). It holds the
    /// secret key: keep it as secret as the key itself.
    file: Option<PathBuf>,
    /// Include the bodies of queued messages kept in the spool (SQLite; with Postgres they are
    /// in the database and always included).
    #[arg(long)]
    with_spool: bool,
    /// Include the Maildirs (`<data_dir>/mail`).
    #[arg(long)]
    with_maildirs: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// The scheduled backups `serve` takes, and the last one's result.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Change the scheduled backups; those left out keep their value. `--interval 0` stops them.
    Schedule {
        /// An absolute directory for the backup files.
        #[arg(long)]
        directory: Option<String>,
        /// Seconds between two backups (at least 300; 0 for none).
        #[arg(long)]
        interval: Option<i64>,
        /// How many backup files to keep.
        #[arg(long)]
        retention: Option<i64>,
        #[arg(long)]
        with_spool: Option<bool>,
        #[arg(long)]
        with_maildirs: Option<bool>,
    },
    /// Take a scheduled backup now, as `serve` would, and record its result.
    Now,
}

pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(command) = args.command {
        return run_command(config, command).await;
    }
    let Some(file) = args.file else {
        anyhow::bail!("name the backup file: postern backup FILE [--with-spool] [--with-maildirs]");
    };
    let boot = load_boot(config, postern_store::boot::Profile::Standard)?;
    let store = open_store(config).await?;
    let options =
        create::Options { with_spool: args.with_spool, with_maildirs: args.with_maildirs };
    let (manifest, size) = create::take(&store, &boot, &file, options).await?;
    println!("backup written to {} ({size} bytes, mode 0600)", file.display());
    println!(
        "it holds the secret key that opens sealed secrets: keep it as secret as the key itself"
    );
    for (table, n) in &manifest.counts {
        println!("  {table:<18} {n}");
    }
    if manifest.backend == "sqlite" {
        println!("  spool files        {}", manifest.spool_files);
    }
    if !manifest.delivered_during_backup.is_empty() {
        println!(
            "  {} queued message(s) were delivered while the backup was taken (left out)",
            manifest.delivered_during_backup.len()
        );
    }
    if !manifest.left_out_without_spool.is_empty() {
        println!(
            "  {} queued message(s) with bodies in the spool left out: use --with-spool",
            manifest.left_out_without_spool.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_command(config: Option<&Path>, command: Command) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    match command {
        Command::Show { json } => {
            let settings = store.backup_settings().await?;
            let last = store.last_backup().await?;
            if json {
                let value = serde_json::json!({ "settings": settings, "last": last });
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(ExitCode::SUCCESS);
            }
            print_settings(&settings);
            match last {
                Some(last) => match (&last.file, &last.error) {
                    (_, Some(error)) => println!("last backup at {} failed: {error}", last.at),
                    (Some(file), None) => println!(
                        "last backup at {}: {file} ({} bytes)",
                        last.at,
                        last.size.unwrap_or(0)
                    ),
                    (None, None) => println!("last backup at {}", last.at),
                },
                None => println!("no scheduled backup has run"),
            }
        }
        Command::Schedule { directory, interval, retention, with_spool, with_maildirs } => {
            let old = store.backup_settings().await?;
            let new = BackupSettings {
                directory: directory.unwrap_or(old.directory),
                interval: interval.unwrap_or(old.interval),
                retention: retention.unwrap_or(old.retention),
                with_spool: with_spool.unwrap_or(old.with_spool),
                with_maildirs: with_maildirs.unwrap_or(old.with_maildirs),
            };
            let saved = store.set_backup_settings(&actor(), new).await?;
            print_settings(&saved);
        }
        Command::Now => {
            let boot = load_boot(config, postern_store::boot::Profile::Standard)?;
            let result = schedule::run_once(&store, &boot).await;
            match (result.file, result.error) {
                (_, Some(error)) => anyhow::bail!("backup failed: {error}"),
                (Some(file), None) => {
                    println!("backup written to {file} ({} bytes)", result.size.unwrap_or(0))
                }
                (None, None) => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_settings(s: &BackupSettings) {
    if s.enabled() {
        println!(
            "every {} s into {}, keeping {}{}{}",
            s.interval,
            s.directory,
            s.retention,
            if s.with_spool { ", with the spool" } else { "" },
            if s.with_maildirs { ", with the Maildirs" } else { "" },
        );
    } else {
        println!("scheduled backups are off (set a directory and an interval)");
    }
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// A backup file written by `postern backup`.
    file: PathBuf,
}

/// `postern restore FILE`: into the data directory (and database) the configuration names,
/// which must be empty.
pub async fn restore(config: Option<&Path>, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let boot = load_boot(config, postern_store::boot::Profile::Standard)?;
    let restored = restore::restore(&args.file, &boot).await?;
    let m = &restored.manifest;
    println!(
        "restored a {} backup taken at {} (schema {}) into {}",
        m.backend,
        m.created_at,
        m.schema_version,
        boot.data_dir.display()
    );
    for (table, n) in &restored.counts {
        println!("  {table:<18} {n}");
    }
    println!("start it with `postern serve`");
    Ok(ExitCode::SUCCESS)
}
