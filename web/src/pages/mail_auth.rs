//! The inbound mail-authentication policy page: what a DMARC or SPF failure, or a DNS failure
//! during the checks, leads to; globally and per domain. Global administrators only here
//! (domain administrators set their domain's override through the API).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::model::{
    DmarcQuarantineAction, DmarcRejectAction, DomainName, MailAuthPolicy, SpfFailAction,
    TempErrorAction,
};
use serde::Deserialize;

use super::{Flash, Layout, error_page, saved};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/mailauth", get(show).post(set)).route("/mailauth/clear", post(clear))
}

struct Row {
    scope: String,
    domain: String,
    policy: MailAuthPolicy,
}

#[derive(Template)]
#[template(path = "mailauth/show.html")]
struct Page {
    layout: Layout,
    rows: Vec<Row>,
    domains: Vec<String>,
    dmarc_reject: Vec<&'static str>,
    dmarc_quarantine: Vec<&'static str>,
    spf_fail: Vec<&'static str>,
    temperror: Vec<&'static str>,
    global: MailAuthPolicy,
}

impl_page!(Page);

async fn show(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    let result: Result<Page, WebError> = async {
        user.principal.require_global()?;
        let policies = state.store.mail_auth_policies().await?;
        let mut rows = vec![Row {
            scope: "All domains".into(),
            domain: String::new(),
            policy: policies.global,
        }];
        rows.extend(policies.domains.iter().map(|(d, p)| Row {
            scope: d.to_string(),
            domain: d.to_string(),
            policy: *p,
        }));
        let domains =
            state.store.list_domains().await?.into_iter().map(|d| d.name.to_string()).collect();
        Ok(Page {
            layout: Layout::new(&user, "mailauth", "Inbound mail authentication", &headers),
            rows,
            domains,
            dmarc_reject: DmarcRejectAction::ALL.iter().map(|a| a.as_str()).collect(),
            dmarc_quarantine: DmarcQuarantineAction::ALL.iter().map(|a| a.as_str()).collect(),
            spf_fail: SpfFailAction::ALL.iter().map(|a| a.as_str()).collect(),
            temperror: TempErrorAction::ALL.iter().map(|a| a.as_str()).collect(),
            global: policies.global,
        })
    }
    .await;
    super::respond(StatusCode::OK, result)
}

#[derive(Deserialize)]
struct SetForm {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    dmarc_reject: String,
    #[serde(default)]
    dmarc_quarantine: String,
    #[serde(default)]
    spf_fail: String,
    #[serde(default)]
    temperror: String,
}

fn parse<T: std::str::FromStr<Err = String>>(field: &str, value: &str) -> Result<T, WebError> {
    value.parse().map_err(|m: String| WebError::invalid(field, m))
}

async fn set(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<SetForm>,
) -> Response {
    let result: Result<String, WebError> = async {
        user.principal.require_global()?;
        let domain: Option<DomainName> = match form.domain.trim() {
            "" => None,
            d => Some(d.parse().map_err(WebError::from)?),
        };
        let policy = MailAuthPolicy {
            dmarc_reject: parse("dmarc_reject", &form.dmarc_reject)?,
            dmarc_quarantine: parse("dmarc_quarantine", &form.dmarc_quarantine)?,
            spf_fail: parse("spf_fail", &form.spf_fail)?,
            temperror: parse("temperror", &form.temperror)?,
        };
        state.store.set_mail_auth_policy(&user.principal.actor, domain.as_ref(), policy).await?;
        Ok(domain
            .map_or("the global inbound policy".into(), |d| format!("the inbound policy of {d}")))
    }
    .await;
    match result {
        Ok(what) => saved(&state, &format!("Saved {what}")).await.redirect("/mailauth"),
        Err(e @ (WebError::NotFound(_) | WebError::Invalid { .. })) => {
            Flash::error(e.to_string()).redirect("/mailauth")
        }
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct ClearForm {
    #[serde(default)]
    domain: String,
}

async fn clear(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<ClearForm>,
) -> Response {
    let result: Result<DomainName, WebError> = async {
        user.principal.require_global()?;
        let domain: DomainName = form.domain.trim().parse().map_err(WebError::from)?;
        state.store.clear_mail_auth_policy(&user.principal.actor, &domain).await?;
        Ok(domain)
    }
    .await;
    match result {
        Ok(d) => saved(&state, &format!("{d} follows the global inbound policy again"))
            .await
            .redirect("/mailauth"),
        Err(e @ (WebError::NotFound(_) | WebError::Invalid { .. })) => {
            Flash::error(e.to_string()).redirect("/mailauth")
        }
        Err(e) => error_page(e),
    }
}
