//! Postern's MTA engine: listeners, the live configuration snapshot, and (as they land) SMTP
//! sessions, the queue and delivery.

pub mod acme;
pub mod cluster;
pub mod counters;
pub mod delivery;
pub mod directory;
pub mod dns;
pub mod engine;
mod error;
pub mod mailauth;
pub mod milter;
pub mod mta;
pub mod policy;
pub mod queue;
pub mod smtp;
pub mod tls;

pub use engine::{Engine, Snapshot};
pub use error::ServerError;
pub use queue::{Queue, QueueError};
