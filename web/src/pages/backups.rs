//! The Backups page: where and how often `serve` takes scheduled backups, how many are kept,
//! and the last one's result. Global administrators only.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::{BackupResult, BackupSettings};
use serde::Deserialize;

use super::{Flash, Layout, error_page, saved};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/backups", get(show)).route("/backups/settings", post(set_settings))
}

#[derive(Template)]
#[template(path = "backups/show.html")]
struct Page {
    layout: Layout,
    settings: BackupSettings,
    last: Option<BackupResult>,
    last_at: String,
}

impl_page!(Page);

async fn show(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    let page = async {
        user.principal.require_global()?;
        let settings = state.store.backup_settings().await?;
        let last = state.store.last_backup().await?;
        Ok::<_, WebError>(Page {
            layout: Layout::new(&user, "backups", "Backups", &headers),
            last_at: last.as_ref().map(|l| crate::time::format(l.at)).unwrap_or_default(),
            settings,
            last,
        })
    }
    .await;
    super::respond(StatusCode::OK, page)
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    directory: String,
    #[serde(default)]
    interval: String,
    #[serde(default)]
    retention: String,
    #[serde(default)]
    with_spool: Option<String>,
    #[serde(default)]
    with_maildirs: Option<String>,
}

fn number(field: &'static str, value: &str) -> Result<i64, WebError> {
    value.trim().parse().map_err(|_| WebError::invalid(field, format!("{field}: a whole number")))
}

async fn set_settings(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<SettingsForm>,
) -> Response {
    let result = async {
        user.principal.require_global()?;
        let settings = BackupSettings {
            directory: form.directory.trim().to_string(),
            interval: number("interval", &form.interval)?,
            retention: number("retention", &form.retention)?,
            with_spool: form.with_spool.is_some(),
            with_maildirs: form.with_maildirs.is_some(),
        };
        state.store.set_backup_settings(&user.principal.actor, settings).await?;
        Ok("Saved the scheduled backups".to_string())
    }
    .await;
    match result {
        Ok(what) => saved(&state, &what).await.redirect("/backups"),
        Err(e @ (WebError::NotFound(_) | WebError::Invalid { .. })) => {
            Flash::error(e.to_string()).redirect("/backups")
        }
        Err(e) => error_page(e),
    }
}
