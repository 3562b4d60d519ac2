//! `postern directory set|show|remove|test|lookup`: the LDAP / Active Directory a domain's
//! mailboxes come from. The service password is read from a prompt or standard input
//! (`--password-stdin`), never from the command line, and never printed.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{
    Address, DirectoryPassword, DirectorySettings, DirectoryUpdate, DomainName, parse_attributes,
};
use postern_web::directory::{DirectoryAnswer, DirectoryFuture, DirectoryProbe};

use super::{actor, open_store};

#[derive(Subcommand)]
pub enum Command {
    /// Attach a directory to a local domain, or change its settings.
    #[command(after_help = "Examples:\n  \
        printf '%s\\n' \"$PW\" | postern directory set corp.example --url ldaps://dc1.corp.example \\\n    \
        --bind-dn 'CN=postern,OU=Service,DC=corp,DC=example' --password-stdin \\\n    \
        --base-dn 'DC=corp,DC=example' --attributes 'mail proxyAddresses' \\\n    \
        --filter '(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))'\n  \
        postern directory set example.org --url ldap://ldap.example.org --starttls \\\n    \
        --ca-file /etc/ssl/ldap-ca.pem --base-dn dc=example,dc=org")]
    Set {
        domain: String,
        /// ldaps://host[:port], or ldap://host[:port] with --starttls (plain only to this
        /// machine).
        #[arg(long)]
        url: String,
        /// Upgrade an ldap:// connection with StartTLS.
        #[arg(long)]
        starttls: bool,
        /// A PEM file of the CA certificates to trust for this directory.
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
        /// The service account that searches; left out: an anonymous search.
        #[arg(long, default_value = "")]
        bind_dn: String,
        /// Read the service account's password from standard input (else asked for on a
        /// terminal when --bind-dn is given and none is stored).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        base_dn: String,
        /// An extra filter the user's entry must match, like (objectClass=person).
        #[arg(long, default_value = "")]
        filter: String,
        /// Attributes holding addresses, space-separated: mail, proxyAddresses, otherMailbox…
        #[arg(long, default_value = "mail")]
        attributes: String,
        /// Milliseconds allowed for each connection, bind and search.
        #[arg(long, default_value_t = postern_store::model::DEFAULT_DIRECTORY_TIMEOUT_MS)]
        timeout_ms: u64,
        /// Seconds a lookup's answer is kept; 0 asks every time.
        #[arg(long, default_value_t = postern_store::model::DEFAULT_DIRECTORY_CACHE_TTL_SECS)]
        cache_ttl: u64,
    },
    /// Show a domain's directory settings (never the password), or every domain's.
    Show {
        domain: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Detach the directory from a domain.
    Remove { domain: String },
    /// Connect, bind as the service account and read the base DN.
    Test { domain: String },
    /// Look an address up in its domain's directory and show what it answers.
    Lookup { address: String },
}

fn show(s: &DirectorySettings) {
    println!("domain:      {}", s.domain);
    println!("url:         {}{}", s.url, if s.starttls { " (StartTLS)" } else { "" });
    println!("ca:          {}", if s.ca_pem.is_some() { "custom CA" } else { "system roots" });
    if s.bind_dn.is_empty() {
        println!("bind:        anonymous");
    } else {
        let set = if s.bind_password.is_empty() { "no password" } else { "password set" };
        println!("bind:        {} ({set})", s.bind_dn);
    }
    println!("base dn:     {}", s.base_dn);
    println!("filter:      {}", if s.user_filter.is_empty() { "(none)" } else { &s.user_filter });
    println!("attributes:  {}", s.attributes.join(" "));
    println!("timeout:     {} ms", s.timeout_ms);
    println!("cache ttl:   {} s", s.cache_ttl_secs);
}

fn print_answer(answer: &DirectoryAnswer) -> ExitCode {
    if answer.ok {
        println!("{}", answer.message);
        if let Some(dn) = &answer.dn {
            println!("dn:        {dn}");
        }
        if !answer.addresses.is_empty() {
            println!("addresses: {}", answer.addresses.join(" "));
        }
        ExitCode::SUCCESS
    } else {
        eprintln!("{}", answer.message);
        ExitCode::FAILURE
    }
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Set {
            domain,
            url,
            starttls,
            ca_file,
            bind_dn,
            password_stdin,
            base_dn,
            filter,
            attributes,
            timeout_ms,
            cache_ttl,
        } => {
            let domain: DomainName = domain.parse()?;
            let ca_pem = match ca_file {
                Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                    anyhow::anyhow!("cannot read the CA file {}: {e}", path.display())
                })?),
                None => None,
            };
            let store = open_store(config).await?;
            let stored = store.get_directory(&domain).await?;
            let has_password = stored.is_some_and(|s| !s.bind_password.is_empty());
            let bind_password = if password_stdin || (!bind_dn.is_empty() && !has_password) {
                Some(DirectoryPassword(super::secret::read_password("service account password")?))
            } else {
                None
            };
            let update = DirectoryUpdate {
                url,
                starttls,
                ca_pem,
                bind_dn,
                bind_password,
                base_dn,
                user_filter: filter,
                attributes: parse_attributes(&attributes).map_err(anyhow::Error::msg)?,
                timeout_ms,
                cache_ttl_secs: cache_ttl,
            };
            let s = store.set_directory(&actor(), &domain, update).await?;
            println!("{} takes mailboxes from {} (base {})", s.domain, s.url, s.base_dn);
        }
        Command::Show { domain, json } => {
            let store = open_store(config).await?;
            let list = match domain {
                Some(d) => {
                    let d: DomainName = d.parse()?;
                    vec![store.get_directory(&d).await?.ok_or_else(|| {
                        anyhow::anyhow!("{d} has no directory (postern directory set {d} …)")
                    })?]
                }
                None => store.list_directories().await?,
            };
            if json {
                // Serialize shows the password only as "<set>".
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no domain takes mailboxes from a directory");
            } else {
                for (i, s) in list.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    show(s);
                }
            }
        }
        Command::Remove { domain } => {
            let domain: DomainName = domain.parse()?;
            open_store(config).await?.remove_directory(&actor(), &domain).await?;
            println!("{domain} no longer takes mailboxes from a directory");
        }
        Command::Test { domain } => {
            let domain: DomainName = domain.parse()?;
            let settings = open_store(config).await?.get_directory(&domain).await?;
            let settings = settings.ok_or_else(|| anyhow::anyhow!("{domain} has no directory"))?;
            return Ok(print_answer(&EngineDirectory.test(&settings).await));
        }
        Command::Lookup { address } => {
            let address: Address = address.parse()?;
            let settings = open_store(config).await?.get_directory(address.domain()).await?;
            let settings =
                settings.ok_or_else(|| anyhow::anyhow!("{} has no directory", address.domain()))?;
            return Ok(print_answer(&EngineDirectory.lookup(&settings, &address).await));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The console's and the CLI's directory tests, with the engine's LDAP client.
pub struct EngineDirectory;

impl DirectoryProbe for EngineDirectory {
    fn test<'a>(&'a self, settings: &'a DirectorySettings) -> DirectoryFuture<'a> {
        Box::pin(async move {
            match postern_server::directory::test(settings).await {
                Ok(message) => DirectoryAnswer {
                    ok: true,
                    found: None,
                    dn: None,
                    addresses: Vec::new(),
                    message,
                    error: None,
                },
                Err(e) => DirectoryAnswer::failed(e.to_string()),
            }
        })
    }

    fn lookup<'a>(
        &'a self,
        settings: &'a DirectorySettings,
        address: &'a Address,
    ) -> DirectoryFuture<'a> {
        use postern_server::directory::{Lookup, lookup_now};
        Box::pin(async move {
            match lookup_now(settings, address).await {
                Ok(Lookup::Found(entry)) => DirectoryAnswer {
                    ok: true,
                    found: Some(true),
                    message: format!("{address} belongs to {}", entry.dn),
                    dn: Some(entry.dn),
                    addresses: entry.addresses.iter().map(ToString::to_string).collect(),
                    error: None,
                },
                Ok(Lookup::NotFound) => DirectoryAnswer {
                    ok: true,
                    found: Some(false),
                    dn: None,
                    addresses: Vec::new(),
                    message: format!(
                        "no entry under {} holds {address} (mail to it is refused: 550 5.1.1)",
                        settings.base_dn
                    ),
                    error: None,
                },
                Err(e) => DirectoryAnswer::failed(e.to_string()),
            }
        })
    }
}
