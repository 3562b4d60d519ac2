//! Reading and changing each resource. Every change runs in a [`crate::store::Change`].

pub(crate) mod aliases;
pub(crate) mod audit;
pub(crate) mod config;
pub mod domains;
pub(crate) mod mailboxes;
pub(crate) mod networks;
pub(crate) mod queue;
mod queue_rows;
mod rows;
pub(crate) mod transports;
