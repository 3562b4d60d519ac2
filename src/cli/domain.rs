//! `postern domain add|list|remove|mta-sts`.

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
    /// Publish, change, show or stop a domain's MTA-STS policy (RFC 8461), served at
    /// https://mta-sts.DOMAIN/.well-known/mta-sts.txt by the console's HTTPS listener. Without
    /// options, shows the policy and the DNS records to publish.
    MtaSts {
        name: String,
        /// testing, enforce or none (withdrawn).
        #[arg(long)]
        mode: Option<String>,
        /// Seconds senders keep the policy (default a week).
        #[arg(long, value_name = "SECONDS")]
        max_age: Option<i64>,
        /// An MX host name or *.domain pattern; repeat for several. Default: the host name.
        #[arg(long, value_name = "NAME")]
        mx: Vec<String>,
        /// Where TLS reports go (mailto: or https://). Default: mailto:postmaster@DOMAIN.
        #[arg(long, value_name = "URI", default_value = "")]
        report_to: String,
        /// Stop serving the policy.
        #[arg(long, conflicts_with_all = ["mode", "max_age", "mx"])]
        off: bool,
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
        Command::MtaSts { name, mode, max_age, mx, report_to, off } => {
            let name: DomainName = name.parse()?;
            let boot = super::load_boot(config, postern_store::boot::Profile::Standard)?;
            let store = open_store(config).await?;
            let policy = if off {
                store.remove_mta_sts(&actor(), &name).await?;
                println!("the MTA-STS policy of {name} is no longer served");
                return Ok(ExitCode::SUCCESS);
            } else if let Some(mode) = mode {
                let mode = mode.parse()?;
                let max_age = max_age.unwrap_or(postern_store::model::DEFAULT_STS_AGE);
                store.set_mta_sts(&actor(), &name, mode, max_age, &mx, &report_to).await?
            } else {
                store.mta_sts_policy(&name).await?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "{name} publishes no MTA-STS policy; publish one with --mode testing"
                    )
                })?
            };
            let hostname = boot.hostname.to_string();
            println!("policy served at https://{}/.well-known/mta-sts.txt:", policy.policy_host());
            print!("{}", policy.text(&hostname).replace("\r\n", "\n"));
            println!("publish these DNS records:");
            for (host, value) in [policy.txt_record(), policy.tlsrpt_record()] {
                println!("  {host}. TXT \"{value}\"");
            }
            println!(
                "  {}. CNAME {hostname}. (and a certificate for it: postern cert)",
                policy.policy_host()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
