//! The queue pages: the list with its filter bar and bulk actions, and one message with its
//! envelope, headers, recipients and actions.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum_extra::extract::Form;
use postern_store::model::{Page as QueuePage, QueueAction, QueueId, QueuedMessage, Selection};
use serde::Deserialize;

use super::{Flash, FormState, Layout, error_page, percent_encode, render};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::queue::{self, Criteria, HeaderField, given};
use crate::state::AppState;
use crate::time;

/// Messages per page of the list.
const PER_PAGE: u32 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/queue", get(list))
        .route("/queue/act", post(act_on_many))
        .route("/queue/{id}", get(show))
        .route("/queue/{id}/raw", get(raw))
        .route("/queue/{id}/{action}", post(act_on_one))
}

/// The filter bar's fields, as typed (all text, blank meaning any).
#[derive(Debug, Default, Deserialize)]
struct FilterForm {
    #[serde(default)]
    sender: String,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    older_than: String,
    #[serde(default)]
    newer_than: String,
    #[serde(default)]
    held: String,
    #[serde(default)]
    search: String,
    #[serde(default)]
    after: String,
    /// `all`: the page's checkboxes come checked (select-all without JavaScript).
    #[serde(default)]
    check: String,
}

const FILTER_FIELDS: [&str; 8] =
    ["sender", "recipient", "domain", "status", "older_than", "newer_than", "held", "search"];

impl FilterForm {
    fn values(&self) -> [(&'static str, &str); 8] {
        [
            ("sender", &self.sender),
            ("recipient", &self.recipient),
            ("domain", &self.domain),
            ("status", &self.status),
            ("older_than", &self.older_than),
            ("newer_than", &self.newer_than),
            ("held", &self.held),
            ("search", &self.search),
        ]
    }

    /// The filter, or the first field that does not parse.
    fn criteria(&self) -> Result<Criteria, WebError> {
        let hours = |field: &str, text: &str| -> Result<Option<u32>, WebError> {
            given(Some(text.to_string()))
                .map(|t| {
                    t.parse::<u32>().map_err(|_| {
                        WebError::invalid(field, "give the age as a whole number of hours")
                    })
                })
                .transpose()
        };
        Ok(Criteria {
            sender: queue::address_part("sender", &self.sender)?,
            recipient: queue::address_part("recipient", &self.recipient)?,
            domain: given(Some(self.domain.clone())),
            status: given(Some(self.status.clone()))
                .map(|s| s.parse().map_err(|e: String| WebError::invalid("status", e)))
                .transpose()?,
            older_than_hours: hours("older_than", &self.older_than)?,
            newer_than_hours: hours("newer_than", &self.newer_than)?,
            held: match self.held.as_str() {
                "" => None,
                "yes" => Some(true),
                "no" => Some(false),
                _ => return Err(WebError::invalid("held", "choose held, not held or either")),
            },
            search: given(Some(self.search.clone())),
        })
    }

    /// The filter as a query string (without `after`), to link to other pages of it.
    fn query(&self) -> String {
        self.values()
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", percent_encode(v.trim())))
            .collect::<Vec<_>>()
            .join("&")
    }
}

struct RecipientRow {
    address: String,
    status: &'static str,
    held: bool,
}

struct Row {
    id: String,
    age: String,
    sender: String,
    /// The Subject header, decoded; empty when there is none or it was not read.
    subject: String,
    recipients: Vec<RecipientRow>,
    size: String,
    held: bool,
    /// The reply of the latest failed attempt of a recipient still to deliver.
    last_error: String,
    /// When the next attempt is due, `held` while held, empty when nothing is left to try.
    next_retry: String,
}

/// The largest message whose Subject the list reads (the list must not read 50 large bodies
/// to draw one page); a larger one says so and its page has the headers.
const SUBJECT_READ_LIMIT: u64 = 256 * 1024;

/// The Subject of a queued message, read through the store's body.
async fn subject(state: &AppState, m: &QueuedMessage) -> String {
    if m.size > SUBJECT_READ_LIMIT {
        return String::new();
    }
    match queue::headers(state, m.id).await {
        Ok(fields) => fields
            .into_iter()
            .find(|f| f.name.eq_ignore_ascii_case("subject"))
            .map(|f| f.value)
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// What a list row says about the next retry.
fn next_retry(m: &QueuedMessage, now: i64) -> String {
    if queue::held(m) {
        return "held".into();
    }
    match m.recipients.iter().filter(|r| !r.status.is_final()).map(|r| r.next_attempt_at).min() {
        None => String::new(),
        Some(at) if at <= now => "now".into(),
        Some(at) => format!("in {}", time::age(at - now)),
    }
}

/// The reply of the latest attempt that did not deliver, of a recipient still to deliver (or
/// failed for good).
fn last_error(m: &QueuedMessage) -> String {
    m.recipients
        .iter()
        .filter(|r| r.status != postern_store::model::RecipientStatus::Delivered)
        .filter(|r| r.last_error.is_some())
        .max_by_key(|r| r.last_attempt_at)
        .and_then(|r| r.last_error.clone())
        .unwrap_or_default()
}

/// The null reverse-path, as people know it.
fn sender_text(sender: &str) -> String {
    if sender.is_empty() { "<>".into() } else { sender.to_string() }
}

fn row(m: &QueuedMessage, now: i64, subject: String) -> Row {
    Row {
        id: m.id.to_string(),
        age: time::age(now - m.received_at),
        sender: sender_text(&m.sender),
        subject,
        last_error: last_error(m),
        next_retry: next_retry(m, now),
        recipients: m
            .recipients
            .iter()
            .map(|r| RecipientRow {
                address: r.address.clone(),
                status: r.status.as_str(),
                held: r.held && !r.status.is_final(),
            })
            .collect(),
        size: size(m.size),
        held: queue::held(m),
    }
}

/// `812 B`, `4.1 KB`, `12.0 MB`.
pub(super) fn size(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}

#[derive(Template)]
#[template(path = "queue/list.html")]
struct ListPage {
    layout: Layout,
    form: FormState,
    rows: Vec<Row>,
    damaged: Vec<(String, String)>,
    total: u64,
    /// The filter as a query string, for the pager and for "all that match".
    query: String,
    next: Option<String>,
    paged: bool,
    can_act: bool,
    /// The boxes come checked (`check=all`).
    check_all: bool,
    /// What the sender and recipient filters matched, in words.
    matching: Vec<String>,
    /// The filter has a mistake: nothing was looked up.
    bad_filter: bool,
}

impl_page!(ListPage);

/// "Sender contains "boss@"", for the line above the list.
fn describe(criteria: &Criteria) -> Vec<String> {
    let mut said = Vec::new();
    if let Some(s) = &criteria.sender {
        said.push(format!("sender contains \"{s}\""));
    }
    if let Some(r) = &criteria.recipient {
        said.push(format!("a recipient contains \"{r}\""));
    }
    if let Some(d) = &criteria.domain {
        said.push(format!("a recipient is in the domain {d}"));
    }
    if let Some(t) = &criteria.search {
        said.push(format!("the sender, a recipient or the ID contains \"{t}\""));
    }
    said
}

impl ListPage {
    fn hidden_filter(&self) -> Vec<(&'static str, &str)> {
        FILTER_FIELDS
            .iter()
            .map(|f| (*f, self.form.value(f)))
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }
}

async fn list(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Query(form): Query<FilterForm>,
) -> Response {
    let typed = FormState::with(&form.values());
    let mut layout = Layout::new(&user, "queue", "Queue", &headers);
    let criteria = match form.criteria() {
        Ok(c) => c,
        Err(e) => {
            let page = ListPage {
                layout,
                form: typed.fail(&e, &FILTER_FIELDS),
                rows: Vec::new(),
                damaged: Vec::new(),
                total: 0,
                query: String::new(),
                next: None,
                paged: false,
                can_act: false,
                check_all: false,
                matching: Vec::new(),
                bad_filter: true,
            };
            return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    let result: Result<ListPage, WebError> = async {
        let after = given(Some(form.after.clone())).map(|a| queue::parse_id(&a)).transpose()?;
        let now = time::now();
        let filter = criteria.filter(&user.principal, now);
        let mut page =
            state.store.queue_list(&filter, QueuePage { after, limit: PER_PAGE }).await?;
        page.messages.iter_mut().for_each(|m| queue::narrow(&user.principal, m));
        if page.total > 0 {
            layout.title = format!("Queue ({})", page.total);
        }
        let mut rows = Vec::with_capacity(page.messages.len());
        for m in &page.messages {
            rows.push(row(m, now, subject(&state, m).await));
        }
        Ok(ListPage {
            layout,
            form: typed,
            rows,
            damaged: page.damaged.into_iter().map(|d| (d.id, d.problem)).collect(),
            total: page.total,
            query: form.query(),
            next: page.next.map(|id| id.to_string()),
            paged: after.is_some(),
            can_act: user.principal.require_write().is_ok(),
            check_all: form.check == "all",
            matching: describe(&criteria),
            bad_filter: false,
        })
    }
    .await;
    super::respond(StatusCode::OK, result)
}

/// The bulk form: an action on the checked messages, or on every message of the filter.
#[derive(Debug, Deserialize)]
struct BulkForm {
    #[serde(default)]
    action: String,
    /// `checked` or `filter`.
    #[serde(default)]
    scope: String,
    #[serde(default)]
    id: Vec<String>,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    older_than: String,
    #[serde(default)]
    newer_than: String,
    #[serde(default)]
    held: String,
    #[serde(default)]
    search: String,
}

fn parse_action(text: &str) -> Result<QueueAction, WebError> {
    text.parse().map_err(|e: String| WebError::invalid("action", e))
}

async fn act_on_many(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<BulkForm>,
) -> Response {
    let filter = FilterForm {
        sender: form.sender,
        recipient: form.recipient,
        domain: form.domain,
        status: form.status,
        older_than: form.older_than,
        newer_than: form.newer_than,
        held: form.held,
        search: form.search,
        after: String::new(),
        check: String::new(),
    };
    let back = match filter.query() {
        q if q.is_empty() => "/queue".to_string(),
        q => format!("/queue?{q}"),
    };
    let result: Result<(QueueAction, usize), WebError> = async {
        let action = parse_action(&form.action)?;
        let selection = match form.scope.as_str() {
            "filter" => {
                Selection::Matching(filter.criteria()?.filter(&user.principal, time::now()))
            }
            _ => {
                if form.id.is_empty() {
                    return Err(WebError::invalid("id", "check at least one message first"));
                }
                Selection::Ids(
                    form.id.iter().map(|id| queue::parse_id(id)).collect::<Result<_, _>>()?,
                )
            }
        };
        let ids = queue::act(&state, &user.principal, action, selection).await?;
        Ok((action, ids.len()))
    }
    .await;
    match result {
        Ok((action, count)) => {
            Flash::ok(queue::done_for(&user.principal, action, count)).redirect(&back)
        }
        Err(e @ (WebError::Invalid { .. } | WebError::NotFound(_))) => {
            Flash::error(e.to_string()).redirect(&back)
        }
        Err(e) => error_page(e),
    }
}

struct RecipientDetail {
    address: String,
    status: &'static str,
    held: bool,
    attempts: u32,
    last_attempt: String,
    next_attempt: String,
    reply: String,
}

/// One line of a message's history in the delivery log: its arrival, or an attempt.
struct Attempt {
    at: String,
    recipient: String,
    status: String,
    host: String,
    reply: String,
}

#[derive(Template)]
#[template(path = "queue/show.html")]
struct ShowPage {
    layout: Layout,
    id: String,
    sender: String,
    received: String,
    age: String,
    client: String,
    auth_user: String,
    /// What SPF, DKIM, ARC and DMARC found when it arrived; empty when not checked.
    auth_results: String,
    node: String,
    envid: String,
    size: String,
    bytes: u64,
    /// Held whole.
    held: bool,
    /// Some of the recipients shown are held on their own.
    some_held: bool,
    /// The caller acts only on its own recipients of the message.
    scoped: bool,
    recipients: Vec<RecipientDetail>,
    headers: Vec<HeaderField>,
    can_act: bool,
    /// Every attempt and the arrival, from the delivery log, oldest first.
    history: Vec<Attempt>,
}

impl_page!(ShowPage);

/// A message that has left the queue (delivered, bounced or deleted): what the delivery log
/// still says about it.
#[derive(Template)]
#[template(path = "queue/gone.html")]
struct GonePage {
    layout: Layout,
    id: String,
    sender: String,
    history: Vec<Attempt>,
}

impl_page!(GonePage);

/// The message's history from the delivery log, narrowed to what the principal may see.
async fn history(
    state: &AppState,
    user: &ConsoleUser,
    id: &str,
) -> Result<Vec<postern_store::LogEntry>, WebError> {
    Ok(state.store.message_history(id, &user.principal.domains).await?)
}

fn attempts(entries: &[postern_store::LogEntry]) -> Vec<Attempt> {
    entries
        .iter()
        .map(|e| Attempt {
            at: time::format(e.at),
            recipient: e.recipient.clone(),
            status: e.status.clone(),
            host: if e.status == "received" {
                String::new()
            } else {
                queue::attempt_host(&e.reply)
            },
            reply: e.reply.clone(),
        })
        .collect()
}

async fn show(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let id = match queue::parse_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(e),
    };
    let m = match queue::show(&state, &user.principal, id).await {
        Ok(m) => m,
        // Gone from the queue: the log may still know it (the log's links lead here).
        Err(WebError::NotFound(why)) => {
            let result: Result<GonePage, WebError> = async {
                let entries = history(&state, &user, &id.to_string()).await?;
                let Some(first) = entries.first() else { return Err(WebError::NotFound(why)) };
                Ok(GonePage {
                    layout: Layout::new(&user, "queue", format!("Message {id}"), &headers),
                    id: id.to_string(),
                    sender: sender_text(&first.sender),
                    history: attempts(&entries),
                })
            }
            .await;
            return super::respond(StatusCode::OK, result);
        }
        Err(e) => return error_page(e),
    };
    let result: Result<ShowPage, WebError> = async {
        let fields = queue::headers(&state, id).await?;
        let entries = history(&state, &user, &id.to_string()).await?;
        let now = time::now();
        let held_whole = m.held;
        Ok(ShowPage {
            layout: Layout::new(&user, "queue", format!("Message {id}"), &headers),
            id: id.to_string(),
            sender: sender_text(&m.sender),
            received: time::format(m.received_at),
            age: time::age(now - m.received_at),
            client: m.client.clone(),
            auth_user: m.auth_user.clone().unwrap_or_default(),
            auth_results: m.auth_results.clone().unwrap_or_default(),
            node: m.node.clone(),
            envid: m.envid.clone().unwrap_or_default(),
            size: size(m.size),
            bytes: m.size,
            held: m.held,
            some_held: queue::held(&m) && !m.held,
            scoped: user.principal.domains.is_some(),
            recipients: m
                .recipients
                .iter()
                .map(|r| {
                    let held = r.held && !r.status.is_final();
                    RecipientDetail {
                        address: r.address.clone(),
                        status: r.status.as_str(),
                        held,
                        attempts: r.attempts,
                        last_attempt: r.last_attempt_at.map(time::format).unwrap_or_default(),
                        // A held recipient is not tried: no time to promise.
                        next_attempt: if r.status.is_final() || held || held_whole {
                            String::new()
                        } else {
                            time::format(r.next_attempt_at)
                        },
                        reply: r.last_error.clone().unwrap_or_default(),
                    }
                })
                .collect(),
            headers: fields,
            can_act: user.principal.require_write().is_ok(),
            history: attempts(&entries),
        })
    }
    .await;
    super::respond(StatusCode::OK, result)
}

/// The message as it will be delivered, streamed, with the message page's scope check.
async fn raw(State(state): State<AppState>, user: ConsoleUser, Path(id): Path<String>) -> Response {
    let result = async {
        let id = queue::parse_id(&id)?;
        queue::raw(&state, &user.principal, id).await
    }
    .await;
    match result {
        Ok(response) => response,
        Err(e) => error_page(e),
    }
}

async fn act_on_one(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let result: Result<(QueueId, QueueAction), WebError> = async {
        let id = queue::parse_id(&id)?;
        let action = parse_action(&action)?;
        queue::act(&state, &user.principal, action, Selection::Ids(vec![id])).await?;
        Ok((id, action))
    }
    .await;
    match result {
        // A deleted message has no page left to show.
        Ok((_, action @ QueueAction::Delete)) => {
            Flash::ok(queue::done_for(&user.principal, action, 1)).redirect("/queue")
        }
        Ok((id, action)) => {
            Flash::ok(queue::done_for(&user.principal, action, 1)).redirect(&format!("/queue/{id}"))
        }
        Err(e @ WebError::NotFound(_)) => Flash::error(e.to_string()).redirect("/queue"),
        Err(e) => error_page(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_survives_a_link() {
        let form = FilterForm {
            sender: " a b@x.test ".into(),
            older_than: "2".into(),
            held: "yes".into(),
            ..FilterForm::default()
        };
        assert_eq!(form.query(), "sender=a%20b%40x%2Etest&older_than=2&held=yes");
        assert_eq!(form.criteria().unwrap_err().field(), Some("sender"), "no spaces");
        let form = FilterForm { sender: " b@x.test ".into(), ..form };
        let c = form.criteria().unwrap();
        assert_eq!(
            (c.sender.as_deref(), c.older_than_hours, c.held),
            (Some("b@x.test"), Some(2), Some(true))
        );
        let bad = FilterForm { newer_than: "soon".into(), ..FilterForm::default() };
        assert_eq!(bad.criteria().unwrap_err().field(), Some("newer_than"));
        assert_eq!(size(100), "100 B");
        assert_eq!(size(4200), "4.1 KB");
    }
}
