//! The delivery log and the audit log pages: newest first, a page at a time.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use postern_store::LogFilter;
use serde::Deserialize;

use super::{FormState, Layout, percent_encode};
use crate::api::log::{page as log_page, parse_cursor};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::queue::given;
use crate::state::AppState;
use crate::time;

const PER_PAGE: usize = 100;
const STATUSES: [&str; 7] =
    ["received", "delivered", "deferred", "failed", "rejected", "tempfailed", "discarded"];

pub fn router() -> Router<AppState> {
    Router::new().route("/log", get(delivery)).route("/audit", get(audit))
}

#[derive(Debug, Default, Deserialize)]
struct LogForm {
    #[serde(default)]
    status: String,
    #[serde(default)]
    search: String,
    #[serde(default)]
    after: String,
}

struct LogRow {
    at: String,
    message_id: String,
    sender: String,
    recipient: String,
    status: String,
    reply: String,
    /// A refusal's stage and client (`rcpt from 192.0.2.1`); empty for queued mail.
    refused: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "log/list.html")]
struct LogPage {
    layout: Layout,
    form: FormState,
    rows: Vec<LogRow>,
    /// Each status of the filter, and whether it is the one chosen.
    statuses: Vec<(&'static str, bool)>,
    query: String,
    next: Option<i64>,
    paged: bool,
}

impl_page!(LogPage);

async fn delivery(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Query(form): Query<LogForm>,
) -> Response {
    let result: Result<LogPage, WebError> = async {
        let status = given(Some(form.status.clone()));
        if let Some(s) = &status
            && !STATUSES.contains(&s.as_str())
        {
            return Err(WebError::invalid("status", format!("{s:?} is not a log status")));
        }
        let after = parse_cursor(Some(form.after.clone()))?;
        let filter = LogFilter {
            domains: user.principal.domains.clone(),
            status: status.clone(),
            search: given(Some(form.search.clone())),
        };
        let (entries, next) = log_page(&state, &filter, after, PER_PAGE).await?;
        let query = [("status", form.status.trim()), ("search", form.search.trim())]
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        Ok(LogPage {
            layout: Layout::new(&user, "log", "Delivery log", &headers),
            form: FormState::with(&[("status", &form.status), ("search", &form.search)]),
            rows: entries
                .into_iter()
                .map(|e| LogRow {
                    at: time::format(e.at),
                    message_id: e.message_id,
                    // Before MAIL (a refusal at connect, HELO or AUTH) there is no sender yet.
                    sender: match (e.sender.is_empty(), e.stage.as_str()) {
                        (true, "connect" | "helo" | "auth") => String::new(),
                        (true, _) => "<>".into(),
                        (false, _) => e.sender,
                    },
                    recipient: e.recipient,
                    status: e.status,
                    reply: e.reply,
                    refused: match e.stage.is_empty() {
                        true => String::new(),
                        false => format!("at {} from {}", e.stage.to_uppercase(), e.client),
                    },
                    reason: e.reason,
                })
                .collect(),
            statuses: STATUSES.iter().map(|s| (*s, form.status.trim() == *s)).collect(),
            query,
            next,
            paged: after.is_some(),
        })
    }
    .await;
    super::respond(StatusCode::OK, result)
}

#[derive(Debug, Default, Deserialize)]
struct AuditForm {
    #[serde(default)]
    after: String,
}

struct AuditRow {
    at: String,
    actor: String,
    action: String,
    object: String,
    before: String,
    after: String,
}

#[derive(Template)]
#[template(path = "audit/list.html")]
struct AuditPage {
    layout: Layout,
    rows: Vec<AuditRow>,
    next: Option<i64>,
    paged: bool,
}

impl_page!(AuditPage);

/// JSON as a person reads it; escaped by the template like any other text.
fn pretty(value: Option<serde_json::Value>) -> String {
    value.map(|v| serde_json::to_string_pretty(&v).unwrap_or_default()).unwrap_or_default()
}

async fn audit(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Query(form): Query<AuditForm>,
) -> Response {
    let result: Result<AuditPage, WebError> = async {
        user.principal.require_global()?;
        let after = parse_cursor(Some(form.after))?;
        let (entries, next) = crate::api::audit::page(&state, after, PER_PAGE).await?;
        Ok(AuditPage {
            layout: Layout::new(&user, "audit", "Audit log", &headers),
            rows: entries
                .into_iter()
                .map(|e| AuditRow {
                    at: time::format(e.at),
                    actor: e.actor,
                    action: e.action,
                    object: e.object,
                    before: pretty(e.before),
                    after: pretty(e.after),
                })
                .collect(),
            next,
            paged: after.is_some(),
        })
    }
    .await;
    super::respond(StatusCode::OK, result)
}
