//! The subcommands, one module each, and what they share: loading the boot config, opening the
//! store, printing lists.

pub mod admin;
pub mod alias;
pub mod cert;
pub mod checks;
pub mod config;
mod console;
pub mod dkim;
pub mod dns;
pub mod dnsbl;
pub mod domain;
pub mod dovecot;
pub mod greylist;
pub mod limit;
pub mod mailauth;
pub mod mailbox;
pub mod milter;
pub mod network;
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

/// Who the audit log says made a change from the command line.
pub fn actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}
