//! What an import of a Postfix configuration would create in Postern, worked out against the
//! configuration that exists (so that a second run finds nothing to do), with what cannot be
//! mapped and why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use postern_store::model::{
    Address, AliasSource, Config, DomainKind, DomainName, NewContentCheck, NewPolicyRule,
    Transport, TransportPattern,
};

use super::main_cf::{MainCf, split_list};
use super::maps::{self, Format};

#[derive(Debug, Default)]
pub struct Plan {
    pub domains: Vec<(DomainName, DomainKind)>,
    pub mailboxes: Vec<Address>,
    /// Destinations to add to each alias (all of them for a new one).
    pub aliases: Vec<(AliasSource, Vec<Address>)>,
    pub transports: Vec<(TransportPattern, Transport)>,
    pub networks: Vec<ipnet::IpNet>,
    /// Access rules from the restriction lists' access maps, in the order they are added.
    pub rules: Vec<NewPolicyRule>,
    /// Header and body checks, in order.
    pub checks: Vec<NewContentCheck>,
    /// What exists already in Postern, as it would be created.
    pub unchanged: Vec<String>,
    /// What cannot be mapped, and why.
    pub unmapped: Vec<String>,
    /// What belongs in postern.toml or another command, not in the store.
    pub elsewhere: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
            && self.mailboxes.is_empty()
            && self.aliases.is_empty()
            && self.transports.is_empty()
            && self.networks.is_empty()
            && self.rules.is_empty()
            && self.checks.is_empty()
    }
}

fn is_localhost(name: &str) -> bool {
    name == "localhost" || name.starts_with("localhost.")
}

/// A list parameter whose items are domains or maps of domains (the map's keys).
fn domains_of(cf: &MainCf, param: &str, dir: &Path, plan: &mut Plan) -> Vec<DomainName> {
    let mut out = Vec::new();
    for item in cf.list(param) {
        let names: Vec<String> = if item.contains(':') || item.starts_with('/') {
            match maps::read(&item, dir, Format::Postmap) {
                Ok(entries) => entries.into_iter().map(|(k, _)| k).collect(),
                Err(e) => {
                    plan.unmapped.push(format!("{param} {}: {}", e.spec, e.why));
                    continue;
                }
            }
        } else {
            vec![item]
        };
        for name in names {
            if is_localhost(&name) {
                continue;
            }
            match name.parse::<DomainName>() {
                Ok(d) => out.push(d),
                Err(e) => plan.unmapped.push(format!("{param} {name:?}: {e}")),
            }
        }
    }
    out
}

/// Entries of each map a parameter lists.
fn entries_of(
    cf: &MainCf,
    param: &str,
    dir: &Path,
    format: Format,
    plan: &mut Plan,
) -> maps::Entries {
    let mut all = Vec::new();
    for spec in cf.list(param) {
        match maps::read(&spec, dir, format) {
            Ok(entries) => all.extend(entries),
            Err(e) => plan.unmapped.push(format!("{param} {}: {}", e.spec, e.why)),
        }
    }
    all
}

/// A Postfix transport (`transport:nexthop`) as Postern's.
pub fn transport(value: &str) -> Result<Transport, String> {
    let (kind, nexthop) = value.split_once(':').unwrap_or((value, ""));
    let nexthop = nexthop.trim();
    let text = match kind {
        "smtp" | "relay" if nexthop.is_empty() => "mx".to_string(),
        "smtp" | "relay" => format!("smtp:{nexthop}"),
        "lmtp" => {
            if let Some(path) = nexthop.strip_prefix("unix:") {
                format!("lmtp:unix:{path}")
            } else {
                let hostport = nexthop.strip_prefix("inet:").unwrap_or(nexthop);
                let hostport = hostport.replace(['[', ']'], "");
                format!("lmtp:{hostport}")
            }
        }
        "local" | "virtual" => "local".to_string(),
        "discard" => "discard".to_string(),
        "error" | "retry" => {
            format!("error:{}", if nexthop.is_empty() { "not deliverable" } else { nexthop })
        }
        other => {
            return Err(format!(
                "Postern has no {other:?} transport (master.cf services are not imported)"
            ));
        }
    };
    text.parse::<Transport>().map_err(|e| e.to_string())
}

/// Destinations of an alias: addresses kept, bare names qualified with `origin`, commands,
/// files and includes reported.
fn destinations(source: &str, value: &str, origin: &str, plan: &mut Plan) -> Vec<Address> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let item = item.trim_matches('"');
        if item.starts_with('|') || item.starts_with('/') || item.starts_with(":include:") {
            plan.unmapped.push(format!(
                "alias {source} -> {item}: Postern delivers to addresses, not to programs, files or include lists"
            ));
            continue;
        }
        let text = if item.contains('@') { item.to_string() } else { format!("{item}@{origin}") };
        match text.parse::<Address>() {
            Ok(a) => out.push(a),
            Err(e) => plan.unmapped.push(format!("alias {source} -> {item}: {e}")),
        }
    }
    out
}

/// Works out the plan for the Postfix configuration `cf` (read from `dir`) against `config`.
pub fn make(cf: &MainCf, dir: &Path, config: &Config) -> Plan {
    let mut plan = Plan::default();
    // Domains: the first list that names one decides its kind, as Postfix refuses a domain in
    // two of them.
    let mut kinds: BTreeMap<DomainName, DomainKind> = BTreeMap::new();
    let mut order = Vec::new();
    let local = domains_of(cf, "mydestination", dir, &mut plan);
    let mailbox_domains = domains_of(cf, "virtual_mailbox_domains", dir, &mut plan);
    let alias_domains = if cf.is_set("virtual_alias_domains") || cf.is_set("virtual_alias_maps") {
        // The default ($virtual_alias_maps) names the maps, whose keys are addresses: only
        // an explicit list is a list of domains.
        if cf.is_set("virtual_alias_domains") {
            domains_of(cf, "virtual_alias_domains", dir, &mut plan)
        } else {
            Vec::new()
        }
    } else {
        Vec::new()
    };
    let relay = domains_of(cf, "relay_domains", dir, &mut plan);
    for (list, kind) in [
        (&local, DomainKind::Local),
        (&mailbox_domains, DomainKind::Local),
        (&alias_domains, DomainKind::Local),
        (&relay, DomainKind::Relay),
    ] {
        for d in list {
            if !kinds.contains_key(d) {
                kinds.insert(d.clone(), kind);
                order.push(d.clone());
            }
        }
    }
    for d in order {
        let kind = kinds[&d];
        match config.domains.get(&d) {
            Some(existing) if existing.kind == kind => {
                plan.unchanged.push(format!("domain {d} ({})", kind.as_str()))
            }
            Some(existing) => plan.unmapped.push(format!(
                "domain {d}: is {} in Postern and {} in Postfix; change it by hand",
                existing.kind.as_str(),
                kind.as_str()
            )),
            None => plan.domains.push((d, kind)),
        }
    }
    let local_domains: BTreeSet<DomainName> =
        kinds.iter().filter(|(_, k)| **k == DomainKind::Local).map(|(d, _)| d.clone()).collect();
    let origin = {
        let o = cf.get("myorigin");
        if o.is_empty() { cf.get("myhostname") } else { o }
    };
    let primary: Vec<DomainName> = local.clone();

    // Mailboxes.
    for (key, _path) in entries_of(cf, "virtual_mailbox_maps", dir, Format::Postmap, &mut plan) {
        if key.starts_with('@') {
            plan.unmapped.push(format!(
                "virtual_mailbox_maps {key}: a catch-all mailbox; make an alias {key} to a mailbox instead"
            ));
            continue;
        }
        match key.parse::<Address>() {
            Ok(a) if !local_domains.contains(a.domain()) => plan
                .unmapped
                .push(format!("virtual_mailbox_maps {a}: its domain is not a local domain here")),
            Ok(a) if config.mailboxes.contains_key(&a) => {
                plan.unchanged.push(format!("mailbox {a}"))
            }
            Ok(a) => {
                if !plan.mailboxes.contains(&a) {
                    plan.mailboxes.push(a)
                }
            }
            Err(e) => plan.unmapped.push(format!("virtual_mailbox_maps {key:?}: {e}")),
        }
    }

    // Aliases: virtual_alias_maps (addresses, @domain, or bare names in mydestination), then
    // alias_maps (local parts of every mydestination domain).
    let mut wanted: Vec<(AliasSource, Vec<Address>)> = Vec::new();
    let mut add = |source: AliasSource, dests: Vec<Address>| {
        if dests.is_empty() {
            return;
        }
        match wanted.iter_mut().find(|(s, _)| *s == source) {
            Some((_, existing)) => existing.extend(dests),
            None => wanted.push((source, dests)),
        }
    };
    for (key, value) in entries_of(cf, "virtual_alias_maps", dir, Format::Postmap, &mut plan) {
        let dests = destinations(&key, &value, &origin, &mut plan);
        if let Some(domain) = key.strip_prefix('@') {
            match domain.parse::<DomainName>() {
                Ok(d) => add(AliasSource::CatchAll(d), dests),
                Err(e) => plan.unmapped.push(format!("virtual_alias_maps {key:?}: {e}")),
            }
        } else if key.contains('@') {
            match key.parse::<Address>() {
                Ok(a) => add(AliasSource::Address(a), dests),
                Err(e) => plan.unmapped.push(format!("virtual_alias_maps {key:?}: {e}")),
            }
        } else {
            for d in &primary {
                match format!("{key}@{d}").parse::<Address>() {
                    Ok(a) => add(AliasSource::Address(a), dests.clone()),
                    Err(e) => plan.unmapped.push(format!("virtual_alias_maps {key:?}: {e}")),
                }
            }
        }
    }
    for (key, value) in entries_of(cf, "alias_maps", dir, Format::Aliases, &mut plan) {
        let dests = destinations(&key, &value, &origin, &mut plan);
        for d in &primary {
            match format!("{key}@{d}").parse::<Address>() {
                Ok(a) => add(AliasSource::Address(a), dests.clone()),
                Err(e) => plan.unmapped.push(format!("alias_maps {key:?}: {e}")),
            }
        }
    }
    for (source, dests) in wanted {
        let have: BTreeSet<&Address> = config
            .aliases
            .get(&source)
            .map(|a| a.destinations.iter().collect())
            .unwrap_or_default();
        let mut new: Vec<Address> = Vec::new();
        for d in dests {
            if !have.contains(&d) && !new.contains(&d) {
                new.push(d);
            }
        }
        if new.is_empty() {
            plan.unchanged.push(format!("alias {source}"));
        } else {
            plan.aliases.push((source, new));
        }
    }

    // Transports: transport_maps, and relayhost as the default route.
    let mut routes: Vec<(TransportPattern, Transport)> = Vec::new();
    for (key, value) in entries_of(cf, "transport_maps", dir, Format::Postmap, &mut plan) {
        if key.contains('@') {
            plan.unmapped
                .push(format!("transport_maps {key}: Postern routes by domain, not by address"));
            continue;
        }
        let pattern = match key.parse::<TransportPattern>() {
            Ok(p) => p,
            Err(e) => {
                plan.unmapped.push(format!("transport_maps {key:?}: {e}"));
                continue;
            }
        };
        match transport(&value) {
            Ok(t) => routes.push((pattern, t)),
            Err(why) => plan.unmapped.push(format!("transport_maps {key} {value}: {why}")),
        }
    }
    let relayhost = cf.get("relayhost");
    if !relayhost.is_empty() && !routes.iter().any(|(p, _)| *p == TransportPattern::Default) {
        match transport(&format!("smtp:{relayhost}")) {
            Ok(t) => routes.push((TransportPattern::Default, t)),
            Err(why) => plan.unmapped.push(format!("relayhost {relayhost}: {why}")),
        }
    }
    for (pattern, t) in routes {
        match config.transports.iter().find(|r| r.pattern == pattern) {
            Some(r) if r.transport == t => plan.unchanged.push(format!("transport {pattern} {t}")),
            _ => plan.transports.push((pattern, t)),
        }
    }

    // Trusted networks.
    if cf.is_set("mynetworks") {
        for item in cf.list("mynetworks") {
            if item.contains(':') && !item.starts_with('[') && item.parse::<ipnet::IpNet>().is_err()
                || item.starts_with('/')
            {
                plan.unmapped.push(format!(
                    "mynetworks {item}: a table or file of networks; add its networks with `postern network add`"
                ));
                continue;
            }
            let text = item.replace(['[', ']'], "");
            let net = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match net {
                Ok(net) => {
                    let net = net.trunc();
                    if config.networks.iter().any(|n| n.cidr == net) {
                        plan.unchanged.push(format!("network {net}"));
                    } else if net.addr().is_loopback() {
                        plan.unchanged.push(format!("network {net} (loopback, trusted built in)"));
                    } else {
                        plan.networks.push(net);
                    }
                }
                Err(e) => plan.unmapped.push(format!("mynetworks {item:?}: {e}")),
            }
        }
    } else {
        plan.elsewhere.push(
            "mynetworks is not set: Postfix trusts the machine's own subnets \
             (mynetworks_style); add them with `postern network add CIDR`"
                .into(),
        );
    }

    // Settings that live elsewhere.
    let size = cf.get("message_size_limit");
    if !size.is_empty() {
        plan.elsewhere.push(format!(
            "message_size_limit = {size}: set `max_message_size = {size}` under [smtp] in \
             postern.toml (it needs a restart)"
        ));
    }
    let (cert, key) = (cf.get("smtpd_tls_cert_file"), cf.get("smtpd_tls_key_file"));
    if !cert.is_empty() {
        let key = if key.is_empty() { cert.clone() } else { key };
        plan.elsewhere.push(format!(
            "smtpd_tls_cert_file: import it with `postern cert import --cert {cert} --key {key}`"
        ));
    }
    // Access maps in the restriction lists, and header and body checks.
    super::access::import(cf, dir, config, &mut plan);
    super::checks::import(cf, dir, config, &mut plan);
    let _ = split_list;
    plan
}
