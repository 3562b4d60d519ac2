//! The dashboard's certificate and DNS checks.

mod support;

use postern_store::Store;
use std::sync::Arc;
use std::time::Duration;

use postern_store::model::{DomainKind, Role};
use postern_web::dns::{MxAnswer, MxFuture, MxLookup};
use postern_web::{AppState, CertificateInfo, Settings, app};
use support::*;

struct Fixed;

impl MxLookup for Fixed {
    fn mx<'a>(&'a self, domain: &'a str) -> MxFuture<'a> {
        Box::pin(async move {
            match domain {
                "good.test" => MxAnswer::Hosts(vec!["mail.example.test".into()]),
                _ => MxAnswer::Hosts(vec!["mx.elsewhere.test".into()]),
            }
        })
    }
}

postern_store::store_tests!(
    the_dashboard_shows_certificate_expiry_and_domains_needing_dns_work,
    the_dns_check_follows_the_domains_and_says_when_it_ran
);

struct NoMx;

impl MxLookup for NoMx {
    fn mx<'a>(&'a self, domain: &'a str) -> MxFuture<'a> {
        Box::pin(async move {
            match domain {
                "good.test" => MxAnswer::Hosts(vec!["mail.example.test".into()]),
                _ => MxAnswer::None,
            }
        })
    }
}

/// The dashboard once its DNS check has an answer for the current domains.
async fn checked_dashboard(browser: &Browser) -> String {
    for _ in 0..200 {
        let page = browser.get("/").await.body;
        if !page.contains("Checking the domains") {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the DNS check never finished");
}

async fn the_dns_check_follows_the_domains_and_says_when_it_ran(store: Store) {
    add_admin(&store, "alice", Role::Admin, &[]).await;
    let settings = Settings {
        hostname: "mail.example.test".into(),
        live_wait: Duration::ZERO,
        ..Settings::default()
    };
    let app = app(AppState::new(store.clone(), settings).with_dns(Arc::new(NoMx)));
    let admin = Browser::login(&app, "alice").await;
    let page = checked_dashboard(&admin).await;
    assert!(page.contains("No local domains yet"), "{page}");
    assert!(!page.contains("MX points here"), "nothing to say without domains: {page}");

    store.add_domain("test", &"good.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    let page = checked_dashboard(&admin).await;
    assert!(page.contains("Every local domain's MX points here"), "{page}");
    assert!(page.contains("Last checked <time>"), "{page}");

    // A new domain is checked at once, not ten minutes later, and the old answer is not shown
    // as if it covered it.
    store.add_domain("test", &"none.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    let page = checked_dashboard(&admin).await;
    assert!(!page.contains("Every local domain's MX points here"), "{page}");
    assert!(
        page.contains("<strong>none.test</strong>: no MX record")
            && page.contains("<code>MX 10 mail.example.test.</code>"),
        "{page}"
    );
    let dns = &page[page.find("<h2>DNS</h2>").unwrap()..];
    assert!(!dns.contains('`'), "records as text, not with backticks: {dns}");
}

async fn the_dashboard_shows_certificate_expiry_and_domains_needing_dns_work(store: Store) {
    for d in ["good.test", "bad.test", "hidden.test"] {
        store.add_domain("test", &d.parse().unwrap(), DomainKind::Local).await.unwrap();
    }
    add_admin(&store, "alice", Role::Admin, &[]).await;
    add_admin(&store, "dora", Role::DomainAdmin, &["good.test", "bad.test"]).await;
    let soon = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64
        + 5 * 86_400
        + 60;
    let settings = Settings {
        hostname: "mail.example.test".into(),
        live_wait: Duration::ZERO,
        certificate: Some(CertificateInfo {
            path: "/data/tls/mail.crt".into(),
            not_after: soon,
            self_signed: true,
        }),
        ..Settings::default()
    };
    let app = app(AppState::new(store.clone(), settings).with_dns(Arc::new(Fixed)));
    let admin = Browser::login(&app, "alice").await;
    let first = admin.get("/").await.body;
    assert!(first.contains("(in 5 days)") && first.contains("self-signed"), "{first}");
    let mut page = first;
    for _ in 0..50 {
        if !page.contains("Checking the domains") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        page = admin.get("/").await.body;
    }
    assert!(
        page.contains("<strong>bad.test</strong>: its MX points to mx.elsewhere.test"),
        "{page}"
    );
    assert!(
        page.contains("<strong>hidden.test</strong>")
            && !page.contains("<strong>good.test</strong>")
    );
    let dora = Browser::login(&app, "dora").await.get("/").await.body;
    assert!(
        dora.contains("<strong>bad.test</strong>") && !dora.contains("hidden.test"),
        "a domain-admin sees only its own"
    );
}
