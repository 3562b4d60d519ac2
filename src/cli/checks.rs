//! `postern checks add|list|remove|move|test`: header and body checks (Postfix's header_checks
//! and body_checks), tried in order on every message once it is whole.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{ContentDecision, NewContentCheck};

use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Add a rule: a regex (case-insensitive) on each header field, unfolded, as `Name: value`,
    /// or on each line of the decoded text parts.
    #[command(after_help = "Actions: REJECT [5xx 5.x.x] [text] (default 550 5.7.1) | DISCARD | \
        HOLD | WARN [text] | IGNORE (headers) | REPLACE Name: value (headers)\n\nExample:\n  \
        postern checks add --part header --pattern '^Subject:.*viagra' REJECT no spam here")]
    Add {
        /// header or body.
        #[arg(long)]
        part: String,
        /// The regex.
        #[arg(long)]
        pattern: String,
        /// Where to put it (1 is tried first); last by default.
        #[arg(long)]
        position: Option<i64>,
        #[arg(long, default_value = "")]
        description: String,
        /// The action, e.g. `REJECT 550 5.7.1 no thanks`.
        #[arg(required = true, num_args = 1.., trailing_var_arg = true)]
        action: Vec<String>,
    },
    /// List the rules in the order they are tried.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a rule by its id.
    Remove { id: i64 },
    /// Move a rule to a position (1 is tried first).
    Move { id: i64, position: i64 },
    /// Say which rules a message hits and what becomes of it (nothing is sent or stored).
    Test {
        /// The message file (header, empty line, body); `-` for standard input.
        message: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Add { part, pattern, position, description, action } => {
            let new = NewContentCheck::parse(&part, &pattern, &action.join(" "), &description)?;
            let c = open_store(config).await?.add_content_check(&actor(), new, position).await?;
            println!(
                "added check {} at position {}: {} /{}/ -> {}",
                c.id, c.position, c.part, c.pattern, c.action
            );
        }
        Command::List { json } => {
            let checks = open_store(config).await?.list_content_checks().await?;
            output::list(
                json,
                &checks,
                &["pos", "id", "part", "pattern", "action", "description"],
                |c| {
                    vec![
                        c.position.to_string(),
                        c.id.to_string(),
                        c.part.to_string(),
                        c.pattern.to_string(),
                        c.action.to_string(),
                        c.description.clone(),
                    ]
                },
            );
        }
        Command::Remove { id } => {
            let c = open_store(config).await?.remove_content_check(&actor(), id).await?;
            println!("removed check {}: {} /{}/ -> {}", c.id, c.part, c.pattern, c.action);
        }
        Command::Move { id, position } => {
            let c = open_store(config).await?.move_content_check(&actor(), id, position).await?;
            println!("check {} is now at position {}", c.id, c.position);
        }
        Command::Test { message, json } => {
            let mut text = Vec::new();
            if message.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut text)?;
            } else {
                text = std::fs::read(&message)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", message.display()))?;
            }
            // As SMTP delivers it: CRLF line ends.
            let text = String::from_utf8_lossy(&text).replace("\r\n", "\n").replace('\n', "\r\n");
            let checks = open_store(config).await?.load_config().await?.content_checks;
            let verdict = checks.check(text.as_bytes());
            let decision = match &verdict.decision {
                ContentDecision::Accept if verdict.hold.is_some() => "accepted and held".into(),
                ContentDecision::Accept => "accepted".to_string(),
                ContentDecision::Reject { rule, reply } => format!(
                    "refused by rule {rule}: {} {} {}",
                    reply.code, reply.enhanced, reply.text
                ),
                ContentDecision::Discard { rule } => format!("dropped by rule {rule}"),
            };
            if json {
                let out = serde_json::json!({ "decision": decision, "hits": verdict.hits });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for hit in &verdict.hits {
                    println!("{hit}");
                }
                if verdict.hits.is_empty() {
                    println!("no rule matched");
                }
                println!("the message would be {decision}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
