//! `postern mailauth policy`: what inbound mail that fails SPF or DMARC, or whose checks meet a
//! DNS failure, leads to; globally, or for one domain (the recipients' domain decides).

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::model::{
    DmarcQuarantineAction, DmarcRejectAction, DomainName, MailAuthPolicy, SpfFailAction,
    TempErrorAction,
};
use serde::Serialize;

use super::{actor, open_store, output};

#[derive(Subcommand)]
pub enum Command {
    /// Show the inbound policy (global and per-domain overrides), or change it with the flags
    /// below. With --domain, the flags change that domain's override (created from the global
    /// policy); --clear removes the override.
    Policy {
        /// A domain's override instead of the global policy.
        #[arg(long)]
        domain: Option<DomainName>,
        /// DMARC failure under the sender's p=reject: reject (550 5.7.1), quarantine (see
        /// --dmarc-quarantine), or record only.
        #[arg(long, value_name = "reject|quarantine|record")]
        dmarc_reject: Option<DmarcRejectAction>,
        /// DMARC failure under p=quarantine: hold in the queue, tag (X-Postern-Auth-Warning:)
        /// and deliver, or record only.
        #[arg(long, value_name = "hold|tag|record")]
        dmarc_quarantine: Option<DmarcQuarantineAction>,
        /// SPF fail (-all): reject (550 5.7.23), tag, or record only.
        #[arg(long, value_name = "reject|tag|record")]
        spf_fail: Option<SpfFailAction>,
        /// DNS failure during the checks: defer (451 4.7.24) or accept with a tag. Never a
        /// permanent rejection.
        #[arg(long, value_name = "defer|accept")]
        temperror: Option<TempErrorAction>,
        /// Remove the --domain override: the global policy applies again.
        #[arg(long, requires = "domain")]
        clear: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Row {
    scope: String,
    #[serde(flatten)]
    policy: MailAuthPolicy,
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::Policy {
        domain,
        dmarc_reject,
        dmarc_quarantine,
        spf_fail,
        temperror,
        clear,
        json,
    } = cmd;
    let store = open_store(config).await?;
    let changes = dmarc_reject.is_some()
        || dmarc_quarantine.is_some()
        || spf_fail.is_some()
        || temperror.is_some();
    if clear {
        anyhow::ensure!(!changes, "--clear takes no policy flags");
        let domain = domain.expect("clap requires --domain");
        store.clear_mail_auth_policy(&actor(), &domain).await?;
        println!("{domain} follows the global inbound policy again");
        return Ok(ExitCode::SUCCESS);
    }
    let policies = store.mail_auth_policies().await?;
    if changes {
        let base = domain
            .as_ref()
            .and_then(|d| policies.domains.get(d).copied())
            .unwrap_or(policies.global);
        let policy = MailAuthPolicy {
            dmarc_reject: dmarc_reject.unwrap_or(base.dmarc_reject),
            dmarc_quarantine: dmarc_quarantine.unwrap_or(base.dmarc_quarantine),
            spf_fail: spf_fail.unwrap_or(base.spf_fail),
            temperror: temperror.unwrap_or(base.temperror),
        };
        store.set_mail_auth_policy(&actor(), domain.as_ref(), policy).await?;
    }
    let policies = store.mail_auth_policies().await?;
    let mut rows = vec![Row { scope: "global".into(), policy: policies.global }];
    rows.extend(policies.domains.iter().map(|(d, p)| Row { scope: d.to_string(), policy: *p }));
    if let Some(d) = &domain {
        rows.retain(|r| r.scope == d.as_str() || r.scope == "global");
    }
    output::list(
        json,
        &rows,
        &["scope", "dmarc p=reject", "dmarc p=quarantine", "spf fail", "temperror"],
        |r| {
            vec![
                r.scope.clone(),
                r.policy.dmarc_reject.to_string(),
                r.policy.dmarc_quarantine.to_string(),
                r.policy.spf_fail.to_string(),
                r.policy.temperror.to_string(),
            ]
        },
    );
    Ok(ExitCode::SUCCESS)
}
