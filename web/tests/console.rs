//! The console in process: sign-in, sessions, CSRF and cross-site refusal, forms, roles.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use postern_store::Store;
use postern_store::auth::{HashGate, PasswordChecks, Policy};
use postern_store::model::{DomainKind, Role};
use postern_web::{AppState, Settings};
use support::*;

postern_store::store_tests!(
    login_says_the_same_for_unknown_names_and_wrong_passwords,
    login_is_throttled_per_account,
    simultaneous_guesses_get_few_checks_and_lock_no_one_out,
    a_login_flood_is_refused_past_the_hashing_bound,
    sessions_are_new_at_login_and_end_at_logout,
    a_one_time_password_must_be_changed_first,
    forms_need_the_session_csrf_token,
    a_domain_added_in_the_console_is_in_the_store_and_said_so,
    a_bad_form_says_what_is_wrong_and_keeps_what_was_typed,
    a_domain_admin_sees_only_its_domains_and_no_global_actions,
    pages_need_a_session
);

async fn login_says_the_same_for_unknown_names_and_wrong_passwords(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let wrong =
        post_form(&app, "/login", None, &[("name", "alice"), ("password", "nope nope")]).await;
    let unknown =
        post_form(&app, "/login", None, &[("name", "mallory"), ("password", "nope nope")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("wrong name or password"));
    assert_eq!(wrong.body.replace("alice", "X"), unknown.body.replace("mallory", "X"));
    assert!(session_cookie(&wrong).is_none());
}

async fn login_is_throttled_per_account(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    for _ in 0..5 {
        post_form(&app, "/login", None, &[("name", "alice"), ("password", "guess guess")]).await;
    }
    let right = post_form(&app, "/login", None, &[("name", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS, "{}", right.body);
    assert!(session_cookie(&right).is_none());
}

async fn simultaneous_guesses_get_few_checks_and_lock_no_one_out(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let guesses = (0..100).map(|n| login_from(&app, "192.0.2.1", "alice", format!("guess {n}")));
    let replies = futures_util::future::join_all(guesses).await;
    let checked = replies.iter().filter(|r| r.status == StatusCode::UNAUTHORIZED).count();
    let refused: Vec<_> =
        replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(checked + refused.len(), 100);
    assert!(checked <= 5, "{checked} passwords checked: counted before the check");
    assert!(refused.iter().all(|r| r.headers.get(header::RETRY_AFTER).is_some()));
    assert!(refused[0].body.contains("try again in"), "{}", refused[0].body);
    // The address that guessed waits, even with the right password…
    let right = login_from(&app, "192.0.2.1", "alice", PASSWORD.into()).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    // …but alice, from where she has not failed, signs in.
    let right = login_from(&app, "192.0.2.2", "alice", PASSWORD.into()).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER, "{}", right.body);
    assert!(session_cookie(&right).is_some());
}

async fn a_login_flood_is_refused_past_the_hashing_bound(store: Store) {
    // One check at a time and one waiting: the rest of a burst is refused at once.
    let gate = HashGate::new(1, 1, std::time::Duration::from_secs(1));
    let passwords = PasswordChecks::new(gate.clone(), Policy::default());
    let settings = Settings { live_wait: std::time::Duration::ZERO, ..Settings::default() };
    let app = postern_web::app(AppState::new(store.clone(), settings).with_passwords(passwords));
    // Unknown names from as many addresses: nothing for the attempt limiter to slow down.
    let guesses = (0..200u32).map(|n| {
        let app = app.clone();
        async move {
            let ip = format!("198.51.100.{}", n % 250);
            login_from(&app, &ip, &format!("nobody{n}"), "guess guess".into()).await
        }
    });
    let replies = futures_util::future::join_all(guesses).await;
    let checked = replies.iter().filter(|r| r.status == StatusCode::UNAUTHORIZED).count();
    let busy: Vec<_> =
        replies.iter().filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE).collect();
    assert_eq!(checked + busy.len(), 200);
    assert_eq!(checked as u64, gate.checks_run());
    assert_eq!(gate.peak_running(), 1, "never more checks at once than permits");
    assert!(!busy.is_empty(), "200 at once through one permit: some are refused");
    assert!(busy[0].headers.get(header::RETRY_AFTER).is_some());
    assert!(busy[0].body.contains("too many sign-ins at once"), "{}", busy[0].body);
}

async fn sessions_are_new_at_login_and_end_at_logout(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let reply = post_form(&app, "/login", None, &[("name", "alice"), ("password", PASSWORD)]).await;
    let set = reply.cookies().into_iter().find(|c| c.starts_with("postern=")).unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    let first = Browser::login(&app, "alice").await;
    let second = Browser::login(&app, "alice").await;
    assert_ne!(first.cookie, second.cookie, "every login gets a new session ID");
    assert_eq!(first.get("/").await.status, StatusCode::OK);
    let out = first.post("/logout", &[]).await;
    assert_eq!(out.location(), "/login");
    assert_eq!(first.get("/").await.location(), "/login", "the session ended");
    assert_eq!(second.get("/").await.status, StatusCode::OK, "other sessions stay");
}

async fn a_one_time_password_must_be_changed_first(store: Store) {
    let hash = postern_store::model::PasswordHash::create(PASSWORD).unwrap();
    store
        .create_admin("test", &"admin".parse().unwrap(), Role::Admin, &[], &hash, true)
        .await
        .unwrap();
    let app = console(&store);
    let reply = post_form(&app, "/login", None, &[("name", "admin"), ("password", PASSWORD)]).await;
    assert_eq!(reply.location(), "/password");
    let browser = Browser { app: app.clone(), cookie: session_cookie(&reply).unwrap() };
    assert_eq!(browser.get("/domains").await.location(), "/password");
    let other = Browser::login(&app, "admin").await;

    let mismatch = browser
        .post("/password", &[("current", PASSWORD), ("new", "new password 1"), ("repeat", "other")])
        .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(mismatch.body.contains("the two new passwords differ"));

    let changed = browser
        .post(
            "/password",
            &[("current", PASSWORD), ("new", "new password 1"), ("repeat", "new password 1")],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    let fresh = Browser { app: app.clone(), cookie: session_cookie(&changed).unwrap() };
    assert_eq!(fresh.get("/domains").await.status, StatusCode::OK);
    assert_eq!(browser.get("/").await.location(), "/login", "the old session ended");
    assert_eq!(other.get("/").await.location(), "/login", "every other session ended");
}

async fn forms_need_the_session_csrf_token(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let forged = post_form(
        &app,
        "/domains",
        Some(&browser.cookie),
        &[("name", "a.test"), ("kind", "local")],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let wrong = post_form(
        &app,
        "/domains",
        Some(&browser.cookie),
        &[("csrf", "x"), ("name", "a.test"), ("kind", "local")],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(store.list_domains().await.unwrap().is_empty());

    let csrf = browser.csrf().await;
    let body = form_body(&[("csrf", &csrf), ("name", "a.test"), ("kind", "local")]);
    let cross = Request::post("/domains")
        .header(header::COOKIE, &browser.cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(Body::from(body.clone()))
        .unwrap();
    assert_eq!(send(&app, cross).await.status, StatusCode::FORBIDDEN);
    let other_origin = Request::post("/domains")
        .header(header::COOKIE, &browser.cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "localhost")
        .header(header::ORIGIN, "https://evil.example")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(send(&app, other_origin).await.status, StatusCode::FORBIDDEN);
    assert!(store.list_domains().await.unwrap().is_empty(), "nothing changed");

    let ok = browser.post("/domains", &[("name", "a.test"), ("kind", "local")]).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(store.list_domains().await.unwrap().len(), 1);
}

async fn a_domain_added_in_the_console_is_in_the_store_and_said_so(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let reply = browser.post("/domains", &[("name", "Example.TEST"), ("kind", "relay")]).await;
    assert_eq!(reply.location(), "/domains");
    let domain = store.get_domain(&"example.test".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(domain.kind, DomainKind::Relay);
    let audit = store.list_audit(1, None).await.unwrap();
    assert_eq!(audit[0].actor, "console:alice");
    // No engine runs here: the page says the change is saved but not yet live.
    let page =
        Browser { app: app.clone(), cookie: format!("{}; {}", browser.cookie, flash(&reply)) }
            .get("/domains")
            .await;
    assert!(
        page.body.contains("Domain example.test added; no engine has applied it yet"),
        "{}",
        page.body
    );

    store.record_engine_status("node1", store.revision().await.unwrap() + 1, None).await.unwrap();
    let reply = browser.post("/domains", &[("name", "b.test"), ("kind", "local")]).await;
    let page =
        Browser { app: app.clone(), cookie: format!("{}; {}", browser.cookie, flash(&reply)) }
            .get("/domains")
            .await;
    assert!(page.body.contains("Domain b.test added; live on the engine."), "{}", page.body);
}

async fn a_bad_form_says_what_is_wrong_and_keeps_what_was_typed(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let reply = browser.post("/domains", &[("name", "not a domain!<b>"), ("kind", "local")]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("value=\"not a domain!&#60;b&#62;\""), "{}", reply.body);
    assert!(reply.body.contains("class=\"field-error\""));
    browser.post("/domains", &[("name", "a.test"), ("kind", "local")]).await;
    let dup = browser.post("/domains", &[("name", "a.test"), ("kind", "local")]).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert!(dup.body.contains("already exists"));
}

async fn a_domain_admin_sees_only_its_domains_and_no_global_actions(store: Store) {
    store.add_domain("test", &"a.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    store.add_domain("test", &"b.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "dora").await;
    let page = browser.get("/domains").await;
    assert!(page.body.contains("a.test") && !page.body.contains("b.test"));
    let add = browser.post("/domains", &[("name", "c.test"), ("kind", "local")]).await;
    assert_eq!(add.status, StatusCode::FORBIDDEN);
    let remove = browser.post("/domains/a.test/delete", &[("cascade", "true")]).await;
    assert_eq!(remove.status, StatusCode::FORBIDDEN);
    assert_eq!(store.list_domains().await.unwrap().len(), 2);
}

async fn pages_need_a_session(store: Store) {
    let app = console(&store);
    for path in ["/", "/domains", "/password"] {
        let reply = send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(reply.location(), "/login", "{path}");
    }
    let css = send(&app, Request::get("/static/style.css").body(Body::empty()).unwrap()).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers["content-type"].to_str().unwrap().starts_with("text/css"));
}

/// The flash cookie a reply set, as a `Cookie` pair.
fn flash(reply: &Reply) -> String {
    reply
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("postern_flash="))
        .map(|c| c.split(';').next().unwrap().to_string())
        .expect("a flash cookie")
}

/// A login form posted from `ip`, as the listener would pass the client's address.
async fn login_from(app: &axum::Router, ip: &str, name: &str, password: String) -> Reply {
    let mut request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form_body(&[("name", name), ("password", &password)])))
        .unwrap();
    let peer: std::net::SocketAddr = format!("{ip}:50000").parse().unwrap();
    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
    send(app, request).await
}
