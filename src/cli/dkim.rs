//! `postern dkim generate|list|rotate|activate|check|auto-rotate|sign-relayed`: DKIM keys,
//! their rollout, and a domain's DKIM settings.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{DkimAlgorithm, DkimKey, DkimSettings, DkimState, DomainName};
use serde::Serialize;

use super::{actor, load_boot, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Make a new key for DOMAIN; it signs once its DNS record is seen (see `check`).
    Generate {
        domain: DomainName,
        /// ed25519 (RFC 8463) or rsa. Some receivers still verify only RSA: a domain may have
        /// one of each.
        #[arg(long, default_value = "rsa")]
        algorithm: DkimAlgorithm,
        /// RSA key size: 2048 (default), 3072 or 4096.
        #[arg(long)]
        bits: Option<u32>,
        /// The selector (default: today's date, like s20261207).
        #[arg(long)]
        selector: Option<String>,
    },
    /// List keys: domain, selector, algorithm, state, the record to publish, the last DNS check.
    List {
        /// Only this domain's keys.
        domain: Option<DomainName>,
        #[arg(long)]
        json: bool,
    },
    /// Make the next key for DOMAIN (pending); the current one signs until the new record is
    /// seen in DNS, then retires after a grace period.
    Rotate {
        domain: DomainName,
        /// Which active key to rotate, when both an Ed25519 and an RSA key are active.
        #[arg(long)]
        algorithm: Option<DkimAlgorithm>,
    },
    /// Make a pending key sign now, without waiting for its DNS record to be seen.
    Activate {
        domain: DomainName,
        selector: String,
        /// Required: a key whose record receivers cannot find makes every signature fail.
        #[arg(long)]
        force: bool,
    },
    /// Look up the records of DOMAIN's keys (or every domain's) through `[dns] servers`: a
    /// pending key whose record is seen becomes active (the key it replaces starts retiring),
    /// and retiring keys past their grace period are retired. The engine does this hourly.
    Check {
        domain: Option<DomainName>,
        #[arg(long)]
        json: bool,
    },
    /// Rotate DOMAIN's keys automatically: the engine's hourly check makes the next key
    /// (pending, same algorithm and size) once the active one has signed for the period.
    AutoRotate {
        domain: DomainName,
        /// A period like 90d (7 to 3650 days), or off.
        #[arg(long, value_name = "DAYS|off")]
        every: String,
    },
    /// Sign (on) or not (off, the default) mail relayed for others — neither submitted by a
    /// user nor relayed from a trusted network — whose From: is DOMAIN.
    SignRelayed {
        domain: DomainName,
        #[arg(value_parser = ["on", "off"])]
        choice: String,
    },
}

/// A key as listed: its public fields and the record to publish (never the private key), with
/// its domain's automatic rotation period (`null`: off).
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    key: &'a DkimKey,
    record_name: String,
    record_value: String,
    auto_rotate_days: Option<u32>,
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Generate { domain, algorithm, bits, selector } => {
            let store = open_store(config).await?;
            let key = store
                .generate_dkim_key(&actor(), &domain, algorithm, bits, selector.as_deref())
                .await?;
            print_new(&key);
        }
        Command::List { domain, json } => {
            let store = open_store(config).await?;
            let keys = store.list_dkim_keys(domain.as_ref()).await?;
            let settings = store.list_dkim_settings().await?;
            print_keys(&keys, &settings, json);
        }
        Command::AutoRotate { domain, every } => {
            let every =
                postern_store::model::parse_rotate_every(&every).map_err(anyhow::Error::msg)?;
            let store = open_store(config).await?;
            let settings =
                DkimSettings { rotate_days: every, ..store.dkim_settings(&domain).await? };
            store.set_dkim_settings(&actor(), &domain, settings).await?;
            match every {
                Some(days) => println!(
                    "{domain}'s DKIM keys rotate every {days} days: the next key is made pending \
                     then, and signs once its record is published"
                ),
                None => println!("{domain}'s DKIM keys rotate only by hand"),
            }
        }
        Command::SignRelayed { domain, choice } => {
            let store = open_store(config).await?;
            let on = choice == "on";
            let settings = DkimSettings { sign_relayed: on, ..store.dkim_settings(&domain).await? };
            store.set_dkim_settings(&actor(), &domain, settings).await?;
            if on {
                println!("mail relayed for others with a From: at {domain} is signed too");
            } else {
                println!("mail relayed for others is not signed for {domain}");
            }
        }
        Command::Check { domain, json } => {
            let boot = load_boot(config, postern_store::boot::Profile::Standard)?;
            let resolver = postern_server::dns::HickoryResolver::new(&boot.dns_servers)
                .map_err(|e| anyhow::anyhow!("no DNS resolver ({e}): set [dns] servers"))?;
            let checker = postern_server::mailauth::DkimChecker {
                store: open_store(config).await?,
                resolver: std::sync::Arc::new(resolver),
                actor: actor(),
            };
            let keys = checker.check(domain.as_ref()).await?;
            let settings = checker.store.list_dkim_settings().await?;
            print_keys(&keys, &settings, json);
        }
        Command::Rotate { domain, algorithm } => {
            let key =
                open_store(config).await?.rotate_dkim_key(&actor(), &domain, algorithm).await?;
            print_new(&key);
        }
        Command::Activate { domain, selector, force } => {
            if !force {
                anyhow::bail!(
                    "a key signs without waiting for its record only with --force (receivers \
                     that cannot find the record fail every signature): publish the record and \
                     run `postern dkim check {domain}` instead"
                );
            }
            let key =
                open_store(config).await?.activate_dkim_key(&actor(), &domain, &selector).await?;
            println!(
                "{} is active: it signs {domain}'s mail from the next message",
                key.record_name()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Keys as a table, or as JSON with their records (never the private key).
fn print_keys(
    keys: &[DkimKey],
    settings: &std::collections::BTreeMap<DomainName, DkimSettings>,
    json: bool,
) {
    let listed: Vec<Listed> = keys
        .iter()
        .map(|key| Listed {
            key,
            record_name: key.record_name(),
            record_value: key.record_value(),
            auto_rotate_days: settings.get(&key.domain).and_then(|s| s.rotate_days),
        })
        .collect();
    output::list(
        json,
        &listed,
        &[
            "domain",
            "selector",
            "algorithm",
            "state",
            "record",
            "value",
            "last check",
            "auto-rotate",
        ],
        |l| {
            vec![
                l.key.domain.to_string(),
                l.key.selector.clone(),
                format!("{}-{}", l.key.algorithm, l.key.bits),
                state_text(l.key),
                l.record_name.clone(),
                l.key.record_zone(),
                check_text(l.key),
                l.auto_rotate_days.map_or("off".into(), |d| format!("every {d}d")),
            ]
        },
    );
}

fn print_new(key: &DkimKey) {
    println!(
        "generated {} ({}-{}) for {}: pending until its record is published\n\n  name   {}\n  type   TXT\n  value  {}\n",
        key.selector,
        key.algorithm,
        key.bits,
        key.domain,
        key.record_name(),
        key.record_zone()
    );
    println!(
        "Publish it, then `postern dkim check {}` (Postern also checks every hour) switches \
         signing to it once it is seen.",
        key.domain
    );
}

/// The state, with the date a retiring key's record may go.
pub fn state_text(key: &DkimKey) -> String {
    match (key.state, key.retire_after) {
        (DkimState::Retiring, Some(at)) => format!("retiring (keep published until {})", date(at)),
        (DkimState::Retired, _) => "retired (record may be removed)".into(),
        (state, _) => state.to_string(),
    }
}

fn check_text(key: &DkimKey) -> String {
    match (&key.dns, key.dns_checked_at) {
        (Some(check), Some(at)) => match check.found() {
            Some(found) => format!("{} at {}: {found}", check.status(), date(at)),
            None => format!("{} at {}", check.status(), date(at)),
        },
        _ => "never".into(),
    }
}

/// UTC, to the minute.
fn date(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // Same civil-from-days arithmetic as the store's dated selectors.
    let selector = postern_store::model::dated_selector(days * 86_400, &[]);
    let ymd = &selector[1..];
    format!(
        "{}-{}-{} {:02}:{:02} UTC",
        &ymd[..4],
        &ymd[4..6],
        &ymd[6..8],
        secs / 3600,
        secs % 3600 / 60
    )
}
