//! The client's reverse DNS name (a PTR lookup, RFC 1035 §3.5), looked up once per session and
//! only when some access rule matches on it: most configurations never pay for it.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::{Name, RData};

/// A PTR answer slower than this counts as none: the rule then does not match.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The first PTR name of `ip`, lowercase without the final dot; `None` without one (or on any
/// DNS failure: a rule on the name then does not match, and the session goes on).
pub async fn reverse_name(ip: IpAddr) -> Option<String> {
    static RESOLVER: OnceLock<Option<TokioResolver>> = OnceLock::new();
    let resolver =
        RESOLVER.get_or_init(|| TokioResolver::builder_tokio().ok()?.build().ok()).as_ref()?;
    let lookup =
        tokio::time::timeout(TIMEOUT, resolver.reverse_lookup(Name::from(ip))).await.ok()?.ok()?;
    lookup.answers().iter().find_map(|r| match &r.data {
        RData::PTR(ptr) => {
            let name = ptr.0.to_string().to_ascii_lowercase();
            Some(name.strip_suffix('.').unwrap_or(&name).to_string())
        }
        _ => None,
    })
}
