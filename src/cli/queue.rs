//! `postern queue list|show|flush|retry|hold|release|delete|bounce`: Postfix's `postqueue -p/-f`
//! and `postsuper -d/-h/-H`, acting through the store so that a running engine learns of them.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{
    Page, QueueAction, QueueActor, QueueFilter, QueueId, QueuedMessage, RecipientStatus, Selection,
};

use super::{actor, open_store};

#[derive(Subcommand)]
pub enum Command {
    /// List queued messages, oldest first (`!` after an ID: held).
    List {
        #[arg(long)]
        json: bool,
        /// Only from this sender ("" for the null sender).
        #[arg(long)]
        sender: Option<String>,
        /// Only with this recipient address.
        #[arg(long)]
        recipient: Option<String>,
        /// Only with a recipient in this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only with a recipient in this state: pending, deferred, delivered, failed.
        #[arg(long)]
        status: Option<String>,
        /// Only held messages.
        #[arg(long)]
        held: bool,
        /// At most this many (the rest on the next page, see --after).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this ID (the last of the previous page).
        #[arg(long, value_name = "ID")]
        after: Option<String>,
    },
    /// Show one message's envelope and each recipient's state.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Try every deferred message again now.
    Flush,
    /// Try these messages' deferred recipients again now.
    Retry {
        #[arg(required_unless_present = "all", value_name = "ID")]
        ids: Vec<String>,
        /// Every queued message.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
    /// Keep messages from being delivered until released.
    Hold {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Let held messages be delivered again.
    Release {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Remove messages without telling their senders.
    Delete {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Give up on messages' undelivered recipients; their senders get a bounce.
    Bounce {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

fn parse_ids(ids: &[String]) -> anyhow::Result<Vec<QueueId>> {
    Ok(ids.iter().map(|id| id.parse()).collect::<Result<_, _>>()?)
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    let (action, selection) = match cmd {
        Command::List { json, sender, recipient, domain, status, held, limit, after } => {
            let filter = QueueFilter {
                sender,
                recipient,
                domain,
                status: status
                    .map(|s| s.parse::<RecipientStatus>())
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("status: {e}"))?,
                held: held.then_some(true),
                ..QueueFilter::default()
            };
            let after = after.map(|a| a.parse::<QueueId>()).transpose()?;
            let page = open_store(config).await?.queue_list(&filter, Page { after, limit }).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print_list(&page.messages);
                for d in &page.damaged {
                    println!("{}  DAMAGED: {}", d.id, d.problem);
                }
                let shown = page.messages.len() + page.damaged.len();
                println!("-- {shown} of {} message(s)", page.total);
                if let Some(next) = page.next {
                    println!("-- more: postern queue list --after {next}");
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Show { id, json } => {
            let id: QueueId = id.parse()?;
            let Some(m) = open_store(config).await?.queue_show(id).await? else {
                anyhow::bail!("queued message {id} does not exist");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                print_message(&m);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Flush => {
            let ids = open_store(config).await?.queue_flush(&QueueActor::global(actor())).await?;
            println!("{} deferred message(s) to be tried now", ids.len());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Retry { all: true, .. } => {
            (QueueAction::Retry, Selection::Matching(QueueFilter::default()))
        }
        Command::Retry { ids, .. } => (QueueAction::Retry, Selection::Ids(parse_ids(&ids)?)),
        Command::Hold { ids } => (QueueAction::Hold, Selection::Ids(parse_ids(&ids)?)),
        Command::Release { ids } => (QueueAction::Release, Selection::Ids(parse_ids(&ids)?)),
        Command::Delete { ids } => (QueueAction::Delete, Selection::Ids(parse_ids(&ids)?)),
        Command::Bounce { ids } => (QueueAction::Bounce, Selection::Ids(parse_ids(&ids)?)),
    };
    // The command line acts on whole messages, and the audit log names the system user.
    let by = QueueActor::global(actor());
    let done = open_store(config).await?.queue_act(&by, action, &selection).await?;
    let verb = match action {
        QueueAction::Retry => "to be retried now",
        QueueAction::Hold => "held",
        QueueAction::Release => "released",
        QueueAction::Delete => "deleted",
        QueueAction::Bounce => "bounced",
    };
    for id in &done {
        println!("{id}: {verb}");
    }
    if done.is_empty() {
        println!("no messages {verb}");
    }
    Ok(ExitCode::SUCCESS)
}

fn sender(s: &str) -> &str {
    if s.is_empty() { "<>" } else { s }
}

fn print_list(messages: &[QueuedMessage]) {
    super::output::list(
        false,
        messages,
        &["id", "size", "arrival (utc)", "sender", "recipients"],
        |m| {
            let recipients: Vec<String> =
                m.recipients.iter().map(|r| format!("{} ({})", r.address, r.status)).collect();
            vec![
                format!("{}{}", m.id, if m.held { "!" } else { "" }),
                m.size.to_string(),
                utc(m.received_at),
                sender(&m.sender).to_string(),
                recipients.join(", "),
            ]
        },
    );
}

fn print_message(m: &QueuedMessage) {
    println!("id:        {}{}", m.id, if m.held { " (held)" } else { "" });
    println!("arrival:   {} UTC", utc(m.received_at));
    println!("from:      {}", m.client);
    if let Some(user) = &m.auth_user {
        println!("auth user: {user}");
    }
    if let Some(results) = &m.auth_results {
        println!("checks:    {results}");
    }
    println!("sender:    {}", sender(&m.sender));
    println!("size:      {} bytes", m.size);
    let mut flags = Vec::new();
    if m.eight_bit {
        flags.push("8BITMIME".to_string());
    }
    if m.smtputf8 {
        flags.push("SMTPUTF8".to_string());
    }
    if let Some(envid) = &m.envid {
        flags.push(format!("ENVID={envid}"));
    }
    if let Some(ret) = m.ret {
        flags.push(format!(
            "RET={}",
            if ret == postern_store::model::DsnRet::Full { "FULL" } else { "HDRS" }
        ));
    }
    if !flags.is_empty() {
        println!("options:   {}", flags.join(" "));
    }
    println!("node:      {}", m.node);
    println!();
    super::output::list(
        false,
        &m.recipients,
        &["recipient", "status", "attempts", "next attempt (utc)", "last reply"],
        |r| {
            vec![
                r.address.clone(),
                r.status.to_string(),
                r.attempts.to_string(),
                if r.status.is_final() { "-".into() } else { utc(r.next_attempt_at) },
                r.last_error.clone().unwrap_or_default(),
            ]
        },
    );
}

/// Epoch seconds as `YYYY-MM-DD HH:MM:SS` (UTC), by Howard Hinnant's days-to-civil algorithm.
pub(super) fn utc(epoch: i64) -> String {
    let (days, secs) = (epoch.div_euclid(86_400), epoch.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00");
    }
}
