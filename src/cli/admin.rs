//! `postern admin create|list|passwd|remove`: console administrators.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{AdminName, PasswordHash, Role, parse_domain_list};

use super::secret::read_password;
use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Create an administrator; the password is asked for (or read from standard input).
    Create {
        name: String,
        /// `admin` (everything) or `domain-admin` (only --domains).
        #[arg(long, default_value = "admin")]
        role: String,
        /// The domains a domain-admin manages, comma-separated.
        #[arg(long, default_value = "")]
        domains: String,
        /// Make them choose a new password at their first login.
        #[arg(long)]
        temporary: bool,
    },
    /// List administrators.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set an administrator's password (ends their console sessions).
    Passwd {
        name: String,
        #[arg(long)]
        temporary: bool,
    },
    /// Remove an administrator with their sessions and API tokens.
    Remove { name: String },
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Create { name, role, domains, temporary } => {
            let name: AdminName = name.parse()?;
            let role: Role = role.parse()?;
            let domains = parse_domain_list(&domains)?;
            let store = open_store(config).await?;
            let password = PasswordHash::create_for(name.as_str(), &read_password("Password")?)?;
            store.create_admin(&actor(), &name, role, &domains, &password, temporary).await?;
            println!("administrator {name} ({role}) created");
        }
        Command::List { json } => {
            let admins = open_store(config).await?.list_admins().await?;
            output::list(
                json,
                &admins,
                &["name", "role", "domains", "must change password"],
                |a| {
                    vec![
                        a.name.to_string(),
                        a.role.to_string(),
                        a.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(","),
                        if a.must_change_password { "yes" } else { "no" }.into(),
                    ]
                },
            );
        }
        Command::Passwd { name, temporary } => {
            let name: AdminName = name.parse()?;
            let store = open_store(config).await?;
            let password =
                PasswordHash::create_for(name.as_str(), &read_password("New password")?)?;
            store.set_admin_password(&actor(), &name, &password, temporary).await?;
            println!("password of {name} changed; their console sessions have ended");
        }
        Command::Remove { name } => {
            let name: AdminName = name.parse()?;
            open_store(config).await?.remove_admin(&actor(), &name).await?;
            println!("administrator {name} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
