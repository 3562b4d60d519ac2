//! DNS blocklists: the configured lists (DNSBLs for client addresses, RHSBLs for domain names),
//! the score that refuses a client, and the whitelist that is never checked. How a list is asked
//! (RFC 5782) and how its answers score is decided here, once, so that the engine, the console's
//! live test and `postern dnsbl test` agree; the lookups themselves are the engine's.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::DomainName;
use crate::error::StoreError;

/// Postscreen's `postscreen_dnsbl_threshold` default: one listing with weight 1 refuses.
pub const DEFAULT_THRESHOLD: i64 = 1;
/// Weights and the threshold stay within this, either sign (a negative weight is an allow-list
/// such as list.dnswl.org, as in postscreen).
pub const MAX_WEIGHT: i64 = 1000;

/// What a list is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    /// A DNSBL: the client's address, octets (IPv4) or nibbles (IPv6) reversed (RFC 5782 §2.1,
    /// §2.4).
    Ip,
    /// An RHSBL: the sender's domain and the HELO name (RFC 5782 §2.2).
    Domain,
}

impl ListKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Ip => "ip",
            ListKind::Domain => "domain",
        }
    }
}

impl fmt::Display for ListKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ListKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ip" | "dnsbl" => Ok(ListKind::Ip),
            "domain" | "rhsbl" => Ok(ListKind::Domain),
            other => Err(StoreError::invalid("kind", format!("{other:?} is not ip or domain"))),
        }
    }
}

/// One accepted answer, or a set of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Exact(Ipv4Addr),
    /// Inclusive.
    Range(Ipv4Addr, Ipv4Addr),
    /// Postfix's `zone&0.0.0.4`: an answer with any of these bits set.
    Mask(u32),
}

/// Which A records of a list count as a listing. Empty: any answer in 127.0.0.0/8 except
/// 127.255.255.0/24, which Spamhaus and others use for "you may not query" errors. An answer
/// outside 127.0.0.0/8 never counts (RFC 5782 §2.1: a resolver that rewrites NXDOMAIN, or a
/// list whose domain expired, must not block the world).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnCodes(Vec<Code>);

impl ReturnCodes {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `answer` counts as a listing.
    pub fn matches(&self, answer: Ipv4Addr) -> bool {
        if answer.octets()[0] != 127 {
            return false;
        }
        if self.0.is_empty() {
            return answer.octets()[..3] != [127, 255, 255];
        }
        let value = u32::from(answer);
        self.0.iter().any(|code| match *code {
            Code::Exact(ip) => ip == answer,
            Code::Range(low, high) => (u32::from(low)..=u32::from(high)).contains(&value),
            Code::Mask(mask) => value & mask != 0,
        })
    }
}

impl FromStr for ReturnCodes {
    type Err = StoreError;

    /// `127.0.0.2`, `127.0.0.10-11` (or `127.0.0.10-127.0.0.11`), `&0.0.0.4` (or `&4`),
    /// separated by commas or spaces.
    fn from_str(input: &str) -> Result<Self, StoreError> {
        let bad = |item: &str, why: &str| {
            StoreError::invalid(
                "codes",
                format!(
                    "{item:?} {why} (write 127.0.0.2, a range 127.0.0.10-11, or a bitmask &0.0.0.4)"
                ),
            )
        };
        let mut codes = Vec::new();
        for item in input.split([',', ' ', '\t']).map(str::trim).filter(|s| !s.is_empty()) {
            let code = if let Some(mask) = item.strip_prefix('&') {
                let mask = match mask.parse::<Ipv4Addr>() {
                    Ok(ip) => u32::from(ip),
                    Err(_) => mask.parse::<u8>().map_err(|_| bad(item, "is not a bitmask"))?.into(),
                };
                if mask == 0 {
                    return Err(bad(item, "matches nothing"));
                }
                Code::Mask(mask)
            } else if let Some((low, high)) = item.split_once('-') {
                let low: Ipv4Addr =
                    low.parse().map_err(|_| bad(item, "is not an address range"))?;
                let high = match high.parse::<Ipv4Addr>() {
                    Ok(ip) => ip,
                    Err(_) => {
                        let last: u8 =
                            high.parse().map_err(|_| bad(item, "is not an address range"))?;
                        let [a, b, c, _] = low.octets();
                        Ipv4Addr::new(a, b, c, last)
                    }
                };
                if low > high {
                    return Err(bad(item, "ends before it starts"));
                }
                Code::Range(low, high)
            } else {
                Code::Exact(item.parse().map_err(|_| bad(item, "is not an IPv4 address"))?)
            };
            if let Code::Exact(ip) | Code::Range(ip, _) = code
                && ip.octets()[0] != 127
            {
                return Err(bad(item, "is outside 127.0.0.0/8, where lists answer (RFC 5782)"));
            }
            codes.push(code);
        }
        Ok(ReturnCodes(codes))
    }
}

impl fmt::Display for ReturnCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .0
            .iter()
            .map(|code| match *code {
                Code::Exact(ip) => ip.to_string(),
                Code::Range(low, high) => format!("{low}-{high}"),
                Code::Mask(mask) => format!("&{}", Ipv4Addr::from(mask)),
            })
            .collect();
        f.write_str(&items.join(","))
    }
}

impl Serialize for ReturnCodes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ReturnCodes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// One configured list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocklist {
    pub zone: DomainName,
    pub kind: ListKind,
    pub weight: i64,
    /// Which answers count; empty for any listing.
    pub codes: ReturnCodes,
    pub description: String,
    pub created_at: i64,
}

/// A list to add.
#[derive(Debug, Clone)]
pub struct NewBlocklist {
    pub zone: DomainName,
    pub kind: ListKind,
    pub weight: i64,
    pub codes: ReturnCodes,
    pub description: String,
}

/// Checks a weight or threshold typed by an administrator.
pub fn check_weight(field: &'static str, value: i64) -> Result<i64, StoreError> {
    if !(-MAX_WEIGHT..=MAX_WEIGHT).contains(&value) {
        return Err(StoreError::invalid(
            field,
            format!("{value} is outside -{MAX_WEIGHT}..{MAX_WEIGHT}"),
        ));
    }
    Ok(value)
}

/// A client or sender that is never checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WhitelistEntry {
    /// Clients in this network.
    Network(IpNet),
    /// Senders in this domain or below it (the envelope sender, which a client chooses: whitelist
    /// networks where you can).
    Domain(DomainName),
}

impl WhitelistEntry {
    /// Applies to this client or this sender's domain.
    pub fn covers(&self, client: IpAddr, sender_domain: Option<&DomainName>) -> bool {
        match self {
            WhitelistEntry::Network(net) => net.contains(&client),
            WhitelistEntry::Domain(d) => sender_domain.is_some_and(|s| s.is_within(d)),
        }
    }
}

impl FromStr for WhitelistEntry {
    type Err = StoreError;
    fn from_str(input: &str) -> Result<Self, StoreError> {
        let input = input.trim();
        if input.contains(['/', ':']) || input.parse::<IpAddr>().is_ok() {
            return Ok(WhitelistEntry::Network(super::parse_cidr(input)?));
        }
        input.parse().map(WhitelistEntry::Domain).map_err(|_| {
            StoreError::invalid(
                "entry",
                format!("{input:?} is neither a network (192.0.2.0/24) nor a domain"),
            )
        })
    }
}

impl fmt::Display for WhitelistEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WhitelistEntry::Network(net) => write!(f, "{net}"),
            WhitelistEntry::Domain(d) => write!(f, "{d}"),
        }
    }
}

impl Serialize for WhitelistEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// The lists, the threshold and the whitelist, as the engine's snapshot holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dnsbl {
    pub lists: Vec<Blocklist>,
    pub threshold: i64,
    pub whitelist: Vec<WhitelistEntry>,
}

impl Default for Dnsbl {
    fn default() -> Self {
        Dnsbl { lists: Vec::new(), threshold: DEFAULT_THRESHOLD, whitelist: Vec::new() }
    }
}

impl Dnsbl {
    pub fn is_whitelisted(&self, client: IpAddr, sender_domain: Option<&DomainName>) -> bool {
        self.whitelist.iter().any(|w| w.covers(client, sender_domain))
    }
}

/// The name to look up for `ip` in `zone` (RFC 5782 §2.1 and §2.4): `2.0.0.127.zone`, or the 32
/// nibbles of an IPv6 address, least significant first. An IPv4-mapped IPv6 address is asked as
/// the IPv4 address it is.
pub fn ip_query(ip: IpAddr, zone: &DomainName) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{zone}")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ip_query(IpAddr::V4(v4), zone),
            None => {
                let mut name = String::with_capacity(64 + zone.as_str().len());
                for byte in v6.octets().iter().rev() {
                    name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
                }
                name.push_str(zone.as_str());
                name
            }
        },
    }
}

/// The name to look up for `domain` in an RHSBL `zone` (RFC 5782 §2.2).
pub fn domain_query(domain: &DomainName, zone: &DomainName) -> String {
    format!("{domain}.{zone}")
}

/// One list that listed what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsblHit {
    pub zone: String,
    pub weight: i64,
    /// What was listed: the client's address, the sender's domain or the HELO name.
    pub listed: String,
    /// The name that answered, and its answers that count.
    pub query: String,
    pub answers: Vec<String>,
}

/// One list that could not be asked: it does not count, either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsblFailure {
    pub zone: String,
    pub query: String,
    pub error: String,
}

/// What every list said about one client (or one name, in the live test).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DnsblReport {
    pub hits: Vec<DnsblHit>,
    pub failures: Vec<DnsblFailure>,
    /// The sum of the weights of the lists that listed something (each list once).
    pub score: i64,
    pub threshold: i64,
}

impl DnsblReport {
    /// Adds up the hits: each list counts once, however many names it listed.
    pub fn new(mut hits: Vec<DnsblHit>, failures: Vec<DnsblFailure>, threshold: i64) -> Self {
        hits.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.zone.cmp(&b.zone)));
        let mut zones: Vec<&str> = hits.iter().map(|h| h.zone.as_str()).collect();
        zones.dedup();
        let score =
            zones.iter().map(|z| hits.iter().find(|h| h.zone == *z).map_or(0, |h| h.weight)).sum();
        DnsblReport { hits, failures, score, threshold }
    }

    /// The score reaches the threshold, and something listed the client: a threshold of 0 or
    /// below refuses nobody who is listed nowhere.
    pub fn blocked(&self) -> bool {
        !self.hits.is_empty() && self.score >= self.threshold
    }

    /// The heaviest listing, which the refusal names.
    pub fn worst(&self) -> Option<&DnsblHit> {
        self.hits.first()
    }

    /// `zone=weight` for each list, for a header field and the delivery log.
    pub fn summary(&self) -> String {
        let mut seen = Vec::new();
        for hit in &self.hits {
            let item = format!("{}={}", hit.zone, hit.weight);
            if !seen.contains(&item) {
                seen.push(item);
            }
        }
        seen.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> DomainName {
        "bl.test".parse().unwrap()
    }

    #[test]
    fn query_names_follow_rfc_5782() {
        assert_eq!(ip_query("192.0.2.99".parse().unwrap(), &zone()), "99.2.0.192.bl.test");
        // RFC 5782 §2.4's own example.
        assert_eq!(
            ip_query("2001:db8:1:2:3:4:567:89ab".parse().unwrap(), &zone()),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test"
        );
        assert_eq!(ip_query("::ffff:127.0.0.2".parse().unwrap(), &zone()), "2.0.0.127.bl.test");
        let domain = "Spam.Example".parse().unwrap();
        assert_eq!(domain_query(&domain, &zone()), "spam.example.bl.test");
    }

    #[test]
    fn return_code_filters() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let any = ReturnCodes::default();
        assert!(any.matches(ip("127.0.0.2")));
        assert!(!any.matches(ip("127.255.255.254")), "a list's error code is no listing");
        assert!(!any.matches(ip("192.0.2.1")), "outside 127/8 is never a listing");

        let codes: ReturnCodes = "127.0.0.2, 127.0.0.10-11".parse().unwrap();
        assert!(codes.matches(ip("127.0.0.2")));
        assert!(!codes.matches(ip("127.0.0.3")));
        assert!(codes.matches(ip("127.0.0.10")) && codes.matches(ip("127.0.0.11")));
        assert!(!codes.matches(ip("127.0.0.12")));
        assert_eq!(codes.to_string(), "127.0.0.2,127.0.0.10-127.0.0.11");
        assert_eq!(codes.to_string().parse::<ReturnCodes>().unwrap(), codes);

        let mask: ReturnCodes = "&0.0.0.4".parse().unwrap();
        assert!(mask.matches(ip("127.0.0.4")) && mask.matches(ip("127.0.0.6")));
        assert!(!mask.matches(ip("127.0.0.2")));
        assert_eq!("&4".parse::<ReturnCodes>().unwrap(), mask);

        for bad in ["127.0.0", "10.0.0.1", "127.0.0.9-2", "&0", "&x", "127.0.0.1-300"] {
            assert!(bad.parse::<ReturnCodes>().is_err(), "{bad}");
        }
    }

    #[test]
    fn scoring_counts_each_list_once() {
        let hit = |zone: &str, weight: i64, listed: &str| DnsblHit {
            zone: zone.into(),
            weight,
            listed: listed.into(),
            query: String::new(),
            answers: vec!["127.0.0.2".into()],
        };
        let report = DnsblReport::new(
            vec![hit("a.test", 1, "x"), hit("b.test", 2, "sender.test"), hit("b.test", 2, "helo")],
            vec![],
            3,
        );
        assert_eq!(report.score, 3);
        assert!(report.blocked());
        assert_eq!(report.worst().unwrap().zone, "b.test");
        assert_eq!(report.summary(), "b.test=2, a.test=1");

        let below = DnsblReport::new(vec![hit("a.test", 1, "x")], vec![], 2);
        assert!(!below.blocked());
        let allowed =
            DnsblReport::new(vec![hit("a.test", 2, "x"), hit("w.test", -5, "x")], vec![], 1);
        assert_eq!(allowed.score, -3);
        assert!(!allowed.blocked());
        assert!(!DnsblReport::new(vec![], vec![], 0).blocked());
    }

    #[test]
    fn whitelist_entries() {
        let net: WhitelistEntry = "192.0.2.0/24".parse().unwrap();
        let one: WhitelistEntry = "2001:db8::1".parse().unwrap();
        let domain: WhitelistEntry = "Partner.Example".parse().unwrap();
        assert!(net.covers("192.0.2.9".parse().unwrap(), None));
        assert!(!net.covers("192.0.3.9".parse().unwrap(), None));
        assert!(one.covers("2001:db8::1".parse().unwrap(), None));
        let sub = "mail.partner.example".parse().unwrap();
        assert!(domain.covers("192.0.3.9".parse().unwrap(), Some(&sub)));
        assert_eq!(domain.to_string(), "partner.example");
        assert!("not a domain!".parse::<WhitelistEntry>().is_err());
        assert!("10.1.2.3/8".parse::<WhitelistEntry>().is_err());
    }
}
