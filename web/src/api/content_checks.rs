//! `/content-checks`: header and body checks (ordered regex rules on the whole message) and the
//! test that says which rule a pasted message hits and what it does. Global only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{ContentCheck, ContentDecision, NewContentCheck};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(remove))
        .routes(routes!(move_check))
        .routes(routes!(test))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    pub id: i64,
    /// 1 is tried first.
    pub position: i64,
    /// `header` or `body`.
    pub part: String,
    /// The regex (case-insensitive).
    pub pattern: String,
    /// As written: `REJECT 550 5.7.1 text`, `DISCARD`, `HOLD`, `WARN text`, `IGNORE`,
    /// `REPLACE Name: value`.
    pub action: String,
    pub description: String,
    pub created_at: i64,
}

impl From<ContentCheck> for CheckView {
    fn from(c: ContentCheck) -> CheckView {
        CheckView {
            id: c.id,
            position: c.position,
            part: c.part.to_string(),
            pattern: c.pattern.to_string(),
            action: c.action.to_string(),
            description: c.description,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckList {
    /// In the order they are tried.
    pub items: Vec<CheckView>,
}

/// A new rule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCheck {
    /// `header` (each header field unfolded, as `Name: value`) or `body` (each line of the
    /// decoded text parts).
    pub part: String,
    /// A regex, case-insensitive; `/regex/` is accepted too.
    pub pattern: String,
    /// `REJECT [5xx 5.x.x] [text]` (default `550 5.7.1`), `DISCARD`, `HOLD`, `WARN [text]`, and
    /// for headers only `IGNORE` and `REPLACE Name: value`.
    pub action: String,
    #[serde(default)]
    pub description: String,
    /// Where to put it (1 is tried first); last when absent.
    pub position: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveCheck {
    /// The new position (1 is tried first; past the end is last).
    pub position: i64,
}

/// A message to test, header and body, as it would arrive.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckTest {
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HitView {
    pub rule: i64,
    /// `header` or `body`.
    pub part: String,
    /// The field or line that matched (cut to 200 characters).
    pub line: String,
    pub action: String,
    /// The hit as one line.
    pub summary: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckTestResult {
    /// `accept`, `reject` or `discard`.
    pub decision: String,
    /// The reply a rejected message gets.
    pub reply: Option<String>,
    /// The rule that decided a rejection or a discard.
    pub rule: Option<i64>,
    /// Whether the message would be held.
    pub held: bool,
    /// Every rule that matched, in the order met.
    pub hits: Vec<HitView>,
    /// The header block after IGNORE and REPLACE, when a field changed.
    pub rewritten_header: Option<String>,
}

/// Runs the stored rules on `message` (line ends made CRLF, as SMTP delivers them).
pub(crate) async fn run_test(state: &AppState, message: &str) -> Result<CheckTestResult, WebError> {
    if message.len() > 1024 * 1024 {
        return Err(WebError::Invalid {
            field: Some("message".into()),
            message: "a test message is at most 1 MiB".into(),
        });
    }
    let crlf = message.replace("\r\n", "\n").replace('\n', "\r\n");
    let checks = state.store.load_config().await?.content_checks;
    let verdict = checks.check(crlf.as_bytes());
    let (decision, reply, rule) = match &verdict.decision {
        ContentDecision::Accept => ("accept", None, None),
        ContentDecision::Reject { rule, reply } => (
            "reject",
            Some(format!("{} {} {}", reply.code, reply.enhanced, reply.text)),
            Some(*rule),
        ),
        ContentDecision::Discard { rule } => ("discard", None, Some(*rule)),
    };
    let rewritten_header = verdict.rewritten.as_ref().map(|m| {
        let text = String::from_utf8_lossy(m);
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        head.replace("\r\n", "\n")
    });
    Ok(CheckTestResult {
        decision: decision.into(),
        reply,
        rule,
        held: verdict.hold.is_some(),
        hits: verdict
            .hits
            .iter()
            .map(|h| HitView {
                rule: h.rule,
                part: h.part.to_string(),
                line: h.line.clone(),
                action: h.action.clone(),
                summary: h.to_string(),
            })
            .collect(),
        rewritten_header,
    })
}

/// List the header and body checks in the order they are tried.
#[utoipa::path(get, path = "/content-checks", tag = "content-checks",
    responses((status = 200, body = CheckList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<CheckList>, WebError> {
    user.require_global()?;
    let checks = state.store.list_content_checks().await?;
    Ok(Json(CheckList { items: checks.into_iter().map(Into::into).collect() }))
}

/// Add a header or body check. A bad regex or action is refused with 422 and says why.
#[utoipa::path(post, path = "/content-checks", request_body = NewCheck, tag = "content-checks",
    responses((status = 201, body = CheckView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(new): ApiJson<NewCheck>,
) -> Result<(StatusCode, Json<CheckView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let check = NewContentCheck::parse(&new.part, &new.pattern, &new.action, &new.description)?;
    let check = state.store.add_content_check(&user.actor, check, new.position).await?;
    Ok((StatusCode::CREATED, Json(check.into())))
}

/// Remove a header or body check.
#[utoipa::path(delete, path = "/content-checks/{id}", tag = "content-checks",
    params(("id" = i64, Path, description = "The rule's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    user.require_global()?;
    state.store.remove_content_check(&user.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move a header or body check to another position.
#[utoipa::path(post, path = "/content-checks/{id}/move", request_body = MoveCheck,
    tag = "content-checks",
    params(("id" = i64, Path, description = "The rule's id")),
    responses((status = 200, body = CheckView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn move_check(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(to): ApiJson<MoveCheck>,
) -> Result<Json<CheckView>, WebError> {
    user.require_write()?;
    user.require_global()?;
    Ok(Json(state.store.move_content_check(&user.actor, id, to.position).await?.into()))
}

/// Say which rules a message hits and what becomes of it (nothing is sent or stored). Being a
/// POST, it needs a token with write access, like every POST.
#[utoipa::path(post, path = "/content-checks/test", request_body = CheckTest,
    tag = "content-checks",
    responses((status = 200, body = CheckTestResult), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn test(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(test): ApiJson<CheckTest>,
) -> Result<Json<CheckTestResult>, WebError> {
    user.require_global()?;
    Ok(Json(run_test(&state, &test.message).await?))
}
