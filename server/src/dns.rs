//! DNS behind a small trait: what delivery needs to know (MX records, host addresses, TXT), with
//! answers that tell "no such name" from "no such record" from "ask again later". The real
//! resolver is hickory's, built once per process from the boot configuration's `[dns] servers`
//! (or /etc/resolv.conf) and shared by delivery, MTA-STS and DKIM; [`ScriptedResolver`] serves
//! tests.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Mutex;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use thiserror::Error;

/// Why a lookup gave no records. Only the first two are facts about the name: a temporary
/// failure says nothing about it, and must never turn into a bounce.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DnsError {
    /// NXDOMAIN: the name does not exist.
    #[error("{name} does not exist (NXDOMAIN)")]
    NxDomain { name: String },
    /// NODATA: the name exists, without records of this type.
    #[error("{name} has no {kind} record")]
    NoData { name: String, kind: &'static str },
    /// SERVFAIL, a timeout, a network error, or no usable DNS configuration.
    #[error("lookup of {kind} for {name} failed: {why}")]
    Temporary { name: String, kind: &'static str, why: String },
}

impl DnsError {
    pub fn is_temporary(&self) -> bool {
        matches!(self, DnsError::Temporary { .. })
    }
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxRecord {
    pub preference: u16,
    /// Lower case, without the trailing dot; "." is the root, as in a null MX (RFC 7505).
    pub exchange: String,
}

pub type DnsFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DnsError>> + Send + 'a>>;

/// The lookups delivery needs. Names are absolute: no search list applies.
pub trait Resolver: Send + Sync {
    fn mx<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<MxRecord>>;
    fn ipv4<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<Ipv4Addr>>;
    fn ipv6<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<Ipv6Addr>>;
    /// TXT records, each as the concatenation of its character-strings (RFC 7208 §3.3 and
    /// RFC 8461 §3.1 read a record that way), lossily decoded as UTF-8.
    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<String>>;
    /// A records with how long they may be kept (the answer's smallest TTL, in seconds), for
    /// caches such as the blocklists'; a resolver that does not know says [`DEFAULT_TTL`].
    fn ipv4_ttl<'a>(&'a self, name: &'a str) -> DnsFuture<'a, (Vec<Ipv4Addr>, u32)> {
        Box::pin(async move { self.ipv4(name).await.map(|ips| (ips, DEFAULT_TTL)) })
    }
    /// The names a PTR lookup of `ip` gives (RFC 1035 §3.5: `in-addr.arpa`, RFC 3596 §2.5:
    /// `ip6.arpa`), lower case without the trailing dot. A resolver that cannot ask says so as
    /// a temporary failure.
    fn ptr<'a>(&'a self, ip: IpAddr) -> DnsFuture<'a, Vec<String>> {
        Box::pin(async move {
            Err(DnsError::Temporary {
                name: reverse_name(ip),
                kind: "PTR",
                why: "this resolver does not look up PTR records".into(),
            })
        })
    }
}

/// The name a PTR lookup of `ip` asks for: `4.3.2.1.in-addr.arpa`, or the nibbles of an IPv6
/// address under `ip6.arpa`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut labels: Vec<String> = v6
                .octets()
                .iter()
                .flat_map(|byte| [byte >> 4, byte & 0xf])
                .map(|nibble| format!("{nibble:x}"))
                .collect();
            labels.reverse();
            format!("{}.ip6.arpa", labels.join("."))
        }
    }
}

/// The TTL assumed when a resolver does not tell (Postfix's postscreen caches for at least a
/// minute and at most an hour; five minutes is in between).
pub const DEFAULT_TTL: u32 = 300;

/// Lower case, no trailing dot: the one spelling names are compared in.
fn normal(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    match name.strip_suffix('.') {
        Some("") | None => name,
        Some(stripped) => stripped.to_string(),
    }
}

/// hickory-resolver, asking the configured servers or the system's (/etc/resolv.conf).
#[derive(Clone)]
pub struct HickoryResolver {
    inner: TokioResolver,
}

impl HickoryResolver {
    pub fn from_system() -> Result<HickoryResolver, String> {
        HickoryResolver::new(&[])
    }

    /// Asks `servers` (UDP, then TCP for truncated answers), in order; none means the system's
    /// configuration. A name is never completed from a search list (see `records`).
    pub fn new(servers: &[SocketAddr]) -> Result<HickoryResolver, String> {
        if servers.is_empty() {
            let builder = TokioResolver::builder_tokio().map_err(|e| e.to_string())?;
            return Ok(HickoryResolver { inner: builder.build().map_err(|e| e.to_string())? });
        }
        let name_servers = servers
            .iter()
            .map(|server| {
                let mut config = NameServerConfig::udp_and_tcp(server.ip());
                for connection in &mut config.connections {
                    connection.port = server.port();
                }
                config
            })
            .collect();
        let config = ResolverConfig::from_name_servers(name_servers);
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(ResolverOpts::default())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HickoryResolver { inner })
    }

    /// The hickory resolver itself, for libraries that take one (mail-auth's
    /// `MessageAuthenticator`), so that they ask the same servers with the same cache.
    pub fn hickory(&self) -> &TokioResolver {
        &self.inner
    }

    async fn records(&self, name: &str, kind: &'static str) -> Result<Vec<RData>, DnsError> {
        // The trailing dot makes the name absolute, so that resolv.conf's search list and
        // ndots never turn a mail domain into a local one.
        let fqdn = format!("{}.", normal(name));
        let lookup = match kind {
            "MX" => self.inner.mx_lookup(fqdn.as_str()).await,
            "A" => self.inner.ipv4_lookup(fqdn.as_str()).await,
            "TXT" => self.inner.txt_lookup(fqdn.as_str()).await,
            _ => self.inner.ipv6_lookup(fqdn.as_str()).await,
        };
        match lookup {
            Ok(lookup) => Ok(lookup.answers().iter().map(|r| r.data.clone()).collect()),
            Err(e) => Err(classify(&e, name, kind)),
        }
    }
}

/// Only an authoritative-looking negative answer (NXDOMAIN, or NOERROR without records) is a
/// fact; every other failure may pass.
fn classify(error: &NetError, name: &str, kind: &'static str) -> DnsError {
    let name = normal(name);
    if error.is_nx_domain() {
        return DnsError::NxDomain { name };
    }
    if let NetError::Dns(hickory_resolver::net::DnsError::NoRecordsFound(none)) = error
        && none.response_code == ResponseCode::NoError
    {
        return DnsError::NoData { name, kind };
    }
    DnsError::Temporary { name, kind, why: error.to_string() }
}

/// NODATA when an answer held only other types (a CNAME chain without the wanted record).
fn non_empty<T>(items: Vec<T>, name: &str, kind: &'static str) -> Result<Vec<T>, DnsError> {
    if items.is_empty() { Err(DnsError::NoData { name: normal(name), kind }) } else { Ok(items) }
}

impl Resolver for HickoryResolver {
    fn ipv4_ttl<'a>(&'a self, name: &'a str) -> DnsFuture<'a, (Vec<Ipv4Addr>, u32)> {
        Box::pin(async move {
            let fqdn = format!("{}.", normal(name));
            let lookup =
                self.inner.ipv4_lookup(fqdn.as_str()).await.map_err(|e| classify(&e, name, "A"))?;
            let mut ttl = u32::MAX;
            let mut ips = Vec::new();
            for record in lookup.answers() {
                if let RData::A(a) = &record.data {
                    ips.push(a.0);
                    ttl = ttl.min(record.ttl);
                }
            }
            non_empty(ips, name, "A").map(|ips| (ips, ttl))
        })
    }

    fn mx<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<MxRecord>> {
        Box::pin(async move {
            let records = self.records(name, "MX").await?;
            let mx = records
                .into_iter()
                .filter_map(|data| match data {
                    RData::MX(mx) => Some(MxRecord {
                        preference: mx.preference,
                        exchange: normal(&mx.exchange.to_ascii()),
                    }),
                    _ => None,
                })
                .collect();
            non_empty(mx, name, "MX")
        })
    }

    fn ipv4<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<Ipv4Addr>> {
        Box::pin(async move {
            let records = self.records(name, "A").await?;
            let ips = records
                .into_iter()
                .filter_map(|data| match data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            non_empty(ips, name, "A")
        })
    }

    fn ipv6<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<Ipv6Addr>> {
        Box::pin(async move {
            let records = self.records(name, "AAAA").await?;
            let ips = records
                .into_iter()
                .filter_map(|data| match data {
                    RData::AAAA(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            non_empty(ips, name, "AAAA")
        })
    }

    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<String>> {
        Box::pin(async move {
            let records = self.records(name, "TXT").await?;
            let texts = records
                .into_iter()
                .filter_map(|data| match data {
                    RData::TXT(txt) => Some(String::from_utf8_lossy(&txt.txt_data.concat()).into()),
                    _ => None,
                })
                .collect();
            non_empty(texts, name, "TXT")
        })
    }

    fn ptr<'a>(&'a self, ip: IpAddr) -> DnsFuture<'a, Vec<String>> {
        Box::pin(async move {
            let name = reverse_name(ip);
            let fqdn = format!("{name}.");
            let names = match self.inner.reverse_lookup(fqdn.as_str()).await {
                Ok(lookup) => lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::PTR(ptr) => Some(normal(&ptr.0.to_ascii())),
                        _ => None,
                    })
                    .collect(),
                Err(e) => return Err(classify(&e, &name, "PTR")),
            };
            non_empty(names, &name, "PTR")
        })
    }
}

/// A resolver for when the system's DNS configuration could not be read: every lookup fails
/// temporarily, so that mail waits in the queue until an administrator fixes it.
#[derive(Debug, Clone)]
pub struct UnconfiguredResolver {
    pub why: String,
}

impl UnconfiguredResolver {
    fn fail<T>(&self, name: &str, kind: &'static str) -> Result<T, DnsError> {
        Err(DnsError::Temporary { name: normal(name), kind, why: self.why.clone() })
    }
}

impl Resolver for UnconfiguredResolver {
    fn mx<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<MxRecord>> {
        Box::pin(async move { self.fail(name, "MX") })
    }
    fn ipv4<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<Ipv4Addr>> {
        Box::pin(async move { self.fail(name, "A") })
    }
    fn ipv6<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<Ipv6Addr>> {
        Box::pin(async move { self.fail(name, "AAAA") })
    }
    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<String>> {
        Box::pin(async move { self.fail(name, "TXT") })
    }
    fn ptr<'a>(&'a self, ip: IpAddr) -> DnsFuture<'a, Vec<String>> {
        Box::pin(async move { self.fail(&reverse_name(ip), "PTR") })
    }
}

#[derive(Debug, Clone, Default)]
struct Zone {
    mx: Vec<MxRecord>,
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    txt: Vec<String>,
    ptr: Vec<String>,
    temporary: bool,
}

/// Answers from a script, for tests: a name never mentioned is NXDOMAIN, a name mentioned
/// without records of the asked type is NODATA, and a name marked temporary fails every
/// lookup temporarily. Every query is recorded ("MX example.test").
#[derive(Debug, Default)]
pub struct ScriptedResolver {
    zones: Mutex<HashMap<String, Zone>>,
    queries: Mutex<Vec<String>>,
}

impl ScriptedResolver {
    pub fn new() -> ScriptedResolver {
        ScriptedResolver::default()
    }

    fn edit(&self, name: &str, change: impl FnOnce(&mut Zone)) {
        let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        change(zones.entry(normal(name)).or_default());
    }

    /// Adds an MX record; `exchange` "." makes a null MX.
    pub fn mx(self, name: &str, preference: u16, exchange: &str) -> Self {
        let record = MxRecord { preference, exchange: normal(exchange) };
        self.edit(name, |z| z.mx.push(record));
        self
    }

    /// Adds an A or AAAA record.
    pub fn address(self, name: &str, ip: IpAddr) -> Self {
        self.edit(name, |z| match ip {
            IpAddr::V4(ip) => z.v4.push(ip),
            IpAddr::V6(ip) => z.v6.push(ip),
        });
        self
    }

    /// Adds a TXT record (one string: the character-strings already joined).
    pub fn txt(self, name: &str, text: &str) -> Self {
        self.edit(name, |z| z.txt.push(text.to_string()));
        self
    }

    /// Adds a PTR record for `ip` (at its `in-addr.arpa` or `ip6.arpa` name).
    pub fn ptr(self, ip: IpAddr, name: &str) -> Self {
        let target = normal(name);
        self.edit(&reverse_name(ip), |z| z.ptr.push(target));
        self
    }

    /// Replaces the name's TXT records after the resolver is in use (an MTA-STS policy id
    /// that changes); no records leaves the name existing without TXT (NODATA).
    pub fn set_txt(&self, name: &str, texts: &[&str]) {
        self.edit(name, |z| z.txt = texts.iter().map(|t| t.to_string()).collect());
    }

    /// Adds an A or AAAA record after the resolver is in use (a list that starts listing).
    pub fn add_address(&self, name: &str, ip: IpAddr) {
        self.edit(name, |z| match ip {
            IpAddr::V4(ip) => z.v4.push(ip),
            IpAddr::V6(ip) => z.v6.push(ip),
        });
    }

    /// Makes the name exist without records (NODATA for every type).
    pub fn exists(self, name: &str) -> Self {
        self.edit(name, |_| {});
        self
    }

    /// Makes every lookup of the name fail temporarily (as SERVFAIL or a timeout would).
    pub fn temporary(self, name: &str) -> Self {
        self.edit(name, |z| z.temporary = true);
        self
    }

    /// The queries asked so far, in order: "MX example.test", "A mx1.example.test".
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn answer<T>(
        &self,
        name: &str,
        kind: &'static str,
        pick: impl FnOnce(&Zone) -> Vec<T>,
    ) -> Result<Vec<T>, DnsError> {
        let name = normal(name);
        self.queries.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{kind} {name}"));
        let zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        match zones.get(&name) {
            None => Err(DnsError::NxDomain { name }),
            Some(zone) if zone.temporary => {
                Err(DnsError::Temporary { name, kind, why: "SERVFAIL (scripted)".into() })
            }
            Some(zone) => non_empty(pick(zone), &name, kind),
        }
    }
}

impl Resolver for ScriptedResolver {
    fn mx<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<MxRecord>> {
        Box::pin(async move { self.answer(name, "MX", |z| z.mx.clone()) })
    }
    fn ipv4<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<Ipv4Addr>> {
        Box::pin(async move { self.answer(name, "A", |z| z.v4.clone()) })
    }
    fn ipv6<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<Ipv6Addr>> {
        Box::pin(async move { self.answer(name, "AAAA", |z| z.v6.clone()) })
    }
    fn txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<String>> {
        Box::pin(async move { self.answer(name, "TXT", |z| z.txt.clone()) })
    }
    fn ptr<'a>(&'a self, ip: IpAddr) -> DnsFuture<'a, Vec<String>> {
        Box::pin(async move { self.answer(&reverse_name(ip), "PTR", |z| z.ptr.clone()) })
    }
}
