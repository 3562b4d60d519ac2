//! `/domains/{name}/dns`: a domain's DNS health — every record other mail servers look up, found,
//! missing or wrong, with the exact record to publish.

use axum::Json;
use axum::extract::State;
use postern_store::model::{DomainName, HealthRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiPath, ApiQuery};
use crate::auth::token::ApiUser;
use crate::dns_health::Report;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report))
}

/// One record.
#[derive(Debug, Serialize, ToSchema)]
pub struct DnsHealthRow {
    /// `MX`, `SPF`, `DKIM`, `DMARC`, `MTA-STS`, `TLS-RPT` or `rDNS` (the PTR of the address
    /// this server sends from).
    pub check: String,
    /// The name looked up.
    pub name: String,
    /// `found`, `missing`, `wrong` or `failed` (the lookup failed: nothing is known).
    pub status: String,
    /// What was found, when it is wrong (or why the lookup failed).
    pub found: Option<String>,
    /// The record to publish at `name` (type and value), when something is to be done.
    pub publish: Option<String>,
    /// A missing record that is only advice (MTA-STS, TLS-RPT).
    pub optional: bool,
}

impl From<&HealthRow> for DnsHealthRow {
    fn from(r: &HealthRow) -> DnsHealthRow {
        DnsHealthRow {
            check: r.check.to_string(),
            name: r.name.clone(),
            status: r.status.as_str().to_string(),
            found: r.found.clone(),
            publish: r.publish.clone(),
            optional: r.optional,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DnsHealthReport {
    pub domain: String,
    /// When the records were looked up (epoch seconds): reports are reused for ten minutes.
    pub checked_at: i64,
    /// `ok`, `N to fix` (required records missing or wrong), or `N lookups failed`.
    pub summary: String,
    pub items: Vec<DnsHealthRow>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// Look the records up again even when the last report is recent (at most every 10
    /// seconds).
    pub refresh: Option<bool>,
}

pub(crate) fn view(domain: &DomainName, report: &Report) -> DnsHealthReport {
    DnsHealthReport {
        domain: domain.to_string(),
        checked_at: report.at,
        summary: report.summary(),
        items: report.rows.iter().map(Into::into).collect(),
    }
}

/// A domain's DNS health: MX, SPF, each DKIM key in use, DMARC, MTA-STS, TLS-RPT and the
/// reverse DNS of the sending address, each with the record to publish.
#[utoipa::path(get, path = "/domains/{name}/dns", tag = "domains",
    params(("name" = String, Path, description = "The domain name"), ReportParams),
    responses((status = 200, body = DnsHealthReport), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn report(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Json<DnsHealthReport>, WebError> {
    let name: DomainName = name.parse().map_err(WebError::from)?;
    user.require_domain(&name)?;
    if state.store.get_domain(&name).await?.is_none() {
        return Err(WebError::NotFound(format!("domain {name} does not exist")));
    }
    let Some(check) = state.health.clone() else {
        return Err(WebError::Conflict(
            "this process has no DNS resolver: run `postern dns check` where `[dns] servers` \
             is set"
                .into(),
        ));
    };
    let report =
        state.health_cache.report(check.as_ref(), &name, params.refresh.unwrap_or(false)).await;
    Ok(Json(view(&name, &report)))
}
