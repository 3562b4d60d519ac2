//! A domain's MTA-STS page: publish a policy (mode, MX names, max_age, where TLS reports go),
//! and the DNS records and certificate that make it work. Domain-admins manage their own.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::model::{DEFAULT_STS_AGE, DomainName, StsMode};
use serde::Deserialize;

use super::refusal::place;
use super::{Flash, FormState, Layout, error_page, render, saved};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/domains/{name}/mta-sts", get(show).post(set))
        .route("/domains/{name}/mta-sts/delete", post(remove))
}

struct Published {
    id: String,
    text: String,
    txt: (String, String),
    tlsrpt: (String, String),
    updated: String,
}

#[derive(Template)]
#[template(path = "domains/mta_sts.html")]
struct MtaStsPage {
    layout: Layout,
    domain: String,
    policy_host: String,
    hostname: String,
    published: Option<Published>,
    /// The stored certificate clients get for `mta-sts.<domain>`, if one covers it.
    certificate: Option<String>,
    form: FormState,
}

impl_page!(MtaStsPage);

fn domain_of(name: &str, user: &ConsoleUser) -> Result<DomainName, WebError> {
    let domain: DomainName = name.parse().map_err(WebError::from)?;
    user.principal.require_domain(&domain)?;
    Ok(domain)
}

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    domain: &DomainName,
    form: Option<FormState>,
) -> Result<MtaStsPage, WebError> {
    state
        .store
        .get_domain(domain)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("domain {domain} does not exist")))?;
    let hostname = state.settings.hostname.clone();
    let policy = state.store.mta_sts_policy(domain).await?;
    let policy_host = format!("mta-sts.{domain}");
    let certs = state.store.list_certificates().await?;
    let certificate = postern_store::model::choose_certificate(
        &certs,
        |c| c,
        Some(&policy_host),
        &hostname,
        time::now(),
    )
    .filter(|c| c.covers(&policy_host))
    .map(|c| {
        format!(
            "certificate {} ({}), valid until {} UTC",
            c.id,
            c.names.join(" "),
            time::format(c.not_after)
        )
    });
    let form = form.unwrap_or_else(|| match &policy {
        Some(p) => FormState::with(&[
            ("mode", p.mode.as_str()),
            ("max_age", &p.max_age.to_string()),
            ("mx", &p.mx.join(" ")),
            ("report_to", &p.report_to),
        ]),
        None => FormState::with(&[("mode", "testing"), ("max_age", &DEFAULT_STS_AGE.to_string())]),
    });
    let published = policy.map(|p| Published {
        text: p.text(&hostname),
        txt: p.txt_record(),
        tlsrpt: p.tlsrpt_record(),
        updated: time::format(p.updated_at),
        id: p.id,
    });
    Ok(MtaStsPage {
        layout: Layout::new(user, "domains", format!("MTA-STS for {domain}"), headers),
        domain: domain.to_string(),
        policy_host,
        hostname,
        published,
        certificate,
        form,
    })
}

async fn show(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let result = async {
        let domain = domain_of(&name, &user)?;
        page(&state, &user, &headers, &domain, None).await
    }
    .await;
    super::respond(StatusCode::OK, result)
}

#[derive(Deserialize)]
struct SetForm {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    max_age: String,
    #[serde(default)]
    mx: String,
    #[serde(default)]
    report_to: String,
}

async fn set(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<SetForm>,
) -> Response {
    let domain = match domain_of(&name, &user) {
        Ok(d) => d,
        Err(e) => return error_page(e),
    };
    let result: Result<_, WebError> = async {
        let mode: StsMode = form.mode.parse()?;
        let max_age: i64 = form.max_age.trim().parse().map_err(|_| {
            WebError::invalid("max_age", "a number of seconds, like 604800 (a week)")
        })?;
        let mx: Vec<String> =
            form.mx.split([' ', ',', '\n', '\r', '\t']).map(String::from).collect();
        Ok(state
            .store
            .set_mta_sts(&user.principal.actor, &domain, mode, max_age, &mx, &form.report_to)
            .await?)
    }
    .await;
    let here = format!("/domains/{domain}/mta-sts");
    match result {
        Ok(p) => saved(&state, &format!("MTA-STS policy for {domain} published (id {})", p.id))
            .await
            .redirect(&here),
        Err(e) => match place(e, &[], "mode") {
            Ok((status, e)) => {
                let typed = FormState::with(&[
                    ("mode", &form.mode),
                    ("max_age", &form.max_age),
                    ("mx", &form.mx),
                    ("report_to", &form.report_to),
                ])
                .fail(&e, &["mode", "max_age", "mx", "report_to"]);
                match page(&state, &user, &headers, &domain, Some(typed)).await {
                    Ok(p) => render(status, &p),
                    Err(e) => error_page(e),
                }
            }
            Err(e) => error_page(e),
        },
    }
}

async fn remove(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(name): Path<String>,
) -> Response {
    let domain = match domain_of(&name, &user) {
        Ok(d) => d,
        Err(e) => return error_page(e),
    };
    let here = format!("/domains/{domain}/mta-sts");
    match state.store.remove_mta_sts(&user.principal.actor, &domain).await {
        Ok(_) => {
            Flash::ok(format!("MTA-STS policy for {domain} no longer published")).redirect(&here)
        }
        Err(e) => match WebError::from(e) {
            e @ WebError::NotFound(_) => Flash::error(e.to_string()).redirect(&here),
            e => error_page(e),
        },
    }
}
