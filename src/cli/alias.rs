//! `postern alias add|list|remove`.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{Address, AliasSource, DomainName};

use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Forward SOURCE (an address, or @domain for a catch-all) to DESTINATIONS; adds to an
    /// existing alias.
    Add {
        source: String,
        #[arg(required = true)]
        destinations: Vec<String>,
    },
    /// List aliases.
    List {
        /// Only this domain's.
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove the given destinations of an alias, or the whole alias when none are given.
    Remove { source: String, destinations: Vec<String> },
}

fn addresses(list: &[String]) -> anyhow::Result<Vec<Address>> {
    Ok(list.iter().map(|d| d.parse()).collect::<Result<_, _>>()?)
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Add { source, destinations } => {
            let source: AliasSource = source.parse()?;
            let destinations = addresses(&destinations)?;
            let alias =
                open_store(config).await?.add_alias(&actor(), &source, &destinations).await?;
            println!("{} -> {}", alias.source, join(&alias.destinations));
        }
        Command::List { domain, json } => {
            let domain: Option<DomainName> = domain.map(|d| d.parse()).transpose()?;
            let aliases = open_store(config).await?.list_aliases(domain.as_ref()).await?;
            output::list(json, &aliases, &["source", "destinations"], |a| {
                vec![a.source.to_string(), join(&a.destinations)]
            });
        }
        Command::Remove { source, destinations } => {
            let source: AliasSource = source.parse()?;
            let destinations = addresses(&destinations)?;
            match open_store(config).await?.remove_alias(&actor(), &source, &destinations).await? {
                Some(left) => println!("{} -> {}", left.source, join(&left.destinations)),
                None => println!("removed alias {source}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn join(addresses: &[Address]) -> String {
    addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
