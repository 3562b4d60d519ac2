//! Console sessions: a random ID in a cookie (`__Host-` and `Secure` over HTTPS, always
//! `HttpOnly` and `SameSite=Strict`), its hash in the store, a new one at every login, gone at
//! logout and at a password change, and refused (and deleted) once idle for `session_idle` or
//! older than `session_lifetime` (`[console]` settings). Every form carries the session's CSRF
//! token, checked here before any handler runs.

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use postern_store::model::Admin;
use postern_store::{new_secret, secret_hash};

use super::Principal;
use crate::error::WebError;
use crate::state::{AppState, Settings};

/// The signed-in administrator of a console request.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub admin: Admin,
    pub principal: Principal,
    /// The CSRF token forms of this session must carry.
    pub csrf: String,
    id_hash: String,
}

impl ConsoleUser {
    pub async fn end(&self, state: &AppState) -> Result<(), WebError> {
        Ok(state.store.delete_session(&self.id_hash).await?)
    }
}

/// Like [`ConsoleUser`], but also for an account that must change its password first: only the
/// password page and logout take it.
#[derive(Debug, Clone)]
pub struct AnySession(pub ConsoleUser);

pub fn cookie_name(settings: &Settings) -> &'static str {
    // Browsers refuse a `__Host-` cookie without `Secure`, and `Secure` needs HTTPS.
    if settings.https { "__Host-postern" } else { "postern" }
}

/// Starts a session for `admin`; returns the `Set-Cookie` value.
pub async fn start(state: &AppState, admin: &Admin) -> Result<String, WebError> {
    let id = new_secret();
    let options = &state.settings.options;
    let lifetime = options.session_lifetime.as_secs() as i64;
    let idle = options.session_idle.as_secs() as i64;
    state
        .store
        .create_session(&secret_hash(&id), &admin.name, &new_secret(), lifetime, idle)
        .await?;
    let secure = if state.settings.https { "; Secure" } else { "" };
    Ok(format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={lifetime}{secure}",
        cookie_name(&state.settings)
    ))
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear(settings: &Settings) -> String {
    let secure = if settings.https { "; Secure" } else { "" };
    format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}", cookie_name(settings))
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(crate) async fn load(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<ConsoleUser>, WebError> {
    let Some(id) = cookie(headers, cookie_name(&state.settings)) else { return Ok(None) };
    let id_hash = secret_hash(id);
    let idle = state.settings.options.session_idle.as_secs() as i64;
    let Some(session) = state.store.session(&id_hash, idle).await? else { return Ok(None) };
    Ok(Some(ConsoleUser {
        principal: Principal::from_admin(&session.admin),
        admin: session.admin,
        csrf: session.csrf,
        id_hash,
    }))
}

fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

impl FromRequestParts<AppState> for AnySession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(user) = parts.extensions.get::<ConsoleUser>() {
            return Ok(AnySession(user.clone()));
        }
        match load(state, &parts.headers).await {
            Ok(Some(user)) => Ok(AnySession(user)),
            Ok(None) => Err(to_login()),
            Err(e) => Err(crate::pages::error_page(e)),
        }
    }
}

impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let AnySession(user) = AnySession::from_request_parts(parts, state).await?;
        if user.admin.must_change_password {
            return Err(Redirect::to("/password").into_response());
        }
        Ok(user)
    }
}

/// Pages that change something (every unsafe method but the login itself) need the session's
/// CSRF token in the form's `csrf` field.
pub async fn require_csrf(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || request.uri().path() == "/login" {
        return next.run(request).await;
    }
    let user = match load(&state, request.headers()).await {
        Ok(Some(user)) => user,
        Ok(None) => return to_login(),
        Err(e) => return crate::pages::error_page(e),
    };
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
    };
    let sent = form_field(&bytes, "csrf");
    if sent.is_none_or(|sent| !constant_time_eq(sent.as_bytes(), user.csrf.as_bytes())) {
        return crate::pages::error_page(WebError::Forbidden(
            "this form has expired or did not come from this console; reload the page and try again"
                .into(),
        ));
    }
    parts.extensions.insert(user);
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// The value of `name` in a urlencoded form. CSRF tokens are URL-safe base64, so no decoding is
/// needed to compare them.
fn form_field<'a>(body: &'a [u8], name: &str) -> Option<&'a str> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookies_and_form_fields() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; postern=abc".parse().unwrap());
        assert_eq!(cookie(&h, "postern"), Some("abc"));
        assert_eq!(cookie(&h, "__Host-postern"), None);
        assert_eq!(form_field(b"name=x&csrf=tok-1", "csrf"), Some("tok-1"));
        assert_eq!(form_field(b"name=x", "csrf"), None);
    }
}
