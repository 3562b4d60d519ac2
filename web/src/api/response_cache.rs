//! The API's answers to reads of the configuration, kept in memory: the JSON body of a
//! successful `GET` of a cached resource's list or of one of its items, so that a script asking
//! for the same list again does not read and serialise it again.
//!
//! An entry is keyed by what the caller may see (role, access and domains: never who the caller
//! is, and never across scopes, so a domain-admin never gets an admin's list nor the other way)
//! and by the path and query asked for. It is good only at the configuration revision read
//! before the handler ran, exactly as a token in `auth::token_cache` is: every change to a
//! domain, mailbox or alias is a configuration change (`Store::change`), so a change made in
//! this process (console, API) empties the cache as it commits, and one made by another process
//! (`postern domain add` on the command line, another node) as soon as the store's change feed
//! brings its revision (a LISTEN on Postgres; at most 200 ms on SQLite).
//!
//! Only `200` answers are kept, after the request has been authorised (this runs inside
//! `auth::token::authorize`, so a revoked token fails before it gets here); errors, other
//! methods and every other path go through untouched. The cached resources are listed in
//! [`CACHED`]: only resources whose reads depend on the configuration alone and carry no
//! secret may be added there (not tokens, whose last use is written without a new revision;
//! not a domain's DNS report, which depends on the DNS).
//!
//! Each answer carries an `ETag` (a hash of its body), and a request whose `If-None-Match`
//! names it gets `304 Not Modified` without the body.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::RwLock;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::auth::Principal;
use crate::auth::token::ApiUser;
use crate::state::AppState;

/// The resources whose list (`/NAME`, any query) and items (`/NAME/{key}`) are cached; deeper
/// paths (`/domains/{name}/dns`, `/domains/{name}/directory`) are not.
const CACHED: &[&str] = &["domains", "mailboxes", "aliases"];

/// The most answers kept, and the most bytes of them; past either, the oldest go first.
const MAX_ENTRIES: usize = 1_000;
const MAX_BYTES: usize = 16 * 1024 * 1024;
/// A larger answer (a page of 1,000 mailboxes is about 200 KB) is not kept.
const MAX_BODY: u64 = 1024 * 1024;

/// What every cached answer is.
const JSON: &str = "application/json";

struct Entry {
    body: Bytes,
    etag: HeaderValue,
}

struct Entries {
    /// The configuration revision every entry was made at.
    revision: i64,
    map: HashMap<String, Entry>,
    /// The keys in the order they were added: the oldest is dropped first.
    order: VecDeque<String>,
    /// The bytes of every body held.
    bytes: usize,
}

impl Entries {
    fn clear(&mut self, revision: i64) {
        self.revision = revision;
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
    }
}

pub struct ResponseCache {
    revision: watch::Receiver<i64>,
    entries: RwLock<Entries>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache").finish_non_exhaustive()
    }
}

impl ResponseCache {
    /// A cache that follows `revision` (the store's [`postern_store::Store::subscribe`]).
    pub fn new(revision: watch::Receiver<i64>) -> ResponseCache {
        let now = *revision.borrow();
        ResponseCache {
            revision,
            entries: RwLock::new(Entries {
                revision: now,
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
        }
    }

    /// The configuration revision now: read before the handler runs, and handed to
    /// [`ResponseCache::insert`], so that an answer read while a change commits is never kept.
    fn revision(&self) -> i64 {
        *self.revision.borrow()
    }

    fn get(&self, key: &str) -> Option<(Bytes, HeaderValue)> {
        let revision = self.revision();
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        if entries.revision != revision {
            return None;
        }
        entries.map.get(key).map(|e| (e.body.clone(), e.etag.clone()))
    }

    fn insert(&self, key: String, entry: Entry, revision: i64) {
        let current = self.revision();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.revision != current {
            entries.clear(current);
        }
        // Made at an older revision than the current one: it may show what a change removed.
        if revision != current {
            return;
        }
        if let Some(old) = entries.map.remove(&key) {
            // Two requests for the same answer missed at once; keep the later one in place.
            entries.bytes -= old.body.len();
        } else {
            entries.order.push_back(key.clone());
        }
        entries.bytes += entry.body.len();
        entries.map.insert(key, entry);
        while entries.map.len() > MAX_ENTRIES || entries.bytes > MAX_BYTES {
            let Some(oldest) = entries.order.pop_front() else { break };
            if let Some(gone) = entries.map.remove(&oldest) {
                entries.bytes -= gone.body.len();
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).map.len()
    }
}

/// True for a path whose `GET` answer is cached: `/NAME` or `/NAME/{key}` for a name in
/// [`CACHED`].
fn cacheable(path: &str) -> bool {
    let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
    let resource = segments.next().unwrap_or("");
    let item = segments.next();
    CACHED.contains(&resource)
        && segments.next().is_none()
        && item.is_none_or(|key| !key.is_empty())
}

/// The key of an answer: the caller's scope, then the path and query. Domain names hold
/// neither `|` nor `,`, so two scopes never give the same key.
fn key(user: &Principal, path_and_query: &str) -> String {
    let mut key = String::with_capacity(32 + path_and_query.len());
    key.push_str(user.role.as_str());
    key.push('|');
    key.push_str(user.access.as_str());
    key.push('|');
    match &user.domains {
        None => key.push('*'),
        Some(domains) => {
            for (i, domain) in domains.iter().enumerate() {
                if i > 0 {
                    key.push(',');
                }
                key.push_str(domain.as_str());
            }
        }
    }
    key.push('|');
    key.push_str(path_and_query);
    key
}

/// A strong validator for `body`: its hash, the same in every process of one build.
fn etag(body: &[u8]) -> HeaderValue {
    // `DefaultHasher::new()` has fixed keys: the same in every process, unlike `RandomState`.
    let mut hasher = std::hash::DefaultHasher::new();
    body.hash(&mut hasher);
    let value = format!("\"{:016x}\"", hasher.finish());
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2).
fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else { return false };
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|list| {
        list.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
    })
}

/// The answer to send: `304` when the client has this body already, else the body.
fn answer(body: Bytes, etag: HeaderValue, client_has_it: bool) -> Response {
    if client_has_it {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let content_type = HeaderValue::from_static(JSON);
    ([(header::CONTENT_TYPE, content_type), (header::ETAG, etag)], Body::from(body)).into_response()
}

/// Answers a cached read from memory, or lets the handler answer and keeps what it said.
pub async fn serve(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::GET || !cacheable(request.uri().path()) {
        return next.run(request).await;
    }
    // Set by `authorize`, which runs first; without it there is nothing to key on.
    let Some(ApiUser(user)) = request.extensions().get::<ApiUser>() else {
        return next.run(request).await;
    };
    let target = request.uri().path_and_query().map_or("", |p| p.as_str());
    let key = key(user, target);
    let cache = &state.responses;
    if let Some((body, etag)) = cache.get(&key) {
        let client_has_it = not_modified(request.headers(), &etag);
        return answer(body, etag, client_has_it);
    }
    let revision = cache.revision();
    let conditional = request.headers().get(header::IF_NONE_MATCH).is_some();
    let headers = if conditional { request.headers().clone() } else { HeaderMap::new() };
    let response = next.run(request).await;
    let json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v == JSON);
    let size = http_body::Body::size_hint(response.body()).exact();
    // A `Json` answer is whole already (its exact size is known): collecting it does not wait.
    if response.status() != StatusCode::OK || !json || size.is_none_or(|n| n > MAX_BODY) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read an API answer to cache it");
            return crate::error::WebError::Internal(e.to_string()).into_response();
        }
    };
    let tag = etag(&body);
    cache.insert(key, Entry { body: body.clone(), etag: tag.clone() }, revision);
    if not_modified(&headers, &tag) {
        return answer(body, tag, true);
    }
    parts.headers.insert(header::ETAG, tag);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: impl Into<Bytes>) -> Entry {
        let body = body.into();
        Entry { etag: etag(&body), body }
    }

    #[test]
    fn only_lists_and_items_of_the_cached_resources_are_cached() {
        for path in ["/domains", "/domains/a.test", "/mailboxes/x@a.test", "/aliases/@a.test"] {
            assert!(cacheable(path), "{path}");
        }
        for path in [
            "/domains/a.test/dns",
            "/domains/a.test/directory",
            "/domains/",
            "/tokens",
            "/admins",
            "/queue",
            "/",
            "",
        ] {
            assert!(!cacheable(path), "{path}");
        }
    }

    #[test]
    fn scopes_never_share_a_key() {
        let admin = Principal {
            name: "alice".parse().unwrap(),
            role: postern_store::model::Role::Admin,
            domains: None,
            access: postern_store::model::Access::Read,
            expires_at: None,
            actor: "api:alice/t".into(),
        };
        let narrowed =
            Principal { domains: Some(vec!["a.test".parse().unwrap()]), ..admin.clone() };
        let domain_admin =
            Principal { role: postern_store::model::Role::DomainAdmin, ..narrowed.clone() };
        let other_name = Principal { name: "bob".parse().unwrap(), ..admin.clone() };
        let keys = [&admin, &narrowed, &domain_admin].map(|p| key(p, "/domains"));
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[1], keys[2]);
        assert_ne!(keys[0], keys[2]);
        // Who the caller is does not matter, only what it may see.
        assert_eq!(key(&other_name, "/domains"), keys[0]);
        assert_ne!(key(&admin, "/domains?limit=1"), keys[0]);
    }

    #[test]
    fn an_entry_lasts_until_the_revision_moves() {
        let (tx, rx) = watch::channel(7);
        let cache = ResponseCache::new(rx);
        cache.insert("k".into(), entry(&b"[1]"[..]), 7);
        assert_eq!(cache.get("k").unwrap().0, Bytes::from_static(b"[1]"));
        tx.send(8).unwrap();
        assert!(cache.get("k").is_none(), "a change empties it");
        // Made before the change, kept after it: not kept.
        cache.insert("k".into(), entry(&b"[1]"[..]), 7);
        assert!(cache.get("k").is_none());
        assert_eq!(cache.len(), 0);
        cache.insert("k".into(), entry(&b"[2]"[..]), 8);
        assert_eq!(cache.get("k").unwrap().0, Bytes::from_static(b"[2]"));
    }

    #[test]
    fn the_oldest_answers_go_first_past_the_bounds() {
        let (_tx, rx) = watch::channel(1);
        let cache = ResponseCache::new(rx);
        for i in 0..MAX_ENTRIES + 10 {
            cache.insert(format!("k{i}"), entry(&b"{}"[..]), 1);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert!(cache.get("k0").is_none() && cache.get("k9").is_none());
        assert!(cache.get("k10").is_some());
        // Bytes: a few large answers push the small ones out.
        for i in 0..4 {
            cache.insert(format!("big{i}"), entry(vec![b' '; MAX_BYTES / 4]), 1);
        }
        let entries = cache.entries.read().unwrap();
        assert!(entries.bytes <= MAX_BYTES, "{}", entries.bytes);
        assert_eq!(entries.map.len(), entries.order.len());
        assert!(entries.map.contains_key("big3"));
    }

    #[test]
    fn if_none_match_is_compared_weakly() {
        let tag = etag(b"{}");
        let mut headers = HeaderMap::new();
        assert!(!not_modified(&headers, &tag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!not_modified(&headers, &tag));
        let listed = format!("\"other\", W/{}", tag.to_str().unwrap());
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&listed).unwrap());
        assert!(not_modified(&headers, &tag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(not_modified(&headers, &tag));
        assert_ne!(etag(b"{}"), etag(b"[]"));
    }
}
