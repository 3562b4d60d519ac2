//! A domain's DNS health in the console and the API (`/domains/{name}/dns`), with a scripted
//! lookup standing in for the engine's (the real report is tested in server/src/mailauth and, end
//! to end against a DNS server, in tests/dkim_cli.rs): the rows with the records to publish, the
//! domain list's summaries from the cache, the caller's scope; and the DKIM settings.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use postern_store::Store;
use postern_store::model::{Access, DomainName, Health, HealthRow, Role};
use postern_web::dns_health::{HealthCheck, HealthFuture};
use postern_web::{AppState, Settings, app};
use serde_json::json;
use support::*;

const DKIM_RECORD: &str =
    "TXT \"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"";

/// Answers as DNS would for a domain with its MX and SPF right, a wrong DKIM record and no DMARC
/// record; counts the reports made.
#[derive(Default)]
struct Scripted(AtomicUsize);

fn row(check: &'static str, name: String, status: Health) -> HealthRow {
    HealthRow { check, name, status, found: None, publish: None, optional: false }
}

impl HealthCheck for Scripted {
    fn check<'a>(&'a self, domain: &'a DomainName) -> HealthFuture<'a> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let mut dkim = row("DKIM", format!("one._domainkey.{domain}"), Health::Wrong);
            dkim.found = Some("v=DKIM1; k=ed25519; p=AAAA".into());
            dkim.publish = Some(DKIM_RECORD.into());
            let mut dmarc = row("DMARC", format!("_dmarc.{domain}"), Health::Missing);
            dmarc.publish =
                Some(format!("TXT \"v=DMARC1; p=none; rua=mailto:postmaster@{domain}\""));
            let mut sts = row("MTA-STS", format!("_mta-sts.{domain}"), Health::Missing);
            sts.optional = true;
            sts.publish = Some("TXT \"v=STSv1; id=1\"".into());
            let mut rdns = row("rDNS", "25.2.0.192.in-addr.arpa".into(), Health::Missing);
            rdns.publish = Some("PTR localhost.".into());
            rdns.optional = false;
            let mut rows = vec![
                row("MX", domain.to_string(), Health::Found),
                row("SPF", domain.to_string(), Health::Found),
                dkim,
                dmarc,
                sts,
            ];
            // b.test is all well (but for the optional record).
            if domain.as_str() == "b.test" {
                rows.retain(|r| r.status == Health::Found || r.optional);
            } else {
                rows.push(rdns);
            }
            rows
        })
    }
}

fn checking(store: &Store, scripted: Arc<Scripted>) -> axum::Router {
    let settings = Settings { live_wait: Duration::ZERO, ..Settings::default() };
    app(AppState::new(store.clone(), settings).with_health_check(scripted))
}

postern_store::store_tests!(
    the_api_reports_what_to_publish,
    the_console_shows_each_record_and_the_list_a_summary,
    dkim_settings_are_set_through_the_api_and_the_console
);

async fn the_api_reports_what_to_publish(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let plain = console(&store);
    let api = Api::new(&store, &plain, "alice", Access::Read, &[]).await;
    let none = api.call("GET", "/domains/a.test/dns", None).await;
    assert_eq!(none.status, StatusCode::CONFLICT, "{}", none.body);
    assert!(none.body.contains("no DNS resolver"), "{}", none.body);

    let scripted = Arc::new(Scripted::default());
    let api = Api { app: checking(&store, scripted.clone()), bearer: api.bearer.clone() };
    let report = api.call("GET", "/domains/a.test/dns", None).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let report = report.json();
    assert_eq!(report["domain"], "a.test");
    assert_eq!(report["summary"], "3 to fix");
    let rows = report["items"].as_array().unwrap();
    let by = |check: &str| rows.iter().find(|r| r["check"] == check).unwrap().clone();
    // The "done when": a missing DMARC and a wrong DKIM record, with what to publish.
    assert_eq!(by("DMARC")["status"], "missing");
    assert_eq!(by("DMARC")["name"], "_dmarc.a.test");
    assert_eq!(by("DMARC")["publish"], "TXT \"v=DMARC1; p=none; rua=mailto:postmaster@a.test\"");
    assert_eq!(by("DKIM")["status"], "wrong");
    assert_eq!(by("DKIM")["found"], "v=DKIM1; k=ed25519; p=AAAA");
    assert_eq!(by("DKIM")["publish"], DKIM_RECORD);
    assert_eq!(by("MX")["status"], "found");
    assert_eq!(by("MX")["publish"], serde_json::Value::Null);
    assert_eq!(
        (by("MTA-STS")["status"].clone(), by("MTA-STS")["optional"].clone()),
        (json!("missing"), json!(true))
    );
    assert_eq!(by("rDNS")["publish"], "PTR localhost.");
    // A recent report is reused; refresh=true looks again (at most every 10 seconds).
    api.call("GET", "/domains/a.test/dns", None).await;
    api.call("GET", "/domains/a.test/dns?refresh=true", None).await;
    assert_eq!(scripted.0.load(Ordering::SeqCst), 1);

    assert_eq!(
        api.call("GET", "/domains/nowhere.test/dns", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("GET", "/domains/not%20a%20domain/dns", None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // A domain-admin sees its own domains' reports only.
    let dora = Api::new(&store, &plain, "dora", Access::Read, &[]).await;
    let dora = Api { app: api.app.clone(), bearer: dora.bearer };
    assert_eq!(dora.call("GET", "/domains/a.test/dns", None).await.status, StatusCode::OK);
    let other = dora.call("GET", "/domains/b.test/dns", None).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.body);
}

async fn the_console_shows_each_record_and_the_list_a_summary(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let plain = Browser::login(&console(&store), "alice").await;
    let page = plain.get("/domains/a.test/dns").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("postern dns check a.test"), "{}", page.body);
    assert!(plain.get("/domains").await.body.contains("not checked<"));

    let scripted = Arc::new(Scripted::default());
    let app = checking(&store, scripted.clone());
    let browser = Browser::login(&app, "alice").await;
    // The list never waits on DNS: first "not checked yet", the reports made in the background.
    let list = browser.get("/domains").await.body;
    assert!(list.contains("href=\"/domains/a.test/dns\""), "{list}");
    assert!(list.contains("not checked yet"), "{list}");
    let start = Instant::now();
    let list = loop {
        let list = browser.get("/domains").await.body;
        if !list.contains("not checked yet") {
            break list;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no summaries: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(list.contains("3 to fix") && list.contains(">ok<"), "{list}");
    assert_eq!(scripted.0.load(Ordering::SeqCst), 3, "one report per domain");
    browser.get("/domains").await;
    assert_eq!(scripted.0.load(Ordering::SeqCst), 3, "from the cache");

    let page = browser.get("/domains/a.test/dns").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = page.body;
    assert!(body.contains("3 to fix"), "{body}");
    assert!(body.contains("_dmarc.a.test") && body.contains("class=\"status missing\""), "{body}");
    assert!(
        body.contains("<code class=\"record\">TXT &#34;v=DMARC1; p=none; rua=mailto:postmaster@a.test&#34;</code>"),
        "{body}"
    );
    assert!(body.contains("v=DKIM1; k=ed25519; p=AAAA") && body.contains("class=\"status wrong\""));
    assert!(body.contains("Ask the provider of this address"), "{body}");
    assert!(body.contains("(optional)"), "{body}");
    assert_eq!(scripted.0.load(Ordering::SeqCst), 3, "the list's report is recent enough");
    let dkim = browser.get("/domains/a.test/dkim").await.body;
    assert!(dkim.contains("href=\"/domains/a.test/dns\""), "{dkim}");

    // A domain-admin: its domains only, in the list and on the page.
    let dora = Browser::login(&app, "dora").await;
    let list = dora.get("/domains").await.body;
    assert!(list.contains("a.test") && !list.contains("b.test"), "{list}");
    assert_eq!(dora.get("/domains/a.test/dns").await.status, StatusCode::OK);
    assert_eq!(dora.get("/domains/b.test/dns").await.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.get("/domains/nowhere.test/dns").await.status, StatusCode::NOT_FOUND);
}

async fn dkim_settings_are_set_through_the_api_and_the_console(store: Store) {
    add_test_domains(&store).await;
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["a.test"]).await;
    let app = console(&store);
    let api = Api::new(&store, &app, "alice", Access::Write, &[]).await;
    let got = api.call("GET", "/domains/a.test/dkim/settings", None).await;
    assert_eq!(got.json(), json!({"rotate_days": null, "sign_relayed": false}));
    let set = api
        .call(
            "PUT",
            "/domains/a.test/dkim/settings",
            Some(json!({"rotate_days": 90, "sign_relayed": true})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(
        api.call("GET", "/domains/a.test/dkim/settings", None).await.json(),
        json!({"rotate_days": 90, "sign_relayed": true})
    );
    let short =
        api.call("PUT", "/domains/a.test/dkim/settings", Some(json!({"rotate_days": 2}))).await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", short.body);
    let missing = api.call("PUT", "/domains/nowhere.test/dkim/settings", Some(json!({}))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    let dora = Api::new(&store, &app, "dora", Access::Write, &[]).await;
    let other = dora.call("PUT", "/domains/b.test/dkim/settings", Some(json!({}))).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.body);

    let browser = Browser::login(&app, "alice").await;
    let page = browser.get("/domains/a.test/dkim").await.body;
    assert!(page.contains("value=\"90\"") && page.contains(" checked>"), "{page}");
    let saved = browser.post("/domains/a.test/dkim/settings", &[("rotate_days", "30d")]).await;
    assert!(
        flash_text(&saved).starts_with("Keys of a.test rotate every 30 days"),
        "{}",
        flash_text(&saved)
    );
    let settings = store.dkim_settings(&"a.test".parse().unwrap()).await.unwrap();
    assert_eq!((settings.rotate_days, settings.sign_relayed), (Some(30), false));
    let bad = browser.post("/domains/a.test/dkim/settings", &[("rotate_days", "soon")]).await;
    assert!(flash_text(&bad).contains("number of days"), "{}", flash_text(&bad));
    browser
        .post("/domains/a.test/dkim/settings", &[("rotate_days", ""), ("sign_relayed", "on")])
        .await;
    let settings = store.dkim_settings(&"a.test".parse().unwrap()).await.unwrap();
    assert_eq!((settings.rotate_days, settings.sign_relayed), (None, true));
}
