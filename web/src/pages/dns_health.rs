//! A domain's DNS health page: every record other mail servers look up (MX, SPF, each DKIM key
//! in use, DMARC, MTA-STS, TLS-RPT, the reverse DNS of the sending address), found, missing or
//! wrong, with the exact record to publish. The report is the engine's (see `dns_health.rs`);
//! a recent one is reused, "Check again" looks again.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use postern_store::model::{DomainName, Health};
use serde::Deserialize;

use super::Layout;
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new().route("/domains/{name}/dns", get(show))
}

struct Row {
    check: String,
    name: String,
    /// `found`, `missing`, `wrong`, `failed`: also the CSS class.
    status: &'static str,
    optional: bool,
    found: String,
    publish: String,
    /// A PTR record is the address owner's to publish, not the domain's.
    reverse: bool,
}

#[derive(Template)]
#[template(path = "domains/dns.html")]
struct HealthPage {
    layout: Layout,
    domain: String,
    hostname: String,
    /// `None`: this process cannot look anything up.
    checked: Option<String>,
    summary: String,
    rows: Vec<Row>,
}

impl_page!(HealthPage);

#[derive(Deserialize)]
struct ShowQuery {
    #[serde(default)]
    again: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Response {
    let result: Result<HealthPage, WebError> = async {
        let name: DomainName = name.parse().map_err(WebError::from)?;
        user.principal.require_domain(&name)?;
        if state.store.get_domain(&name).await?.is_none() {
            return Err(WebError::NotFound(format!("domain {name} does not exist")));
        }
        let layout = Layout::new(&user, "domains", format!("DNS health of {name}"), &headers);
        let mut page = HealthPage {
            layout,
            domain: name.to_string(),
            hostname: state.settings.hostname.clone(),
            checked: None,
            summary: String::new(),
            rows: Vec::new(),
        };
        let Some(check) = state.health.clone() else { return Ok(page) };
        let again = query.again.is_some_and(|a| !a.is_empty());
        let report = state.health_cache.report(check.as_ref(), &name, again).await;
        page.checked = Some(time::format(report.at));
        page.summary = report.summary();
        page.rows = report
            .rows
            .iter()
            .map(|r| Row {
                check: r.check.to_string(),
                name: r.name.clone(),
                status: r.status.as_str(),
                optional: r.optional && r.status == Health::Missing,
                found: r.found.clone().unwrap_or_default(),
                publish: r.publish.clone().unwrap_or_default(),
                reverse: r.check == "rDNS",
            })
            .collect();
        Ok(page)
    }
    .await;
    super::respond(StatusCode::OK, result)
}
