//! `postern milter add|list|remove|move|enable|disable|test`: the milters every SMTP session
//! calls, in order.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{MilterTimeouts, NewMilter, check_milter_name, parse_milter_timeout};

use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Add a milter (last unless --position says otherwise).
    #[command(
        after_help = "Example:\n  postern milter add clamav unix:/run/clamav/clamav-milter.ctl \
        --default tempfail\n  postern milter add opendkim inet:127.0.0.1:8891 --listeners submission"
    )]
    Add {
        /// What logs and the delivery log call it.
        name: String,
        /// inet:host:port or unix:/path.
        address: String,
        /// What happens to mail when it is down, too slow or broken: accept, tempfail, reject.
        #[arg(long = "default", default_value = "tempfail")]
        default_action: String,
        /// smtp, submission (ports 587 and 465) or smtp,submission.
        #[arg(long, default_value = "smtp,submission")]
        listeners: String,
        /// Time to connect and negotiate (30s, 500ms, 1m).
        #[arg(long, default_value = "30s")]
        connect_timeout: String,
        /// Time to answer each command.
        #[arg(long, default_value = "30s")]
        command_timeout: String,
        /// Time to answer the end of the message.
        #[arg(long, default_value = "5m")]
        eom_timeout: String,
        /// Add it turned off.
        #[arg(long)]
        disabled: bool,
        /// Where to put it (1 is called first).
        #[arg(long)]
        position: Option<i64>,
    },
    /// List the milters in the order they are called.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a milter by its name.
    Remove { name: String },
    /// Move a milter to a position (1 is called first).
    Move { name: String, position: i64 },
    /// Turn a milter on.
    Enable { name: String },
    /// Turn a milter off (it keeps its place).
    Disable { name: String },
    /// Connect to a milter (a configured one by name, or an address), negotiate and show what
    /// it speaks.
    Test {
        /// A configured milter's name, or inet:host:port / unix:/path.
        target: String,
    },
}

async fn find(store: &postern_store::Store, name: &str) -> anyhow::Result<i64> {
    store
        .list_milters()
        .await?
        .into_iter()
        .find(|m| m.name == name)
        .map(|m| m.id)
        .ok_or_else(|| anyhow::anyhow!("no milter is called {name:?} (see postern milter list)"))
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Add {
            name,
            address,
            default_action,
            listeners,
            connect_timeout,
            command_timeout,
            eom_timeout,
            disabled,
            position,
        } => {
            check_milter_name(&name)?;
            let new = NewMilter {
                name,
                address: address.parse()?,
                default_action: default_action.parse()?,
                timeouts: MilterTimeouts {
                    connect_ms: parse_milter_timeout("connect_timeout", &connect_timeout)?,
                    command_ms: parse_milter_timeout("command_timeout", &command_timeout)?,
                    eom_ms: parse_milter_timeout("eom_timeout", &eom_timeout)?,
                },
                listeners: listeners.parse()?,
                enabled: !disabled,
            };
            let m = open_store(config).await?.add_milter(&actor(), new, position).await?;
            println!("added milter {} ({}) at position {}", m.name, m.address, m.position);
        }
        Command::List { json } => {
            let milters = open_store(config).await?.list_milters().await?;
            output::list(
                json,
                &milters,
                &["pos", "name", "address", "default", "listeners", "timeouts", "enabled"],
                |m| {
                    let t = &m.timeouts;
                    vec![
                        m.position.to_string(),
                        m.name.clone(),
                        m.address.to_string(),
                        m.default_action.to_string(),
                        m.listeners.to_string(),
                        format!("{}/{}/{}ms", t.connect_ms, t.command_ms, t.eom_ms),
                        if m.enabled { "yes" } else { "no" }.into(),
                    ]
                },
            );
        }
        Command::Remove { name } => {
            let store = open_store(config).await?;
            let m = store.remove_milter(&actor(), find(&store, &name).await?).await?;
            println!("removed milter {} ({})", m.name, m.address);
        }
        Command::Move { name, position } => {
            let store = open_store(config).await?;
            let m = store.move_milter(&actor(), find(&store, &name).await?, position).await?;
            println!("milter {} is now at position {}", m.name, m.position);
        }
        Command::Enable { name } => {
            let store = open_store(config).await?;
            store.set_milter_enabled(&actor(), find(&store, &name).await?, true).await?;
            println!("milter {name} is on");
        }
        Command::Disable { name } => {
            let store = open_store(config).await?;
            store.set_milter_enabled(&actor(), find(&store, &name).await?, false).await?;
            println!("milter {name} is off");
        }
        Command::Test { target } => {
            let (address, timeouts) = if target.contains(':') {
                (target.parse()?, MilterTimeouts::default())
            } else {
                let store = open_store(config).await?;
                let id = find(&store, &target).await?;
                let m = store.get_milter(id).await?;
                (m.address, m.timeouts)
            };
            match postern_server::milter::probe(&address, timeouts).await {
                Ok(p) => {
                    println!("{address}: milter protocol version {}", p.version);
                    println!("actions:  {}", p.actions.join(" "));
                    println!("protocol: {}", p.protocol.join(" "));
                }
                Err(e) => {
                    eprintln!("{address}: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The console's milter test, with the engine's client.
pub struct ConsoleMilterProbe;

impl postern_web::milters::MilterProbe for ConsoleMilterProbe {
    fn probe<'a>(
        &'a self,
        address: &'a postern_store::model::MilterAddress,
        timeouts: MilterTimeouts,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = postern_web::milters::ProbeResult> + Send + 'a>,
    > {
        Box::pin(async move {
            match postern_server::milter::probe(address, timeouts).await {
                Ok(p) => postern_web::milters::ProbeResult {
                    ok: true,
                    version: Some(p.version),
                    actions: p.actions.iter().map(|s| s.to_string()).collect(),
                    protocol: p.protocol.iter().map(|s| s.to_string()).collect(),
                    error: None,
                },
                Err(e) => postern_web::milters::ProbeResult {
                    ok: false,
                    version: None,
                    actions: Vec::new(),
                    protocol: Vec::new(),
                    error: Some(e.to_string()),
                },
            }
        })
    }
}
