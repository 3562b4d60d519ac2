//! Where a recipient's mail goes, from the configuration current at delivery time: the transport
//! rule for its domain, else `local` for our local domains and `mx` for everything else.

use postern_store::model::{Config, DomainKind, DomainName, SmtpCredentials, TlsPolicy, Transport};

use crate::delivery::mx::SMTP_PORT;
use crate::delivery::{Protocol, Reply, Target};

/// One way out. Recipients with equal routes travel in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A mailbox of ours: Maildir.
    Local,
    /// LMTP or SMTP to a fixed next hop.
    Next {
        protocol: Protocol,
        target: Target,
        tls: TlsPolicy,
        credentials: Option<SmtpCredentials>,
    },
    /// The destination's MX hosts, or those of a named domain (`smtp:DOMAIN[:PORT]`, on that
    /// port); `tls` is the transport rule's policy, `may` without one. `mta_sts` is true for
    /// the `mx` transport alone, where the recipient domain's MTA-STS policy (RFC 8461)
    /// applies. (§3.4 would apply a smart host's own policy to `smtp:DOMAIN`; not done yet.)
    Mx {
        domain: DomainName,
        port: u16,
        tls: TlsPolicy,
        mta_sts: bool,
    },
    Discard,
    /// Refused by configuration (`error:TEXT`), or an address we cannot route.
    Refuse(Reply),
}

impl Route {
    /// How the log names the next hop.
    pub fn relay(&self) -> String {
        match self {
            Route::Local => "local".into(),
            Route::Next { target, .. } => target.to_string(),
            Route::Mx { domain, .. } => format!("mx:{domain}"),
            Route::Discard => "discard".into(),
            Route::Refuse(_) => "none".into(),
        }
    }
}

pub fn route(config: &Config, address: &str) -> Route {
    let Some(domain) = address.rsplit_once('@').and_then(|(_, d)| d.parse::<DomainName>().ok())
    else {
        return Route::Refuse(Reply::new(
            550,
            [5, 1, 2],
            format!("<{address}>: cannot route this address"),
        ));
    };
    let rule = config.transport_for(&domain);
    let transport = match rule {
        Some(rule) => rule.transport.clone(),
        None if config.domain_kind(&domain) == Some(DomainKind::Local) => Transport::Local,
        None => Transport::Mx,
    };
    let tls = rule.map(|r| r.tls).unwrap_or_default();
    let credentials = rule.and_then(|r| r.auth.clone());
    match transport {
        Transport::Local => Route::Local,
        Transport::Lmtp(target) => Route::Next {
            protocol: Protocol::Lmtp,
            target: Target::from(&target),
            tls,
            credentials,
        },
        Transport::Smtp { host, port, lookup_mx: false } => Route::Next {
            protocol: Protocol::Smtp,
            target: Target::Tcp { host, port },
            tls,
            credentials,
        },
        Transport::Smtp { host: postern_store::model::Host::Name(name), port, lookup_mx: true } => {
            Route::Mx { domain: name, port, tls, mta_sts: false }
        }
        Transport::Smtp { host, port, .. } => Route::Next {
            protocol: Protocol::Smtp,
            target: Target::Tcp { host, port },
            tls,
            credentials,
        },
        Transport::Mx => Route::Mx { domain, port: SMTP_PORT, tls, mta_sts: true },
        Transport::Discard => Route::Discard,
        Transport::Error(text) => {
            Route::Refuse(Reply::new(550, [5, 0, 0], format!("<{address}>: {text}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use postern_store::model::{Domain, DomainKind, Host, TransportPattern, TransportRule};

    use super::*;

    fn config(rules: &[(&str, &str)]) -> Config {
        let mut c = Config::default();
        for (name, kind) in [
            ("example.test", DomainKind::Local),
            ("sub.example.test", DomainKind::Local),
            ("relay.test", DomainKind::Relay),
        ] {
            let name: DomainName = name.parse().unwrap();
            c.domains.insert(name.clone(), Domain { name, kind, created_at: 0 });
        }
        for (pattern, transport) in rules {
            let pattern: TransportPattern = pattern.parse().unwrap();
            c.transports.push(TransportRule {
                pattern,
                transport: transport.parse().unwrap(),
                tls: TlsPolicy::Encrypt,
                auth: None,
                updated_at: 0,
            });
        }
        c
    }

    fn smarthost(port: u16) -> Route {
        Route::Next {
            protocol: Protocol::Smtp,
            target: Target::Tcp { host: Host::Name("relay.example.net".parse().unwrap()), port },
            tls: TlsPolicy::Encrypt,
            credentials: None,
        }
    }

    /// README's smarthost example: everything that leaves goes to the smarthost, and the local
    /// domains stay in their Maildirs.
    #[test]
    fn a_default_smarthost_never_takes_local_mail() {
        let c = config(&[("*", "smtp:[relay.example.net]:587")]);
        assert_eq!(route(&c, "ann@example.test"), Route::Local);
        assert_eq!(route(&c, "ann@sub.example.test"), Route::Local);
        assert_eq!(route(&c, "someone@elsewhere.test"), smarthost(587));
        assert_eq!(route(&c, "someone@relay.test"), smarthost(587));
        let c = config(&[("*", "error:no outbound mail"), ("elsewhere.test", "discard")]);
        assert_eq!(route(&c, "ann@example.test"), Route::Local);
        assert_eq!(route(&c, "x@elsewhere.test"), Route::Discard);
    }

    /// A rule that names a local domain applies: exactly, or as `.parent` for a subdomain.
    #[test]
    fn a_rule_that_names_a_local_domain_applies() {
        let c = config(&[
            ("*", "smtp:[relay.example.net]:587"),
            (".example.test", "smtp:[relay.example.net]:25"),
        ]);
        assert_eq!(route(&c, "ann@example.test"), Route::Local, ".example.test is below it");
        assert_eq!(route(&c, "ann@sub.example.test"), smarthost(25));
        let c = config(&[("example.test", "discard")]);
        assert_eq!(route(&c, "ann@example.test"), Route::Discard);
    }
}
