//! The whole configuration at one revision, with the rules that hold across resources: alias
//! resolution (shared by the store's validation and the engine's routing) and consistency checks.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::{
    Address, Alias, AliasSource, Domain, DomainKind, DomainName, Mailbox, TransportPattern,
    TransportRule, TrustedNetwork,
};

/// Deepest alias chain we follow (Postfix's `virtual_alias_recursion_limit` is 1000; real
/// configurations never need more than a handful).
pub const MAX_ALIAS_DEPTH: usize = 20;
/// Most final recipients one address may expand to (Postfix's `virtual_alias_expansion_limit`).
pub const MAX_EXPANSION: usize = 1000;

/// Every configured resource at `revision`, indexed for lookups.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub revision: i64,
    pub domains: BTreeMap<DomainName, Domain>,
    pub mailboxes: BTreeMap<Address, Mailbox>,
    pub aliases: BTreeMap<AliasSource, Alias>,
    pub transports: Vec<TransportRule>,
    pub networks: Vec<TrustedNetwork>,
    /// Access rules, parsed and in order (`policy.rs`).
    pub policy: super::Policy,
    /// Every DKIM key but the retired ones, by domain then selector.
    pub dkim: Vec<super::DkimKey>,
    /// What to do with inbound mail that fails SPF or DMARC.
    pub mail_auth: super::MailAuthPolicies,
    /// Rate limits, by id; the engine counts against them (`server/src/policy/rate.rs`).
    pub rate_limits: Vec<super::RateLimit>,
    /// DNS blocklists: the lists, the threshold, the whitelist (`dnsbl.rs`).
    pub dnsbl: super::Dnsbl,
    /// Built-in greylisting: its delays and the recipient domains that use it (`greylist.rs`).
    pub greylisting: super::Greylisting,
    /// Milters, in the order they are called, disabled ones included (`milter.rs`).
    pub milters: Vec<super::Milter>,
    /// Header and body checks, compiled and in order (`content_check.rs`).
    pub content_checks: super::ContentChecks,
    /// Policy services, enabled or not, in name order (`policy_service.rs`).
    pub policy_services: Vec<super::PolicyService>,
    /// Per-domain DKIM settings (automatic rotation, signing relayed mail); absent: defaults.
    pub dkim_settings: BTreeMap<DomainName, super::DkimSettings>,
    /// Per-domain LDAP / Active Directory settings (`directory.rs`): mailboxes from a directory.
    pub directories: BTreeMap<DomainName, super::DirectorySettings>,
}

/// Where one address ends up after alias expansion.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// A mailbox of ours.
    Mailbox(Address),
    /// An address in a domain that is not local (relay or remote): passed on by its transport.
    Forward(Address),
    /// An address in a local domain with no mailbox, alias or catch-all.
    Unknown(Address),
}

/// Why an address could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("alias loop: {}", chain.join(" -> "))]
    Loop { chain: Vec<String> },
    #[error("alias chain from {from} is deeper than {MAX_ALIAS_DEPTH} levels")]
    TooDeep { from: String },
    #[error("{from} expands to more than {MAX_EXPANSION} recipients")]
    TooMany { from: String },
}

impl Config {
    /// The keys that sign `domain`'s mail now.
    pub fn active_dkim_keys<'a>(
        &'a self,
        domain: &'a DomainName,
    ) -> impl Iterator<Item = &'a super::DkimKey> + 'a {
        self.dkim.iter().filter(move |k| &k.domain == domain && k.state == super::DkimState::Active)
    }

    /// Whether mail relayed for others whose `From:` is `domain` is signed too.
    pub fn signs_relayed(&self, domain: &DomainName) -> bool {
        self.dkim_settings.get(domain).is_some_and(|s| s.sign_relayed)
    }

    pub fn domain_kind(&self, domain: &DomainName) -> Option<DomainKind> {
        self.domains.get(domain).map(|d| d.kind)
    }

    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        self.networks.iter().any(|n| n.cidr.contains(&ip))
    }

    pub fn trusted_networks(&self) -> impl Iterator<Item = &IpNet> {
        self.networks.iter().map(|n| &n.cidr)
    }

    /// The transport rule for a destination domain: the most specific pattern, if any.
    ///
    /// `*` never applies to a local domain: a default route is for mail that leaves, as
    /// Postfix's `relayhost` and `default_transport` never take `mydestination`'s mail. A rule
    /// that names the domain (`example.com`, or `.example.com` for a local subdomain) does.
    pub fn transport_for(&self, domain: &DomainName) -> Option<&TransportRule> {
        let local = self.domain_kind(domain) == Some(DomainKind::Local);
        self.transports
            .iter()
            .filter(|r| !(local && r.pattern == TransportPattern::Default))
            .filter_map(|r| r.pattern.specificity(domain).map(|s| (s, r)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, r)| r)
    }

    /// Expands `address` through aliases, subaddressing and catch-alls to its final destinations,
    /// deduplicated, in first-seen order.
    ///
    /// Lookup order for each address, as Postfix's virtual maps do it: an exact alias (it wins over
    /// a mailbox of the same name), the mailbox, the same two without a `+tag`, then the domain's
    /// catch-all. An alias that lists its own source delivers that copy without expanding it again
    /// (`me@x -> me@x, backup@y` keeps a copy).
    pub fn resolve(&self, address: &Address) -> Result<Vec<Destination>, ResolveError> {
        let mut out = Vec::new();
        let mut chain = Chain::default();
        self.expand(address, &mut chain, &mut out, address)?;
        let mut seen = std::collections::HashSet::new();
        out.retain(|d| seen.insert(d.clone()));
        Ok(out)
    }

    fn expand(
        &self,
        address: &Address,
        chain: &mut Chain,
        out: &mut Vec<Destination>,
        origin: &Address,
    ) -> Result<(), ResolveError> {
        let plain = address.without_subaddress();
        let candidates = std::iter::once(address).chain(plain.as_ref());
        for candidate in candidates {
            let source = AliasSource::Address(candidate.clone());
            if let Some(alias) = self.aliases.get(&source) {
                return self.follow(
                    alias,
                    candidate.to_string(),
                    chain,
                    out,
                    origin,
                    Some(candidate),
                );
            }
            if self.mailboxes.contains_key(candidate) {
                out.push(Destination::Mailbox(candidate.clone()));
                return Ok(());
            }
        }
        match self.domain_kind(address.domain()) {
            Some(_) => {
                let catch_all = AliasSource::CatchAll(address.domain().clone());
                match self.aliases.get(&catch_all) {
                    Some(alias) => {
                        let label = format!("{address} (catch-all {})", alias.source);
                        self.follow(alias, label, chain, out, origin, None)
                    }
                    None if self.domain_kind(address.domain()) == Some(DomainKind::Local) => {
                        out.push(Destination::Unknown(address.clone()));
                        Ok(())
                    }
                    None => {
                        out.push(Destination::Forward(address.clone()));
                        Ok(())
                    }
                }
            }
            None => {
                out.push(Destination::Forward(address.clone()));
                Ok(())
            }
        }
    }

    /// Expands the destinations of `alias`, which the address `label` matched.
    fn follow(
        &self,
        alias: &Alias,
        label: String,
        chain: &mut Chain,
        out: &mut Vec<Destination>,
        origin: &Address,
        itself: Option<&Address>,
    ) -> Result<(), ResolveError> {
        if chain.sources.contains(&alias.source) {
            let mut names = chain.labels.clone();
            names.push(label);
            return Err(ResolveError::Loop { chain: names });
        }
        if chain.sources.len() >= MAX_ALIAS_DEPTH {
            return Err(ResolveError::TooDeep { from: origin.to_string() });
        }
        chain.sources.push(alias.source.clone());
        chain.labels.push(label);
        for dest in &alias.destinations {
            if Some(dest) == itself {
                // Self-reference: deliver to the mailbox (or pass on) without alias lookup.
                out.push(self.terminal(dest));
            } else {
                self.expand(dest, chain, out, origin)?;
            }
            if out.len() > MAX_EXPANSION {
                return Err(ResolveError::TooMany { from: origin.to_string() });
            }
        }
        chain.sources.pop();
        chain.labels.pop();
        Ok(())
    }

    fn terminal(&self, address: &Address) -> Destination {
        if self.mailboxes.contains_key(address) {
            Destination::Mailbox(address.clone())
        } else if self.domain_kind(address.domain()) == Some(DomainKind::Local) {
            Destination::Unknown(address.clone())
        } else {
            Destination::Forward(address.clone())
        }
    }

    /// Every rule that must hold across resources. Used by the store before it commits a change
    /// and by `postern config check`; an empty list means the configuration is sound.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for mailbox in self.mailboxes.values() {
            match self.domain_kind(mailbox.address.domain()) {
                Some(DomainKind::Local) => {}
                Some(DomainKind::Relay) => problems.push(Problem {
                    object: mailbox.address.to_string(),
                    message: format!("mailbox in relay domain {}", mailbox.address.domain()),
                    fix: "make the domain local, or remove the mailbox".into(),
                }),
                None => problems.push(Problem {
                    object: mailbox.address.to_string(),
                    message: format!("mailbox in unknown domain {}", mailbox.address.domain()),
                    fix: format!("postern domain add {}", mailbox.address.domain()),
                }),
            }
        }
        for alias in self.aliases.values() {
            if self.domain_kind(alias.source.domain()).is_none() {
                problems.push(Problem {
                    object: alias.source.to_string(),
                    message: format!("alias in unknown domain {}", alias.source.domain()),
                    fix: format!("postern domain add {}", alias.source.domain()),
                });
            }
            if let Err(e) = self.check_alias(alias) {
                problems.push(Problem {
                    object: alias.source.to_string(),
                    message: e.to_string(),
                    fix: format!("change the destinations of {}", alias.source),
                });
            }
        }
        problems
    }

    /// Resolves every destination of `alias` as mail to its source would be resolved.
    pub fn check_alias(&self, alias: &Alias) -> Result<(), ResolveError> {
        let mut out = Vec::new();
        let mut chain = Chain::default();
        let origin = match &alias.source {
            AliasSource::Address(a) => a.clone(),
            AliasSource::CatchAll(d) => Address::new("catch-all", d.clone())
                .expect("a constant local part is valid with any domain"),
        };
        let itself = match &alias.source {
            AliasSource::Address(a) => Some(a),
            AliasSource::CatchAll(_) => None,
        };
        self.follow(alias, alias.source.to_string(), &mut chain, &mut out, &origin, itself)
    }

    /// Destinations of `alias` in our local domains that are not a mailbox, an alias or
    /// covered by a catch-all: mail to them is refused (`550 5.1.1`) until one is added. A
    /// warning, not a refusal: the mailbox may simply come next.
    pub fn alias_warnings(&self, alias: &Alias) -> Vec<String> {
        let itself = match &alias.source {
            AliasSource::Address(a) => Some(a),
            AliasSource::CatchAll(_) => None,
        };
        alias
            .destinations
            .iter()
            .filter(|d| Some(*d) != itself)
            .filter(|d| self.domain_kind(d.domain()) == Some(DomainKind::Local))
            .filter(|d| {
                let plain = d.without_subaddress();
                let known = |a: &Address| {
                    self.mailboxes.contains_key(a)
                        || self.aliases.contains_key(&AliasSource::Address(a.clone()))
                };
                !known(d)
                    && !plain.as_ref().is_some_and(known)
                    && !self.aliases.contains_key(&AliasSource::CatchAll(d.domain().clone()))
            })
            .map(|d| {
                format!(
                    "{d} is not a mailbox or alias yet: mail to it is refused until you add one"
                )
            })
            .collect()
    }

    /// Trusted networks that make this server an open relay: not refused by the store once
    /// confirmed, but reported by `postern config check` and the dashboard every time.
    pub fn open_relay_problems(&self) -> Vec<Problem> {
        self.networks
            .iter()
            .filter(|n| super::is_open_relay_range(&n.cidr))
            .map(|n| Problem {
                object: format!("trusted network {}", n.cidr),
                message: super::open_relay_warning(&n.cidr),
                fix: format!(
                    "postern network remove {}, and trust only the networks of your own clients",
                    n.cidr
                ),
            })
            .collect()
    }

    /// Quick counts for log lines and the dashboard.
    pub fn summary(&self) -> Summary {
        Summary {
            domains: self.domains.len(),
            mailboxes: self.mailboxes.len(),
            aliases: self.aliases.len(),
            transports: self.transports.len(),
            networks: self.networks.len(),
            policy_rules: self.policy.rules.len(),
        }
    }
}

/// How many of each resource a configuration holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub domains: usize,
    pub mailboxes: usize,
    pub aliases: usize,
    pub transports: usize,
    pub networks: usize,
    pub policy_rules: usize,
}

/// The aliases being expanded, outermost first, and the address that matched each.
#[derive(Default)]
struct Chain {
    sources: Vec<AliasSource>,
    labels: Vec<String>,
}

/// One thing wrong with a configuration, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub object: String,
    pub message: String,
    pub fix: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PasswordHash;

    fn config(
        domains: &[(&str, DomainKind)],
        mailboxes: &[&str],
        aliases: &[(&str, &[&str])],
    ) -> Config {
        let mut c = Config::default();
        for (d, kind) in domains {
            let name: DomainName = d.parse().unwrap();
            c.domains.insert(name.clone(), Domain { name, kind: *kind, created_at: 0 });
        }
        let hash = PasswordHash::from_phc(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
                .into(),
        )
        .unwrap();
        for m in mailboxes {
            let address: Address = m.parse().unwrap();
            c.mailboxes.insert(
                address.clone(),
                Mailbox {
                    address,
                    display_name: String::new(),
                    enabled: true,
                    quota_bytes: None,
                    password_hash: hash.clone(),
                    send_as: Vec::new(),
                    created_at: 0,
                    updated_at: 0,
                },
            );
        }
        for (source, dests) in aliases {
            let source: AliasSource = source.parse().unwrap();
            let destinations = dests.iter().map(|d| d.parse().unwrap()).collect();
            c.aliases.insert(source.clone(), Alias { source, destinations, created_at: 0 });
        }
        c
    }

    fn a(s: &str) -> Address {
        s.parse().unwrap()
    }

    #[test]
    fn resolution_follows_postfix_order() {
        let c = config(
            &[("example.com", DomainKind::Local), ("relay.example", DomainKind::Relay)],
            &["ann@example.com", "bob@example.com"],
            &[
                ("sales@example.com", &["ann@example.com", "bob@example.com", "ext@other.org"]),
                ("bob@example.com", &["bob@example.com", "ann@example.com"]),
                ("team@example.com", &["sales@example.com", "ann@example.com"]),
                ("@relay.example", &["ann@example.com"]),
            ],
        );
        use Destination::*;
        assert_eq!(c.resolve(&a("ann@example.com")).unwrap(), vec![Mailbox(a("ann@example.com"))]);
        assert_eq!(
            c.resolve(&a("ann+news@example.com")).unwrap(),
            vec![Mailbox(a("ann@example.com"))]
        );
        assert_eq!(
            c.resolve(&a("team@example.com")).unwrap(),
            vec![
                Mailbox(a("ann@example.com")),
                Mailbox(a("bob@example.com")),
                Forward(a("ext@other.org"))
            ]
        );
        assert_eq!(
            c.resolve(&a("nobody@example.com")).unwrap(),
            vec![Unknown(a("nobody@example.com"))]
        );
        assert_eq!(c.resolve(&a("x@relay.example")).unwrap(), vec![Mailbox(a("ann@example.com"))]);
        assert_eq!(c.resolve(&a("x@elsewhere.org")).unwrap(), vec![Forward(a("x@elsewhere.org"))]);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn loops_are_found() {
        let c = config(
            &[("example.com", DomainKind::Local)],
            &[],
            &[("a@example.com", &["b@example.com"]), ("b@example.com", &["a@example.com"])],
        );
        let err = c.resolve(&a("a@example.com")).unwrap_err();
        assert!(
            err.to_string().contains("a@example.com -> b@example.com -> a@example.com"),
            "{err}"
        );
        assert_eq!(c.problems().len(), 2);

        // A catch-all pointing at a non-mailbox of its own domain loops through itself.
        let c = config(
            &[("example.com", DomainKind::Local)],
            &[],
            &[("@example.com", &["postmaster@example.com"])],
        );
        let message = &c.problems()[0].message;
        assert_eq!(
            message,
            "alias loop: @example.com -> postmaster@example.com (catch-all @example.com)"
        );
    }

    #[test]
    fn depth_and_fanout_are_bounded() {
        let names: Vec<String> =
            (0..=MAX_ALIAS_DEPTH + 1).map(|i| format!("a{i}@example.com")).collect();
        let pairs: Vec<(String, Vec<String>)> =
            names.windows(2).map(|w| (w[0].clone(), vec![w[1].clone()])).collect();
        let refs: Vec<(&str, Vec<&str>)> = pairs
            .iter()
            .map(|(s, d)| (s.as_str(), d.iter().map(String::as_str).collect()))
            .collect();
        let slices: Vec<(&str, &[&str])> = refs.iter().map(|(s, d)| (*s, d.as_slice())).collect();
        let c = config(&[("example.com", DomainKind::Local)], &[], &slices);
        assert!(matches!(c.resolve(&a("a0@example.com")), Err(ResolveError::TooDeep { .. })));
    }

    #[test]
    fn mailbox_outside_local_domain_is_a_problem() {
        let c = config(
            &[("relay.example", DomainKind::Relay)],
            &["x@relay.example", "y@gone.example"],
            &[],
        );
        let p = c.problems();
        assert_eq!(p.len(), 2);
        assert!(p.iter().any(|p| p.fix == "postern domain add gone.example"));
    }
}
