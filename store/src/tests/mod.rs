//! The store's test suite; every test runs on SQLite and on Postgres.

mod aliases;
mod audit;
mod certificates;
mod changes;
mod cluster;
mod console;
mod content_checks;
mod directories;
mod dkim;
mod dnsbl_greylist;
mod domains;
mod files;
mod mailboxes;
mod metric_samples;
mod milters;
mod policy;
mod queue;
mod queue_scope;
mod rate_limits;
mod schema;
mod sealed;
mod spool;
mod transports_networks;
mod upkeep;

use crate::Store;
use crate::model::{Address, DomainKind, DomainName, NewMailbox, PasswordHash};

pub(crate) const ACTOR: &str = "test:suite";

pub(crate) fn d(s: &str) -> DomainName {
    s.parse().unwrap()
}

pub(crate) fn a(s: &str) -> Address {
    s.parse().unwrap()
}

pub(crate) async fn domain(store: &Store, name: &str) {
    store.add_domain(ACTOR, &d(name), DomainKind::Local).await.unwrap();
}

pub(crate) async fn mailbox(store: &Store, address: &str) {
    store
        .add_mailbox(
            ACTOR,
            NewMailbox {
                address: a(address),
                display_name: String::new(),
                enabled: true,
                quota_bytes: None,
                password_hash: PasswordHash::create("a long enough password").unwrap(),
            },
        )
        .await
        .unwrap();
}
