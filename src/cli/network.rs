//! `postern network add|list|remove`.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::parse_cidr;

use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Let clients in CIDR relay without authenticating (like Postfix's mynetworks).
    Add {
        cidr: String,
        #[arg(long, default_value = "")]
        description: String,
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
        Command::Add { cidr, description } => {
            let cidr = parse_cidr(&cidr)?;
            open_store(config).await?.add_network(&actor(), cidr, &description).await?;
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
