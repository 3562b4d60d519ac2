//! `postern transport set|list|remove`.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{SmtpCredentials, TlsPolicy, Transport, TransportPattern};

use super::{actor, open_store, output, secret};

#[derive(Subcommand)]
pub enum Command {
    /// Route mail for PATTERN (a domain, .domain for its subdomains, or * for everything else)
    /// through TRANSPORT: local, lmtp:HOST:PORT, lmtp:unix:/PATH, smtp:[HOST]:PORT (that host),
    /// smtp:DOMAIN (its MX hosts), mx, discard or error:TEXT.
    Set {
        pattern: String,
        transport: String,
        /// TLS toward the next hop: none, may, encrypt or verify.
        #[arg(long, default_value = "may")]
        tls: String,
        /// Authenticate at the next hop as this user; the password is read from a prompt or
        /// standard input.
        #[arg(long, value_name = "USER")]
        auth_user: Option<String>,
    },
    /// List transport rules.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove the rule for PATTERN.
    Remove { pattern: String },
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Set { pattern, transport, tls, auth_user } => {
            let pattern: TransportPattern = pattern.parse()?;
            let transport: Transport = transport.parse()?;
            let tls: TlsPolicy = tls.parse()?;
            let auth = match auth_user {
                Some(username) => Some(SmtpCredentials {
                    password: secret::read_password(&format!(
                        "password for {username} at the next hop"
                    ))?,
                    username,
                }),
                None => None,
            };
            let rule = open_store(config)
                .await?
                .set_transport(&actor(), &pattern, transport, tls, auth)
                .await?;
            println!("{} -> {} (tls {})", rule.pattern, rule.transport, rule.tls);
        }
        Command::List { json } => {
            let rules = open_store(config).await?.list_transports().await?;
            output::list(json, &rules, &["pattern", "transport", "tls", "auth"], |r| {
                vec![
                    r.pattern.to_string(),
                    r.transport.to_string(),
                    r.tls.to_string(),
                    r.auth.as_ref().map(|a| a.username.clone()).unwrap_or_default(),
                ]
            });
        }
        Command::Remove { pattern } => {
            let pattern: TransportPattern = pattern.parse()?;
            open_store(config).await?.remove_transport(&actor(), &pattern).await?;
            println!("removed the transport for {pattern}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
