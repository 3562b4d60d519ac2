//! The delivery log and the audit log pages: newest first, a page at a time.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use postern_store::{AuditFilter, LogFilter};
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
    actor: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    search: String,
    #[serde(default)]
    after: String,
}

/// One field of a change: what it was and what it became (empty for none).
struct DiffLine {
    field: String,
    before: String,
    after: String,
}

struct AuditRow {
    at: String,
    actor: String,
    action: String,
    object: String,
    /// `added`, `removed` or `changed`.
    change: &'static str,
    /// The fields that differ (all of them for an addition or a removal).
    diff: Vec<DiffLine>,
}

#[derive(Template)]
#[template(path = "audit/list.html")]
struct AuditPage {
    layout: Layout,
    form: FormState,
    kinds: Vec<String>,
    rows: Vec<AuditRow>,
    query: String,
    next: Option<i64>,
    paged: bool,
}

impl_page!(AuditPage);

/// A value as a person reads it: text as is, times (`*_at` fields in epoch seconds) as dates,
/// anything nested as compact JSON; escaped by the template like any other text.
fn readable(field: &str, value: Option<&serde_json::Value>) -> String {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if field == "at" || field.ends_with("_at") => {
            n.as_i64().map(|t| format!("{} UTC", time::format(t))).unwrap_or_else(|| n.to_string())
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
        }
        Some(other) => other.to_string(),
    }
}

/// The fields that differ between before and after, in the order they come.
fn diff(
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> (&'static str, Vec<DiffLine>) {
    let change = match (before, after) {
        (None, Some(_)) => "added",
        (Some(_), None) => "removed",
        _ => "changed",
    };
    let object = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::Object(map)) => map.clone(),
        Some(other) => {
            let mut map = serde_json::Map::new();
            map.insert("value".into(), other.clone());
            map
        }
        None => serde_json::Map::new(),
    };
    let (before, after) = (object(before), object(after));
    let mut fields: Vec<&String> = before.keys().collect();
    fields.extend(after.keys().filter(|k| !before.contains_key(*k)));
    let lines = fields
        .into_iter()
        .filter(|f| before.get(*f) != after.get(*f))
        .map(|f| DiffLine {
            field: f.replace('_', " "),
            before: readable(f, before.get(f)),
            after: readable(f, after.get(f)),
        })
        .collect();
    (change, lines)
}

async fn audit(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Query(form): Query<AuditForm>,
) -> Response {
    let result: Result<AuditPage, WebError> = async {
        user.principal.require_global()?;
        let after = parse_cursor(Some(form.after.clone()))?;
        let kinds = state.store.audit_kinds().await?;
        let kind = given(Some(form.kind.clone()));
        if let Some(k) = &kind
            && !kinds.contains(k)
        {
            return Err(WebError::invalid("kind", format!("the audit log has no changes of {k}")));
        }
        let filter = AuditFilter {
            actor: given(Some(form.actor.clone())),
            kind,
            search: given(Some(form.search.clone())),
        };
        let (entries, next) =
            crate::api::audit::search_page(&state, &filter, after, PER_PAGE).await?;
        let query = [
            ("actor", form.actor.trim()),
            ("kind", form.kind.trim()),
            ("search", form.search.trim()),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
        Ok(AuditPage {
            layout: Layout::new(&user, "audit", "Audit log", &headers),
            form: FormState::with(&[
                ("actor", &form.actor),
                ("kind", &form.kind),
                ("search", &form.search),
            ]),
            kinds,
            rows: entries
                .into_iter()
                .map(|e| {
                    let (change, diff) = diff(e.before.as_ref(), e.after.as_ref());
                    AuditRow {
                        at: time::format(e.at),
                        actor: e.actor,
                        action: e.action,
                        object: e.object,
                        change,
                        diff,
                    }
                })
                .collect(),
            query,
            next,
            paged: after.is_some(),
        })
    }
    .await;
    super::respond(StatusCode::OK, result)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_change_reads_as_the_fields_that_differ() {
        let before = json!({"name": "a.test", "kind": "local", "updated_at": 1_700_000_000});
        let after = json!({"name": "a.test", "kind": "relay", "updated_at": 1_700_000_060,
            "domains": ["x.test", "y.test"]});
        let (change, lines) = diff(Some(&before), Some(&after));
        assert_eq!(change, "changed");
        let lines: Vec<(&str, &str, &str)> =
            lines.iter().map(|l| (l.field.as_str(), l.before.as_str(), l.after.as_str())).collect();
        assert_eq!(
            lines,
            [
                ("kind", "local", "relay"),
                ("updated at", "2023-11-14 22:13:20 UTC", "2023-11-14 22:14:20 UTC"),
                ("domains", "", "x.test, y.test"),
            ]
        );
        let (change, lines) = diff(None, Some(&after));
        assert_eq!((change, lines.len()), ("added", 4));
        assert_eq!(diff(Some(&before), None).0, "removed");
    }
}
