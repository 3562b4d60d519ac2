//! The API tokens page: list (all for an admin over every domain, one's own otherwise), create
//! (the secret is on the page that answers the form, once), revoke.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::model::{Access, ApiToken, parse_domain_list};
use serde::Deserialize;

use super::{Flash, FormState, Layout, error_page, render};
use crate::auth::issue::{self, TokenRequest};
use crate::auth::manage;
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list).post(create))
        .route("/tokens/{id}/delete", post(revoke))
}

struct Row {
    id: String,
    name: String,
    owner: String,
    access: &'static str,
    domains: String,
    created: String,
    expires: String,
    last_used: String,
}

impl From<ApiToken> for Row {
    fn from(t: ApiToken) -> Row {
        Row {
            domains: if t.domains.is_empty() {
                "all of the owner's".into()
            } else {
                t.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
            },
            id: t.id,
            name: t.name,
            owner: t.owner.to_string(),
            access: t.access.as_str(),
            created: time::format(t.created_at),
            expires: t.expires_at.map_or_else(|| "never".into(), time::format),
            last_used: t.last_used_at.map_or_else(|| "never".into(), time::format),
        }
    }
}

#[derive(Template)]
#[template(path = "tokens/list.html")]
struct ListPage {
    layout: Layout,
    tokens: Vec<Row>,
    /// The list holds other administrators' tokens too.
    all: bool,
    form: FormState,
}

impl_page!(ListPage);

#[derive(Template)]
#[template(path = "tokens/created.html")]
struct CreatedPage {
    layout: Layout,
    token: Row,
    bearer: String,
}

impl_page!(CreatedPage);

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    form: FormState,
) -> Result<ListPage, WebError> {
    let all = user.principal.is_global();
    let tokens =
        manage::visible(state, &user.principal).await?.into_iter().map(Row::from).collect();
    Ok(ListPage { layout: Layout::new(user, "tokens", "API tokens", headers), tokens, all, form })
}

async fn list(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    super::respond(StatusCode::OK, page(&state, &user, &headers, FormState::default()).await)
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    access: String,
    #[serde(default)]
    domains: String,
    #[serde(default)]
    expires_in_days: String,
}

async fn create(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    let result = async {
        let access: Access = form.access.parse()?;
        let domains = parse_domain_list(&form.domains)?;
        let days = form.expires_in_days.trim();
        let expires_in_days = match days {
            "" => None,
            days => Some(days.parse::<u32>().map_err(|_| {
                WebError::invalid("expires_in_days", "a whole number of days, or nothing")
            })?),
        };
        let request = TokenRequest {
            name: form.name.clone(),
            access: Some(access),
            domains,
            expires_in_days,
        };
        issue::issue(&state, &user.principal, request).await
    }
    .await;
    match result {
        // Rendered, not redirected: the secret must not travel in a cookie or a URL.
        Ok(issued) => render(
            StatusCode::OK,
            &CreatedPage {
                layout: Layout::new(&user, "tokens", "Token created", &headers),
                token: issued.token.into(),
                bearer: issued.bearer,
            },
        ),
        Err(e @ (WebError::Invalid { .. } | WebError::Forbidden(_) | WebError::Duplicate(_))) => {
            let typed = FormState::with(&[
                ("name", &form.name),
                ("access", &form.access),
                ("domains", &form.domains),
                ("expires_in_days", &form.expires_in_days),
            ]);
            let status = e.status();
            let form = typed.fail(&e, &["name", "access", "domains", "expires_in_days"]);
            match page(&state, &user, &headers, form).await {
                Ok(p) => render(status, &p),
                Err(e) => error_page(e),
            }
        }
        Err(e) => error_page(e),
    }
}

async fn revoke(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(id): Path<String>,
) -> Response {
    let result: Result<String, WebError> = async {
        let token = manage::find(&state, &user.principal, &id).await?;
        state.store.revoke_token(&user.principal.actor, &token.id).await?;
        Ok(token.name)
    }
    .await;
    match result {
        Ok(name) => Flash::ok(format!("Token {name} ({id}) revoked; it no longer works."))
            .redirect("/tokens"),
        Err(e @ WebError::NotFound(_)) => Flash::error(e.to_string()).redirect("/tokens"),
        Err(e) => error_page(e),
    }
}
