//! Warnings for `postern config check`: configurations that work but may not do what was
//! meant. Unlike [`Config::problems`], none of these stops a change from being applied.

use super::{Config, DomainKind, Problem, Transport, TransportPattern};

impl Config {
    /// What an administrator should look at, each with its fix, for a server called `hostname`.
    pub fn warnings(&self, hostname: &str) -> Vec<Problem> {
        let mut out = Vec::new();
        self.local_domains_routed_away(&mut out);
        self.postmaster_advice(hostname, &mut out);
        out
    }

    /// A rule that names a local domain (exactly, or as `.parent` of a local subdomain) and sends
    /// its mail somewhere other than its Maildirs. `*` never does (see [`Config::transport_for`]).
    fn local_domains_routed_away(&self, out: &mut Vec<Problem>) {
        for domain in self.domains.values().filter(|d| d.kind == DomainKind::Local) {
            let Some(rule) = self.transport_for(&domain.name) else { continue };
            if rule.transport == Transport::Local {
                continue;
            }
            debug_assert!(rule.pattern != TransportPattern::Default);
            let name = &domain.name;
            let keep = format!("`postern transport set {name} local` to keep it here");
            let fix = match &rule.transport {
                Transport::Lmtp(_) => {
                    format!("none if that LMTP server holds these mailboxes; otherwise {keep}")
                }
                _ => format!("{keep}, or `postern transport remove {}`", rule.pattern),
            };
            out.push(Problem {
                object: name.to_string(),
                message: format!(
                    "mail for local domain {name} goes to {} (transport rule {}), not to its mailboxes",
                    rule.transport, rule.pattern
                ),
                fix,
            });
        }
    }

    /// Mail to `<postmaster>` must be accepted (RFC 5321 §4.5.1): say where it goes when no
    /// postmaster address was set up, and when it has nowhere to go.
    fn postmaster_advice(&self, hostname: &str, out: &mut Vec<Problem>) {
        let Some(first) = self.domains.values().find(|d| d.kind == DomainKind::Local) else {
            return;
        };
        let add = format!("postern alias add postmaster@{} YOU@{}", first.name, first.name);
        match self.postmaster(hostname, None) {
            Some(p) if p.stand_in => out.push(Problem {
                object: "postmaster".into(),
                message: format!(
                    "no postmaster@ address of ours leads to a mailbox: mail to <postmaster> goes \
                     to {}, the first mailbox created",
                    p.address
                ),
                fix: add,
            }),
            Some(_) => {}
            None => out.push(Problem {
                object: "postmaster".into(),
                message: "no mailbox takes mail to <postmaster>: it is deferred (451 4.3.5)".into(),
                fix: format!("add a mailbox, or {add}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Address, Alias, AliasSource, Destination, Domain, DomainName, Mailbox, PasswordHash,
        TlsPolicy, TransportRule,
    };

    /// Domains, mailboxes and aliases are created in the order given (their `created_at`).
    fn config(
        domains: &[(&str, DomainKind)],
        mailboxes: &[(&str, bool)],
        aliases: &[(&str, &str)],
        rules: &[(&str, &str)],
    ) -> Config {
        let mut c = Config::default();
        for (i, (d, kind)) in domains.iter().enumerate() {
            let name: DomainName = d.parse().unwrap();
            c.domains.insert(name.clone(), Domain { name, kind: *kind, created_at: i as i64 });
        }
        let hash = PasswordHash::from_phc(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
                .into(),
        )
        .unwrap();
        for (i, (m, enabled)) in mailboxes.iter().enumerate() {
            let address: Address = m.parse().unwrap();
            c.mailboxes.insert(
                address.clone(),
                Mailbox {
                    address,
                    display_name: String::new(),
                    enabled: *enabled,
                    quota_bytes: None,
                    password_hash: hash.clone(),
                    send_as: Vec::new(),
                    created_at: i as i64,
                    updated_at: 0,
                },
            );
        }
        for (source, dest) in aliases {
            let source: AliasSource = source.parse().unwrap();
            let destinations = vec![dest.parse().unwrap()];
            c.aliases.insert(source.clone(), Alias { source, destinations, created_at: 0 });
        }
        for (pattern, transport) in rules {
            c.transports.push(TransportRule {
                pattern: pattern.parse().unwrap(),
                transport: transport.parse().unwrap(),
                tls: TlsPolicy::May,
                auth: None,
                updated_at: 0,
            });
        }
        c
    }

    fn d(s: &str) -> DomainName {
        s.parse().unwrap()
    }

    fn a(s: &str) -> Address {
        s.parse().unwrap()
    }

    const LOCAL: DomainKind = DomainKind::Local;
    const RELAY: DomainKind = DomainKind::Relay;

    #[test]
    fn the_default_rule_leaves_local_domains_alone() {
        let c = config(
            &[("example.com", LOCAL), ("sub.example.com", LOCAL), ("lists.example.com", RELAY)],
            &[("ann@example.com", true)],
            &[],
            &[("*", "smtp:[relay.example.net]:587")],
        );
        assert_eq!(c.transport_for(&d("example.com")), None);
        assert_eq!(c.transport_for(&d("sub.example.com")), None);
        let smarthost = "smtp:[relay.example.net]:587";
        let of = |name: &str| c.transport_for(&d(name)).map(|r| r.transport.to_string());
        assert_eq!(of("elsewhere.org").as_deref(), Some(smarthost));
        assert_eq!(of("lists.example.com").as_deref(), Some(smarthost), "relay domains leave");
        assert!(c.warnings("mail.example.com").iter().all(|w| w.object == "postmaster"));
    }

    #[test]
    fn rules_that_name_a_local_domain_apply_and_are_warned_about() {
        let c = config(
            &[("example.com", LOCAL), ("sub.example.com", LOCAL), ("b.example.com", LOCAL)],
            &[("postmaster@example.com", true)],
            &[],
            &[
                ("*", "discard"),
                ("example.com", "smtp:[relay.example.net]:587"),
                (".example.com", "lmtp:127.0.0.1:24"),
                ("b.example.com", "local"),
            ],
        );
        let of = |name: &str| c.transport_for(&d(name)).map(|r| r.transport.to_string());
        assert_eq!(of("example.com").as_deref(), Some("smtp:[relay.example.net]:587"));
        assert_eq!(of("sub.example.com").as_deref(), Some("lmtp:127.0.0.1:24"));
        assert_eq!(of("b.example.com").as_deref(), Some("local"));
        let warnings = c.warnings("mail.example.com");
        let shown: Vec<(String, String)> =
            warnings.iter().map(|w| (w.object.clone(), w.message.clone())).collect();
        assert_eq!(
            shown,
            vec![
                (
                    "example.com".into(),
                    "mail for local domain example.com goes to smtp:[relay.example.net]:587 \
                     (transport rule example.com), not to its mailboxes"
                        .into()
                ),
                (
                    "sub.example.com".into(),
                    "mail for local domain sub.example.com goes to lmtp:127.0.0.1:24 \
                     (transport rule .example.com), not to its mailboxes"
                        .into()
                ),
            ]
        );
        assert!(warnings[0].fix.contains("postern transport set example.com local"));
        assert!(warnings[1].fix.starts_with("none if that LMTP server holds these mailboxes"));
        assert!(c.problems().is_empty(), "warnings are not problems");
    }

    #[test]
    fn the_postmaster_is_the_hosts_domain_then_the_oldest_domain_then_the_first_mailbox() {
        use Destination::Mailbox as M;
        let mailboxes = [("zed@b.test", true), ("off@a.test", false), ("ann@a.test", true)];
        // No postmaster address anywhere: the first enabled mailbox created stands in, in the
        // oldest local domain.
        let c = config(&[("a.test", LOCAL), ("b.test", LOCAL)], &mailboxes, &[], &[]);
        let p = c.postmaster("mail.example.net", None).unwrap();
        assert_eq!((p.address.clone(), p.stand_in), (a("ann@a.test"), true));
        assert_eq!(p.destinations, vec![M(a("ann@a.test"))]);
        let w = c.warnings("mail.example.net");
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("goes to ann@a.test, the first mailbox created"), "{w:?}");
        // postmaster@b.test asks b.test's mailboxes first.
        let p = c.postmaster("mail.example.net", Some(&d("b.test"))).unwrap();
        assert_eq!(p.address, a("zed@b.test"));

        // A postmaster alias anywhere beats a stand-in; the oldest domain's comes first.
        let aliases = [("postmaster@b.test", "zed@b.test")];
        let c = config(&[("a.test", LOCAL), ("b.test", LOCAL)], &mailboxes, &aliases, &[]);
        let p = c.postmaster("mail.example.net", None).unwrap();
        assert_eq!((p.address, p.stand_in), (a("postmaster@b.test"), false));
        assert_eq!(p.destinations, vec![M(a("zed@b.test"))]);
        assert!(c.warnings("mail.example.net").is_empty());
        let aliases = [("postmaster@b.test", "zed@b.test"), ("postmaster@a.test", "ann@a.test")];
        let c = config(&[("a.test", LOCAL), ("b.test", LOCAL)], &mailboxes, &aliases, &[]);
        assert_eq!(c.postmaster("mail.example.net", None).unwrap().address.domain(), &d("a.test"));
        // The host name's own domain (or a parent of it) comes before the others.
        assert_eq!(c.postmaster("mx1.mail.b.test", None).unwrap().address.domain(), &d("b.test"));

        // A postmaster that leads only to a disabled mailbox does not count.
        let c = config(
            &[("a.test", LOCAL)],
            &[("off@a.test", false), ("ann@a.test", true)],
            &[("postmaster@a.test", "off@a.test")],
            &[],
        );
        assert_eq!(c.postmaster("mail.a.test", None).unwrap().address, a("ann@a.test"));

        // A relay-only server passes the postmaster's mail on; nothing at all has none.
        let c = config(&[("r.test", RELAY)], &[], &[], &[]);
        let p = c.postmaster("mail.example.net", None).unwrap();
        assert_eq!(p.destinations, vec![Destination::Forward(a("postmaster@r.test"))]);
        let c = config(&[("a.test", LOCAL)], &[("off@a.test", false)], &[], &[]);
        assert_eq!(c.postmaster("mail.a.test", None), None);
        assert!(c.warnings("mail.a.test")[0].message.contains("451 4.3.5"));
    }
}
