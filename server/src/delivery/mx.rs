//! Delivery to a domain's mail exchangers (RFC 5321 §5.1): the MX hosts in order of preference,
//! each at its addresses, moving on while a host fails temporarily; under the domain's MTA-STS
//! policy when it has one (RFC 8461 §5).

use std::net::IpAddr;

use postern_store::model::DomainName;
use rand::Rng;

use super::client::{Client, ClientOptions};
use super::connector::{Connector, Target};
use super::mta_sts::Policy;
use super::mta_sts::apply::{self, HostRule};
use super::pool::{Key, Pool};
use super::{Delivery, Outcome, Reply};
use crate::dns::{DnsError, Resolver};

/// SMTP's port (RFC 5321 §4.5.4.2 via the IANA registry): the MX hosts' port unless a transport
/// names another.
pub const SMTP_PORT: u16 = 25;

/// Addresses tried in one attempt, at most: a domain with many dead MX hosts must not hold a
/// delivery slot for minutes of connect timeouts (Postfix stops at 5, `smtp_mx_address_limit`;
/// IPv6 and IPv4 of each host count separately here, hence more).
pub const MAX_ADDRESSES: usize = 10;

/// One host to try, in the order the plan gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    pub name: DomainName,
    pub preference: u16,
    /// Known already for an implicit MX (its lookup decided that there is one); looked up just
    /// before connecting otherwise, so that a backup MX costs nothing while the first works.
    pub addresses: Option<Vec<IpAddr>>,
}

/// Why there is no host to try: the outcome every recipient gets.
pub type NoHost = Outcome;

/// The hosts to try for `domain`, best first.
pub async fn plan(resolver: &dyn Resolver, domain: &DomainName) -> Result<Vec<MxHost>, NoHost> {
    let records = match resolver.mx(domain.as_str()).await {
        Ok(records) => records,
        Err(DnsError::NoData { .. }) => return implicit(resolver, domain).await,
        Err(DnsError::NxDomain { .. }) => {
            return Err(Outcome::failed(Reply::new(
                550,
                [5, 1, 2],
                format!("domain {domain} does not exist"),
            )));
        }
        Err(e) => return Err(temporary(&e)),
    };
    // RFC 7505 §3: a single MX whose exchange is the root says the domain takes no mail.
    if records.len() == 1 && records[0].exchange == "." {
        return Err(Outcome::failed(Reply::new(
            556,
            [5, 1, 10],
            format!("{domain} accepts no mail (null MX, RFC 7505)"),
        )));
    }
    let mut rng = rand::rng();
    let mut hosts: Vec<(u16, u32, MxHost)> = records
        .into_iter()
        // A root exchange among real ones is an error in the zone, and names nothing to reach.
        .filter_map(|r| {
            let name = r.exchange.parse::<DomainName>().ok()?;
            Some((
                r.preference,
                rng.random(),
                MxHost { name, preference: r.preference, addresses: None },
            ))
        })
        .collect();
    if hosts.is_empty() {
        return Err(Outcome::failed(Reply::new(
            550,
            [5, 4, 4],
            format!("no MX record of {domain} names a usable host"),
        )));
    }
    // RFC 5321 §5.1: lowest preference first, and a random order among equals to spread load.
    hosts.sort_by_key(|(preference, shuffle, _)| (*preference, *shuffle));
    Ok(hosts.into_iter().map(|(_, _, host)| host).collect())
}

/// RFC 5321 §5.1: without MX records, the domain itself is the host, if it has an address.
async fn implicit(resolver: &dyn Resolver, domain: &DomainName) -> Result<Vec<MxHost>, NoHost> {
    match addresses(resolver, domain).await {
        Ok(addresses) => {
            Ok(vec![MxHost { name: domain.clone(), preference: 0, addresses: Some(addresses) }])
        }
        Err(e) if e.is_temporary() => Err(temporary(&e)),
        Err(DnsError::NxDomain { .. }) => Err(Outcome::failed(Reply::new(
            550,
            [5, 1, 2],
            format!("domain {domain} does not exist"),
        ))),
        Err(_) => Err(Outcome::failed(Reply::new(
            550,
            [5, 4, 4],
            format!("domain {domain} has neither MX nor address records"),
        ))),
    }
}

fn temporary(error: &DnsError) -> Outcome {
    Outcome::deferred(Reply::new(451, [4, 4, 3], error.to_string()))
}

/// A host's IPv6 and IPv4 addresses, IPv6 first. Either family alone will do; a temporary
/// failure of one family counts only when the other gave nothing.
pub async fn addresses(
    resolver: &dyn Resolver,
    name: &DomainName,
) -> Result<Vec<IpAddr>, DnsError> {
    let (v6, v4) = tokio::join!(resolver.ipv6(name.as_str()), resolver.ipv4(name.as_str()));
    let mut found: Vec<IpAddr> = Vec::new();
    if let Ok(v6) = &v6 {
        found.extend(v6.iter().map(|ip| IpAddr::V6(*ip)));
    }
    if let Ok(v4) = &v4 {
        found.extend(v4.iter().map(|ip| IpAddr::V4(*ip)));
    }
    if !found.is_empty() {
        return Ok(found);
    }
    match (v6, v4) {
        (Err(e), _) | (_, Err(e)) if e.is_temporary() => Err(e),
        (_, Err(e)) => Err(e),
        (Err(e), Ok(_)) => Err(e),
        (Ok(_), Ok(_)) => Err(DnsError::NoData { name: name.to_string(), kind: "A" }),
    }
}

/// Delivers to `domain`'s MX hosts on port 25: one outcome per recipient, in order.
pub async fn deliver_mx(
    resolver: &dyn Resolver,
    connector: &dyn Connector,
    domain: &DomainName,
    options: &ClientOptions,
    delivery: &Delivery<'_>,
) -> Vec<Outcome> {
    deliver_mx_on(resolver, connector, None, domain, SMTP_PORT, options, delivery).await
}

/// Delivers to `domain`'s MX hosts on `port` (a transport such as `smtp:example.com:2525`),
/// through `pool`'s cached sessions when there is one (keyed by host name and address), else
/// on a session of its own per host.
///
/// A host that cannot be resolved or reached, or that refuses the session or the whole
/// transaction with a 4xx, hands the recipients on to the next address and host. Outcomes a
/// host gave about single recipients (RCPT replies) are final for this attempt. When no host
/// took a recipient, it gets the last temporary reason if there was one, else the last
/// permanent one.
pub async fn deliver_mx_on(
    resolver: &dyn Resolver,
    connector: &dyn Connector,
    pool: Option<&Pool>,
    domain: &DomainName,
    port: u16,
    options: &ClientOptions,
    delivery: &Delivery<'_>,
) -> Vec<Outcome> {
    let to = Destination { domain, port, sts: None };
    run(resolver, connector, pool, &to, options, delivery).await
}

/// Delivers to `domain`'s MX hosts on port 25 under its MTA-STS policy (RFC 8461 §5):
/// `enforce` uses only the hosts the policy lists, each over TLS with a certificate valid for
/// its name, and defers rather than use any other way; `testing` delivers as without a
/// policy, and warns of each host `enforce` would have refused.
pub async fn deliver_mx_sts(
    resolver: &dyn Resolver,
    connector: &dyn Connector,
    pool: Option<&Pool>,
    domain: &DomainName,
    policy: Option<&Policy>,
    options: &ClientOptions,
    delivery: &Delivery<'_>,
) -> Vec<Outcome> {
    let to = Destination { domain, port: SMTP_PORT, sts: policy };
    run(resolver, connector, pool, &to, options, delivery).await
}

/// Where an MX delivery goes, and under which MTA-STS policy.
struct Destination<'a> {
    domain: &'a DomainName,
    port: u16,
    sts: Option<&'a Policy>,
}

async fn run(
    resolver: &dyn Resolver,
    connector: &dyn Connector,
    pool: Option<&Pool>,
    to: &Destination<'_>,
    options: &ClientOptions,
    delivery: &Delivery<'_>,
) -> Vec<Outcome> {
    let (domain, port) = (to.domain, to.port);
    let verified = apply::verified(options);
    let n = delivery.recipients.len();
    let hosts = match plan(resolver, domain).await {
        Ok(hosts) => hosts,
        Err(outcome) => return vec![outcome; n],
    };
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut pending: Vec<usize> = (0..n).collect();
    // The last reason of each kind: a temporary one wins, since another attempt may succeed.
    let (mut deferred, mut failed): (Option<Outcome>, Option<Outcome>) = (None, None);
    let mut note = |outcome: Outcome| {
        if outcome.is_deferred() {
            deferred = Some(outcome);
        } else {
            failed = Some(outcome);
        }
    };
    let mut tried = 0;

    'hosts: for host in hosts {
        let rule = apply::rule(to.sts, domain.as_str(), host.name.as_str());
        if let HostRule::Skip(outcome) = rule {
            note(outcome);
            continue;
        }
        let ips = match host.addresses {
            Some(ips) => ips,
            None => match addresses(resolver, &host.name).await {
                Ok(ips) => ips,
                Err(e) => {
                    let outcome = if e.is_temporary() {
                        Outcome::deferred(Reply::new(
                            451,
                            [4, 4, 3],
                            format!("MX host {}: {e}", host.name),
                        ))
                    } else {
                        Outcome::failed(Reply::new(
                            550,
                            [5, 4, 4],
                            format!("MX host {}: {e}", host.name),
                        ))
                    };
                    note(outcome);
                    continue;
                }
            },
        };
        for ip in ips {
            if tried == MAX_ADDRESSES {
                break 'hosts;
            }
            tried += 1;
            let target = Target::Resolved { name: host.name.clone(), ip, port };
            let recipients: Vec<String> =
                pending.iter().map(|&i| delivery.recipients[i].clone()).collect();
            let part = Delivery { recipients: &recipients, ..*delivery };
            let sent = match rule {
                HostRule::Verified => send_to(pool, connector, &target, &verified, &part)
                    .await
                    .map_err(|outcome| apply::enforced(outcome, domain.as_str())),
                HostRule::VerifiedElseUsual => {
                    match send_to(pool, connector, &target, &verified, &part).await {
                        Err(outcome) if apply::tls_refused(&outcome) => {
                            tracing::warn!(
                                domain = domain.as_str(),
                                relay = %target,
                                why = %outcome.text(),
                                "MTA-STS (testing): enforce mode would refuse this host; \
                                 delivering as without a policy"
                            );
                            send_to(pool, connector, &target, options, &part).await
                        }
                        sent => sent,
                    }
                }
                HostRule::AsUsual | HostRule::Skip(_) => {
                    send_to(pool, connector, &target, options, &part).await
                }
            };
            let (results, individually) = match sent {
                Ok(sent) => sent,
                Err(outcome) => {
                    // Unreachable, refused, or a session refused before any mail: the next
                    // address may do better.
                    note(outcome);
                    continue;
                }
            };
            let mut still = Vec::new();
            for (k, (i, outcome)) in pending.iter().zip(results).enumerate() {
                let alone = individually.get(k).copied().unwrap_or(false);
                if outcome.is_deferred() && !alone {
                    still.push(*i);
                    note(outcome);
                } else {
                    outcomes[*i] = Some(outcome);
                }
            }
            pending = still;
            if pending.is_empty() {
                break 'hosts;
            }
            // This host took the session and turned the mail away as a whole: another host
            // may not. (After a connection lost past the final dot the mail may have arrived
            // here; trying on risks a duplicate, which RFC 5321 §6.1 prefers to a loss.)
            continue 'hosts;
        }
    }

    let last = deferred.or(failed).unwrap_or_else(|| {
        Outcome::deferred(Reply::new(
            451,
            [4, 4, 4],
            format!("no MX host of {domain} could be tried"),
        ))
    });
    outcomes.into_iter().map(|o| o.unwrap_or_else(|| last.clone())).collect()
}

/// One message on a session with `target`, cached or not: the outcomes and whether each
/// answered its recipient alone; `Err` when no session could be opened.
async fn send_to(
    pool: Option<&Pool>,
    connector: &dyn Connector,
    target: &Target,
    options: &ClientOptions,
    delivery: &Delivery<'_>,
) -> Result<(Vec<Outcome>, Vec<bool>), Outcome> {
    if let Some(pool) = pool {
        // The host's turn is waited for with the delivery slot held, unlike a fixed next
        // hop's: which host is used is only known here, deep in the attempt.
        let _permit = pool.permit(&Key::new(target, options)).await;
        return pool.send(connector, target, options, delivery).await;
    }
    let mut client = Client::connect(connector, target, options).await?;
    let outcomes = client.send(delivery).await;
    let individually = client.answered_individually().to_vec();
    client.quit().await;
    Ok((outcomes, individually))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::ScriptedResolver;

    fn domain(name: &str) -> DomainName {
        name.parse().unwrap()
    }

    fn names(hosts: &[MxHost]) -> Vec<&str> {
        hosts.iter().map(|h| h.name.as_str()).collect()
    }

    #[tokio::test]
    async fn hosts_come_in_order_of_preference() {
        let dns = ScriptedResolver::new()
            .mx("example.test", 20, "b.example.test")
            .mx("example.test", 5, "a.example.test")
            .mx("example.test", 30, "c.example.test");
        let hosts = plan(&dns, &domain("example.test")).await.unwrap();
        assert_eq!(names(&hosts), ["a.example.test", "b.example.test", "c.example.test"]);
        assert!(hosts.iter().all(|h| h.addresses.is_none()));
    }

    #[tokio::test]
    async fn equal_preferences_come_in_random_order() {
        let dns = ScriptedResolver::new()
            .mx("example.test", 10, "a.example.test")
            .mx("example.test", 10, "b.example.test")
            .mx("example.test", 20, "z.example.test");
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..64 {
            let hosts = plan(&dns, &domain("example.test")).await.unwrap();
            assert_eq!(hosts[2].name.as_str(), "z.example.test");
            firsts.insert(hosts[0].name.as_str().to_string());
        }
        assert_eq!(firsts.len(), 2, "{firsts:?}");
    }

    #[tokio::test]
    async fn no_mx_means_the_domain_itself() {
        let dns = ScriptedResolver::new().address("example.test", "192.0.2.7".parse().unwrap());
        let hosts = plan(&dns, &domain("example.test")).await.unwrap();
        assert_eq!(names(&hosts), ["example.test"]);
        assert_eq!(hosts[0].addresses, Some(vec!["192.0.2.7".parse().unwrap()]));
    }

    #[tokio::test]
    async fn no_mx_and_no_address_fails() {
        let dns = ScriptedResolver::new().exists("example.test");
        let out = plan(&dns, &domain("example.test")).await.unwrap_err();
        assert!(out.is_failed() && out.text().starts_with("550 5.4.4"), "{out:?}");
    }

    #[tokio::test]
    async fn a_null_mx_fails_with_5_1_10() {
        let dns = ScriptedResolver::new().mx("example.test", 0, ".");
        let out = plan(&dns, &domain("example.test")).await.unwrap_err();
        assert!(out.is_failed() && out.text().starts_with("556 5.1.10"), "{out:?}");
    }

    #[tokio::test]
    async fn a_root_exchange_among_others_is_skipped() {
        let dns = ScriptedResolver::new().mx("example.test", 0, ".").mx(
            "example.test",
            10,
            "mx.example.test",
        );
        let hosts = plan(&dns, &domain("example.test")).await.unwrap();
        assert_eq!(names(&hosts), ["mx.example.test"]);
    }

    #[tokio::test]
    async fn a_domain_that_does_not_exist_fails_with_5_1_2() {
        let dns = ScriptedResolver::new();
        let out = plan(&dns, &domain("nowhere.test")).await.unwrap_err();
        assert!(out.is_failed() && out.text().starts_with("550 5.1.2"), "{out:?}");
    }

    #[tokio::test]
    async fn a_temporary_failure_defers() {
        let dns = ScriptedResolver::new().temporary("example.test");
        let out = plan(&dns, &domain("example.test")).await.unwrap_err();
        assert!(out.is_deferred() && out.text().starts_with("451 4.4.3"), "{out:?}");
    }

    #[tokio::test]
    async fn addresses_put_ipv6_first_and_survive_one_family_failing() {
        let dns = ScriptedResolver::new()
            .address("mx.example.test", "192.0.2.1".parse().unwrap())
            .address("mx.example.test", "2001:db8::1".parse().unwrap());
        let ips = addresses(&dns, &domain("mx.example.test")).await.unwrap();
        assert_eq!(ips, ["2001:db8::1".parse::<IpAddr>().unwrap(), "192.0.2.1".parse().unwrap()]);
        let dns = ScriptedResolver::new().exists("v6less.test");
        let err = addresses(&dns, &domain("v6less.test")).await.unwrap_err();
        assert!(matches!(err, DnsError::NoData { .. }), "{err:?}");
    }
}
