//! `postern token create|list|revoke`: API tokens.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{Access, AdminName, parse_domain_list};
use postern_store::now;

use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Create a token acting as an administrator; it is printed once and never again.
    Create {
        /// The administrator the token acts as.
        #[arg(long)]
        owner: String,
        /// What the token is for (shown in lists).
        #[arg(long)]
        name: String,
        /// Only read, never change anything.
        #[arg(long)]
        read_only: bool,
        /// Limit the token to these domains (comma-separated), within its owner's.
        #[arg(long, default_value = "")]
        domains: String,
        /// Days until the token stops working; without it, it lasts until revoked.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its ID.
    Revoke { id: String },
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Create { owner, name, read_only, domains, expires_in_days } => {
            let owner: AdminName = owner.parse()?;
            let access = if read_only { Access::Read } else { Access::Write };
            let domains = parse_domain_list(&domains)?;
            let expires = expires_in_days.map(|d| now() + i64::from(d) * 86_400);
            let store = open_store(config).await?;
            let issued =
                store.create_token(&actor(), &owner, &name, access, &domains, expires).await?;
            eprintln!(
                "token {} created for {owner}; it is shown this once, keep it safe:",
                issued.token.id
            );
            println!("{}", issued.bearer);
        }
        Command::List { json } => {
            let tokens = open_store(config).await?.list_tokens(None).await?;
            output::list(
                json,
                &tokens,
                &["id", "name", "owner", "access", "domains", "expires"],
                |t| {
                    vec![
                        t.id.clone(),
                        t.name.clone(),
                        t.owner.to_string(),
                        t.access.as_str().into(),
                        t.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(","),
                        t.expires_at.map_or("never".into(), |e| e.to_string()),
                    ]
                },
            );
        }
        Command::Revoke { id } => {
            open_store(config).await?.revoke_token(&actor(), &id).await?;
            println!("token {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
