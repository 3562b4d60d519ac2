//! `/audit`: the audit trail of configuration changes and queue actions, newest first (admins
//! only).

use axum::Json;
use axum::extract::State;
use postern_store::model::AuditEntry;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::log::parse_cursor;
use super::{ApiQuery, ListParams};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    /// The configuration revision the change produced (for a queue action, the one in force).
    pub revision: i64,
    /// Seconds since the Unix epoch.
    pub at: i64,
    /// Who: `console:<admin>`, `api:<admin>/<token ID> (<token name>)`, `cli:<system user>`.
    pub actor: String,
    /// `domain.add`, `mailbox.remove`…, `queue.hold`, `queue.delete`… (for a queue action,
    /// `object` is the queue ID and `after` says which recipients: `whole_message`, `recipients`).
    pub action: String,
    pub object: String,
    /// The object before the change (secrets left out); absent for a creation.
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The object after the change; absent for a removal.
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> AuditView {
        AuditView {
            id: e.id,
            revision: e.revision,
            at: e.at,
            actor: e.actor,
            action: e.action,
            object: e.object,
            before: e.before,
            after: e.after,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditView>,
    /// Pass as `after` for the next (older) page; absent on the last.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Part of who made the change, any case (`alice`, `cli:`, `api:`).
    pub actor: Option<String>,
    /// The kind of thing changed: the action's first word (`domain`, `queue`, `token`…).
    pub kind: Option<String>,
    /// Text anywhere in the object or its before and after, any case.
    pub search: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub after: Option<String>,
}

/// One page of the entries that match `filter`, and the cursor of the next.
pub async fn search_page(
    state: &AppState,
    filter: &postern_store::AuditFilter,
    after: Option<i64>,
    limit: usize,
) -> Result<(Vec<AuditEntry>, Option<i64>), WebError> {
    let mut entries = state.store.search_audit(filter, limit as u32 + 1, after).await?;
    let next = (entries.len() > limit).then(|| entries[limit - 1].id);
    entries.truncate(limit);
    Ok((entries, next))
}

/// The audit trail, newest first, optionally filtered (admins with every domain only).
#[utoipa::path(get, path = "/audit", params(AuditParams), tag = "audit",
    responses((status = 200, body = AuditList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditList>, WebError> {
    user.require_global()?;
    let limit = ListParams { limit: params.limit, after: None }.limit()?;
    let given = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let filter = postern_store::AuditFilter {
        actor: given(params.actor),
        kind: given(params.kind),
        search: given(params.search),
    };
    let (entries, next) = search_page(&state, &filter, parse_cursor(params.after)?, limit).await?;
    Ok(Json(AuditList {
        items: entries.into_iter().map(Into::into).collect(),
        next: next.map(|n| n.to_string()),
    }))
}
