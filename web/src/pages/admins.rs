//! The administrators pages (admins over every domain only): list, add with a typed or a
//! one-time password, change role and domains, reset a password, remove. The last admin stays:
//! the store refuses, and the page says why.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::model::{Admin, AdminName, Role, parse_domain_list};
use serde::Deserialize;

use super::{Flash, FormState, Layout, error_page, render};
use crate::auth::accounts::{self, NewAdmin};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admins", get(list).post(create))
        .route("/admins/{name}", get(show).post(update))
        .route("/admins/{name}/password", post(reset_password))
        .route("/admins/{name}/delete", post(remove))
}

struct Row {
    name: String,
    role: &'static str,
    domains: String,
    must_change: bool,
    created: String,
}

impl From<&Admin> for Row {
    fn from(a: &Admin) -> Row {
        Row {
            name: a.name.to_string(),
            role: a.role.as_str(),
            domains: a.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", "),
            must_change: a.must_change_password,
            created: time::format(a.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "admins/list.html")]
struct ListPage {
    layout: Layout,
    admins: Vec<Row>,
    form: FormState,
}

impl_page!(ListPage);

#[derive(Template)]
#[template(path = "admins/show.html")]
struct ShowPage {
    layout: Layout,
    admin: Row,
    /// The signed-in administrator is looking at their own account.
    own: bool,
    form: FormState,
}

impl_page!(ShowPage);

#[derive(Template)]
#[template(path = "admins/password.html")]
struct PasswordPage {
    layout: Layout,
    name: String,
    password: String,
}

impl_page!(PasswordPage);

async fn list_page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    form: FormState,
) -> Result<ListPage, WebError> {
    user.principal.require_global()?;
    let admins = state.store.list_admins().await?.iter().map(Row::from).collect();
    Ok(ListPage { layout: Layout::new(user, "admins", "Administrators", headers), admins, form })
}

async fn show_page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    name: &str,
    form: Option<FormState>,
) -> Result<ShowPage, WebError> {
    user.principal.require_global()?;
    let name: AdminName = name.parse()?;
    let admin = state
        .store
        .get_admin(&name)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("administrator {name} does not exist")))?;
    let form = form.unwrap_or_else(|| {
        let domains = admin.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(" ");
        FormState::with(&[("role", admin.role.as_str()), ("domains", &domains)])
    });
    Ok(ShowPage {
        layout: Layout::new(user, "admins", format!("Administrator {name}"), headers),
        own: admin.name == user.admin.name,
        admin: Row::from(&admin),
        form,
    })
}

async fn list(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    super::respond(StatusCode::OK, list_page(&state, &user, &headers, FormState::default()).await)
}

async fn show(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    super::respond(StatusCode::OK, show_page(&state, &user, &headers, &name, None).await)
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    domains: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    must_change: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result = async {
        let role: Role = form.role.parse()?;
        let domains = parse_domain_list(&form.domains)?;
        let new = NewAdmin {
            name: form.name.clone(),
            role,
            domains,
            password: (!form.password.is_empty()).then(|| form.password.clone()),
            must_change_password: form.must_change.is_some(),
        };
        accounts::create(&state, &user.principal, new).await
    }
    .await;
    match result {
        Ok((admin, Some(password))) => render(
            StatusCode::OK,
            &PasswordPage {
                layout: Layout::new(&user, "admins", "Administrator added", &headers),
                name: admin.name.to_string(),
                password,
            },
        ),
        Ok((admin, None)) => {
            Flash::ok(format!("Administrator {} ({}) added.", admin.name, admin.role))
                .redirect("/admins")
        }
        Err(e @ (WebError::Invalid { .. } | WebError::Duplicate(_) | WebError::NotFound(_))) => {
            // The password goes back into this response only, when it was not what was wrong.
            let typed = FormState::with(&[
                ("name", &form.name),
                ("role", &form.role),
                ("domains", &form.domains),
            ]);
            let status = match e {
                WebError::NotFound(_) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => e.status(),
            };
            let form = typed
                .fail(&with_field(e), &["name", "role", "domains", "password"])
                .keep_secret("password", &form.password);
            match list_page(&state, &user, &headers, form).await {
                Ok(p) => render(status, &p),
                Err(e) => error_page(e),
            }
        }
        Err(e) => error_page(e),
    }
}

/// A duplicate is about the name typed; a domain that does not exist is about the domains.
fn with_field(e: WebError) -> WebError {
    match e {
        WebError::Duplicate(message) => WebError::invalid("name", message),
        WebError::NotFound(message) => WebError::invalid("domains", message),
        WebError::Invalid { field: Some(f), message } if f == "domain" => {
            WebError::invalid("domains", message)
        }
        other => other,
    }
}

#[derive(Deserialize)]
struct UpdateForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    domains: String,
}

async fn update(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<UpdateForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result: Result<Admin, WebError> = async {
        let name: AdminName = name.parse()?;
        let role: Role = form.role.parse()?;
        let domains = parse_domain_list(&form.domains)?;
        Ok(state.store.update_admin(&user.principal.actor, &name, role, &domains).await?)
    }
    .await;
    match result {
        Ok(admin) => Flash::ok(format!("Administrator {} is now {}.", admin.name, admin.role))
            .redirect(&format!("/admins/{}", admin.name)),
        Err(e @ (WebError::Invalid { .. } | WebError::Conflict(_) | WebError::NotFound(_))) => {
            let status = match e {
                WebError::NotFound(_) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => e.status(),
            };
            let typed = FormState::with(&[("role", &form.role), ("domains", &form.domains)]);
            let form = typed.fail(&with_field(e), &["role", "domains"]);
            match show_page(&state, &user, &headers, &name, Some(form)).await {
                Ok(p) => render(status, &p),
                Err(e) => error_page(e),
            }
        }
        Err(e) => error_page(e),
    }
}

async fn reset_password(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let result = async {
        let name: AdminName = name.parse()?;
        let password = accounts::reset_password(&state, &user.principal, &name).await?;
        Ok::<_, WebError>((name, password))
    }
    .await;
    match result {
        Ok((name, password)) => render(
            StatusCode::OK,
            &PasswordPage {
                layout: Layout::new(&user, "admins", "Password reset", &headers),
                name: name.to_string(),
                password,
            },
        ),
        Err(e) => error_page(e),
    }
}

async fn remove(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(name): Path<String>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result: Result<AdminName, WebError> = async {
        let name: AdminName = name.parse()?;
        state.store.remove_admin(&user.principal.actor, &name).await?;
        Ok(name)
    }
    .await;
    match result {
        Ok(name) => {
            Flash::ok(format!("Administrator {name} removed, with their sessions and API tokens."))
                .redirect("/admins")
        }
        Err(e @ WebError::Conflict(_)) => {
            Flash::error(e.to_string()).redirect(&format!("/admins/{name}"))
        }
        Err(e @ WebError::NotFound(_)) => Flash::error(e.to_string()).redirect("/admins"),
        Err(e) => error_page(e),
    }
}
