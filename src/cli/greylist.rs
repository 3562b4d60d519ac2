//! `postern greylist on|off DOMAIN`, `list`, `set`: built-in greylisting per recipient domain.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{DomainName, GreylistSettings};

use super::{actor, open_store};

#[derive(Subcommand)]
pub enum Command {
    /// Greylist mail to DOMAIN (450 4.7.1 for a first attempt, accepted after the delay).
    On { domain: String },
    /// Stop greylisting mail to DOMAIN.
    Off { domain: String },
    /// The greylisted domains, the delays and how many triplets are stored.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change the delays (seconds); those left out keep their value.
    Set {
        #[arg(long)]
        delay: Option<i64>,
        #[arg(long)]
        retry_window: Option<i64>,
        #[arg(long)]
        expire: Option<i64>,
    },
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::On { domain } => {
            let domain: DomainName = domain.parse()?;
            open_store(config).await?.set_greylisting(&actor(), &domain, true).await?;
            println!("greylisting mail to {domain}");
        }
        Command::Off { domain } => {
            let domain: DomainName = domain.parse()?;
            open_store(config).await?.set_greylisting(&actor(), &domain, false).await?;
            println!("no longer greylisting mail to {domain}");
        }
        Command::List { json } => {
            let store = open_store(config).await?;
            let greylisting = store.greylisting().await?;
            let (_, total) = store.list_greylist_records(1).await?;
            if json {
                let value = serde_json::json!({
                    "settings": greylisting.settings,
                    "domains": greylisting.domains,
                    "triplets": total,
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(ExitCode::SUCCESS);
            }
            let s = greylisting.settings;
            println!(
                "delay {} s, retry window {} s, passed triplets kept {} s",
                s.delay, s.retry_window, s.expire
            );
            let domains: Vec<String> =
                greylisting.domains.iter().map(ToString::to_string).collect();
            println!(
                "greylisted domains: {}",
                if domains.is_empty() { "none".into() } else { domains.join(", ") }
            );
            println!("triplets stored: {total}");
        }
        Command::Set { delay, retry_window, expire } => {
            let store = open_store(config).await?;
            let now = store.greylisting().await?.settings;
            let new = GreylistSettings {
                delay: delay.unwrap_or(now.delay),
                retry_window: retry_window.unwrap_or(now.retry_window),
                expire: expire.unwrap_or(now.expire),
            };
            store.set_greylist_settings(&actor(), new).await?;
            println!(
                "delay {} s, retry window {} s, passed triplets kept {} s",
                new.delay, new.retry_window, new.expire
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
