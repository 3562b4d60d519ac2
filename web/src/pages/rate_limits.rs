//! The rate limits page: the stored limits (add, change, remove) and the counters nearest their
//! thresholds, as the engines last published them to the store (the console never asks an
//! engine). Global: only an admin of every domain sees it.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::model::{NewRateLimit, RateKey, RateMeasure, format_window, parse_window};
use serde::Deserialize;

use super::refusal::place;
use super::{Flash, FormState, Layout, error_page, render, saved};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

/// Counters shown at most.
const SHOWN: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rate-limits", get(list).post(add))
        .route("/rate-limits/update", post(update))
        .route("/rate-limits/delete", post(remove))
}

struct Row {
    id: i64,
    key: &'static str,
    measure: &'static str,
    threshold: i64,
    window: String,
    description: String,
    summary: String,
}

struct CounterRow {
    limit: String,
    subject: String,
    count: i64,
    threshold: i64,
    /// Percent of the threshold, capped at 100 for the bar.
    percent: i64,
    over: bool,
    node: String,
    resets: String,
}

#[derive(Template)]
#[template(path = "rate_limits/list.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    counters: Vec<CounterRow>,
    /// Each choice, and whether the form had it.
    keys: Vec<(&'static str, bool)>,
    measures: Vec<(&'static str, bool)>,
    form: FormState,
}

impl_page!(ListPage);

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    form: FormState,
) -> Result<ListPage, WebError> {
    user.principal.require_global()?;
    let limits = state.store.list_rate_limits().await?;
    let counters = state
        .store
        .rate_counters(SHOWN)
        .await?
        .into_iter()
        .map(|c| {
            let limit = limits.iter().find(|l| l.id == c.limit_id).map_or_else(
                || format!("#{} (removed)", c.limit_id),
                |l| format!("#{}: {}", l.id, l.summary()),
            );
            let percent = (c.count.saturating_mul(100) / c.threshold.max(1)).min(100);
            CounterRow {
                limit,
                subject: c.subject,
                count: c.count,
                threshold: c.threshold,
                percent,
                over: c.count > c.threshold,
                node: c.node,
                resets: time::format(c.resets_at),
            }
        })
        .collect();
    let rows = limits
        .into_iter()
        .map(|l| Row {
            id: l.id,
            key: l.key.as_str(),
            measure: l.measure.as_str(),
            threshold: l.threshold,
            window: format_window(l.window_secs),
            summary: l.summary(),
            description: l.description,
        })
        .collect();
    Ok(ListPage {
        layout: Layout::new(user, "rate_limits", "Rate limits", headers),
        rows,
        counters,
        keys: RateKey::ALL.iter().map(|k| (k.as_str(), form.value("key") == k.as_str())).collect(),
        measures: RateMeasure::ALL
            .iter()
            .map(|m| (m.as_str(), form.value("measure") == m.as_str()))
            .collect(),
        form,
    })
}

async fn list(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    super::respond(StatusCode::OK, page(&state, &user, &headers, FormState::default()).await)
}

#[derive(Deserialize)]
struct LimitForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    measure: String,
    #[serde(default)]
    threshold: String,
    #[serde(default)]
    window: String,
    #[serde(default)]
    description: String,
}

impl LimitForm {
    fn parse(&self) -> Result<NewRateLimit, WebError> {
        let threshold = self.threshold.trim().parse::<i64>().map_err(|_| {
            WebError::from(postern_store::StoreError::Invalid {
                field: "threshold",
                message: "the threshold is a whole number, like 100".into(),
            })
        })?;
        Ok(NewRateLimit {
            key: self.key.parse()?,
            measure: self.measure.parse()?,
            threshold,
            window_secs: parse_window(&self.window)?,
            description: self.description.trim().to_string(),
        })
    }
}

async fn add(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<LimitForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result = async {
        let new = form.parse()?;
        Ok::<_, WebError>(state.store.add_rate_limit(&user.principal.actor, new).await?)
    }
    .await;
    match result {
        Ok(l) => saved(&state, &format!("Rate limit {}: {} added", l.id, l.summary()))
            .await
            .redirect("/rate-limits"),
        Err(e) => match place(e, &[], "threshold") {
            Ok((status, e)) => {
                let typed = FormState::with(&[
                    ("key", &form.key),
                    ("measure", &form.measure),
                    ("threshold", &form.threshold),
                    ("window", &form.window),
                    ("description", &form.description),
                ]);
                let fields = ["key", "measure", "threshold", "window", "description"];
                let form = typed.fail(&e, &fields);
                match page(&state, &user, &headers, form).await {
                    Ok(p) => render(status, &p),
                    Err(e) => error_page(e),
                }
            }
            Err(e) => error_page(e),
        },
    }
}

async fn update(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<LimitForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result = async {
        let id = form
            .id
            .trim()
            .parse::<i64>()
            .map_err(|_| WebError::NotFound("no such rate limit".into()))?;
        let new = form.parse()?;
        Ok::<_, WebError>(state.store.update_rate_limit(&user.principal.actor, id, new).await?)
    }
    .await;
    match result {
        Ok(l) => saved(&state, &format!("Rate limit {} is now {}", l.id, l.summary()))
            .await
            .redirect("/rate-limits"),
        Err(e @ (WebError::NotFound(_) | WebError::Invalid { .. })) => {
            Flash::error(e.to_string()).redirect("/rate-limits")
        }
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct RemoveForm {
    #[serde(default)]
    id: String,
}

async fn remove(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<RemoveForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result = async {
        let id = form
            .id
            .trim()
            .parse::<i64>()
            .map_err(|_| WebError::NotFound("no such rate limit".into()))?;
        Ok::<_, WebError>(state.store.remove_rate_limit(&user.principal.actor, id).await?)
    }
    .await;
    match result {
        Ok(l) => {
            saved(&state, &format!("Rate limit {} removed", l.id)).await.redirect("/rate-limits")
        }
        Err(e @ (WebError::NotFound(_) | WebError::Invalid { .. })) => {
            Flash::error(e.to_string()).redirect("/rate-limits")
        }
        Err(e) => error_page(e),
    }
}
