//! `postern policy rule add|list|remove|move` and `postern policy test`: access rules.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{PolicyEnvelope, PolicyRuleText};

use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Access rules: ordered, each evaluated at one stage of the SMTP dialog.
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Policy services: external policy servers (postgrey, policyd-spf) asked at RCPT or at
    /// the end of DATA.
    #[command(subcommand)]
    Service(super::policy_service::ServiceCommand),
    /// Say which rule an envelope hits at each stage, and why.
    Test {
        /// The client's address.
        #[arg(long)]
        client: String,
        /// The client's reverse DNS name (no lookup is made).
        #[arg(long)]
        rdns: Option<String>,
        /// The HELO/EHLO name.
        #[arg(long)]
        helo: Option<String>,
        /// The MAIL FROM address (the null sender when not given).
        #[arg(long)]
        from: Option<String>,
        /// A RCPT TO address; repeat for several.
        #[arg(long = "to", required = true)]
        to: Vec<String>,
        /// The user the client authenticated as.
        #[arg(long)]
        auth: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum RuleCommand {
    /// Add a rule. Matchers given must all match; text matchers are an exact name or address,
    /// @domain, .suffix (the name and every name below it) or /regex/ (case-insensitive).
    #[command(after_help = "Actions: OK | REJECT [5xx 5.x.x] [text] | DEFER [4xx 4.x.x] [text] | \
        DISCARD | HOLD | REDIRECT address | BCC address\n\nExample:\n  postern policy rule add \
        --stage rcpt --to @example.com --client 192.0.2.0/24 REJECT 550 5.7.1 not from there")]
    Add(Box<AddArgs>),
    /// List the rules in the order they are evaluated.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a rule by its id.
    Remove { id: i64 },
    /// Move a rule to a position (1 is evaluated first).
    Move { id: i64, position: i64 },
}

/// The rule `policy rule add` adds (boxed: the other commands are small).
#[derive(clap::Args)]
pub struct AddArgs {
    /// connect, helo, mail, rcpt or data.
    #[arg(long)]
    stage: String,
    /// The client's address is in this network (CIDR or one address).
    #[arg(long)]
    client: Option<String>,
    /// The client's reverse DNS name.
    #[arg(long)]
    rdns: Option<String>,
    /// The HELO/EHLO name (from the helo stage on).
    #[arg(long)]
    helo: Option<String>,
    /// The sender (from the mail stage on).
    #[arg(long)]
    from: Option<String>,
    /// The recipient (rcpt and data stages).
    #[arg(long)]
    to: Option<String>,
    /// yes or no: whether the client authenticated.
    #[arg(long)]
    auth: Option<String>,
    /// Where to put it (1 is evaluated first); last by default.
    #[arg(long)]
    position: Option<i64>,
    #[arg(long, default_value = "")]
    description: String,
    /// The action, e.g. `REJECT 550 5.7.1 no thanks`.
    #[arg(required = true, num_args = 1.., trailing_var_arg = true)]
    action: Vec<String>,
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Service(cmd) => return super::policy_service::run(config, cmd).await,
        Command::Rule(RuleCommand::Add(args)) => {
            let AddArgs {
                stage,
                client,
                rdns,
                helo,
                from,
                to,
                auth,
                position,
                description,
                action,
            } = *args;
            let text = PolicyRuleText {
                stage,
                client,
                rdns,
                helo,
                sender: from,
                recipient: to,
                authenticated: auth,
                action: action.join(" "),
                description,
            };
            let rule = text.parse()?;
            let rule = open_store(config).await?.add_policy_rule(&actor(), rule, position).await?;
            println!(
                "added rule {} at position {}: {} {} -> {}",
                rule.id, rule.position, rule.stage, rule.matches, rule.action
            );
        }
        Command::Rule(RuleCommand::List { json }) => {
            let rules = open_store(config).await?.list_policy_rules().await?;
            output::list(
                json,
                &rules,
                &["pos", "id", "stage", "match", "action", "description"],
                |r| {
                    vec![
                        r.position.to_string(),
                        r.id.to_string(),
                        r.stage.to_string(),
                        r.matches.to_string(),
                        r.action.to_string(),
                        r.description.clone(),
                    ]
                },
            );
        }
        Command::Rule(RuleCommand::Remove { id }) => {
            let rule = open_store(config).await?.remove_policy_rule(&actor(), id).await?;
            println!(
                "removed rule {}: {} {} -> {}",
                rule.id, rule.stage, rule.matches, rule.action
            );
        }
        Command::Rule(RuleCommand::Move { id, position }) => {
            let rule = open_store(config).await?.move_policy_rule(&actor(), id, position).await?;
            println!("rule {} is now at position {}", rule.id, rule.position);
        }
        Command::Test { client, rdns, helo, from, to, auth, json } => {
            let ip = client.trim().parse().map_err(|_| {
                anyhow::anyhow!("--client {client:?} is not an IP address (like 192.0.2.7)")
            })?;
            let policy = open_store(config).await?.load_config().await?.policy;
            let env = PolicyEnvelope {
                client: Some(ip),
                rdns: rdns.as_deref(),
                helo: helo.as_deref(),
                sender: from.as_deref().or(Some("")),
                recipients: to.iter().map(String::as_str).collect(),
                auth: auth.as_deref(),
            };
            let steps = policy.trace(&env);
            if json {
                println!("{}", serde_json::to_string_pretty(&steps)?);
            } else {
                for step in &steps {
                    println!("{step}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
