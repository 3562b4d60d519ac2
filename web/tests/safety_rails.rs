//! The console's safety rails (issue 16): aliases that would take a mailbox's mail or point at
//! themselves, open-relay trusted networks, confirmation pages for removals with JavaScript off,
//! forms that report every mistake at once, and error pages that keep the navigation.

mod support;

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, Role};
use serde_json::json;
use support::*;

fn src(s: &str) -> postern_store::model::AliasSource {
    s.parse().unwrap()
}

postern_store::store_tests!(
    an_alias_over_a_mailbox_needs_a_choice_in_the_console,
    an_alias_over_a_mailbox_needs_a_choice_in_the_api,
    an_alias_to_itself_is_refused_and_missing_targets_warned_about,
    the_mailbox_page_lists_the_aliases_to_it,
    an_open_relay_network_asks_before_saving_and_shows_as_a_problem,
    an_open_relay_network_needs_confirm_open_relay_in_the_api,
    removals_ask_on_a_page_of_their_own_without_javascript,
    a_form_with_several_mistakes_reports_them_all,
    unknown_and_refused_pages_keep_the_navigation
);

async fn an_alias_over_a_mailbox_needs_a_choice_in_the_console(store: Store) {
    add_test_domains(&store).await;
    add_mailbox(&store, "ann@a.test").await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;

    let refused =
        browser.post("/aliases", &[("source", "ann@a.test"), ("destinations", "x@out.test")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    let at = refused.body.find("id=\"e-source\">").expect("the refusal is at the source");
    assert!(refused.body[at..].contains("ann@a.test is a mailbox"), "{}", refused.body);
    assert!(refused.body.contains(">x@out.test</textarea>"), "kept: {}", refused.body);
    assert!(store.get_alias(&src("ann@a.test")).await.unwrap().is_none());

    let also = browser
        .post(
            "/aliases",
            &[("source", "ann@a.test"), ("destinations", "x@out.test"), ("mailbox", "also")],
        )
        .await;
    assert_eq!(also.location(), "/aliases", "{}", also.body);
    let alias = store.get_alias(&src("ann@a.test")).await.unwrap().unwrap();
    let destinations: Vec<String> = alias.destinations.iter().map(ToString::to_string).collect();
    assert_eq!(destinations, ["ann@a.test", "x@out.test"]);

    // Dropping the mailbox from the list on the alias page needs "instead".
    let dropped = browser.post("/aliases/ann@a.test", &[("destinations", "x@out.test")]).await;
    assert_eq!(dropped.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", dropped.body);
    assert!(dropped.body.contains("is a mailbox"), "{}", dropped.body);
    let instead = browser
        .post("/aliases/ann@a.test", &[("destinations", "x@out.test"), ("mailbox", "instead")])
        .await;
    assert_eq!(instead.location(), "/aliases/ann@a.test", "{}", instead.body);
    let alias = store.get_alias(&src("ann@a.test")).await.unwrap().unwrap();
    assert_eq!(alias.destinations, vec!["x@out.test".parse().unwrap()]);
    let page = browser.get("/mailboxes/ann@a.test").await.body;
    assert!(page.contains("takes this mailbox's mail elsewhere"), "{page}");
}

async fn an_alias_over_a_mailbox_needs_a_choice_in_the_api(store: Store) {
    add_test_domains(&store).await;
    add_mailbox(&store, "ann@a.test").await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let refused = api
        .call(
            "POST",
            "/aliases",
            Some(json!({"source": "ann@a.test", "destinations": ["x@out.test"]})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    let body = refused.json();
    assert_eq!(body["error"]["code"], "invalid");
    assert_eq!(body["error"]["field"], "source");
    assert!(body["error"]["message"].as_str().unwrap().contains("is a mailbox"), "{body}");

    let created = api
        .call(
            "POST",
            "/aliases",
            Some(json!({"source": "ann@a.test", "destinations": ["x@out.test"], "mailbox": "instead"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.json()["destinations"], json!(["x@out.test"]));
    let bad = api
        .call(
            "POST",
            "/aliases",
            Some(json!({"source": "b@a.test", "destinations": ["x@out.test"], "mailbox": "maybe"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
}

async fn an_alias_to_itself_is_refused_and_missing_targets_warned_about(store: Store) {
    add_test_domains(&store).await;
    add_mailbox(&store, "ann@a.test").await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let looped = browser
        .post("/aliases", &[("source", "self@a.test"), ("destinations", "self@a.test")])
        .await;
    assert_eq!(looped.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", looped.body);
    let at = looped.body.find("id=\"e-destinations\">").expect("the refusal is at the field");
    assert!(looped.body[at..].contains("cannot point only at itself"), "{}", looped.body);

    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let refused = api
        .call(
            "POST",
            "/aliases",
            Some(json!({"source": "self@a.test", "destinations": ["self@a.test"]})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert_eq!(refused.json()["error"]["field"], "destinations");

    // A target in one of our domains that is not there yet: saved, with a warning.
    let warned = browser
        .post("/aliases", &[("source", "team@a.test"), ("destinations", "ann@a.test\nnew@a.test")])
        .await;
    assert_eq!(warned.location(), "/aliases", "{}", warned.body);
    let flash = flash_text(&warned);
    assert!(flash.contains("new@a.test is not a mailbox or alias yet"), "{flash}");
    assert!(store.get_alias(&src("team@a.test")).await.unwrap().is_some());
    let created = api
        .call(
            "POST",
            "/aliases",
            Some(json!({"source": "sales@a.test", "destinations": ["later@b.test"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let warnings = created.json()["warnings"].clone();
    assert!(
        warnings[0].as_str().unwrap().starts_with("later@b.test is not a mailbox"),
        "{warnings}"
    );
    let clean = api
        .call(
            "POST",
            "/aliases",
            Some(json!({"source": "ext@a.test", "destinations": ["x@out.test"]})),
        )
        .await;
    assert!(clean.json().get("warnings").is_none(), "{}", clean.body);
}

async fn the_mailbox_page_lists_the_aliases_to_it(store: Store) {
    add_test_domains(&store).await;
    add_mailbox(&store, "ann@a.test").await;
    store
        .create_alias("test", &src("team@a.test"), &["ann@a.test".parse().unwrap()])
        .await
        .unwrap();
    store.create_alias("test", &src("@b.test"), &["ann@a.test".parse().unwrap()]).await.unwrap();
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let page = Browser::login(&app, "alice").await.get("/mailboxes/ann@a.test").await.body;
    assert!(
        page.contains("<a href=\"/aliases/@b.test\">@b.test</a>, <a href=\"/aliases/team@a.test\">team@a.test</a>"),
        "{page}"
    );
    let page = Browser::login(&app, "dora").await.get("/mailboxes/ann@a.test").await.body;
    assert!(page.contains("team@a.test") && !page.contains("@b.test"), "only its own: {page}");
}

async fn an_open_relay_network_asks_before_saving_and_shows_as_a_problem(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;
    let dashboard = browser.get("/").await.body;
    assert!(!dashboard.contains("open relay"), "{dashboard}");

    let asked = browser.post("/networks", &[("cidr", "0.0.0.0/0"), ("description", "all")]).await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    assert!(asked.body.contains("this would make an open relay"), "{}", asked.body);
    assert!(asked.body.contains("name=\"confirm_open_relay\" value=\"yes\""), "{}", asked.body);
    assert!(asked.body.contains("Add 0.0.0.0/0 anyway"), "{}", asked.body);
    assert!(!store.list_networks().await.unwrap().iter().any(|n| n.cidr.prefix_len() == 0));

    // A private range or a small public one goes through at once.
    let lan = browser.post("/networks", &[("cidr", "10.0.0.0/8")]).await;
    assert_eq!(lan.location(), "/networks", "{}", lan.body);

    let added = browser
        .post(
            "/networks",
            &[("cidr", "0.0.0.0/0"), ("description", "all"), ("confirm_open_relay", "yes")],
        )
        .await;
    assert_eq!(added.location(), "/networks", "{}", added.body);
    assert!(store.list_networks().await.unwrap().iter().any(|n| n.cidr.prefix_len() == 0));
    let dashboard = browser.get("/").await.body;
    let at = dashboard.find("<h2 id=\"problems\">Problems</h2>").expect("a problems section");
    assert!(dashboard[at..].contains("Trusted network 0.0.0.0/0"), "{dashboard}");
    assert!(dashboard[at..].contains("open relay"), "{dashboard}");
}

async fn an_open_relay_network_needs_confirm_open_relay_in_the_api(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let refused = api.call("POST", "/networks", Some(json!({"cidr": "::/0"}))).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert_eq!(refused.json()["error"]["field"], "cidr");
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("open relay"));
    let created = api
        .call("POST", "/networks", Some(json!({"cidr": "::/0", "confirm_open_relay": true})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
}

async fn removals_ask_on_a_page_of_their_own_without_javascript(store: Store) {
    add_test_domains(&store).await;
    add_mailbox(&store, "ann@a.test").await;
    add_mailbox(&store, "bob@a.test").await;
    store
        .create_alias("test", &src("team@a.test"), &["ann@a.test".parse().unwrap()])
        .await
        .unwrap();
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "bert", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;

    // A domain: what goes with it, counted and named.
    let asked = browser.post("/domains/a.test/delete", &[("cascade", "true")]).await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    assert!(asked.body.contains("Its 2 mailboxes and 1 alias go too"), "{}", asked.body);
    assert!(asked.body.contains("2 mailboxes: ann@a.test, bob@a.test"), "{}", asked.body);
    assert!(asked.body.contains("1 alias: team@a.test"), "{}", asked.body);
    assert!(
        asked.body.contains("name=\"cascade\" value=\"true\""),
        "the form again: {}",
        asked.body
    );
    assert!(asked.body.contains("name=\"confirm\" value=\"yes\""), "{}", asked.body);
    assert!(asked.body.contains("aria-label=\"Sections\""), "with the navigation");
    assert!(store.get_domain(&"a.test".parse().unwrap()).await.unwrap().is_some());

    // Each removal asks, and acts once confirmed.
    let token = store
        .create_token("test", &"alice".parse().unwrap(), "ci", Access::Read, &[], None)
        .await
        .unwrap();
    let token_path = format!("/tokens/{}/delete", token.token.id);
    for (path, fields, says) in [
        ("/aliases/team@a.test/delete", vec![], "Remove the alias team@a.test?"),
        ("/mailboxes/bob@a.test/delete", vec![], "Remove the mailbox bob@a.test?"),
        ("/networks/delete", vec![("cidr", "127.0.0.1/32")], "Stop trusting 127.0.0.1/32?"),
        ("/admins/bert/delete", vec![], "Remove the administrator bert?"),
        (token_path.as_str(), vec![], "Revoke the API token ci"),
        ("/nodes/drain", vec![("node", "n9")], "Drain n9?"),
        ("/nodes/delete", vec![("node", "n9")], "Forget n9?"),
    ] {
        let asked = browser.post(path, &fields).await;
        assert_eq!(asked.status, StatusCode::OK, "{path}: {}", asked.body);
        assert!(asked.body.contains(says), "{path}: {}", asked.body);
        let mut confirmed = fields.clone();
        confirmed.push(("confirm", "yes"));
        let done = browser.post(path, &confirmed).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{path}: {}", done.body);
    }
    assert!(store.get_alias(&src("team@a.test")).await.unwrap().is_none());
    assert!(store.get_mailbox(&"bob@a.test".parse().unwrap()).await.unwrap().is_none());
    assert!(store.get_admin(&"bert".parse().unwrap()).await.unwrap().is_none());

    let done =
        browser.post("/domains/a.test/delete", &[("cascade", "true"), ("confirm", "yes")]).await;
    assert_eq!(done.location(), "/domains");
    assert!(store.get_domain(&"a.test".parse().unwrap()).await.unwrap().is_none());
}

async fn a_form_with_several_mistakes_reports_them_all(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "alice").await;

    let page = browser.get("/aliases").await.body;
    assert!(page.contains("aria-describedby=\"h-source\""), "hints tied to inputs: {page}");
    assert!(page.contains("<p class=\"hint\" id=\"h-source\">"), "{page}");

    let reply = browser
        .post("/aliases", &[("source", "team"), ("destinations", "ok@x.test\nnot one")])
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = &reply.body;
    assert!(body.contains("an alias needs name@domain"), "{body}");
    assert!(body.contains("id=\"e-destinations\">"), "both mistakes at once: {body}");
    assert!(body.contains("value=\"team\""), "kept: {body}");
    assert!(body.contains(">ok@x.test\nnot one</textarea>"), "kept: {body}");
    let source = body.find("id=\"f-source\"").unwrap();
    assert!(body[source..].split('>').next().unwrap().contains("autofocus"), "{body}");
    let destinations = body.find("id=\"f-destinations\"").unwrap();
    assert!(!body[destinations..].split('>').next().unwrap().contains("autofocus"), "{body}");

    let reply = browser
        .post(
            "/mailboxes",
            &[("address", "bob smith@a.test"), ("password", "tiny7"), ("quota", "lots")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = &reply.body;
    for field in ["address", "password", "quota"] {
        assert!(body.contains(&format!("id=\"e-{field}\">")), "{field}: {body}");
    }
    assert!(body.contains("no spaces in an address"), "{body}");
    assert!(body.contains("value=\"bob smith@a.test\"") && body.contains("value=\"lots\""));
    assert!(!body.contains("tiny7"), "the password is never sent back: {body}");

    let reply = browser.post("/domains", &[("name", "my domain.test"), ("kind", "local")]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("no spaces in a domain name"), "{}", reply.body);
    assert!(reply.body.contains("value=\"my domain.test\""), "{}", reply.body);
    let name = reply.body.find("id=\"f-name\"").unwrap();
    assert!(reply.body[name..].split('>').next().unwrap().contains("autofocus"), "{}", reply.body);
}

async fn unknown_and_refused_pages_keep_the_navigation(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let browser = Browser::login(&app, "dora").await;

    let unknown = browser.get("/no-such-page").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body.contains("aria-label=\"Sections\""), "{}", unknown.body);
    assert!(unknown.body.contains("there is no page at /no-such-page"), "{}", unknown.body);
    assert!(unknown.body.contains("<a href=\"/\">Back to the dashboard</a>"), "{}", unknown.body);

    let missing = browser.get("/aliases/nobody@a.test").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("aria-label=\"Sections\""), "{}", missing.body);
    assert!(
        missing.body.contains("<a href=\"/aliases\">Aliases: the list</a>"),
        "{}",
        missing.body
    );

    let refused = browser.get("/networks").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("aria-label=\"Sections\""), "{}", refused.body);
    assert!(refused.body.contains("the menu lists what you can use"), "{}", refused.body);

    // Signed out: no navigation to show, but a way in.
    let reply = send(
        &app,
        axum::http::Request::get("/no-such-page").body(axum::body::Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.body.contains("<a href=\"/login\">Sign in</a>"), "{}", reply.body);
    assert!(!reply.body.contains("aria-label=\"Sections\""));
}
