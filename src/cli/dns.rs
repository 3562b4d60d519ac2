//! `postern dns check DOMAIN`: the records other mail servers look up for a domain, each found,
//! missing or wrong, with the exact record to publish.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_server::mailauth::{Health, check_domain};
use postern_store::boot::Profile;
use postern_store::model::DomainName;

use super::{load_boot, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Check MX, SPF, every DKIM key in use, DMARC, MTA-STS, TLS-RPT and the reverse DNS of
    /// the sending address for DOMAIN, through
    /// `[dns] servers`. Exits 1 when a required record is missing or wrong.
    Check {
        domain: DomainName,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::Check { domain, json } = cmd;
    let boot = load_boot(config, Profile::Standard)?;
    let resolver = postern_server::dns::HickoryResolver::new(&boot.dns_servers)
        .map_err(|e| anyhow::anyhow!("no DNS resolver ({e}): set [dns] servers"))?;
    let keys = open_store(config).await?.list_dkim_keys(Some(&domain)).await?;
    let rows = check_domain(&resolver, boot.hostname.as_str(), domain.as_str(), &keys).await;
    output::list(json, &rows, &["check", "name", "status", "found", "publish"], |r| {
        let status = match (r.status, r.optional) {
            (Health::Missing, true) => "missing (optional)".to_string(),
            (status, _) => format!("{status:?}").to_lowercase(),
        };
        vec![
            r.check.to_string(),
            r.name.clone(),
            status,
            r.found.clone().unwrap_or_default(),
            r.publish.clone().unwrap_or_default(),
        ]
    });
    let bad =
        rows.iter().any(|r| !r.optional && matches!(r.status, Health::Missing | Health::Wrong));
    Ok(if bad { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
