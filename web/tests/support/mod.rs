//! Drives the console in process (`app().oneshot()`): a signed-in browser-like client with its
//! cookie and CSRF token, and an API client with a bearer token.

#![allow(dead_code)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use postern_store::Store;
use postern_store::model::{Access, DomainName, PasswordHash, Role};
use postern_web::{AppState, Settings, app};
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery";

pub fn console(store: &Store) -> Router {
    let settings = Settings { live_wait: Duration::ZERO, ..Settings::default() };
    app(AppState::new(store.clone(), settings))
}

pub async fn add_admin(store: &Store, name: &str, role: Role, domains: &[&str]) {
    let domains: Vec<DomainName> = domains.iter().map(|d| d.parse().unwrap()).collect();
    let hash = PasswordHash::create(PASSWORD).unwrap();
    store.create_admin("test", &name.parse().unwrap(), role, &domains, &hash, false).await.unwrap();
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn location(&self) -> &str {
        self.headers.get(header::LOCATION).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A signed-in console user.
pub struct Browser {
    pub app: Router,
    pub cookie: String,
}

impl Browser {
    /// Signs in with `name` and [`PASSWORD`].
    pub async fn login(app: &Router, name: &str) -> Browser {
        let reply = post_form(app, "/login", None, &[("name", name), ("password", PASSWORD)]).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "login of {name}: {}", reply.body);
        let cookie = session_cookie(&reply).expect("a session cookie");
        Browser { app: app.clone(), cookie }
    }

    pub async fn get(&self, path: &str) -> Reply {
        let request =
            Request::get(path).header(header::COOKIE, &self.cookie).body(Body::empty()).unwrap();
        send(&self.app, request).await
    }

    /// The CSRF token of this session, as a page's forms carry it.
    pub async fn csrf(&self) -> String {
        let page = self.get("/password").await;
        csrf_in(&page.body).expect("the page has a form with a CSRF token")
    }

    /// Posts a form with this session's CSRF token added.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let csrf = self.csrf().await;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        post_form(&self.app, path, Some(&self.cookie), &all).await
    }

    /// Posts a removal as a browser without JavaScript does: first without `confirm=yes`,
    /// which must answer a page that `says` what will go and posts the form again with it;
    /// then confirmed, whose reply is returned.
    pub async fn confirmed(&self, path: &str, fields: &[(&str, &str)], says: &str) -> Reply {
        let asked = self.post(path, fields).await;
        assert_eq!(asked.status, StatusCode::OK, "{path} asks first: {}", asked.body);
        assert!(asked.body.contains(says), "{path} should say {says:?}: {}", asked.body);
        assert!(asked.body.contains("name=\"confirm\" value=\"yes\""), "{}", asked.body);
        assert!(asked.body.contains(&format!("action=\"{path}\"")), "{}", asked.body);
        let mut confirmed = fields.to_vec();
        confirmed.push(("confirm", "yes"));
        self.post(path, &confirmed).await
    }
}

pub async fn post_form(
    app: &Router,
    path: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> Reply {
    let mut request =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    send(app, request.body(Body::from(form_body(fields))).unwrap()).await
}

/// `name=value` of the session cookie a reply sets.
pub fn session_cookie(reply: &Reply) -> Option<String> {
    reply
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("postern=") || c.starts_with("__Host-postern="))
        .map(|c| c.split(';').next().unwrap().to_string())
}

pub fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_string())
}

/// An API client with a token of `owner`.
pub struct Api {
    pub app: Router,
    pub bearer: String,
}

impl Api {
    pub async fn new(
        store: &Store,
        app: &Router,
        owner: &str,
        access: Access,
        domains: &[&str],
    ) -> Api {
        let domains: Vec<DomainName> = domains.iter().map(|d| d.parse().unwrap()).collect();
        let issued = store
            .create_token("test", &owner.parse().unwrap(), "test", access, &domains, None)
            .await
            .unwrap();
        Api { app: app.clone(), bearer: issued.bearer }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.bearer));
        let request = match body {
            Some(json) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json.to_string())),
            None => request.body(Body::empty()),
        };
        send(&self.app, request.unwrap()).await
    }
}

/// Adds the local domains a.test and b.test, and the relay domain relay.test.
pub async fn add_test_domains(store: &Store) {
    use postern_store::model::DomainKind;
    for (name, kind) in [
        ("a.test", DomainKind::Local),
        ("b.test", DomainKind::Local),
        ("relay.test", DomainKind::Relay),
    ] {
        store.add_domain("test", &name.parse().unwrap(), kind).await.unwrap();
    }
}

/// Adds an enabled mailbox whose password is [`PASSWORD`].
pub async fn add_mailbox(store: &Store, address: &str) {
    let new = postern_store::model::NewMailbox {
        address: address.parse().unwrap(),
        display_name: String::new(),
        enabled: true,
        quota_bytes: None,
        password_hash: PasswordHash::create(PASSWORD).unwrap(),
    };
    store.add_mailbox("test", new).await.unwrap();
}

/// The text of the flash message a reply sets.
pub fn flash_text(reply: &Reply) -> String {
    let cookie = reply
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("postern_flash="))
        .expect("a flash cookie");
    let value = cookie.split(';').next().unwrap().trim_start_matches("postern_flash=");
    let text = value.split_once('.').unwrap().1;
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
