//! The audit trail: who changed what, when, and what it was before and after.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    /// The configuration revision this change produced.
    pub revision: i64,
    /// Seconds since the Unix epoch.
    pub at: i64,
    /// `cli:<user>`, `console:<admin>`, `api:<token>`…
    pub actor: String,
    /// `domain.add`, `mailbox.remove`…, `queue.hold`…
    pub action: String,
    pub object: String,
    /// JSON of the object before and after (secrets left out); `None` for a creation or removal.
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}
