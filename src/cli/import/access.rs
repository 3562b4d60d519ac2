//! Postfix's access restrictions as Postern's access rules: the `check_client_access`,
//! `check_helo_access`, `check_sender_access` and `check_recipient_access` maps (access(5)) of
//! `smtpd_client_restrictions`, `smtpd_helo_restrictions`, `smtpd_sender_restrictions`,
//! `smtpd_relay_restrictions` and `smtpd_recipient_restrictions`, each entry one rule.
//!
//! How the two differ, and how the import bridges it:
//! - Postfix evaluates each restriction list on its own; Postern's rules are per stage of the
//!   dialog, the first match deciding for that stage. Each list becomes its stage (client:
//!   connect, HELO: helo, sender: mail, relay and recipient: rcpt), or a later one when a map
//!   looks at something only known later (a sender map in the client list: mail).
//! - A map looks its keys up from the most specific (the whole address, then the domain and its
//!   parents, then `user@`; the client's name and its parents, then its address and its
//!   networks), not in file order: the rules are ordered so.
//! - `permit_mynetworks` and `permit_sasl_authenticated` before a map in the same list exempt
//!   those clients from it: they become `OK` rules for the trusted networks and for
//!   authenticated clients ahead of the map's rules. The relay restrictions themselves
//!   (`reject_unauth_destination` and kin) are Postern's built-in relay control.

use std::path::Path;

use postern_store::model::{
    Config, Matcher, NewPolicyRule, PolicyAction, PolicyMatch, PolicyStage,
};

use super::main_cf::MainCf;
use super::maps::{self, Format};
use super::plan::Plan;
use super::regexp;

/// The restriction lists, in the order Postfix evaluates them, with their stage.
const LISTS: [(&str, PolicyStage); 5] = [
    ("smtpd_client_restrictions", PolicyStage::Connect),
    ("smtpd_helo_restrictions", PolicyStage::Helo),
    ("smtpd_sender_restrictions", PolicyStage::Mail),
    ("smtpd_relay_restrictions", PolicyStage::Rcpt),
    ("smtpd_recipient_restrictions", PolicyStage::Rcpt),
];

/// What a map's keys are matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Looks {
    Client,
    Helo,
    Sender,
    Recipient,
}

impl Looks {
    fn of(item: &str) -> Option<Looks> {
        Some(match item {
            "check_client_access" => Looks::Client,
            "check_helo_access" => Looks::Helo,
            "check_sender_access" => Looks::Sender,
            "check_recipient_access" => Looks::Recipient,
            _ => return None,
        })
    }

    /// The first stage at which what it looks at is known.
    fn stage(self) -> PolicyStage {
        match self {
            Looks::Client => PolicyStage::Connect,
            Looks::Helo => PolicyStage::Helo,
            Looks::Sender => PolicyStage::Mail,
            Looks::Recipient => PolicyStage::Rcpt,
        }
    }
}

/// Restriction items Postern does itself, whatever is imported.
const BUILT_IN: &[&str] = &[
    "permit_mynetworks",
    "permit_sasl_authenticated",
    "reject_unauth_destination",
    "defer_unauth_destination",
    "permit_auth_destination",
    "reject_unauth_pipelining",
    "reject_non_fqdn_recipient",
    "reject_unknown_recipient_domain",
    "reject_unlisted_recipient",
    "reject_unverified_recipient",
    "permit",
];

/// Adds the access rules of every restriction list to `plan`.
pub fn import(cf: &MainCf, dir: &Path, config: &Config, plan: &mut Plan) {
    for (param, list_stage) in LISTS {
        let items = cf.list(param);
        let mut i = 0;
        // OK rules owed to a permit_* item, added before the next map's rules.
        let mut exempt: Vec<(&str, PolicyMatch)> = Vec::new();
        while i < items.len() {
            let item = items[i].as_str();
            i += 1;
            if let Some(looks) = Looks::of(item) {
                let Some(spec) = items.get(i) else {
                    plan.unmapped.push(format!("{param} {item}: names no map"));
                    continue;
                };
                i += 1;
                let stage = list_stage.max(looks.stage());
                let entries = match read_map(spec, dir) {
                    Ok(e) => e,
                    Err(why) => {
                        plan.unmapped.push(format!("{param} {item} {spec}: {why}"));
                        continue;
                    }
                };
                if entries.is_empty() {
                    continue;
                }
                for (why, matches) in exempt.drain(..) {
                    let rule = NewPolicyRule {
                        stage,
                        matches,
                        action: PolicyAction::Ok,
                        description: describe(&format!("Postfix {param} {why}")),
                    };
                    add(rule, config, plan);
                }
                let mut rules = Vec::new();
                for (rank, key, value) in entries {
                    let origin = format!("{param} {item} {spec} {key}");
                    let matches = match matcher(looks, &key) {
                        Ok(m) => m,
                        Err(why) => {
                            plan.unmapped.push(format!("{origin}: {why}"));
                            continue;
                        }
                    };
                    let action = match action(&value) {
                        Ok(a) => a,
                        Err(why) => {
                            plan.unmapped.push(format!("{origin} {value}: {why}"));
                            continue;
                        }
                    };
                    if action == PolicyAction::Ok && param == "smtpd_relay_restrictions" {
                        plan.elsewhere.push(format!(
                            "{origin} OK: in Postfix this may let the client relay; Postern's \
                             relay control still applies (trusted networks and authenticated \
                             clients only)"
                        ));
                    }
                    let rule = NewPolicyRule {
                        stage,
                        matches,
                        action,
                        description: describe(&format!("Postfix {origin}")),
                    };
                    rules.push((rank, rule));
                }
                // Most specific first, as the map's lookups go; file order within a rank.
                rules.sort_by_key(|(rank, _)| *rank);
                for (_, rule) in rules {
                    add(rule, config, plan);
                }
                continue;
            }
            match item {
                "permit_mynetworks" => {
                    for net in trusted(cf) {
                        let matches = PolicyMatch { client: Some(net), ..PolicyMatch::default() };
                        exempt.push(("permit_mynetworks", matches));
                    }
                }
                "permit_sasl_authenticated" => {
                    let matches =
                        PolicyMatch { authenticated: Some(true), ..PolicyMatch::default() };
                    exempt.push(("permit_sasl_authenticated", matches));
                }
                _ if BUILT_IN.contains(&item) => {}
                "reject_rbl_client"
                | "reject_rhsbl_client"
                | "reject_rhsbl_sender"
                | "reject_rhsbl_helo"
                | "reject_rhsbl_reverse_client" => {
                    let zone = items.get(i).cloned().unwrap_or_default();
                    i += 1;
                    plan.elsewhere.push(format!(
                        "{param} {item} {zone}: add the list with `postern dnsbl add {zone}` (the \
                         console's Blocklists page)"
                    ));
                }
                "check_policy_service" => {
                    let service = items.get(i).cloned().unwrap_or_default();
                    i += 1;
                    plan.elsewhere.push(format!(
                        "{param} {item} {service}: add it with `postern policy service add` (the \
                         console's Policy services page)"
                    ));
                }
                "reject" | "defer" => {
                    let action = if item == "reject" { "REJECT" } else { "DEFER" };
                    let rule = NewPolicyRule {
                        stage: list_stage,
                        matches: PolicyMatch::default(),
                        action: action.parse().unwrap_or(PolicyAction::Ok),
                        description: describe(&format!("Postfix {param} {item}")),
                    };
                    add(rule, config, plan);
                }
                other => plan.unmapped.push(format!(
                    "{param} {other}: Postern has no such restriction (its checks are access \
                     rules, blocklists, greylisting, policy services and SPF/DKIM/DMARC)"
                )),
            }
        }
    }
}

/// Adds `rule` to the plan unless an equal rule exists.
fn add(rule: NewPolicyRule, config: &Config, plan: &mut Plan) {
    let exists = config
        .policy
        .rules
        .iter()
        .any(|r| r.stage == rule.stage && r.matches == rule.matches && r.action == rule.action);
    let label = format!("rule {} {} {}", rule.stage, rule.matches, rule.action);
    if exists || plan.rules.contains(&rule) {
        plan.unchanged.push(label);
    } else if let Err(e) = rule.check() {
        plan.unmapped.push(format!("{label}: {e}"));
    } else {
        plan.rules.push(rule);
    }
}

fn describe(text: &str) -> String {
    text.chars().take(200).collect()
}

/// The networks of `mynetworks` (tables of networks are reported by the networks' import).
fn trusted(cf: &MainCf) -> Vec<ipnet::IpNet> {
    cf.list("mynetworks")
        .iter()
        .filter_map(|item| {
            let text = item.replace(['[', ']'], "");
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .ok()
                .map(|n| n.trunc())
        })
        .collect()
}

/// A map's entries with a rank for their lookup order (lower first): `cidr:`, `regexp:` and
/// `pcre:` tables keep their file order; the others go by how specific a key is.
fn read_map(spec: &str, dir: &Path) -> Result<Vec<(u32, String, String)>, String> {
    let (kind, name) = spec.split_once(':').unwrap_or(("hash", spec));
    match kind {
        "regexp" | "pcre" => {
            let table = regexp::read(Path::new(name), dir)?;
            if let Some(first) = table.unreadable.first() {
                return Err(first.clone());
            }
            Ok(table.entries.into_iter().map(|e| (0, e.pattern, e.result)).collect())
        }
        "cidr" => {
            let entries =
                maps::read(&format!("texthash:{name}"), dir, Format::Postmap).map_err(|e| e.why)?;
            Ok(entries.into_iter().map(|(k, v)| (0, k, v)).collect())
        }
        _ => {
            let entries = maps::read(spec, dir, Format::Postmap).map_err(|e| e.why)?;
            Ok(entries.into_iter().map(|(k, v)| (rank(&k), k, v)).collect())
        }
    }
}

/// How early a key of an indexed access map is looked up: a whole address or host name first,
/// then domains (deeper ones first, as their parents are tried after them), then `user@`, then
/// addresses and networks (longer prefixes first).
fn rank(key: &str) -> u32 {
    if key.starts_with('/') {
        return 0;
    }
    if let Some(net) = client_network(key) {
        return 1000 + (128 - u32::from(net.prefix_len()));
    }
    if key.ends_with('@') {
        return 500;
    }
    if key.contains('@') && !key.starts_with('@') {
        return 0;
    }
    let labels = key.trim_start_matches('.').split('.').count() as u32;
    100 + (64u32.saturating_sub(labels))
}

/// An IP address or a Postfix-style truncated one (`192.0.2` for 192.0.2.0/24) or a CIDR.
fn client_network(key: &str) -> Option<ipnet::IpNet> {
    let key = key.trim_matches(['[', ']']);
    if let Ok(net) = key.parse::<ipnet::IpNet>() {
        return Some(net.trunc());
    }
    if let Ok(ip) = key.parse::<std::net::IpAddr>() {
        return Some(ipnet::IpNet::from(ip));
    }
    let octets: Vec<&str> = key.split('.').collect();
    if (1..4).contains(&octets.len()) && octets.iter().all(|o| o.parse::<u8>().is_ok()) {
        let mut full = octets.clone();
        full.resize(4, "0");
        let ip: std::net::Ipv4Addr = full.join(".").parse().ok()?;
        return ipnet::IpNet::new(ip.into(), 8 * octets.len() as u8).ok();
    }
    None
}

/// The matcher for one key of a map that `looks` at something.
fn matcher(looks: Looks, key: &str) -> Result<PolicyMatch, String> {
    let parse = |text: &str| Matcher::parse("key", text).map_err(|e| e.to_string());
    let mut m = PolicyMatch::default();
    if key.starts_with('/') {
        let pattern = parse(key)?;
        match looks {
            Looks::Client => {
                return Err("a pattern on the client: Postern matches the client's address by \
                            network and its name by pattern (add it with --rdns)"
                    .into());
            }
            Looks::Helo => m.helo = Some(pattern),
            Looks::Sender => m.sender = Some(pattern),
            Looks::Recipient => m.recipient = Some(pattern),
        }
        return Ok(m);
    }
    match looks {
        Looks::Client => {
            if let Some(net) = client_network(key) {
                m.client = Some(net);
            } else if let Some(sub) = key.strip_prefix('.') {
                m.rdns = Some(parse(&format!("/\\.{}$/", escape(sub)))?);
            } else {
                // The name and, as smtpd_access_maps match parent domains, every name below.
                m.rdns = Some(parse(&format!(".{key}"))?);
            }
        }
        Looks::Helo => {
            if let Some(sub) = key.strip_prefix('.') {
                m.helo = Some(parse(&format!("/\\.{}$/", escape(sub)))?);
            } else if key.starts_with('[') || client_network(key).is_some() {
                m.helo = Some(parse(key)?);
            } else {
                m.helo = Some(parse(&format!(".{key}"))?);
            }
        }
        Looks::Sender | Looks::Recipient => {
            let matcher = if key == "<>" {
                // smtpd_null_access_lookup_key: the null sender.
                parse("/^$/")?
            } else if let Some(user) = key.strip_suffix('@') {
                parse(&format!("/^{}@/", escape(user)))?
            } else if key.contains('@') {
                parse(key)?
            } else if let Some(sub) = key.strip_prefix('.') {
                parse(&format!("/\\.{}$/", escape(sub)))?
            } else {
                // A domain: the domain and (parent_domain_matches_subdomains) those below it.
                parse(&format!(".{key}"))?
            };
            if looks == Looks::Sender {
                m.sender = Some(matcher);
            } else {
                m.recipient = Some(matcher);
            }
        }
    }
    Ok(m)
}

/// `text` with the regular expressions' special characters escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An access(5) result as Postern's action.
pub fn action(value: &str) -> Result<PolicyAction, String> {
    let value = value.trim();
    let (word, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let rest = rest.trim();
    let parse = |text: String| text.parse::<PolicyAction>().map_err(|e| e.to_string());
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) && word.len() != 3 {
        // "All-numerical": OK.
        return Ok(PolicyAction::Ok);
    }
    if word.len() == 3
        && (word.starts_with('4') || word.starts_with('5'))
        && word.bytes().all(|b| b.is_ascii_digit())
    {
        let class = &word[..1];
        let (first, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let enhanced = first.split('.').count() == 3 && first.starts_with(class);
        let (enh, text) = if enhanced {
            (first.to_string(), after.trim())
        } else {
            (format!("{class}.7.1"), rest)
        };
        let keyword = if class == "5" { "REJECT" } else { "DEFER" };
        let text = if text.is_empty() { "Access denied" } else { text };
        return parse(format!("{keyword} {word} {enh} {text}"));
    }
    match word.to_ascii_uppercase().as_str() {
        "OK" if rest.is_empty() => Ok(PolicyAction::Ok),
        "REJECT" | "DEFER" | "REDIRECT" | "BCC" => parse(value.to_string()),
        "DISCARD" => Ok(PolicyAction::Discard),
        "HOLD" => Ok(PolicyAction::Hold),
        "DUNNO" => Err("DUNNO (stop this map, go on with the list) has no counterpart: Postern's \
                        OK would skip the stage's other rules"
            .into()),
        "DEFER_IF_REJECT" | "DEFER_IF_PERMIT" => {
            Err("a deferral that depends on later restrictions has no counterpart".into())
        }
        "PREPEND" => Err("PREPEND: Postern's access rules do not add header fields (a content \
                          check's REPLACE or a milter can)"
            .into()),
        "FILTER" => Err("FILTER: Postern routes by transport, not per message".into()),
        "WARN" | "INFO" => Err(format!("{word}: access rules do not log without acting")),
        _ => Err(format!(
            "{word} is a restriction or action Postern's access rules do not have (they are OK, \
             REJECT, DEFER, DISCARD, HOLD, REDIRECT and BCC)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_results_become_actions() {
        let a = |v: &str| action(v).map(|a| a.to_string());
        assert_eq!(a("OK").unwrap(), "OK");
        assert_eq!(a("REJECT").unwrap(), "REJECT 554 5.7.1 Access denied");
        assert_eq!(a("REJECT go away").unwrap(), "REJECT 554 5.7.1 go away");
        assert_eq!(a("550 5.7.2 not here").unwrap(), "REJECT 550 5.7.2 not here");
        assert_eq!(a("550 not here").unwrap(), "REJECT 550 5.7.1 not here");
        assert_eq!(a("451 try later").unwrap(), "DEFER 451 4.7.1 try later");
        assert_eq!(a("DISCARD spam").unwrap(), "DISCARD");
        assert_eq!(a("HOLD").unwrap(), "HOLD");
        assert_eq!(a("REDIRECT abuse@example.com").unwrap(), "REDIRECT abuse@example.com");
        assert!(a("DUNNO").is_err());
        assert!(a("PREPEND X-A: b").is_err());
        assert!(a("reject_unknown_sender_domain").is_err());
    }

    #[test]
    fn keys_become_matchers_in_lookup_order() {
        let m = |l, k: &str| matcher(l, k).unwrap().to_string();
        assert_eq!(m(Looks::Client, "192.0.2"), "client=192.0.2.0/24");
        assert_eq!(m(Looks::Client, "198.51.100.7"), "client=198.51.100.7/32");
        assert_eq!(m(Looks::Client, "bad.example"), "rdns=.bad.example");
        assert_eq!(m(Looks::Sender, "spammer@bad.example"), "from=spammer@bad.example");
        assert_eq!(m(Looks::Sender, "bad.example"), "from=.bad.example");
        assert_eq!(m(Looks::Sender, "postmaster@"), "from=/^postmaster@/");
        assert_eq!(m(Looks::Recipient, ".example.com"), "to=/\\.example\\.com$/");
        assert_eq!(m(Looks::Helo, "localhost"), "helo=.localhost");
        let mut keys = vec!["example.com", "user@", "a@example.com", "sub.example.com", "10.1"];
        keys.sort_by_key(|k| rank(k));
        assert_eq!(keys, ["a@example.com", "sub.example.com", "example.com", "user@", "10.1"]);
    }
}
