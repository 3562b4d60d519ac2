//! `https://mta-sts.<domain>/.well-known/mta-sts.txt` (RFC 8461 §3.2): the policy file of a
//! domain that publishes one, on the console's HTTPS listener (which presents the certificate
//! for `mta-sts.<domain>` by SNI). Anyone may fetch it: it is public by design.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use postern_store::model::DomainName;

use crate::state::AppState;

/// The path senders fetch (§3.3).
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";

/// The domain whose policy host `host` is: `mta-sts.example.com` -> `example.com`.
pub fn policy_domain(host: &str) -> Option<DomainName> {
    host.strip_prefix("mta-sts.")?.parse().ok()
}

pub async fn policy(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(|h| {
        h.rsplit_once(':').map_or(h, |(name, _)| name).trim_end_matches('.').to_ascii_lowercase()
    });
    let Some(domain) = host.as_deref().and_then(policy_domain) else {
        return not_found();
    };
    match state.store.mta_sts_policy(&domain).await {
        Ok(Some(policy)) => {
            let mut response = policy.text(&state.settings.hostname).into_response();
            // §3.2: the media type is text/plain.
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        Ok(None) => not_found(),
        Err(e) => {
            tracing::warn!(error = %e, %domain, "cannot read the MTA-STS policy");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no MTA-STS policy is published for this name\n").into_response()
}
