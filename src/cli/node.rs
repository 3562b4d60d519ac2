//! `postern node list|drain|remove`: the engines sharing this store (docs/cluster.md).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use postern_store::NodeState;

use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// List the nodes: alive, draining, drained or dead (no heartbeat for its dead time), with
    /// their roles and the queued messages each holds.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Drain a node: it stops taking SMTP sessions (`421 4.3.2`), ends its delivery attempts
    /// and hands its queue to the other nodes, without a restart. A restart brings it back.
    Drain {
        node: String,
        /// Wait until the node has drained (at most this many seconds).
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// Forget a dead or drained node that holds no messages.
    Remove { node: String },
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    match cmd {
        Command::List { json } => {
            let nodes = store.node_list().await?;
            let now = store.clock().now();
            output::list(
                json,
                &nodes,
                &["node", "state", "roles", "messages", "last seen", "dead after"],
                |n| {
                    let roles = match (n.smtp, n.console) {
                        (true, true) => "smtp, console",
                        (true, false) => "smtp",
                        _ => "console",
                    };
                    vec![
                        n.node.clone(),
                        n.state.to_string(),
                        roles.to_string(),
                        n.messages.to_string(),
                        format!("{}s ago", (now - n.seen_at).max(0)),
                        format!("{}s", n.dead_after),
                    ]
                },
            );
        }
        Command::Drain { node, wait } => {
            let info = store.node_request_drain(&node, &actor()).await?;
            if info.state == NodeState::Drained {
                println!("{node} is drained");
                return Ok(ExitCode::SUCCESS);
            }
            println!("{node} drains at its next heartbeat (within {}s)", info.dead_after / 3 + 1);
            if let Some(seconds) = wait {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
                loop {
                    let state = store.node_get(&node).await?.map(|n| n.state);
                    if state == Some(NodeState::Drained) {
                        println!("{node} is drained");
                        break;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        eprintln!(
                            "{node} has not drained yet ({})",
                            state.map_or("gone".into(), |s| s.to_string())
                        );
                        return Ok(ExitCode::FAILURE);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        Command::Remove { node } => {
            store.node_remove(&node, &actor()).await?;
            println!("forgot node {node}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
