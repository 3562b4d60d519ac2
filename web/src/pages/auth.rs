//! Signing in and out, and changing one's own password.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::{FormState, Layout, render};
use crate::auth::login;
use crate::auth::session::{self, AnySession};
use crate::error::WebError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", axum::routing::post(logout))
        .route("/password", get(password_page).post(password_submit))
}

/// The client's address, for the login throttle. In-process tests have none.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(ClientIp(ip))
    }
}

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    layout: Layout,
    name: String,
    error: Option<String>,
}

impl_page!(LoginPage);

async fn login_page() -> Response {
    render(
        StatusCode::OK,
        &LoginPage { layout: Layout::anonymous("Sign in"), name: String::new(), error: None },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

async fn login_submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Form(form): Form<LoginForm>,
) -> Response {
    match login::verify(&state, ip, &form.name, &form.password).await {
        Ok(admin) => match session::start(&state, &admin).await {
            Ok(cookie) => {
                tracing::info!(admin = %admin.name, %ip, "console login");
                let to = if admin.must_change_password { "/password" } else { "/" };
                with_cookie(Redirect::to(to).into_response(), &cookie)
            }
            Err(e) => super::error_page(e),
        },
        Err(e) => {
            let status = match e {
                WebError::TooMany(_) | WebError::Busy => e.status(),
                WebError::Invalid { .. } => StatusCode::UNAUTHORIZED,
                _ => return super::error_page(e),
            };
            let page = LoginPage {
                layout: Layout::anonymous("Sign in"),
                name: form.name,
                error: Some(e.to_string()),
            };
            let mut response = render(status, &page);
            e.add_retry_after(&mut response);
            response
        }
    }
}

async fn logout(State(state): State<AppState>, AnySession(user): AnySession) -> Response {
    if let Err(e) = user.end(&state).await {
        return super::error_page(e);
    }
    with_cookie(Redirect::to("/login").into_response(), &session::clear(&state.settings))
}

#[derive(Template)]
#[template(path = "auth/password.html")]
struct PasswordPage {
    layout: Layout,
    form: FormState,
    must_change: bool,
}

impl_page!(PasswordPage);

async fn password_page(AnySession(user): AnySession, headers: HeaderMap) -> Response {
    let page = PasswordPage {
        must_change: user.admin.must_change_password,
        layout: Layout::new(&user, "", "Change your password", &headers),
        form: FormState::default(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    repeat: String,
}

async fn password_submit(
    State(state): State<AppState>,
    AnySession(user): AnySession,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    let result: Result<String, WebError> = async {
        if form.new != form.repeat {
            return Err(WebError::invalid("repeat", "the two new passwords differ"));
        }
        if form.new == form.current {
            return Err(WebError::invalid(
                "new",
                "choose a password different from the current one",
            ));
        }
        login::verify(&state, ip, user.admin.name.as_str(), &form.current).await.map_err(|e| {
            match e {
                WebError::Invalid { .. } => {
                    WebError::invalid("current", "the current password is wrong")
                }
                other => other,
            }
        })?;
        let hash =
            login::hash(&state, user.admin.name.as_str(), &form.new).await.map_err(
                |e| match e {
                    WebError::Invalid { message, .. } => WebError::invalid("new", message),
                    other => other,
                },
            )?;
        state
            .store
            .set_admin_password(&user.principal.actor, &user.admin.name, &hash, false)
            .await?;
        // Every session ended with the change, this one too: the user goes on in a new one.
        let admin = state
            .store
            .get_admin(&user.admin.name)
            .await?
            .ok_or_else(|| WebError::NotFound("administrator".into()))?;
        session::start(&state, &admin).await
    }
    .await;
    match result {
        Ok(cookie) => with_cookie(
            super::Flash::ok("Password changed; every other session of yours has ended.")
                .redirect("/"),
            &cookie,
        ),
        Err(e @ (WebError::Invalid { .. } | WebError::TooMany(_) | WebError::Busy)) => {
            let page = PasswordPage {
                must_change: user.admin.must_change_password,
                layout: Layout::new(&user, "", "Change your password", &headers),
                form: FormState::default().fail(&e, &["current", "new", "repeat"]),
            };
            let mut response = render(e.status(), &page);
            e.add_retry_after(&mut response);
            response
        }
        Err(e) => super::error_page(e),
    }
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
