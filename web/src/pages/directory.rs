//! A domain's Directory page: the LDAP / Active Directory its mailboxes come from (settings
//! form, remove), "Test connection" and "Look up this address", each showing what the directory
//! answered or why it could not. Domain-admins manage their own domains'. The service password
//! is never shown back: the form leaves it empty, and an empty field keeps the stored one.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::model::{
    DEFAULT_DIRECTORY_CACHE_TTL_SECS, DEFAULT_DIRECTORY_TIMEOUT_MS, DirectoryPassword,
    DirectoryUpdate, DomainName, parse_attributes,
};
use serde::Deserialize;

use super::refusal::place;
use super::{Flash, FormState, Layout, error_page, render, saved};
use crate::api::directories::{run_lookup, run_test};
use crate::auth::session::ConsoleUser;
use crate::directory::DirectoryAnswer;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/domains/{name}/directory", get(show).post(set))
        .route("/domains/{name}/directory/delete", post(remove))
        .route("/domains/{name}/directory/test", post(test))
        .route("/domains/{name}/directory/lookup", post(lookup))
}

const FIELDS: &[&str] = &[
    "url",
    "starttls",
    "ca_pem",
    "bind_dn",
    "bind_password",
    "base_dn",
    "user_filter",
    "attributes",
    "timeout_ms",
    "cache_ttl_secs",
];

#[derive(Template)]
#[template(path = "domains/directory.html")]
struct DirectoryPage {
    layout: Layout,
    domain: String,
    /// Whether settings are stored (then tests and removal are offered).
    attached: bool,
    password_set: bool,
    updated: String,
    form: FormState,
    /// What the last test or lookup said, and which one it was.
    answer: Option<(String, DirectoryAnswer)>,
    lookup_address: String,
}

impl_page!(DirectoryPage);

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
    answer: Option<(String, DirectoryAnswer)>,
    lookup_address: String,
) -> Result<DirectoryPage, WebError> {
    state
        .store
        .get_domain(domain)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("domain {domain} does not exist")))?;
    let stored = state.store.get_directory(domain).await?;
    let form = form.unwrap_or_else(|| match &stored {
        Some(s) => FormState::with(&[
            ("url", &s.url),
            ("starttls", if s.starttls { "on" } else { "" }),
            ("ca_pem", s.ca_pem.as_deref().unwrap_or("")),
            ("bind_dn", &s.bind_dn),
            ("base_dn", &s.base_dn),
            ("user_filter", &s.user_filter),
            ("attributes", &s.attributes.join(" ")),
            ("timeout_ms", &s.timeout_ms.to_string()),
            ("cache_ttl_secs", &s.cache_ttl_secs.to_string()),
        ]),
        None => FormState::with(&[
            ("attributes", "mail"),
            ("timeout_ms", &DEFAULT_DIRECTORY_TIMEOUT_MS.to_string()),
            ("cache_ttl_secs", &DEFAULT_DIRECTORY_CACHE_TTL_SECS.to_string()),
        ]),
    });
    Ok(DirectoryPage {
        layout: Layout::new(user, "domains", format!("Directory for {domain}"), headers),
        domain: domain.to_string(),
        attached: stored.is_some(),
        password_set: stored.as_ref().is_some_and(|s| !s.bind_password.is_empty()),
        updated: stored.as_ref().map(|s| time::format(s.updated_at)).unwrap_or_default(),
        form,
        answer,
        lookup_address,
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
        page(&state, &user, &headers, &domain, None, None, String::new()).await
    }
    .await;
    super::respond(StatusCode::OK, result)
}

#[derive(Deserialize)]
struct SetForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    starttls: Option<String>,
    #[serde(default)]
    ca_pem: String,
    #[serde(default)]
    bind_dn: String,
    #[serde(default)]
    bind_password: String,
    #[serde(default)]
    base_dn: String,
    #[serde(default)]
    user_filter: String,
    #[serde(default)]
    attributes: String,
    #[serde(default)]
    timeout_ms: String,
    #[serde(default)]
    cache_ttl_secs: String,
}

impl SetForm {
    fn update(&self) -> Result<DirectoryUpdate, WebError> {
        let number = |field: &'static str, text: &str, what: &str| -> Result<u64, WebError> {
            text.trim().parse().map_err(|_| WebError::invalid(field, what.to_string()))
        };
        Ok(DirectoryUpdate {
            url: self.url.clone(),
            starttls: self.starttls.is_some(),
            ca_pem: Some(self.ca_pem.clone()).filter(|p| !p.trim().is_empty()),
            bind_dn: self.bind_dn.clone(),
            // Empty: keep the stored password (the form never shows it).
            bind_password: Some(self.bind_password.clone())
                .filter(|p| !p.is_empty())
                .map(DirectoryPassword),
            base_dn: self.base_dn.clone(),
            user_filter: self.user_filter.clone(),
            attributes: parse_attributes(&self.attributes)
                .map_err(|e| WebError::invalid("attributes", e))?,
            timeout_ms: number("timeout_ms", &self.timeout_ms, "milliseconds, like 5000")?,
            cache_ttl_secs: number("cache_ttl_secs", &self.cache_ttl_secs, "seconds, like 300")?,
        })
    }

    /// What was typed, to show back with the error (never the password).
    fn typed(&self) -> FormState {
        FormState::with(&[
            ("url", &self.url),
            ("starttls", if self.starttls.is_some() { "on" } else { "" }),
            ("ca_pem", &self.ca_pem),
            ("bind_dn", &self.bind_dn),
            ("base_dn", &self.base_dn),
            ("user_filter", &self.user_filter),
            ("attributes", &self.attributes),
            ("timeout_ms", &self.timeout_ms),
            ("cache_ttl_secs", &self.cache_ttl_secs),
        ])
    }
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
        let update = form.update()?;
        Ok(state.store.set_directory(&user.principal.actor, &domain, update).await?)
    }
    .await;
    let here = format!("/domains/{domain}/directory");
    match result {
        Ok(_) => {
            saved(&state, &format!("Directory settings for {domain} saved")).await.redirect(&here)
        }
        Err(e) => match place(e, &[], "url") {
            Ok((status, e)) => {
                let typed = form.typed().fail(&e, FIELDS);
                match page(&state, &user, &headers, &domain, Some(typed), None, String::new()).await
                {
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
    let here = format!("/domains/{domain}/directory");
    match state.store.remove_directory(&user.principal.actor, &domain).await {
        Ok(_) => Flash::ok(format!("{domain} no longer takes mailboxes from a directory"))
            .redirect(&here),
        Err(e) => match WebError::from(e) {
            e @ WebError::NotFound(_) => Flash::error(e.to_string()).redirect(&here),
            e => error_page(e),
        },
    }
}

/// Shows the page with a test's or lookup's answer; a failure to ask is an answer too.
async fn with_answer(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    domain: &DomainName,
    what: &str,
    answer: Result<DirectoryAnswer, WebError>,
    address: String,
) -> Response {
    let (status, answer) = match answer {
        Ok(a) => (StatusCode::OK, a),
        Err(WebError::Unavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            DirectoryAnswer::failed("this console process has no LDAP client"),
        ),
        Err(e @ (WebError::Invalid { .. } | WebError::NotFound(_))) => {
            (StatusCode::UNPROCESSABLE_ENTITY, DirectoryAnswer::failed(e.to_string()))
        }
        Err(e) => return error_page(e),
    };
    match page(state, user, headers, domain, None, Some((what.to_string(), answer)), address).await
    {
        Ok(p) => render(status, &p),
        Err(e) => error_page(e),
    }
}

async fn test(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let domain = match domain_of(&name, &user) {
        Ok(d) => d,
        Err(e) => return error_page(e),
    };
    let answer = run_test(&state, &domain).await;
    with_answer(&state, &user, &headers, &domain, "Test connection", answer, String::new()).await
}

#[derive(Deserialize)]
struct LookupForm {
    #[serde(default)]
    address: String,
}

async fn lookup(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<LookupForm>,
) -> Response {
    let domain = match domain_of(&name, &user) {
        Ok(d) => d,
        Err(e) => return error_page(e),
    };
    let answer = run_lookup(&state, &domain, &form.address).await;
    let what = format!("Look up {}", form.address.trim());
    with_answer(&state, &user, &headers, &domain, &what, answer, form.address).await
}
