//! Refuses a state change that a browser says comes from another site (Fetch Metadata
//! `Sec-Fetch-Site`, then `Origin` against `Host` and the listener's scheme). Scripts with a
//! bearer token send neither and pass; the CSRF token on console forms is the second line
//! (see `session`).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::WebError;

pub async fn refuse_cross_site(
    State(state): State<crate::AppState>,
    request: Request,
    next: Next,
) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && is_cross_site(request.headers(), state.settings.https) {
        return WebError::Forbidden("cross-site requests may not change anything".into())
            .into_response();
    }
    next.run(request).await
}

/// `https` says the request came over HTTPS: then an `http://` origin is another origin (a page
/// anyone on the path could have written), even with our host name. Over plain HTTP an
/// `https://` origin with our name is taken, as a reverse proxy that terminates TLS sends.
fn is_cross_site(headers: &HeaderMap, https: bool) -> bool {
    let text = |name| headers.get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        // same-site still means another origin (a sibling subdomain could be hostile).
        return !matches!(site, "same-origin" | "none");
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => {
            let Some((scheme, authority)) = origin.split_once("://") else { return true };
            let scheme_ok = match scheme.to_ascii_lowercase().as_str() {
                "https" => true,
                "http" => !https,
                _ => false,
            };
            !scheme_ok || !authority.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn tells_cross_site_from_same_origin() {
        for https in [false, true] {
            assert!(!is_cross_site(&headers(&[]), https));
            assert!(!is_cross_site(&headers(&[("sec-fetch-site", "same-origin")]), https));
            assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")]), https));
            assert!(is_cross_site(&headers(&[("sec-fetch-site", "same-site")]), https));
            assert!(is_cross_site(
                &headers(&[("origin", "http://evil"), ("host", "a:8080")]),
                https
            ));
            assert!(is_cross_site(&headers(&[("origin", "null"), ("host", "a")]), https));
            assert!(is_cross_site(&headers(&[("origin", "a:8080"), ("host", "a:8080")]), https));
            assert!(is_cross_site(
                &headers(&[("origin", "ftp://a:8080"), ("host", "a:8080")]),
                https
            ));
            let secure = headers(&[("origin", "https://a:8443"), ("host", "a:8443")]);
            assert!(!is_cross_site(&secure, https));
        }
        let plain = headers(&[("origin", "http://a:8080"), ("host", "a:8080")]);
        assert!(!is_cross_site(&plain, false));
        assert!(is_cross_site(&plain, true), "an http:// page may not post to the HTTPS console");
    }
}
