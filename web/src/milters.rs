//! The milter test the Milters page and `POST /milters/{id}/test` run: connect to a milter,
//! negotiate and report what it speaks. The console never speaks the milter protocol itself:
//! `postern serve` hands in the engine's client (`postern_server::milter::probe`) as a
//! [`MilterProbe`].

use std::future::Future;
use std::pin::Pin;

use postern_store::model::{MilterAddress, MilterTimeouts};
use serde::Serialize;
use utoipa::ToSchema;

/// What a milter answered when we negotiated with it, or why that failed.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct ProbeResult {
    /// Whether the milter could be reached and negotiated with.
    pub ok: bool,
    /// The milter protocol version it speaks (2 to 6).
    pub version: Option<u32>,
    /// The actions it may take (add-header, change-header, quarantine, …).
    pub actions: Vec<String>,
    /// The protocol steps it leaves out or does not answer (no-helo, no-reply-header, …).
    pub protocol: Vec<String>,
    /// Why it could not be used.
    pub error: Option<String>,
}

pub trait MilterProbe: Send + Sync {
    fn probe<'a>(
        &'a self,
        address: &'a MilterAddress,
        timeouts: MilterTimeouts,
    ) -> Pin<Box<dyn Future<Output = ProbeResult> + Send + 'a>>;
}
