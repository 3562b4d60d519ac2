//! `/traffic`: the last 24 hours per hour, the numbers of the dashboard's chart (see
//! `crate::traffic` for where they come from).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

/// One hour's counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrafficHour {
    /// The start of the hour, in seconds since the Unix epoch (UTC).
    pub hour: i64,
    /// Messages accepted.
    pub received: u64,
    /// Recipients delivered, deferred (to be retried) and bounced (failed for good).
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
    /// Refused for good (5xx) and for now (4xx) by an SMTP session, and accepted then dropped.
    pub rejected: u64,
    pub tempfailed: u64,
    pub discarded: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrafficView {
    /// `counters` (the engines' Prometheus counters, sampled into the store every minute:
    /// global administrators) or `delivery_log` (a domain-admin's domains).
    pub source: String,
    /// The first hour shown.
    pub start: i64,
    /// The hours with traffic, oldest first.
    pub hours: Vec<TrafficHour>,
    /// Their sum.
    pub totals: TrafficHour,
}

fn view(h: postern_store::HourCounts) -> TrafficHour {
    TrafficHour {
        hour: h.hour,
        received: h.received,
        delivered: h.delivered,
        deferred: h.deferred,
        bounced: h.failed,
        rejected: h.rejected,
        tempfailed: h.tempfailed,
        discarded: h.discarded,
    }
}

/// The last 24 hours' traffic, per hour, as the dashboard charts it.
#[utoipa::path(get, path = "/traffic", tag = "log",
    responses((status = 200, body = TrafficView), (status = 401, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<TrafficView>, WebError> {
    let (start, hours, source) =
        crate::traffic::last_day(&state.store, &user.domains, crate::time::now()).await?;
    let totals = view(crate::traffic::totals(&hours));
    Ok(Json(TrafficView {
        source: source.as_str().to_string(),
        start,
        totals: TrafficHour { hour: start, ..totals },
        hours: hours.into_iter().map(view).collect(),
    }))
}
