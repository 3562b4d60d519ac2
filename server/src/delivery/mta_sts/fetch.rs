//! The HTTPS fetch of a policy file (RFC 8461 §3.3): a certificate valid for the policy host,
//! no redirects, 200 only, `text/plain`, a size and a time limit. Names resolve through our
//! DNS seam, so that tests can point `mta-sts.<domain>` at a server on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postern_store::model::DomainName;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::CONTENT_TYPE;
use rustls::pki_types::CertificateDer;

use super::policy::{self, Policy};
use crate::delivery::{mx, tls};
use crate::dns::Resolver;

/// §3.3 lets a sender limit the policy body to 64 KiB: larger is refused, not cut.
pub const MAX_BODY: usize = 64 * 1024;

/// Fetches policy files.
pub struct Fetcher {
    client: reqwest::Client,
    port: u16,
    timeout: Duration,
}

impl Fetcher {
    /// `extra_roots` are trusted besides the web PKI; `port` is the policy host's (443 but in
    /// tests); `timeout` bounds the whole fetch, body included.
    pub fn new(
        resolver: Arc<dyn Resolver>,
        extra_roots: &[CertificateDer<'static>],
        port: u16,
        timeout: Duration,
    ) -> Result<Fetcher, String> {
        // The same verifying configuration as SMTP's `verify`: webpki-roots and aws-lc-rs.
        let tls = tls::verifying(extra_roots)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            // §3.3: "HTTP 3xx redirects MUST NOT be followed": a redirect is a non-200 reply.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, past our DNS.
            .no_proxy()
            .dns_resolver(Arc::new(ViaResolver(resolver)))
            .timeout(timeout)
            .user_agent(concat!("postern/", env!("CARGO_PKG_VERSION"), " (MTA-STS)"))
            .build()
            .map_err(|e| format!("cannot build the HTTPS client: {e}"))?;
        Ok(Fetcher { client, port, timeout })
    }

    /// The URL of `domain`'s policy file (§3.3): always HTTPS, on the policy host
    /// `mta-sts.<domain>`.
    pub fn url(&self, domain: &str) -> String {
        match self.port {
            443 => format!("https://mta-sts.{domain}/.well-known/mta-sts.txt"),
            port => format!("https://mta-sts.{domain}:{port}/.well-known/mta-sts.txt"),
        }
    }

    /// Fetches and parses `domain`'s policy; `Err` says why there is none.
    pub async fn fetch(&self, domain: &str) -> Result<Policy, String> {
        let url = self.url(domain);
        // The client's timeout covers the body too; this one also covers DNS, whatever the
        // resolver does.
        match tokio::time::timeout(self.timeout, self.get(&url)).await {
            Ok(result) => result.map_err(|why| format!("{url}: {why}")),
            Err(_) => Err(format!("{url}: timed out after {:?}", self.timeout)),
        }
    }

    async fn get(&self, url: &str) -> Result<Policy, String> {
        // HTTP caching must not be used (§3.3); reqwest has no cache, and asks none of proxies.
        let mut response = self.client.get(url).send().await.map_err(|e| describe(&e))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(format!("answered {status}"));
        }
        // §3.2: senders SHOULD check for text/plain, against servers where users can place
        // other content at any path.
        let media = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        if media.as_deref() != Some("text/plain") {
            return Err(format!("media type {media:?}, not text/plain"));
        }
        if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(format!("body over {MAX_BODY} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("body over {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let text = std::str::from_utf8(&body).map_err(|_| "body is not UTF-8".to_string())?;
        policy::parse(text).map_err(|why| format!("invalid policy: {why}"))
    }
}

/// reqwest's error with its causes: the top one alone says only "error sending request".
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// reqwest's name resolution through our [`Resolver`]: the addresses of a host as MX
/// delivery would find them, IPv6 first.
struct ViaResolver(Arc<dyn Resolver>);

impl Resolve for ViaResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.0.clone();
        let name = name.as_str().to_string();
        Box::pin(async move {
            let host: DomainName = name.parse().map_err(|e| format!("{name}: {e}"))?;
            let ips = mx::addresses(resolver.as_ref(), &host).await?;
            // Port 0 takes the URL's port (hyper-util fills it in).
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}
