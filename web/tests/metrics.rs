//! `GET /metrics`: off without `[metrics]`; the address allow-list (403) and the bearer token
//! (401) decide, and a refused scrape carries no number; an admitted one gets the counters and
//! the store's gauges in the text format.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use postern_store::Store;
use postern_store::boot::MetricsConfig;
use postern_web::{AppState, MetricsAccess, Settings, app};
use support::*;

const TOKEN: &str = "scrape-token-0123456789";

fn scrape(from: &str, token: Option<&str>) -> Request<Body> {
    let peer = SocketAddr::new(from.parse().unwrap(), 40000);
    let mut request = Request::get("/metrics").header(header::HOST, "localhost");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut request = request.body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

fn console_with(store: &Store, access: Option<MetricsAccess>) -> Router {
    let state = AppState::new(store.clone(), Settings::default());
    app(match access {
        Some(access) => state.with_metrics(access),
        None => state,
    })
}

/// No number of ours in a refused answer.
fn assert_no_data(reply: &Reply) {
    assert!(!reply.body.contains("postern_"), "{}", reply.body);
}

postern_store::store_tests!(
    metrics_are_off_without_the_section,
    the_address_and_the_token_guard_the_scrape,
    a_scrape_shows_counters_and_store_gauges
);

async fn metrics_are_off_without_the_section(store: Store) {
    let reply = send(&console(&store), scrape("127.0.0.1", None)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_no_data(&reply);
    let off: MetricsAccess = Arc::new(RwLock::new(None));
    let reply = send(&console_with(&store, Some(off)), scrape("127.0.0.1", None)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

async fn the_address_and_the_token_guard_the_scrape(store: Store) {
    let access: MetricsAccess =
        Arc::new(RwLock::new(Some(MetricsConfig::loopback().with_token(TOKEN))));
    let app = console_with(&store, Some(access.clone()));

    let reply = send(&app, scrape("127.0.0.1", None)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.headers.contains_key(header::WWW_AUTHENTICATE));
    assert_no_data(&reply);
    let reply = send(&app, scrape("127.0.0.1", Some("wrong-token-0123456789"))).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_no_data(&reply);
    // The right token from an address outside the allow-list is still refused.
    let reply = send(&app, scrape("192.0.2.7", Some(TOKEN))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_no_data(&reply);
    let reply = send(&app, scrape("127.0.0.1", Some(TOKEN))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body.contains("postern_messages_received_total"), "{}", reply.body);

    // What serve does on SIGHUP: a new allow-list applies to the next scrape.
    *access.write().unwrap() = Some(MetricsConfig::loopback());
    let reply = send(&app, scrape("127.0.0.1", None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(&app, scrape("192.0.2.7", None)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

async fn a_scrape_shows_counters_and_store_gauges(store: Store) {
    let access: MetricsAccess = Arc::new(RwLock::new(Some(MetricsConfig::loopback())));
    let app = console_with(&store, Some(access));
    store.metrics().message_received("smtp");
    store.metrics().refused("rejected", "rcpt", "access rule 1", 2);
    let reply = send(&app, scrape("::1", None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let content_type = reply.headers.get(header::CONTENT_TYPE).unwrap().to_str().unwrap();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let body = &reply.body;
    for line in [
        "postern_messages_received_total{listener=\"smtp\"} 1",
        "postern_messages_rejected_total{status=\"rejected\",stage=\"rcpt\",reason=\"access_rule\"} 2",
        "postern_queue_recipients{state=\"deferred\",age=\"0-5m\"} 0",
        "postern_queue_oldest_seconds 0",
        "postern_acme_orders{state=\"pending\"} 0",
        "postern_dkim_keys{state=\"active\"} 0",
    ] {
        assert!(body.contains(line), "{line} missing from:\n{body}");
    }
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
}
