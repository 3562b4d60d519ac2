//! `/log`: the delivery log, newest first: what happened to each message and recipient.

use axum::Json;
use axum::extract::State;
use postern_store::{LogEntry, LogFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiQuery, ListParams};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::queue::given;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// What a log entry records: what became of a queued message (`received`, `delivered`,
/// `deferred`, `failed`), or what an SMTP session refused (`rejected` with a 5xx, `tempfailed`
/// with a 4xx) or accepted and dropped (`discarded`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogStatus {
    Received,
    Delivered,
    Deferred,
    Failed,
    Rejected,
    Tempfailed,
    Discarded,
}

impl LogStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStatus::Received => "received",
            LogStatus::Delivered => "delivered",
            LogStatus::Deferred => "deferred",
            LogStatus::Failed => "failed",
            LogStatus::Rejected => "rejected",
            LogStatus::Tempfailed => "tempfailed",
            LogStatus::Discarded => "discarded",
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogEntryView {
    pub id: i64,
    /// Seconds since the Unix epoch.
    pub at: i64,
    /// The queue ID; empty for what an SMTP session refused or dropped (nothing was queued).
    pub message_id: String,
    pub sender: String,
    pub recipient: String,
    pub domain: String,
    /// `received`, `delivered`, `deferred`, `failed`, `rejected`, `tempfailed` or `discarded`.
    pub status: String,
    /// The remote reply, or our own reason; for a refusal, the reply the client got.
    pub reply: String,
    /// Where in the SMTP session a refusal happened: `connect`, `helo`, `mail`, `rcpt`,
    /// `data` or `auth`; empty for queued mail.
    pub stage: String,
    /// The refused client's address; empty for queued mail.
    pub client: String,
    /// What decided a refusal or a discard: the access rule, rate limit, DNS blocklist,
    /// greylisting, header or body check, policy service or milter; empty for queued mail.
    pub reason: String,
}

impl From<LogEntry> for LogEntryView {
    fn from(e: LogEntry) -> LogEntryView {
        LogEntryView {
            id: e.id,
            at: e.at,
            message_id: e.message_id,
            sender: e.sender,
            recipient: e.recipient,
            domain: e.domain,
            status: e.status,
            reply: e.reply,
            stage: e.stage,
            client: e.client,
            reason: e.reason,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogList {
    pub items: Vec<LogEntryView>,
    /// Pass as `after` for the next (older) page; absent on the last.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    #[param(inline)]
    pub status: Option<LogStatus>,
    /// Text in the sender, the recipient, the queue ID, the client's address or the reason,
    /// any case.
    pub search: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub after: Option<String>,
}

/// A page cursor of a newest-first list: the ID of the last entry shown.
pub fn parse_cursor(after: Option<String>) -> Result<Option<i64>, WebError> {
    given(after)
        .map(|a| {
            a.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| WebError::invalid("after", "after must be the `next` of a page"))
        })
        .transpose()
}

/// One page of entries and the cursor of the next: asks for one more than shown to know.
pub async fn page(
    state: &AppState,
    filter: &LogFilter,
    after: Option<i64>,
    limit: usize,
) -> Result<(Vec<LogEntry>, Option<i64>), WebError> {
    let mut entries = state.store.delivery_log(filter, after, limit as u32 + 1).await?;
    let next = (entries.len() > limit).then(|| entries[limit - 1].id);
    entries.truncate(limit);
    Ok((entries, next))
}

/// The delivery log, newest first; a domain-admin sees its domains' entries.
#[utoipa::path(get, path = "/log", params(LogParams), tag = "log",
    responses((status = 200, body = LogList), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiQuery(params): ApiQuery<LogParams>,
) -> Result<Json<LogList>, WebError> {
    let limit = ListParams { limit: params.limit, after: None }.limit()?;
    let filter = LogFilter {
        domains: user.domains.clone(),
        status: params.status.map(|s| s.as_str().to_string()),
        search: given(params.search),
    };
    let (entries, next) = page(&state, &filter, parse_cursor(params.after)?, limit).await?;
    Ok(Json(LogList {
        items: entries.into_iter().map(Into::into).collect(),
        next: next.map(|n| n.to_string()),
    }))
}
