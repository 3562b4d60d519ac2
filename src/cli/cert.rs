//! `postern cert list|import|remove|order|renew`: the TLS certificates the listeners serve by
//! SNI. Importing or removing one takes effect in a running `serve` at once (the revision feed);
//! `order` and `renew` only ask the engine's ACME worker, which needs `[acme]` in postern.toml.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use postern_store::boot::{BootConfig, Profile};
use postern_store::model::{AcmeOrder, CertificateInfo, CertificateSource, Challenge, DomainName};

use super::queue::utc;
use super::{actor, load_boot, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// List stored certificates and the state of their ACME orders.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Store a PEM certificate chain (the server's certificate first) and its private key.
    Import {
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Remove a stored certificate (by the ID `cert list` shows).
    Remove { id: i64 },
    /// Ask the ACME CA for a certificate for NAME… (the first is the main name).
    Order {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// How the CA checks the names: http-01 (port 80) or tls-alpn-01 (the console's 443).
        #[arg(long, default_value = "http-01")]
        challenge: String,
    },
    /// Renew a certificate now, for the same names, from the ACME CA.
    Renew {
        id: i64,
        #[arg(long, default_value = "http-01")]
        challenge: String,
    },
}

/// The JSON `cert list --json` prints.
#[derive(serde::Serialize)]
struct Listing<'a> {
    certificates: &'a [CertificateInfo],
    orders: &'a [AcmeOrder],
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::List { json } => {
            let store = open_store(config).await?;
            let certs = store.list_certificates().await?;
            let orders = store.list_acme_orders().await?;
            if json {
                let listing = Listing { certificates: &certs, orders: &orders };
                println!("{}", serde_json::to_string_pretty(&listing)?);
                return Ok(ExitCode::SUCCESS);
            }
            output::list(
                false,
                &certs,
                &["id", "names", "not after (UTC)", "source", "issuer", "last order"],
                |c| {
                    vec![
                        c.id.to_string(),
                        c.names.join(" "),
                        utc(c.not_after),
                        c.source.to_string(),
                        c.issuer.clone(),
                        last_order(&orders, c).map(order_state).unwrap_or_else(|| "-".into()),
                    ]
                },
            );
            // Orders that have not produced a certificate (yet): their state and the CA's words.
            let waiting: Vec<&AcmeOrder> =
                orders.iter().filter(|o| o.certificate_id.is_none()).collect();
            if !waiting.is_empty() {
                println!();
                output::list(false, &waiting, &["order", "names", "challenge", "state"], |o| {
                    vec![
                        o.id.to_string(),
                        o.names.join(" "),
                        o.challenge.to_string(),
                        order_state(o),
                    ]
                });
            }
        }
        Command::Import { cert, key } => {
            let read = |path: &Path| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))
            };
            let (chain, key) = (read(&cert)?, read(&key)?);
            let info = open_store(config)
                .await?
                .import_certificate(&actor(), &chain, &key, CertificateSource::Upload, None)
                .await?;
            println!(
                "stored certificate {} for {} (valid until {} UTC)",
                info.id,
                info.names.join(" "),
                utc(info.not_after)
            );
        }
        Command::Remove { id } => {
            let info = open_store(config).await?.remove_certificate(&actor(), id).await?;
            println!("removed certificate {id} for {}", info.names.join(" "));
        }
        Command::Order { names, challenge } => {
            let boot = require_acme(config)?;
            let challenge: Challenge = challenge.parse()?;
            let names = names
                .iter()
                .map(|n| n.parse::<DomainName>().with_context(|| format!("{n:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let store = postern_store::Store::open(&boot.database, &boot.secret_key_file).await?;
            let order = store.request_acme_order(&actor(), &names, challenge, None).await?;
            print_order(&order);
        }
        Command::Renew { id, challenge } => {
            let boot = require_acme(config)?;
            let challenge: Challenge = challenge.parse()?;
            let store = postern_store::Store::open(&boot.database, &boot.secret_key_file).await?;
            let cert = store.certificate(id).await?.with_context(|| {
                format!("there is no certificate {id} (see `postern cert list`)")
            })?;
            let names = cert
                .names
                .iter()
                .map(|n| n.parse::<DomainName>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    anyhow::anyhow!(
                        "certificate {id} has a wildcard name, which needs a DNS-01 challenge; \
                         ACME here answers http-01 and tls-alpn-01 only"
                    )
                })?;
            let order = store.request_acme_order(&actor(), &names, challenge, Some(id)).await?;
            print_order(&order);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_order(order: &AcmeOrder) {
    println!(
        "order {} for {} is {} ({}); follow it with `postern cert list`",
        order.id,
        order.names.join(" "),
        order.state,
        order.challenge
    );
}

/// The newest order that produced or renews `cert`.
fn last_order<'a>(orders: &'a [AcmeOrder], cert: &CertificateInfo) -> Option<&'a AcmeOrder> {
    orders.iter().find(|o| o.certificate_id == Some(cert.id) || o.replaces == Some(cert.id))
}

fn order_state(order: &AcmeOrder) -> String {
    match &order.error {
        Some(error) => format!("{}: {error}", order.state),
        None => order.state.to_string(),
    }
}

/// The boot configuration, if it turns ACME on; otherwise an error saying how.
fn require_acme(config: Option<&Path>) -> anyhow::Result<BootConfig> {
    let boot = load_boot(config, Profile::Standard)?;
    if !acme_enabled(&boot) {
        anyhow::bail!(
            "ACME is off: add an [acme] section to {} (see `postern config example`), restart \
             `postern serve`, then order again; or import a certificate with `postern cert \
             import --cert FILE --key FILE`",
            boot.source.as_ref().map_or("postern.toml".into(), |p| p.display().to_string())
        );
    }
    Ok(boot)
}

/// Whether the boot configuration has an `[acme]` section.
pub(super) fn acme_enabled(boot: &BootConfig) -> bool {
    boot.acme.is_some()
}
