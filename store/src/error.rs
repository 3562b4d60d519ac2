//! The store's one error type: every refusal names the field and the value that caused it.

use thiserror::Error;

/// What went wrong in the store. Validation errors carry a message written for the person who
/// typed the value; database errors are kept whole for the logs.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A value that does not parse or breaks a rule (a bad address, domain, CIDR, transport…).
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },

    /// The thing to create exists already.
    #[error("{what} {name} already exists")]
    Duplicate { what: &'static str, name: String },

    /// The thing to change or remove does not exist.
    #[error("{what} {name} does not exist")]
    NotFound { what: &'static str, name: String },

    /// The change is well-formed but would leave the configuration inconsistent
    /// (an alias loop, a domain that still has mailboxes, …).
    #[error("{0}")]
    Conflict(String),

    /// The database URL or file cannot be used.
    #[error("database {url}: {message}")]
    Connect { url: String, message: String },

    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// A row in the database that the model cannot read: someone edited the tables by hand.
    #[error("corrupt row in {table}: {message}")]
    Corrupt { table: &'static str, message: String },

    /// The key that seals stored secrets is missing, unreadable, or not the one they were
    /// sealed with.
    #[error("secret key {path}: {message}")]
    SecretKey { path: String, message: String },

    #[error("password hashing failed: {0}")]
    Password(String),

    /// A message body in the spool (`<data_dir>/spool`) could not be written, read or removed.
    #[error("spool {path}: {source}")]
    Spool { path: String, source: std::io::Error },
}

impl StoreError {
    /// The database could not be reached or answered in time: worth trying again, and not the
    /// caller's fault.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Connect { .. }
                | StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))
                | StoreError::Spool { .. }
        )
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        StoreError::Invalid { field, message: message.into() }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
