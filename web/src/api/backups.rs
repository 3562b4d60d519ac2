//! `/backups`: the scheduled backups `serve` takes (where, how often, how many kept) and the
//! last one's result (global administrators). A backup on demand is `postern backup FILE`.

use axum::Json;
use axum::extract::State;
use postern_store::BackupSettings;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiJson;
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show)).routes(routes!(set_settings))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupSettingsView {
    /// An absolute directory for the backup files; empty when scheduled backups are off.
    pub directory: String,
    /// Seconds between two backups; 0 when off.
    pub interval: i64,
    /// How many backup files are kept.
    pub retention: i64,
    pub with_spool: bool,
    pub with_maildirs: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LastBackupView {
    /// When it ended (epoch seconds).
    pub at: i64,
    pub file: Option<String>,
    pub size: Option<i64>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupsView {
    pub settings: BackupSettingsView,
    pub last: Option<LastBackupView>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupSettingsUpdate {
    #[serde(default)]
    pub directory: Option<String>,
    #[serde(default)]
    pub interval: Option<i64>,
    #[serde(default)]
    pub retention: Option<i64>,
    #[serde(default)]
    pub with_spool: Option<bool>,
    #[serde(default)]
    pub with_maildirs: Option<bool>,
}

async fn view(state: &AppState) -> Result<BackupsView, WebError> {
    let s = state.store.backup_settings().await?;
    let last = state.store.last_backup().await?;
    Ok(BackupsView {
        settings: BackupSettingsView {
            directory: s.directory,
            interval: s.interval,
            retention: s.retention,
            with_spool: s.with_spool,
            with_maildirs: s.with_maildirs,
        },
        last: last.map(|l| LastBackupView { at: l.at, file: l.file, size: l.size, error: l.error }),
    })
}

/// The scheduled backups' settings and the last one's result.
#[utoipa::path(get, path = "/backups", tag = "backups",
    responses((status = 200, body = BackupsView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<BackupsView>, WebError> {
    user.require_global()?;
    Ok(Json(view(&state).await?))
}

/// Change the scheduled backups; fields left out keep their value. `interval` 0 stops them.
#[utoipa::path(put, path = "/backups/settings", tag = "backups",
    request_body = BackupSettingsUpdate,
    responses((status = 200, body = BackupsView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_settings(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(body): ApiJson<BackupSettingsUpdate>,
) -> Result<Json<BackupsView>, WebError> {
    user.require_write()?;
    user.require_global()?;
    let now = state.store.backup_settings().await?;
    let new = BackupSettings {
        directory: body.directory.unwrap_or(now.directory),
        interval: body.interval.unwrap_or(now.interval),
        retention: body.retention.unwrap_or(now.retention),
        with_spool: body.with_spool.unwrap_or(now.with_spool),
        with_maildirs: body.with_maildirs.unwrap_or(now.with_maildirs),
    };
    state.store.set_backup_settings(&user.actor, new).await?;
    Ok(Json(view(&state).await?))
}
