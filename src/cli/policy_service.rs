//! `postern policy service add|list|remove|test`: the policy services (Postfix's policy
//! delegation protocol) asked at RCPT or at the end of DATA.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_server::policy::delegate::{Query, probe};
use postern_store::model::NewPolicyService;

use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Add a service.
    #[command(after_help = "Example:\n  postern policy service add postgrey \
        inet:127.0.0.1:10023 --stage rcpt --timeout 5s --on-failure dunno")]
    Add {
        /// 1 to 64 of a-z 0-9 - _ . (services are asked in name order).
        name: String,
        /// inet:host:port or unix:/path.
        address: String,
        /// rcpt (each accepted recipient) or data (the end of the message).
        #[arg(long, default_value = "rcpt")]
        stage: String,
        /// How long one request may take, like 500ms or 10s.
        #[arg(long, default_value = "10s")]
        timeout: String,
        /// What a service that cannot answer means: dunno (go on) or defer (451 4.3.5).
        #[arg(long, default_value = "dunno")]
        on_failure: String,
        /// Add it disabled.
        #[arg(long)]
        disabled: bool,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the services in the order they are asked.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a service by its name.
    Remove { name: String },
    /// Send the service one request and print its answer.
    Test {
        name: String,
        #[arg(long, default_value = "192.0.2.1")]
        client: String,
        #[arg(long, default_value = "client.example")]
        helo: String,
        #[arg(long, default_value = "sender@example.com")]
        from: String,
        #[arg(long, default_value = "postmaster@example.com")]
        to: String,
    },
}

pub async fn run(config: Option<&Path>, cmd: ServiceCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ServiceCommand::Add {
            name,
            address,
            stage,
            timeout,
            on_failure,
            disabled,
            description,
        } => {
            let new = NewPolicyService::parse(
                &name,
                &address,
                &stage,
                &timeout,
                &on_failure,
                !disabled,
                &description,
            )?;
            let s = open_store(config).await?.add_policy_service(&actor(), new).await?;
            println!(
                "added policy service {} at {} ({}, {} ms, on failure {})",
                s.name,
                s.address,
                s.stage,
                s.timeout.as_millis(),
                s.on_failure
            );
        }
        ServiceCommand::List { json } => {
            let services = open_store(config).await?.list_policy_services().await?;
            output::list(
                json,
                &services,
                &["name", "address", "stage", "timeout", "on failure", "enabled"],
                |s| {
                    vec![
                        s.name.clone(),
                        s.address.to_string(),
                        s.stage.to_string(),
                        format!("{}ms", s.timeout.as_millis()),
                        s.on_failure.to_string(),
                        if s.enabled { "yes" } else { "no" }.into(),
                    ]
                },
            );
        }
        ServiceCommand::Remove { name } => {
            let s = open_store(config).await?.remove_policy_service(&actor(), &name).await?;
            println!("removed policy service {} ({})", s.name, s.address);
        }
        ServiceCommand::Test { name, client, helo, from, to } => {
            let ip: std::net::IpAddr = client.trim().parse().map_err(|_| {
                anyhow::anyhow!("--client {client:?} is not an IP address (like 192.0.2.7)")
            })?;
            let services = open_store(config).await?.list_policy_services().await?;
            let service = services
                .into_iter()
                .find(|s| s.name == name)
                .ok_or_else(|| anyhow::anyhow!("policy service {name} does not exist"))?;
            let query = Query {
                protocol_name: "ESMTP".into(),
                helo_name: helo,
                sender: from,
                recipient: to,
                client: Some(std::net::SocketAddr::new(ip, 0)),
                client_name: "unknown".into(),
                ..Default::default()
            };
            match probe(&service, &query).await {
                Ok(action) => println!("{name} answered: action={action}"),
                Err(e) => {
                    println!("{name} gave no answer: {e} (on failure: {})", service.on_failure);
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
