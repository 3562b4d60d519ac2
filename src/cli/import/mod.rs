//! `postern import postfix [DIR] [--dry-run]`: reads a Postfix configuration (`main.cf` and the
//! maps it names, by their source text) and creates the domains, mailboxes, aliases, transports,
//! trusted networks, access rules (from the restriction lists' access maps) and header and body
//! checks it describes, through the store's ordinary changes (so each shows in the
//! audit log). It prints what it will create, what exists already, and what it cannot map and
//! why; a second run finds nothing to do.

pub mod access;
pub mod checks;
pub mod main_cf;
pub mod maps;
pub mod plan;
pub mod regexp;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use postern_store::model::{NewMailbox, PasswordHash, TlsPolicy};

use super::{actor, open_store};

#[derive(Subcommand)]
pub enum Command {
    /// Import a Postfix configuration directory (default /etc/postfix).
    Postfix {
        #[arg(default_value = "/etc/postfix")]
        dir: PathBuf,
        /// Only show what would be created.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Reads `DIR/main.cf`; `myhostname` defaults to the machine's name, as in Postfix.
pub fn read_main_cf(dir: &Path) -> anyhow::Result<main_cf::MainCf> {
    let path = dir.join("main.cf");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut cf = main_cf::MainCf::parse(&text);
    if !cf.is_set("myhostname") {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        cf.set("myhostname", host.trim());
    }
    Ok(cf)
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::Postfix { dir, dry_run } = cmd;
    let cf = read_main_cf(&dir)?;
    let store = open_store(config).await?;
    let current = store.load_config().await?;
    let plan = plan::make(&cf, &dir, &current);

    for (d, kind) in &plan.domains {
        println!("+ domain {d} ({})", kind.as_str());
    }
    for m in &plan.mailboxes {
        println!("+ mailbox {m}");
    }
    for (source, dests) in &plan.aliases {
        let list: Vec<String> = dests.iter().map(ToString::to_string).collect();
        println!("+ alias {source} -> {}", list.join(", "));
    }
    for (pattern, t) in &plan.transports {
        println!("+ transport {pattern} {t}");
    }
    for n in &plan.networks {
        println!("+ network {n}");
    }
    for r in &plan.rules {
        println!("+ rule {} {} {} ({})", r.stage, r.matches, r.action, r.description);
    }
    for c in &plan.checks {
        println!("+ check {} /{}/ {} ({})", c.part, c.pattern, c.action, c.description);
    }
    for u in &plan.unchanged {
        println!("= {u} (exists already)");
    }
    for u in &plan.unmapped {
        println!("! {u}");
    }
    for e in &plan.elsewhere {
        println!("* {e}");
    }
    if plan.is_empty() {
        println!("nothing to create");
        return Ok(ExitCode::SUCCESS);
    }
    if dry_run {
        println!("dry run: nothing was changed");
        return Ok(ExitCode::SUCCESS);
    }

    let who = format!("{} (postfix import)", actor());
    let mut failed = 0;
    let mut report = |what: String, result: Result<(), postern_store::StoreError>| {
        if let Err(e) = result {
            failed += 1;
            eprintln!("cannot create {what}: {e}");
        }
    };
    for (d, kind) in &plan.domains {
        report(format!("domain {d}"), store.add_domain(&who, d, *kind).await.map(|_| ()));
    }
    if !plan.mailboxes.is_empty() {
        println!(
            "mailboxes get a random password (Postfix does not hold one): set each with \
             `postern mailbox passwd ADDRESS`"
        );
    }
    for m in &plan.mailboxes {
        let result = async {
            let hash = PasswordHash::create(&postern_store::new_secret())?;
            let new = NewMailbox {
                address: m.clone(),
                display_name: String::new(),
                enabled: true,
                quota_bytes: None,
                password_hash: hash,
            };
            store.add_mailbox(&who, new).await.map(|_| ())
        }
        .await;
        report(format!("mailbox {m}"), result);
    }
    for (source, dests) in &plan.aliases {
        // Postfix rewrites a virtual alias before delivery: a mailbox that is also an alias
        // gets its mail only if the alias lists it.
        let choice = postern_store::AliasChoice { divert_mailbox: true };
        report(
            format!("alias {source}"),
            store.add_alias_with(&who, source, dests, choice).await.map(|_| ()),
        );
    }
    for (pattern, t) in &plan.transports {
        report(
            format!("transport {pattern}"),
            store
                .set_transport(&who, pattern, t.clone(), TlsPolicy::default(), None)
                .await
                .map(|_| ()),
        );
    }
    for n in &plan.networks {
        report(
            format!("network {n}"),
            store.add_network(&who, *n, "imported from Postfix mynetworks").await.map(|_| ()),
        );
    }
    // After the ones before them, so that each lands in its place (last): in plan order.
    for r in &plan.rules {
        report(
            format!("rule {} {} {}", r.stage, r.matches, r.action),
            store.add_policy_rule(&who, r.clone(), None).await.map(|_| ()),
        );
    }
    for c in &plan.checks {
        report(
            format!("check {} /{}/ {}", c.part, c.pattern, c.action),
            store.add_content_check(&who, c.clone(), None).await.map(|_| ()),
        );
    }
    if failed > 0 {
        anyhow::bail!("{failed} item(s) could not be created (see above); the rest was");
    }
    println!("imported; each change is in the audit log as {who}");
    Ok(ExitCode::SUCCESS)
}
