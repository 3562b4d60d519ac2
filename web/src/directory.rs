//! The directory tests the domain's Directory page, its API and `postern directory` run:
//! "test connection" (connect, bind as the service account, read the base DN) and "look up this
//! address" (what the directory answers for it). The console never speaks LDAP itself:
//! `postern serve` hands in the engine's client (`postern_server::directory`) as a
//! [`DirectoryProbe`].

use std::future::Future;
use std::pin::Pin;

use postern_store::model::{Address, DirectorySettings};
use serde::Serialize;
use utoipa::ToSchema;

/// What a test or a lookup came to.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct DirectoryAnswer {
    /// Whether the directory could be asked: false when it is down, refuses the service bind
    /// or the base DN is wrong (then `error` says why).
    pub ok: bool,
    /// For a lookup: whether an entry holds the address.
    pub found: Option<bool>,
    /// The entry's DN.
    pub dn: Option<String>,
    /// The entry's addresses, the primary one (its mailbox) first.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// What happened, in words.
    pub message: String,
    pub error: Option<String>,
}

impl DirectoryAnswer {
    pub fn failed(error: impl Into<String>) -> DirectoryAnswer {
        let error = error.into();
        DirectoryAnswer {
            ok: false,
            found: None,
            dn: None,
            addresses: Vec::new(),
            message: format!("the directory could not be asked: {error}"),
            error: Some(error),
        }
    }
}

pub type DirectoryFuture<'a> = Pin<Box<dyn Future<Output = DirectoryAnswer> + Send + 'a>>;

pub trait DirectoryProbe: Send + Sync {
    /// Connects, binds as the service account and reads the base DN.
    fn test<'a>(&'a self, settings: &'a DirectorySettings) -> DirectoryFuture<'a>;
    /// Looks the address up now, without the engine's cache.
    fn lookup<'a>(
        &'a self,
        settings: &'a DirectorySettings,
        address: &'a Address,
    ) -> DirectoryFuture<'a>;
}
