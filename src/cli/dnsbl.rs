//! `postern dnsbl add|list|remove|threshold|whitelist-add|whitelist-remove|test`, and the
//! engine's blocklist checker as the console's live test asks it.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use postern_server::policy::Clock;
use postern_server::policy::dnsbl::{Blocklists, Subject};
use postern_store::boot::Profile;
use postern_store::model::{Dnsbl, ListKind, NewBlocklist, WhitelistEntry};
use postern_web::screening::{DnsblCheck, DnsblFuture, DnsblSubject};

use super::{actor, load_boot, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Ask a DNS blocklist about every client on port 25 (at RCPT).
    Add {
        /// The list's zone, e.g. zen.spamhaus.org.
        zone: String,
        /// `ip`: the client's address (a DNSBL); `domain`: the sender's domain and the HELO
        /// name (an RHSBL).
        #[arg(long, default_value = "ip")]
        kind: String,
        /// Added to the score when the list lists something (negative for an allow-list).
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        weight: i64,
        /// Which answers count: `127.0.0.2,127.0.0.10-11,&0.0.0.4`; empty for any listing.
        #[arg(long, default_value = "")]
        codes: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// The lists, the threshold and the whitelist.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop asking a list.
    Remove { zone: String },
    /// Refuse clients whose score reaches this (default 1).
    Threshold {
        #[arg(allow_negative_numbers = true)]
        score: i64,
    },
    /// Never check a network (192.0.2.0/24) or mail from a sender domain.
    WhitelistAdd { entry: String },
    /// Check a whitelisted network or domain again.
    WhitelistRemove { entry: String },
    /// Ask every list now about an address or a domain, through `[dns] servers`.
    Test { subject: String },
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Add { zone, kind, weight, codes, description } => {
            let new = NewBlocklist {
                zone: zone.trim().trim_end_matches('.').parse()?,
                kind: kind.parse::<ListKind>()?,
                weight,
                codes: codes.parse()?,
                description,
            };
            let list = open_store(config).await?.add_blocklist(&actor(), new).await?;
            println!("asking {} ({}, weight {})", list.zone, list.kind, list.weight);
        }
        Command::List { json } => {
            let dnsbl = open_store(config).await?.dnsbl().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&dnsbl)?);
                return Ok(ExitCode::SUCCESS);
            }
            output::list(
                false,
                &dnsbl.lists,
                &["zone", "kind", "weight", "codes", "description"],
                |l| {
                    vec![
                        l.zone.to_string(),
                        l.kind.to_string(),
                        l.weight.to_string(),
                        if l.codes.is_empty() { "any".into() } else { l.codes.to_string() },
                        l.description.clone(),
                    ]
                },
            );
            println!("threshold: {}", dnsbl.threshold);
            let whitelist: Vec<String> = dnsbl.whitelist.iter().map(ToString::to_string).collect();
            println!(
                "whitelist: {}",
                if whitelist.is_empty() { "-".into() } else { whitelist.join(", ") }
            );
        }
        Command::Remove { zone } => {
            open_store(config).await?.remove_blocklist(&actor(), &zone).await?;
            println!("no longer asking {zone}");
        }
        Command::Threshold { score } => {
            open_store(config).await?.set_dnsbl_threshold(&actor(), score).await?;
            println!("clients scoring {score} or more are refused");
        }
        Command::WhitelistAdd { entry } => {
            let entry: WhitelistEntry = entry.parse()?;
            open_store(config).await?.add_dnsbl_whitelist(&actor(), &entry).await?;
            println!("{entry} is never checked");
        }
        Command::WhitelistRemove { entry } => {
            let entry: WhitelistEntry = entry.parse()?;
            open_store(config).await?.remove_dnsbl_whitelist(&actor(), &entry).await?;
            println!("{entry} is checked again");
        }
        Command::Test { subject } => {
            let boot = load_boot(config, Profile::Standard)?;
            let (resolver, _) = postern_server::mta::resolver(&boot.dns_servers);
            let dnsbl = open_store(config).await?.dnsbl().await?;
            let subject = match DnsblSubject::parse(&subject) {
                Ok(s) => s,
                Err(e) => anyhow::bail!("{e}"),
            };
            let whitelisted = match &subject {
                DnsblSubject::Client(ip) => dnsbl.is_whitelisted(*ip, None),
                DnsblSubject::Domain(d) => {
                    dnsbl.is_whitelisted([0, 0, 0, 0].into(), Some(d))
                        && !dnsbl.is_whitelisted([0, 0, 0, 0].into(), None)
                }
            };
            if whitelisted {
                println!("whitelisted: never checked (the lists' answers follow)");
            }
            let report = ConsoleBlocklists::new(resolver).check(&dnsbl, &subject).await;
            for hit in &report.hits {
                println!(
                    "listed by {} (weight {}): {} -> {}",
                    hit.zone,
                    hit.weight,
                    hit.query,
                    hit.answers.join(", ")
                );
            }
            for failure in &report.failures {
                println!("{} could not be asked: {} (not counted)", failure.zone, failure.error);
            }
            let verdict = if report.blocked() {
                "refused (554 5.7.1)"
            } else if report.hits.is_empty() {
                "listed nowhere"
            } else {
                "accepted with an X-Postern-DNSBL header"
            };
            println!("score {} (threshold {}): {verdict}", report.score, report.threshold);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The engine's blocklist checker, for the console's and the CLI's live test.
pub struct ConsoleBlocklists(Blocklists);

impl ConsoleBlocklists {
    pub fn new(resolver: Arc<dyn postern_server::dns::Resolver>) -> ConsoleBlocklists {
        ConsoleBlocklists(Blocklists::new(resolver, Clock::system()))
    }
}

impl DnsblCheck for ConsoleBlocklists {
    fn check<'a>(&'a self, dnsbl: &'a Dnsbl, subject: &'a DnsblSubject) -> DnsblFuture<'a> {
        let subject = match subject {
            DnsblSubject::Client(ip) => Subject::Client(*ip),
            DnsblSubject::Domain(name) => Subject::Domain { role: "domain", name: name.clone() },
        };
        Box::pin(async move { self.0.check(dnsbl, &[subject]).await })
    }
}
