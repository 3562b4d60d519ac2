//! `postern limit list|add|set|remove|counters`: rate limits (per client address, network,
//! user or sender domain) and the counters the engines publish.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{NewRateLimit, format_window, parse_window};

use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// List the rate limits.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a limit: at most MAX MEASURE per KEY in WINDOW, like
    /// `postern limit add auth-failures client-ip 30 1h`.
    Add {
        /// connections, messages, recipients or auth-failures.
        measure: String,
        /// client-ip, client-network (/24 or /64), user or sender-domain.
        key: String,
        /// Events allowed in one window; the next is refused.
        max: i64,
        /// Like 60s, 10m, 1h, 1d.
        window: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Change a limit's threshold, window or description.
    Set {
        id: i64,
        #[arg(long)]
        max: Option<i64>,
        #[arg(long)]
        window: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Remove a limit.
    Remove { id: i64 },
    /// The counters nearest their limits, as the engines last published them.
    Counters {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    match cmd {
        Command::List { json } => {
            let limits = store.list_rate_limits().await?;
            output::list(json, &limits, &["id", "limit", "description"], |l| {
                vec![l.id.to_string(), l.summary(), l.description.clone()]
            });
        }
        Command::Add { measure, key, max, window, description } => {
            let new = NewRateLimit {
                key: key.parse()?,
                measure: measure.parse()?,
                threshold: max,
                window_secs: parse_window(&window)?,
                description,
            };
            let limit = store.add_rate_limit(&actor(), new).await?;
            println!("rate limit {}: {}", limit.id, limit.summary());
        }
        Command::Set { id, max, window, description } => {
            let limits = store.list_rate_limits().await?;
            let old = limits
                .iter()
                .find(|l| l.id == id)
                .ok_or_else(|| anyhow::anyhow!("there is no rate limit {id}"))?;
            let new = NewRateLimit {
                key: old.key,
                measure: old.measure,
                threshold: max.unwrap_or(old.threshold),
                window_secs: window
                    .as_deref()
                    .map(parse_window)
                    .transpose()?
                    .unwrap_or(old.window_secs),
                description: description.unwrap_or_else(|| old.description.clone()),
            };
            let limit = store.update_rate_limit(&actor(), id, new).await?;
            println!("rate limit {}: {}", limit.id, limit.summary());
        }
        Command::Remove { id } => {
            let limit = store.remove_rate_limit(&actor(), id).await?;
            println!("removed rate limit {}: {}", limit.id, limit.summary());
        }
        Command::Counters { json } => {
            let counters = store.rate_counters(100).await?;
            let now = postern_store::clock::now();
            output::list(
                json,
                &counters,
                &["limit", "subject", "count", "resets in", "node"],
                |c| {
                    vec![
                        c.limit_id.to_string(),
                        c.subject.clone(),
                        format!("{}/{}", c.count, c.threshold),
                        format_window((c.resets_at - now).max(1)),
                        c.node.clone(),
                    ]
                },
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
