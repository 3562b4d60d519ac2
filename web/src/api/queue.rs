//! `/queue`: queued messages, with the console's filters, and actions on one message or on all
//! that match a filter. Actions reach the engine through the store's queue events.

use axum::Json;
use axum::extract::State;
use postern_store::model::{
    DamagedEntry, Page, QueueAction, QueuedMessage, QueuedRecipient, RecipientStatus, Selection,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath, ApiQuery, ListParams};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::queue::{self, Criteria, given};
use crate::state::AppState;
use crate::time;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(act_on_many))
        .routes(routes!(show))
        .routes(routes!(raw))
        .routes(routes!(act_on_one))
}

/// Where a recipient stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not tried yet.
    Pending,
    /// Failed temporarily; tried again at `next_attempt_at`.
    Deferred,
    Delivered,
    /// Failed for good; the sender gets a bounce.
    Failed,
}

impl From<RecipientStatus> for Status {
    fn from(s: RecipientStatus) -> Status {
        match s {
            RecipientStatus::Pending => Status::Pending,
            RecipientStatus::Deferred => Status::Deferred,
            RecipientStatus::Delivered => Status::Delivered,
            RecipientStatus::Failed => Status::Failed,
        }
    }
}

impl From<Status> for RecipientStatus {
    fn from(s: Status) -> RecipientStatus {
        match s {
            Status::Pending => RecipientStatus::Pending,
            Status::Deferred => RecipientStatus::Deferred,
            Status::Delivered => RecipientStatus::Delivered,
            Status::Failed => RecipientStatus::Failed,
        }
    }
}

/// What to do with messages.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Try the deferred recipients now.
    Retry,
    /// Keep in the queue without trying.
    Hold,
    /// Undo a hold.
    Release,
    /// Remove without telling the sender.
    Delete,
    /// Give up on the unfinished recipients; the sender gets a bounce.
    Bounce,
}

impl From<Action> for QueueAction {
    fn from(a: Action) -> QueueAction {
        match a {
            Action::Retry => QueueAction::Retry,
            Action::Hold => QueueAction::Hold,
            Action::Release => QueueAction::Release,
            Action::Delete => QueueAction::Delete,
            Action::Bounce => QueueAction::Bounce,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientView {
    pub address: String,
    pub status: Status,
    pub attempts: u32,
    /// Seconds since the Unix epoch.
    pub next_attempt_at: i64,
    pub last_attempt_at: Option<i64>,
    /// The remote reply (or our own reason) of the last attempt.
    pub last_error: Option<String>,
    /// Held on its own: not tried until released (see the message's `held`).
    pub held: bool,
}

impl From<QueuedRecipient> for RecipientView {
    fn from(r: QueuedRecipient) -> RecipientView {
        RecipientView {
            address: r.address,
            status: r.status.into(),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_attempt_at: r.last_attempt_at,
            last_error: r.last_error,
            held: r.held,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeaderView {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    /// The queue ID.
    pub id: String,
    /// The envelope sender (MAIL FROM); empty for a bounce.
    pub sender: String,
    /// Bytes.
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub received_at: i64,
    /// Held whole, or one of the recipients shown is held on its own.
    pub held: bool,
    /// The client that handed the message over.
    pub client: String,
    pub auth_user: Option<String>,
    /// What the inbound checks found (`spf=… dkim=… arc=… dmarc=…`), for mail received on
    /// port 25 from elsewhere; absent when none were made.
    pub auth_results: Option<String>,
    /// The engine that delivers it.
    pub node: String,
    pub recipients: Vec<RecipientView>,
    /// The message's header fields, on a single message only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<HeaderView>>,
}

impl From<QueuedMessage> for MessageView {
    fn from(m: QueuedMessage) -> MessageView {
        MessageView {
            held: queue::held(&m),
            id: m.id.to_string(),
            sender: m.sender,
            size: m.size,
            received_at: m.received_at,
            client: m.client,
            auth_user: m.auth_user,
            auth_results: m.auth_results,
            node: m.node,
            recipients: m.recipients.into_iter().map(Into::into).collect(),
            headers: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DamagedView {
    pub id: String,
    pub problem: String,
}

impl From<DamagedEntry> for DamagedView {
    fn from(d: DamagedEntry) -> DamagedView {
        DamagedView { id: d.id, problem: d.problem }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    pub items: Vec<MessageView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
    /// How many messages match, on all pages.
    pub total: u64,
    /// Entries of this page the store cannot read, set aside.
    pub damaged: Vec<DamagedView>,
}

/// The queue's filters; all optional, all combined.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Any part of the envelope sender, any case (`boss@`, `example.org`); no spaces.
    pub sender: Option<String>,
    /// Any part of a recipient address, any case; no spaces.
    pub recipient: Option<String>,
    /// A recipient domain.
    pub domain: Option<String>,
    /// Messages with a recipient in this state.
    pub status: Option<Status>,
    /// Received more than this many hours ago.
    #[schema(maximum = 876_000)]
    pub older_than: Option<u32>,
    /// Received less than this many hours ago.
    #[schema(maximum = 876_000)]
    pub newer_than: Option<u32>,
    pub held: Option<bool>,
    /// Text in the sender, a recipient or the queue ID, any case.
    pub search: Option<String>,
}

/// The most hours an age filter takes: about a hundred years.
const MAX_HOURS: u32 = 876_000;

fn hours(field: &str, value: Option<u32>) -> Result<Option<u32>, WebError> {
    match value {
        Some(h) if h > MAX_HOURS => {
            Err(WebError::invalid(field, format!("{field} is at most {MAX_HOURS} hours")))
        }
        other => Ok(other),
    }
}

impl Filter {
    fn criteria(self) -> Result<Criteria, WebError> {
        hours("older_than", self.older_than)?;
        hours("newer_than", self.newer_than)?;
        Ok(Criteria {
            sender: queue::address_part("sender", self.sender.as_deref().unwrap_or(""))?,
            recipient: queue::address_part("recipient", self.recipient.as_deref().unwrap_or(""))?,
            domain: given(self.domain),
            status: self.status.map(Into::into),
            older_than_hours: self.older_than,
            newer_than_hours: self.newer_than,
            held: self.held,
            search: given(self.search),
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueParams {
    /// Any part of the envelope sender, any case (`boss@`, `example.org`); no spaces.
    pub sender: Option<String>,
    /// Any part of a recipient address, any case; no spaces.
    pub recipient: Option<String>,
    /// A recipient domain.
    pub domain: Option<String>,
    /// Messages with a recipient in this state.
    pub status: Option<Status>,
    /// Received more than this many hours ago.
    #[param(maximum = 876_000)]
    pub older_than: Option<u32>,
    /// Received less than this many hours ago.
    #[param(maximum = 876_000)]
    pub newer_than: Option<u32>,
    pub held: Option<bool>,
    /// Text in the sender, a recipient or the queue ID, any case.
    pub search: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub after: Option<String>,
}

/// An action on the messages named, or on every message that matches a filter.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkAction {
    pub action: Action,
    /// These queue IDs; or
    pub ids: Option<Vec<String>>,
    /// every message that matches this (`{}` matches all the caller sees).
    pub filter: Option<Filter>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionDone {
    pub action: Action,
    /// The messages acted on.
    pub ids: Vec<String>,
}

/// List queued messages, oldest first, with the same filters as the console.
#[utoipa::path(get, path = "/queue", params(QueueParams), tag = "queue",
    responses((status = 200, body = QueueList), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiQuery(params): ApiQuery<QueueParams>,
) -> Result<Json<QueueList>, WebError> {
    let limit = ListParams { limit: params.limit, after: None }.limit()? as u32;
    let after = given(params.after).map(|a| queue::parse_id(&a)).transpose()?;
    let criteria = Filter {
        sender: params.sender,
        recipient: params.recipient,
        domain: params.domain,
        status: params.status,
        older_than: params.older_than,
        newer_than: params.newer_than,
        held: params.held,
        search: params.search,
    }
    .criteria()?;
    let filter = criteria.filter(&user, time::now());
    let mut page = state.store.queue_list(&filter, Page { after, limit }).await?;
    page.messages.iter_mut().for_each(|m| queue::narrow(&user, m));
    Ok(Json(QueueList {
        items: page.messages.into_iter().map(Into::into).collect(),
        next: page.next.map(|id| id.to_string()),
        total: page.total,
        damaged: page.damaged.into_iter().map(Into::into).collect(),
    }))
}

/// One queued message, with its header fields.
#[utoipa::path(get, path = "/queue/{id}", tag = "queue",
    params(("id" = String, Path, description = "The queue ID")),
    responses((status = 200, body = MessageView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MessageView>, WebError> {
    let id = queue::parse_id(&id)?;
    let message = queue::show(&state, &user, id).await?;
    let headers = queue::headers(&state, id).await?;
    let mut view = MessageView::from(message);
    view.headers =
        Some(headers.into_iter().map(|h| HeaderView { name: h.name, value: h.value }).collect());
    Ok(Json(view))
}

/// One queued message as it will be delivered (`message/rfc822`), streamed: the same scope as
/// `GET /queue/{id}` (a token limited to some domains gets only messages to them).
#[utoipa::path(get, path = "/queue/{id}/raw", tag = "queue",
    params(("id" = String, Path, description = "The queue ID")),
    responses(
        (status = 200, description = "The message, with CRLF line ends",
            content_type = "message/rfc822", body = String),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn raw(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::response::Response, WebError> {
    let id = queue::parse_id(&id)?;
    queue::raw(&state, &user, id).await
}

/// Act on one message: retry, hold, release, delete (silently) or bounce. A token limited to
/// some domains acts only on the message's recipients in them (the others are left as they
/// are); every action is in the audit log.
#[utoipa::path(post, path = "/queue/{id}/{action}", tag = "queue",
    params(("id" = String, Path, description = "The queue ID"),
        ("action" = Action, Path, description = "What to do")),
    responses((status = 200, body = ActionDone), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn act_on_one(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath((id, action)): ApiPath<(String, Action)>,
) -> Result<Json<ActionDone>, WebError> {
    user.require_write()?;
    let id = queue::parse_id(&id)?;
    let ids = queue::act(&state, &user, action.into(), Selection::Ids(vec![id])).await?;
    Ok(Json(ActionDone { action, ids: ids.iter().map(ToString::to_string).collect() }))
}

/// Act on the messages named in `ids`, or on all that match `filter` (give one of the two).
#[utoipa::path(post, path = "/queue/actions", request_body = BulkAction, tag = "queue",
    responses((status = 200, body = ActionDone), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn act_on_many(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(bulk): ApiJson<BulkAction>,
) -> Result<Json<ActionDone>, WebError> {
    user.require_write()?;
    let selection = match (bulk.ids, bulk.filter) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > 1000 {
                return Err(WebError::invalid("ids", "name between 1 and 1000 queue IDs"));
            }
            Selection::Ids(ids.iter().map(|id| queue::parse_id(id)).collect::<Result<_, _>>()?)
        }
        (None, Some(filter)) => Selection::Matching(filter.criteria()?.filter(&user, time::now())),
        _ => return Err(WebError::invalid("ids", "give either `ids` or `filter`")),
    };
    let ids = queue::act(&state, &user, bulk.action.into(), selection).await?;
    Ok(Json(ActionDone { action: bulk.action, ids: ids.iter().map(ToString::to_string).collect() }))
}
