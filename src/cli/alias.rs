//! `postern alias add|list|remove`.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::AliasChoice;
use postern_store::model::{Address, AliasSource, DomainName};

use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Forward SOURCE (an address, or @domain for a catch-all) to DESTINATIONS; adds to an
    /// existing alias. A SOURCE that is a mailbox needs --also-mailbox or --instead-of-mailbox;
    /// an alias to itself alone is refused.
    Add {
        source: String,
        #[arg(required = true)]
        destinations: Vec<String>,
        /// SOURCE is a mailbox: deliver to it as well (SOURCE joins the destinations).
        #[arg(long, conflicts_with = "instead_of_mailbox")]
        also_mailbox: bool,
        /// SOURCE is a mailbox: send its mail to DESTINATIONS only.
        #[arg(long)]
        instead_of_mailbox: bool,
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
        Command::Add { source, destinations, also_mailbox, instead_of_mailbox } => {
            let source: AliasSource = source.parse()?;
            let mut destinations = addresses(&destinations)?;
            if let (true, AliasSource::Address(itself)) = (also_mailbox, &source)
                && !destinations.contains(itself)
            {
                destinations.insert(0, itself.clone());
            }
            let choice = AliasChoice { divert_mailbox: instead_of_mailbox };
            let store = open_store(config).await?;
            let alias = store.add_alias_with(&actor(), &source, &destinations, choice).await?;
            println!("{} -> {}", alias.source, join(&alias.destinations));
            for warning in store.alias_warnings(&alias).await? {
                eprintln!("warning: {warning}");
            }
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
