//! Postern's configuration store: the model, its SQLite and Postgres backends, the change feed
//! that tells every process about a committed change, and the boot configuration file.

pub mod boot;
mod changes;
mod database;
mod error;
pub mod model;
mod postgres;
pub(crate) mod repo;
mod sqlite;
mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use database::Database;
pub use error::{Result, StoreError};
pub use repo::domains::RemovedDomain;
pub use store::Store;
