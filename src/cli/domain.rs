//! `postern domain add|list|remove`.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{DomainKind, DomainName};

use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Accept mail for a domain: local (mailboxes here) unless --relay.
    Add {
        name: String,
        /// Accept mail for the domain and pass it on by its transport, instead of holding
        /// mailboxes for it.
        #[arg(long)]
        relay: bool,
    },
    /// List domains.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop accepting mail for a domain.
    Remove {
        name: String,
        /// Also remove its mailboxes and aliases (their mail on disk stays).
        #[arg(long)]
        cascade: bool,
    },
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Add { name, relay } => {
            let name: DomainName = name.parse()?;
            let kind = if relay { DomainKind::Relay } else { DomainKind::Local };
            let store = open_store(config).await?;
            store.add_domain(&actor(), &name, kind).await?;
            println!("added {kind} domain {name}");
        }
        Command::List { json } => {
            let domains = open_store(config).await?.list_domains().await?;
            output::list(json, &domains, &["domain", "kind"], |d| {
                vec![d.name.to_string(), d.kind.to_string()]
            });
        }
        Command::Remove { name, cascade } => {
            let name: DomainName = name.parse()?;
            let removed = open_store(config).await?.remove_domain(&actor(), &name, cascade).await?;
            println!(
                "removed domain {name} ({} mailbox(es), {} alias(es) with it)",
                removed.mailboxes, removed.aliases
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
