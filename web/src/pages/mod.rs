//! The console's HTML pages: one module per resource, each with its `router()`, rendered by
//! askama from `templates/`. Shared here: the layout, flash messages, form state and errors.

/// A page struct whose `layout` field holds the layout around it.
macro_rules! impl_page {
    ($page:ty) => {
        impl super::Page for $page {
            fn layout(&self) -> &super::Layout {
                &self.layout
            }
        }
    };
}

mod admins;
mod aliases;
mod auth;
mod backups;
mod certificates;
mod chart;
mod confirm;
mod content_checks;
mod dashboard;
mod directory;
mod dkim;
mod dns_health;
mod dnsbl;
mod domain_page;
mod domains;
mod greylisting;
mod link;
mod log;
mod mail_auth;
mod mailboxes;
mod milters;
mod mta_sts;
mod networks;
mod nodes;
mod policy;
mod policy_services;
mod queue;
mod rate_limits;
mod refusal;
mod tokens;
mod transports;

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use postern_store::Liveness;

use crate::auth::session::{ConsoleUser, cookie};
use crate::error::WebError;
use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(dashboard::router())
        .merge(domains::router())
        .merge(mailboxes::router())
        .merge(aliases::router())
        .merge(networks::router())
        .merge(nodes::router())
        .merge(policy::router())
        .merge(rate_limits::router())
        .merge(milters::router())
        .merge(content_checks::router())
        .merge(policy_services::router())
        .merge(mail_auth::router())
        .merge(transports::router())
        .merge(queue::router())
        .merge(log::router())
        .merge(tokens::router())
        .merge(admins::router())
        .merge(certificates::router())
        .merge(mta_sts::router())
        .merge(dkim::router())
        .merge(dnsbl::router())
        .merge(greylisting::router())
        .merge(backups::router())
        .merge(dns_health::router())
        .merge(domain_page::router())
        .merge(directory::router())
        .fallback(refusal::unknown_page)
        // Inside the CSRF check, which puts the signed-in user where this layer finds it.
        .layer(axum::middleware::from_fn_with_state(state.clone(), confirm::require_confirmation))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::session::require_csrf,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), refusal::with_navigation))
}

/// The sections of the navigation; `ready` is false for those that arrive with later work.
const SECTIONS: &[(&str, &str, &str, bool, bool)] = &[
    // (section, href, label, ready, global only), in the order of the menu: the mail itself,
    // then where it goes, then what filters it on the way in, then the keys and certificates.
    ("dashboard", "/", "Dashboard", true, false),
    ("domains", "/domains", "Domains", true, false),
    ("mailboxes", "/mailboxes", "Mailboxes", true, false),
    ("aliases", "/aliases", "Aliases", true, false),
    ("queue", "/queue", "Queue", true, false),
    ("log", "/log", "Delivery log", true, false),
    ("transports", "/transports", "Transports & relay", true, true),
    ("networks", "/networks", "Trusted networks", true, true),
    ("nodes", "/nodes", "Nodes", true, true),
    ("policy", "/policy", "Access policy", true, true),
    ("rate_limits", "/rate-limits", "Rate limits", true, true),
    ("dnsbl", "/dnsbl", "Blocklists", true, true),
    ("greylisting", "/greylisting", "Greylisting", true, true),
    ("content-checks", "/content-checks", "Content checks", true, true),
    ("policy-services", "/policy-services", "Policy services", true, true),
    ("milters", "/milters", "Milters", true, true),
    ("mailauth", "/mailauth", "Inbound checks", true, true),
    ("certificates", "/certificates", "Certificates", true, true),
    ("dkim", "/dkim", "DKIM keys", false, false),
    ("tokens", "/tokens", "API tokens", true, false),
    ("admins", "/admins", "Administrators", true, true),
    ("audit", "/audit", "Audit log", true, true),
    ("backups", "/backups", "Backups", true, true),
];

pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
    pub ready: bool,
}

/// What the layout around every page needs.
pub struct Layout {
    pub title: String,
    pub section: &'static str,
    /// The signed-in administrator's name; `None` on the login page.
    pub user: Option<String>,
    pub global: bool,
    pub csrf: String,
    pub flash: Option<Flash>,
}

impl Layout {
    pub fn new(
        user: &ConsoleUser,
        section: &'static str,
        title: impl Into<String>,
        headers: &HeaderMap,
    ) -> Layout {
        Layout {
            title: title.into(),
            section,
            user: Some(user.admin.name.to_string()),
            global: user.principal.is_global(),
            csrf: user.csrf.clone(),
            flash: Flash::read(headers),
        }
    }

    /// The layout of a page shown before signing in.
    pub fn anonymous(title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            section: "",
            user: None,
            global: false,
            csrf: String::new(),
            flash: None,
        }
    }

    pub fn nav(&self) -> Vec<NavItem> {
        SECTIONS
            .iter()
            .filter(|(_, _, _, _, global_only)| self.global || !global_only)
            .map(|&(section, href, label, ready, _)| NavItem {
                href,
                label,
                current: section == self.section,
                ready,
            })
            .collect()
    }
}

/// A message shown once on the next page (after a redirect), carried in a short-lived cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// `ok`, `warn` or `error`: the CSS class.
    pub kind: &'static str,
    pub text: String,
}

const FLASH_COOKIE: &str = "postern_flash";

impl Flash {
    pub fn ok(text: impl Into<String>) -> Flash {
        Flash { kind: "ok", text: text.into() }
    }

    pub fn warn(text: impl Into<String>) -> Flash {
        Flash { kind: "warn", text: text.into() }
    }

    pub fn error(text: impl Into<String>) -> Flash {
        Flash { kind: "error", text: text.into() }
    }

    fn read(headers: &HeaderMap) -> Option<Flash> {
        let raw = cookie(headers, FLASH_COOKIE)?;
        let (kind, text) = raw.split_once('.')?;
        let kind = match kind {
            "ok" => "ok",
            "warn" => "warn",
            _ => "error",
        };
        Some(Flash { kind, text: percent_decode(text) })
    }

    fn set_cookie(&self) -> String {
        format!(
            "{FLASH_COOKIE}={}.{}; Path=/; HttpOnly; SameSite=Strict; Max-Age=60",
            self.kind,
            percent_encode(&self.text)
        )
    }

    /// A 303 to `location` that shows this message there.
    pub fn redirect(self, location: &str) -> Response {
        let mut response = Redirect::to(location).into_response();
        if let Ok(value) = HeaderValue::from_str(&self.set_cookie()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }
}

/// After a change: waits briefly for the engine, and says whether the change is live.
pub async fn saved(state: &AppState, what: &str) -> Flash {
    let revision = match state.store.revision().await {
        Ok(r) => r,
        Err(_) => return Flash::ok(format!("{what}.")),
    };
    match state.store.wait_until_live(revision, state.settings.live_wait).await {
        Ok(Liveness::Live) => Flash::ok(format!("{what}; live on the engine.")),
        Ok(Liveness::Refused { node, problems }) => Flash::error(format!(
            "{what}, but the engine on {node} refused the configuration and keeps the last good \
             one: {problems}"
        )),
        Ok(Liveness::Pending) | Err(_) => Flash::warn(format!(
            "{what}; no engine has applied it yet (is `postern serve` running?)."
        )),
    }
}

/// What the user typed into a form, and what was wrong with it, to show the form again.
#[derive(Debug, Default, Clone)]
pub struct FormState {
    values: HashMap<String, String>,
    errors: HashMap<String, String>,
    /// The fields with an error, in the order they were found (the form's order): the first
    /// takes the focus.
    failed: Vec<String>,
    /// Password fields typed into a form that failed for another reason: rendered back into
    /// that one response only (see [`FormState::keep_secret`]), never shown in Debug.
    secrets: Secrets,
}

/// The password fields a failed form sends back; redacted in Debug, so that a `FormState`
/// logged by mistake shows no password.
#[derive(Default, Clone)]
struct Secrets(HashMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys().map(|k| format!("{k}: [redacted]"))).finish()
    }
}

impl FormState {
    pub fn with(values: &[(&str, &str)]) -> FormState {
        FormState {
            values: values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            errors: HashMap::new(),
            failed: Vec::new(),
            secrets: Secrets::default(),
        }
    }

    /// Keeps the password `value` typed into `name`, to be put back into the form, unless
    /// the field itself is what was wrong: a form refused for another field (a bad quota)
    /// must not make the user type the password again (issue 16). Call it after the errors
    /// are placed; only for the response to the POST that carried it.
    pub fn keep_secret(mut self, name: &str, value: &str) -> FormState {
        if !value.is_empty() && !self.errors.contains_key(name) {
            self.secrets.0.insert(name.to_string(), value.to_string());
        }
        self
    }

    /// The password kept for `name` ([`FormState::keep_secret`]), or "".
    pub fn secret(&self, name: &str) -> &str {
        self.secrets.0.get(name).map(String::as_str).unwrap_or("")
    }

    /// Puts `error` next to its field (or above the form when it names none we show).
    pub fn fail(mut self, error: &WebError, fields: &[&str]) -> FormState {
        let field = error.field().filter(|f| fields.contains(f)).unwrap_or("");
        self.errors.entry(field.to_string()).or_insert_with(|| error.to_string());
        if !self.failed.iter().any(|f| f == field) {
            self.failed.push(field.to_string());
        }
        self
    }

    /// [`FormState::fail`] for each of `errors`, found in the form's order: a form with several
    /// mistakes reports them all at once.
    pub fn fail_all(self, errors: &[WebError], fields: &[&str]) -> FormState {
        errors.iter().fold(self, |form, e| form.fail(e, fields))
    }

    /// Whether `name` is the first field with an error: it gets `autofocus`, so that the
    /// cursor lands where the first thing to fix is.
    pub fn focus(&self, name: &str) -> bool {
        self.failed.iter().find(|f| !f.is_empty()).is_some_and(|f| f == name)
    }

    pub fn value(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn error_for(&self, name: &str) -> Option<&str> {
        self.errors.get(name).map(String::as_str)
    }
}

/// A template that sits in the layout.
pub trait Page: Template {
    fn layout(&self) -> &Layout;
}

/// Renders a page; a flash it showed is cleared.
pub fn render<P: Page>(status: StatusCode, page: &P) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            if page.layout().flash.is_some() {
                let clear =
                    format!("{FLASH_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
                if let Ok(value) = HeaderValue::from_str(&clear) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "a console template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    message: String,
    /// Why it happened and what to do, when there is more to say than `message`.
    hint: String,
    /// Where to go from here: (href, label).
    links: Vec<(String, String)>,
}

/// Marks a response as an error page, for [`refusal::with_navigation`] to render it again in
/// the signed-in layout.
#[derive(Clone)]
struct ErrorShown {
    title: &'static str,
    message: String,
}

impl Page for ErrorPage {
    fn layout(&self) -> &Layout {
        &self.layout
    }
}

/// A page, or the error that kept it from being made.
pub fn respond<P: Page>(status: StatusCode, result: Result<P, WebError>) -> Response {
    match result {
        Ok(page) => render(status, &page),
        Err(e) => error_page(e),
    }
}

/// An error as a page of its own, with its status.
pub fn error_page(e: WebError) -> Response {
    if let WebError::Internal(detail) = &e {
        tracing::error!(error = %detail, "console request failed");
    }
    let title = match e.status() {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        s if s.is_client_error() => "Cannot do that",
        _ => "Something went wrong",
    };
    let page = ErrorPage {
        layout: Layout::anonymous(title),
        message: e.to_string(),
        hint: String::new(),
        links: vec![("/".into(), "Back to the dashboard".into())],
    };
    let mut response = render(e.status(), &page);
    e.add_retry_after(&mut response);
    response.extensions_mut().insert(ErrorShown { title, message: e.to_string() });
    response
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_survives_the_cookie() {
        let flash = Flash::warn("Domain a.test added; <b>not</b> live – yet ✓");
        let cookie = flash.set_cookie();
        let value = cookie.split(';').next().unwrap().to_string();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, value.parse().unwrap());
        assert_eq!(Flash::read(&headers), Some(flash));
    }
}
