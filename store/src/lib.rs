//! Postern's configuration store: the model, its SQLite and Postgres backends, the change feed
//! that tells every process about a committed change, and the boot configuration file.

pub mod auth;
pub mod backup;
pub mod boot;
mod changes;
pub mod clock;
mod database;
mod error;
pub mod files;
pub mod metrics;
pub mod model;
mod postgres;
pub(crate) mod repo;
pub mod secrets;
pub mod spool;
mod sqlite;
mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
mod upkeep;

pub use backup::{BackupResult, BackupSettings};
pub use clock::now;
pub use clock::{Clock, SimClock};
pub use database::Database;
pub use error::{Result, StoreError};
pub use repo::aliases::AliasChoice;
pub use repo::audit::AuditFilter;
pub use repo::cluster::{Heartbeat, Membership, NodeInfo, NodeState};
pub use repo::delivery_log::{HourCounts, LogEntry, LogFilter, NewRefusal, RefusalStatus};
pub use repo::domains::DomainCounts;
pub use repo::domains::RemovedDomain;
pub use repo::engine_status::{ENGINE_GONE_AFTER, EngineStatus, Liveness};
pub use repo::mailboxes::MailboxFilter;
pub use repo::maintenance::{Retention, Trimmed};
pub use repo::metric_samples::SAMPLE_SECONDS;
pub use repo::rate_limits::{COUNTERS_STALE_AFTER, RateCounter};
pub use repo::sessions::ConsoleSession;
pub use repo::tokens::{new_secret, secret_hash};
pub use secrets::SecretKey;
pub use store::Store;
pub use upkeep::{Compacted, StorageSizes};
