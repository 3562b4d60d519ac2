//! `postern mailbox add|list|set|passwd|remove`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use postern_store::model::{
    Address, DomainName, MailboxUpdate, NewMailbox, PasswordHash, SendAs, parse_send_as,
};

use super::{actor, open_store, output, secret};

#[derive(Subcommand)]
pub enum Command {
    /// Create a mailbox. The password is read from a prompt, or from standard input.
    Add {
        address: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Storage limit: a size such as 500M or 2G, or "none".
        #[arg(long, value_parser = parse_quota)]
        quota: Option<Quota>,
        /// Create it disabled: it receives no mail and cannot log in.
        #[arg(long)]
        disabled: bool,
    },
    /// List mailboxes.
    List {
        /// Only this domain's.
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Change a mailbox's name, quota, send-as list, or whether it is enabled.
    Set {
        address: String,
        #[arg(long)]
        name: Option<String>,
        /// The addresses it may send as beyond its own and its aliases (MAIL FROM, From:,
        /// Sender:), separated by commas or spaces; `@domain` for every address of a domain;
        /// "" for none. Replaces the whole list.
        #[arg(long, value_parser = parse_send_as_arg)]
        send_as: Option<SendAsList>,
        /// Storage limit: a size such as 500M or 2G, or "none".
        #[arg(long, value_parser = parse_quota)]
        quota: Option<Quota>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
    },
    /// Set a new password, read from a prompt or standard input.
    Passwd { address: String },
    /// Delete a mailbox (its mail on disk stays).
    Remove { address: String },
}

/// A send-as list as given on the command line.
#[derive(Debug, Clone)]
pub struct SendAsList(Vec<SendAs>);

fn parse_send_as_arg(text: &str) -> Result<SendAsList, String> {
    parse_send_as(text).map(SendAsList).map_err(|e| e.to_string())
}

/// A storage limit in bytes; `None` for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota(Option<u64>);

/// `500M`, `2G`, `1048576`, `none`: binary multiples, as quota tools use.
fn parse_quota(text: &str) -> Result<Quota, String> {
    let t = text.trim();
    if matches!(t.to_ascii_lowercase().as_str(), "none" | "unlimited") {
        return Ok(Quota(None));
    }
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let shift = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("{text:?} is not a size (like 500M, 2G or none)")),
    };
    let n: u64 =
        digits.parse().map_err(|_| format!("{text:?} is not a size (like 500M, 2G or none)"))?;
    match n.checked_mul(1 << shift) {
        Some(0) => Err("a quota of 0 would refuse all mail; use none for no limit".into()),
        Some(bytes) => Ok(Quota(Some(bytes))),
        None => Err(format!("{text:?} is too large")),
    }
}

fn show_quota(q: Option<u64>) -> String {
    match q {
        None => "none".into(),
        Some(b) if b % (1 << 30) == 0 => format!("{}G", b >> 30),
        Some(b) if b % (1 << 20) == 0 => format!("{}M", b >> 20),
        Some(b) => b.to_string(),
    }
}

fn show_send_as(list: &[SendAs]) -> String {
    if list.is_empty() {
        return "-".into();
    }
    list.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// Hashing costs tens of milliseconds of CPU: keep it off the async workers.
async fn hash(address: &Address, password: String) -> anyhow::Result<PasswordHash> {
    let user = address.to_string();
    Ok(tokio::task::spawn_blocking(move || PasswordHash::create_for(&user, &password)).await??)
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Add { address, name, quota, disabled } => {
            let address: Address = address.parse()?;
            let store = open_store(config).await?;
            // Refuse a bad address before asking for a password.
            store.check_new_mailbox(&address).await?;
            let password_hash =
                hash(&address, secret::read_password(&format!("password for {address}"))?).await?;
            let new = NewMailbox {
                address,
                display_name: name.unwrap_or_default(),
                enabled: !disabled,
                quota_bytes: quota.and_then(|q| q.0),
                password_hash,
            };
            let mailbox = store.add_mailbox(&actor(), new).await?;
            println!("added mailbox {}", mailbox.address);
        }
        Command::List { domain, json } => {
            let domain: Option<DomainName> = domain.map(|d| d.parse()).transpose()?;
            let mailboxes = open_store(config).await?.list_mailboxes(domain.as_ref()).await?;
            let columns = ["address", "name", "enabled", "quota", "send as"];
            output::list(json, &mailboxes, &columns, |m| {
                vec![
                    m.address.to_string(),
                    m.display_name.clone(),
                    if m.enabled { "yes" } else { "no" }.into(),
                    show_quota(m.quota_bytes),
                    show_send_as(&m.send_as),
                ]
            });
        }
        Command::Set { address, name, quota, send_as, enable, disable } => {
            let address: Address = address.parse()?;
            let enabled = match (enable, disable) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            if name.is_none() && quota.is_none() && enabled.is_none() && send_as.is_none() {
                bail!("nothing to change: give --name, --quota, --send-as, --enable or --disable");
            }
            let update = MailboxUpdate {
                display_name: name,
                enabled,
                quota_bytes: quota.map(|q| q.0),
                password_hash: None,
                send_as: send_as.map(|s| s.0),
            };
            let m = open_store(config).await?.update_mailbox(&actor(), &address, update).await?;
            println!(
                "updated mailbox {} (enabled: {}, quota: {}, send as: {})",
                m.address,
                if m.enabled { "yes" } else { "no" },
                show_quota(m.quota_bytes),
                show_send_as(&m.send_as)
            );
        }
        Command::Passwd { address } => {
            let address: Address = address.parse()?;
            let store = open_store(config).await?;
            if store.get_mailbox(&address).await?.is_none() {
                bail!("mailbox {address} does not exist");
            }
            let password_hash =
                hash(&address, secret::read_password(&format!("new password for {address}"))?)
                    .await?;
            let update =
                MailboxUpdate { password_hash: Some(password_hash), ..MailboxUpdate::default() };
            store.update_mailbox(&actor(), &address, update).await?;
            println!("changed the password of {address}");
        }
        Command::Remove { address } => {
            let address: Address = address.parse()?;
            open_store(config).await?.remove_mailbox(&actor(), &address).await?;
            println!("removed mailbox {address}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas() {
        assert_eq!(parse_quota("500M"), Ok(Quota(Some(500 << 20))));
        assert_eq!(parse_quota("2g"), Ok(Quota(Some(2 << 30))));
        assert_eq!(parse_quota("2GiB"), Ok(Quota(Some(2 << 30))));
        assert_eq!(parse_quota("1024"), Ok(Quota(Some(1024))));
        assert_eq!(parse_quota("none"), Ok(Quota(None)));
        assert!(parse_quota("0").is_err());
        assert!(parse_quota("5X").is_err());
        assert!(parse_quota("99999999999T").is_err());
        assert_eq!(show_quota(Some(2 << 30)), "2G");
    }
}
