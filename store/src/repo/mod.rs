//! Reading and changing each resource. Every change runs in a [`crate::store::Change`].

pub(crate) mod aliases;
pub(crate) mod audit;
pub(crate) mod config;
pub mod domains;
pub(crate) mod mailboxes;
pub(crate) mod networks;
mod rows;
pub(crate) mod transports;
