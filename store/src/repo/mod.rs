//! Reading and changing each resource. Every change runs in a [`crate::store::Change`].

pub(crate) mod admins;
pub(crate) mod aliases;
pub(crate) mod audit;
pub mod certificates;
pub(crate) mod config;
pub(crate) mod content_checks;
pub mod delivery_log;
pub mod dkim;
pub mod domains;
pub mod engine_status;
pub(crate) mod mail_auth;
pub(crate) mod mailboxes;
pub mod maintenance;
mod matching;
pub mod mta_sts;
pub(crate) mod networks;
pub(crate) mod policy;
pub(crate) mod policy_services;
pub(crate) mod queue;
mod queue_act;
mod queue_rows;
mod rows;
pub(crate) mod sealed;
pub mod sessions;
pub mod tokens;
pub(crate) mod transports;
