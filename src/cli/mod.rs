//! The subcommands, one module each, and what they share: loading the boot config, opening the
//! store, printing lists.

pub mod admin;
pub mod alias;
pub mod backup;
pub mod cert;
pub mod checks;
pub mod config;
mod console;
pub mod directory;
pub mod dkim;
pub mod dns;
pub mod dnsbl;
pub mod domain;
pub mod dovecot;
pub mod greylist;
pub mod import;
pub mod limit;
pub mod mailauth;
pub mod mailbox;
pub mod milter;
pub mod network;
pub mod node;
mod output;
pub mod policy;
pub mod policy_service;
pub mod queue;
mod secret;
pub mod sendmail;
pub mod serve;
pub mod token;
pub mod transport;

use std::path::Path;

use anyhow::Context;
use postern_store::Store;
use postern_store::boot::{self, BootConfig, Profile};

/// Reads the boot configuration: the file named or found, then `POSTERN_*` overrides.
pub fn load_boot(explicit: Option<&Path>, profile: Profile) -> anyhow::Result<BootConfig> {
    let path = boot::locate(explicit);
    Ok(BootConfig::load(path.as_deref(), profile, std::env::vars())?)
}

/// Opens the store the boot configuration names (creating and migrating it if need be).
pub async fn open_store(explicit: Option<&Path>) -> anyhow::Result<Store> {
    let boot = load_boot(explicit, Profile::Standard)?;
    postern_store::files::private_dir(&boot.data_dir)
        .with_context(|| format!("cannot create the data directory {}", boot.data_dir.display()))?;
    Ok(Store::open(&boot.database, &boot.secret_key_file).await?)
}

/// Who the audit log says made a change from the command line: the person behind `sudo`, else
/// the login name, else (cron, systemd units and `env -i` set none of these) the system user the
/// process runs as, by its uid.
pub fn actor() -> String {
    actor_from(|name| std::env::var(name).ok(), system_user)
}

fn actor_from(
    env: impl Fn(&str) -> Option<String>,
    by_uid: impl FnOnce() -> Option<String>,
) -> String {
    let named = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .filter_map(|name| env(name))
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_graphic()));
    format!("cli:{}", named.or_else(by_uid).unwrap_or_else(|| "unknown".into()))
}

/// The name `/etc/passwd` gives the uid this process runs as (the owner of `/proc/self`), or
/// `uid 1000` when it has none.
fn system_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}

#[cfg(test)]
mod actor_tests {
    use super::*;

    #[test]
    fn the_audit_log_names_the_system_user() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let nobody = || Some("backup".to_string());
        assert_eq!(actor_from(env(&[("SUDO_USER", "ann"), ("USER", "root")]), nobody), "cli:ann");
        assert_eq!(actor_from(env(&[("USER", "root")]), nobody), "cli:root");
        assert_eq!(actor_from(env(&[("USER", " "), ("LOGNAME", "bob")]), nobody), "cli:bob");
        assert_eq!(actor_from(env(&[]), nobody), "cli:backup", "by uid when nothing says");
        assert_eq!(actor_from(env(&[("USER", "a b")]), || None), "cli:unknown");
        // This process runs as someone /etc/passwd (or its uid) names.
        assert!(system_user().is_some_and(|u| !u.is_empty()));
    }
}
