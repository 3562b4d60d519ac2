//! What every request and response passes through first and last: the `Host:` allow-list
//! (DNS rebinding), the redirect from plain HTTP to HTTPS, and the headers every response
//! carries (no framing, no sniffing, no caching of pages that show secrets, HSTS over HTTPS).

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::conn::LocalAddr;
use crate::error::{ErrorBody, ErrorDetail};
use crate::state::AppState;

/// One year, the usual HSTS lifetime. No `includeSubDomains`: the appliance's name may be a
/// subdomain of names it does not serve.
const HSTS: &str = "max-age=31536000";

pub async fn edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let settings = &state.settings;
    let local = request.extensions().get::<LocalAddr>().map(|l| l.0.ip());
    let host = request.headers().get(header::HOST).map(|v| v.to_str().map(host_name));
    let redirect = (!settings.https && settings.options.redirect_http)
        .then_some(settings.https_port)
        .flatten();
    let mut response = match host {
        Some(Err(_)) => misdirected(request.uri().path()),
        Some(Ok(name)) if !answers(&name, request.uri().path(), &state, local) => {
            misdirected(request.uri().path())
        }
        // No Host at all is not a browser (which always sends one), so not DNS rebinding.
        host => match redirect {
            Some(port) => {
                let host = host.and_then(Result::ok);
                to_https(&request, host.as_deref().unwrap_or(&settings.hostname), port)
            }
            None => next.run(request).await,
        },
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (HeaderName::from_static("referrer-policy"), "same-origin"),
        // Pages show new tokens, one-time passwords, mail addresses: none of it belongs in a
        // cache or the back-forward history. Static assets say otherwise for themselves.
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    if settings.https {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    response
}

/// The host part of a `Host:` value, lower case, without port or trailing dot.
fn host_name(value: &str) -> String {
    let value = value.trim();
    let name = if let Some(rest) = value.strip_prefix('[') {
        // An IPv6 literal: [::1]:8080.
        rest.split(']').next().unwrap_or("")
    } else {
        value.rsplit_once(':').map_or(value, |(name, _port)| name)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// True for a name the console answers to: its host name, a configured name, the address the
/// connection came in on, or `localhost` on loopback. A name an attacker's DNS could point at
/// us is none of these.
fn allowed(name: &str, state: &AppState, local: Option<IpAddr>) -> bool {
    let settings = &state.settings;
    if name.eq_ignore_ascii_case(&settings.hostname)
        || settings.options.hosts.iter().any(|h| h.as_str().eq_ignore_ascii_case(name))
    {
        return true;
    }
    match (name.parse::<IpAddr>(), local) {
        (Ok(ip), Some(local)) => ip.to_canonical() == local.to_canonical(),
        // In-process callers (tests) have no socket: an address literal cannot be rebound.
        (Ok(_), None) => true,
        (Err(_), local) => name == "localhost" && local.is_none_or(|ip| ip.is_loopback()),
    }
}

/// Whether a request for `path` naming `name` is ours: any path for a name the console answers
/// to, and the MTA-STS policy file (and nothing else) for `mta-sts.<domain>`.
fn answers(name: &str, path: &str, state: &AppState, local: Option<IpAddr>) -> bool {
    allowed(name, state, local)
        || (path == crate::mta_sts::POLICY_PATH && crate::mta_sts::policy_domain(name).is_some())
}

/// 421 Misdirected Request (RFC 9110 §15.5.20): this server does not answer for that name.
fn misdirected(path: &str) -> Response {
    let message = "this console does not answer to that host name; add it to [console] hosts \
                   in postern.toml if it is the console's";
    if path.starts_with("/api/") {
        let body = ErrorBody {
            error: ErrorDetail { code: "misdirected", message: message.into(), field: None },
        };
        (StatusCode::MISDIRECTED_REQUEST, axum::Json(body)).into_response()
    } else {
        (StatusCode::MISDIRECTED_REQUEST, format!("{message}\n")).into_response()
    }
}

/// 307 to the same path over HTTPS: temporary, so that turning HTTPS off again is not undone
/// by browsers' caches; HSTS on the HTTPS side is what makes it stick.
fn to_https(request: &Request, host: &str, port: u16) -> Response {
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    let port = if port == 443 { String::new() } else { format!(":{port}") };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    let mut headers = HeaderMap::new();
    match HeaderValue::from_str(&location) {
        Ok(value) => headers.insert(header::LOCATION, value),
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (StatusCode::TEMPORARY_REDIRECT, headers).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_name_loses_its_port_and_case() {
        assert_eq!(host_name("Mail.Example.com:8080"), "mail.example.com");
        assert_eq!(host_name("mail.example.com."), "mail.example.com");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
    }
}
