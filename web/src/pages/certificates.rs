//! The Certificates page: what each TLS listener presents, by name; uploads; ACME orders and
//! their progress in the CA's own words. Global: only an admin of every domain sees it.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::model::CertificateSource;
use serde::Deserialize;

use super::refusal::place;
use super::{Flash, FormState, Layout, error_page, render, saved};
use crate::api::certificates::{parse_challenge, parse_names, renew_certificate, require_acme};
use crate::auth::session::ConsoleUser;
use crate::certs;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/certificates", get(list).post(import))
        .route("/certificates/order", post(order))
        .route("/certificates/renew", post(renew))
        .route("/certificates/delete", post(remove))
}

struct Row {
    id: i64,
    names: String,
    issuer: String,
    not_after: String,
    days_left: i64,
    source: &'static str,
    /// Which listeners present it, and for which names.
    used_by: String,
    in_use: bool,
    /// The state of its last order, with the CA's words on a failure.
    order: Option<String>,
    order_failed: bool,
    renewable: bool,
}

struct OrderRow {
    id: i64,
    names: String,
    challenge: String,
    state: String,
    error: Option<String>,
    attempts: i64,
    updated: String,
}

struct Fallback {
    path: String,
    not_after: String,
    in_use: bool,
}

#[derive(Template)]
#[template(path = "certificates/list.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    orders: Vec<OrderRow>,
    /// Some order is pending or validating: the page offers to refresh itself.
    in_progress: bool,
    fallback: Option<Fallback>,
    listeners: String,
    acme: bool,
    hostname: String,
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
    let now = time::now();
    let hostname = state.settings.hostname.clone();
    let all = state.store.list_certificates().await?;
    let orders = state.store.list_acme_orders().await?;
    let listeners = if state.settings.tls_listeners.is_empty() {
        "the TLS listeners".to_string()
    } else {
        state.settings.tls_listeners.join(", ")
    };
    let rows = all
        .iter()
        .map(|c| {
            let (names, default) = certs::served_for(&all, c, &hostname, now);
            let used_by = match (default, names.is_empty()) {
                (true, _) => {
                    format!("{listeners}: the default, and by name for {}", names.join(", "))
                }
                (false, false) => format!("{listeners}: by name for {}", names.join(", ")),
                (false, true) if !c.is_valid_at(now) => "no one: outside its validity".into(),
                (false, true) => "no one: another certificate is preferred for its names".into(),
            };
            let last = certs::last_order(&orders, c);
            Row {
                id: c.id,
                names: c.names.join(" "),
                issuer: c.issuer.clone(),
                not_after: time::format(c.not_after),
                days_left: (c.not_after - now).div_euclid(86_400),
                source: c.source.as_str(),
                in_use: default || !names.is_empty(),
                used_by: used_by.trim_end_matches(", and by name for ").to_string(),
                order: last.map(|o| match &o.error {
                    Some(e) => format!("order {}: {} — {e}", o.id, o.state),
                    None => format!("order {}: {}", o.id, o.state),
                }),
                order_failed: last.is_some_and(|o| o.error.is_some()),
                renewable: !c.names.iter().any(|n| n.starts_with("*.")),
            }
        })
        .collect::<Vec<_>>();
    let hostname_covered = rows.iter().any(|r| r.in_use && r.used_by.contains("the default"));
    let fallback = state.settings.certificate.as_ref().map(|c| Fallback {
        path: c.path.clone(),
        not_after: time::format(c.not_after),
        in_use: !hostname_covered,
    });
    let in_progress = orders.iter().any(|o| o.state.is_open());
    let orders = orders
        .iter()
        .filter(|o| o.certificate_id.is_none())
        .take(50)
        .map(|o| OrderRow {
            id: o.id,
            names: o.names.join(" "),
            challenge: o.challenge.to_string(),
            state: o.state.to_string(),
            error: o.error.clone(),
            attempts: o.attempts,
            updated: time::format(o.updated_at),
        })
        .collect();
    Ok(ListPage {
        layout: Layout::new(user, "certificates", "Certificates", headers),
        rows,
        orders,
        in_progress,
        fallback,
        listeners,
        acme: state.settings.acme,
        hostname,
        form,
    })
}

async fn list(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    super::respond(StatusCode::OK, page(&state, &user, &headers, FormState::default()).await)
}

/// Shows the page again with `e` at `field` of the form, keeping what was typed (never the key).
async fn refused(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    e: WebError,
    field: &str,
    typed: &[(&str, &str)],
) -> Response {
    match place(e, &[("certificate", field)], field) {
        Ok((status, e)) => {
            let form = FormState::with(typed).fail(&e, &[field]);
            match page(state, user, headers, form).await {
                Ok(p) => render(status, &p),
                Err(e) => error_page(e),
            }
        }
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct ImportForm {
    #[serde(default)]
    cert_pem: String,
    #[serde(default)]
    key_pem: String,
}

async fn import(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<ImportForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result = state
        .store
        .import_certificate(
            &user.principal.actor,
            &form.cert_pem,
            &form.key_pem,
            CertificateSource::Upload,
            None,
        )
        .await;
    match result {
        Ok(info) => {
            saved(&state, &format!("Certificate {} for {} stored", info.id, info.names.join(" ")))
                .await
                .redirect("/certificates")
        }
        // The chain comes back in the form; the key never does.
        Err(e) => {
            refused(&state, &user, &headers, e.into(), "cert_pem", &[("cert_pem", &form.cert_pem)])
                .await
        }
    }
}

#[derive(Deserialize)]
struct OrderForm {
    #[serde(default)]
    names: String,
    #[serde(default)]
    challenge: String,
}

async fn order(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<OrderForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result: Result<_, WebError> = async {
        let names: Vec<&str> = form.names.split([' ', ',', '\n', '\r', '\t']).collect();
        let names = parse_names(&names)?;
        let challenge = parse_challenge(Some(&form.challenge))?;
        require_acme(&state)?;
        Ok(state.store.request_acme_order(&user.principal.actor, &names, challenge, None).await?)
    }
    .await;
    match result {
        Ok(o) => Flash::ok(format!(
            "Order {} for {} is {}; its progress shows below",
            o.id,
            o.names.join(" "),
            o.state
        ))
        .redirect("/certificates"),
        Err(e) => {
            let typed = [("names", form.names.as_str()), ("challenge", form.challenge.as_str())];
            refused(&state, &user, &headers, e, "names", &typed).await
        }
    }
}

#[derive(Deserialize)]
struct IdForm {
    #[serde(default)]
    id: String,
}

fn form_id(id: &str) -> Result<i64, WebError> {
    id.parse().map_err(|_| WebError::invalid("id", format!("{id:?} is not a certificate ID")))
}

async fn renew(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<IdForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result: Result<_, WebError> = async {
        let id = form_id(&form.id)?;
        renew_certificate(&state, &user.principal.actor, id, parse_challenge(None)?).await
    }
    .await;
    match result {
        Ok(o) => Flash::ok(format!("Renewal ordered (order {}, {})", o.id, o.state))
            .redirect("/certificates"),
        Err(e @ (WebError::NotFound(_) | WebError::Invalid { .. } | WebError::Conflict(_))) => {
            Flash::error(e.to_string()).redirect("/certificates")
        }
        Err(e) => error_page(e),
    }
}

async fn remove(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<IdForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result: Result<_, WebError> = async {
        let id = form_id(&form.id)?;
        Ok(state.store.remove_certificate(&user.principal.actor, id).await?)
    }
    .await;
    match result {
        Ok(info) => {
            saved(&state, &format!("Certificate {} for {} removed", info.id, info.names.join(" ")))
                .await
                .redirect("/certificates")
        }
        Err(e @ (WebError::NotFound(_) | WebError::Invalid { .. })) => {
            Flash::error(e.to_string()).redirect("/certificates")
        }
        Err(e) => error_page(e),
    }
}
