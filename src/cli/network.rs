//! `postern network add|list|remove`.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{is_open_relay_range, open_relay_warning, parse_cidr};

use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Let clients in CIDR relay without authenticating (like Postfix's mynetworks).
    Add {
        cidr: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Trust a range that reaches beyond private address space by more than a /16 (IPv4)
        /// or /32 (IPv6), such as 0.0.0.0/0: every client in it may relay, an open relay.
        #[arg(long)]
        force: bool,
    },
    /// List trusted networks.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting a network.
    Remove { cidr: String },
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Add { cidr, description, force } => {
            let cidr = parse_cidr(&cidr)?;
            if force && is_open_relay_range(&cidr) {
                eprintln!("warning: {}", open_relay_warning(&cidr));
            }
            let store = open_store(config).await?;
            match store.add_network_with(&actor(), cidr, &description, force).await {
                Err(postern_store::StoreError::Invalid { message, .. })
                    if is_open_relay_range(&cidr) =>
                {
                    anyhow::bail!("{message} (with --force)")
                }
                result => result?,
            };
            println!("trusting {cidr}");
        }
        Command::List { json } => {
            let networks = open_store(config).await?.list_networks().await?;
            output::list(json, &networks, &["network", "description"], |n| {
                vec![n.cidr.to_string(), n.description.clone()]
            });
        }
        Command::Remove { cidr } => {
            let cidr = parse_cidr(&cidr)?;
            open_store(config).await?.remove_network(&actor(), &cidr).await?;
            println!("no longer trusting {cidr}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
