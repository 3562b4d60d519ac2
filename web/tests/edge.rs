//! What every request and response passes through: no caching of pages and API answers (new
//! tokens, one-time passwords), HSTS over HTTPS, the redirect from plain HTTP to HTTPS, the
//! scheme of `Origin`, and the `Host:` allow-list against DNS rebinding.

mod support;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use postern_store::Store;
use postern_store::model::{Access, Role};
use postern_web::{AppState, Settings, app};
use support::*;

fn console_with(store: &Store, change: impl FnOnce(&mut Settings)) -> Router {
    let mut settings = Settings { live_wait: Duration::ZERO, ..Settings::default() };
    change(&mut settings);
    app(AppState::new(store.clone(), settings))
}

async fn get_with_host(app: &Router, path: &str, host: &str) -> Reply {
    let request = Request::get(path).header(header::HOST, host).body(Body::empty()).unwrap();
    send(app, request).await
}

fn header_of<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

fn login_request(origin: &str) -> Request<Body> {
    Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "localhost")
        .header(header::ORIGIN, origin)
        .body(Body::from(form_body(&[("name", "alice"), ("password", PASSWORD)])))
        .unwrap()
}

postern_store::store_tests!(
    pages_and_api_answers_are_kept_out_of_caches,
    https_answers_carry_hsts_and_plain_http_ones_do_not,
    plain_http_redirects_to_https_when_an_https_listener_is_set,
    an_http_origin_may_not_change_anything_over_https,
    unknown_host_names_are_refused
);

async fn pages_and_api_answers_are_kept_out_of_caches(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let login = get_with_host(&app, "/login", "localhost").await;
    assert_eq!(header_of(&login, "cache-control"), "no-store");

    // The page that shows a new token once.
    let browser = Browser::login(&app, "alice").await;
    let created = browser.post("/tokens", &[("name", "backup"), ("access", "read")]).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert!(created.body.contains("backup"), "{}", created.body);
    assert_eq!(header_of(&created, "cache-control"), "no-store");
    assert_eq!(header_of(&browser.get("/").await, "cache-control"), "no-store");

    // The API answer that carries a new token.
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let token = api.call("POST", "/tokens", Some(serde_json::json!({"name": "n"}))).await;
    assert_eq!(token.status, StatusCode::CREATED, "{}", token.body);
    assert_eq!(header_of(&token, "cache-control"), "no-store");

    // Static assets keep their own, cacheable, header.
    let css = get_with_host(&app, "/static/style.css", "localhost").await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(header_of(&css, "cache-control"), "public, max-age=3600");
}

async fn https_answers_carry_hsts_and_plain_http_ones_do_not(store: Store) {
    let https = console_with(&store, |s| s.https = true);
    let reply = get_with_host(&https, "/login", "localhost").await;
    assert_eq!(header_of(&reply, "strict-transport-security"), "max-age=31536000");
    let missing = get_with_host(&https, "/nothing-here", "localhost").await;
    assert_eq!(header_of(&missing, "strict-transport-security"), "max-age=31536000");
    let plain = get_with_host(&console(&store), "/login", "localhost").await;
    assert_eq!(header_of(&plain, "strict-transport-security"), "");
}

async fn plain_http_redirects_to_https_when_an_https_listener_is_set(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console_with(&store, |s| {
        s.hostname = "mail.example.test".into();
        s.https_port = Some(8443);
    });
    let reply = get_with_host(&app, "/queue?status=deferred", "Mail.Example.test:8080").await;
    assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(reply.location(), "https://mail.example.test:8443/queue?status=deferred");
    // A login over plain HTTP never gets as far as a (non-Secure) session cookie.
    let login = post_form(&app, "/login", None, &[("name", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(login.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(login.location(), "https://mail.example.test:8443/login");
    assert!(login.cookies().is_empty(), "{:?}", login.cookies());
    // The HTTPS side itself, and port 443, need no redirect and no port.
    let on_https = console_with(&store, |s| {
        s.https = true;
        s.https_port = Some(8443);
    });
    assert_eq!(get_with_host(&on_https, "/login", "localhost").await.status, StatusCode::OK);
    let standard = console_with(&store, |s| s.https_port = Some(443));
    let reply = get_with_host(&standard, "/", "127.0.0.1:80").await;
    assert_eq!(reply.location(), "https://127.0.0.1/");

    // Kept on plain HTTP for a reverse proxy, when asked.
    let proxied = console_with(&store, |s| {
        s.https_port = Some(8443);
        s.options.redirect_http = false;
    });
    let login =
        post_form(&proxied, "/login", None, &[("name", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert!(session_cookie(&login).is_some());
}

async fn an_http_origin_may_not_change_anything_over_https(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let https = console_with(&store, |s| s.https = true);
    // Same host, but a page served over plain HTTP, which anyone on the path could write.
    let reply = send(&https, login_request("http://localhost")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert!(reply.cookies().is_empty());
    let reply = send(&https, login_request("https://localhost")).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    // Over plain HTTP, an https:// origin with our name is a TLS-terminating proxy's.
    let plain = console(&store);
    assert_eq!(
        send(&plain, login_request("https://localhost")).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(send(&plain, login_request("http://localhost")).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&plain, login_request("http://evil.example")).await.status,
        StatusCode::FORBIDDEN
    );
}

async fn unknown_host_names_are_refused(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console_with(&store, |s| {
        s.hostname = "mail.example.test".into();
        s.options.hosts = vec!["console.example.test".parse().unwrap()];
    });
    // A name an attacker's DNS points at us (DNS rebinding) gets nothing.
    let page = get_with_host(&app, "/login", "rebind.attacker.example:8080").await;
    assert_eq!(page.status, StatusCode::MISDIRECTED_REQUEST);
    assert!(page.body.contains("[console] hosts"), "{}", page.body);
    let api = get_with_host(&app, "/api/v1/domains", "rebind.attacker.example").await;
    assert_eq!(api.status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(api.json()["error"]["code"], "misdirected");
    // Not even the login, with the right password.
    let mut login = login_request("http://rebind.attacker.example");
    login.headers_mut().insert(header::HOST, "rebind.attacker.example".parse().unwrap());
    let reply = send(&app, login).await;
    assert_eq!(reply.status, StatusCode::MISDIRECTED_REQUEST);
    assert!(reply.cookies().is_empty());

    for host in [
        "mail.example.test",
        "MAIL.example.test.:8080",
        "console.example.test",
        "localhost:8080",
        "127.0.0.1:8080",
        "[::1]:8080",
    ] {
        assert_eq!(get_with_host(&app, "/login", host).await.status, StatusCode::OK, "{host}");
    }
}
