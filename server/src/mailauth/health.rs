//! A domain's DNS health: the records other mail servers look up before they trust its mail
//! or send it here — MX, SPF (RFC 7208), each DKIM key in use (RFC 6376), DMARC (RFC 7489),
//! MTA-STS (RFC 8461), TLS-RPT (RFC 8460), and the reverse DNS of the address this server sends
//! from — each found, missing or wrong, with the exact record to publish. The row types are the
//! store's (`model/dns_health.rs`), so that the console and the API show them without this crate.

use std::net::IpAddr;

use postern_store::model::{DkimKey, DkimState, DnsCheck};
pub use postern_store::model::{Health, HealthRow};

use super::check_key;
use crate::dns::{DnsError, Resolver, reverse_name};

fn row(check: &'static str, name: &str, status: Health) -> HealthRow {
    HealthRow { check, name: name.to_string(), status, found: None, publish: None, optional: false }
}

/// TXT records at `name` that start with `tag` (the version tag of the record kind).
async fn tagged(resolver: &dyn Resolver, name: &str, tag: &str) -> Result<Vec<String>, DnsError> {
    match resolver.txt(name).await {
        Ok(texts) => Ok(texts
            .into_iter()
            .filter(|t| t.trim_start().to_ascii_lowercase().starts_with(&tag.to_ascii_lowercase()))
            .collect()),
        Err(DnsError::NxDomain { .. } | DnsError::NoData { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// One TXT-based check: exactly one record with `tag`, else missing (publish `suggested`) or
/// wrong (several).
async fn txt_check(
    resolver: &dyn Resolver,
    check: &'static str,
    name: &str,
    tag: &str,
    suggested: String,
    optional: bool,
) -> HealthRow {
    let mut r = row(check, name, Health::Found);
    r.optional = optional;
    match tagged(resolver, name, tag).await {
        Ok(found) if found.len() == 1 => {}
        Ok(found) if found.is_empty() => {
            r.status = Health::Missing;
            r.publish = Some(format!("TXT \"{suggested}\""));
        }
        Ok(found) => {
            r.status = Health::Wrong;
            r.found = Some(found.join(" | "));
            r.publish = Some(format!("one TXT record only, like \"{suggested}\""));
        }
        Err(e) => {
            r.status = Health::Failed;
            r.found = Some(e.to_string());
        }
    }
    r
}

/// Checks `domain`, whose mail this appliance (`hostname`) receives and signs with `keys`.
pub async fn check_domain(
    resolver: &dyn Resolver,
    hostname: &str,
    domain: &str,
    keys: &[DkimKey],
) -> Vec<HealthRow> {
    let mut rows = Vec::new();
    let hostname = hostname.trim_end_matches('.').to_ascii_lowercase();
    let mut mx = row("MX", domain, Health::Found);
    match resolver.mx(domain).await {
        Ok(records) if records.iter().any(|r| r.exchange == hostname) => {}
        Ok(records) => {
            mx.status = Health::Wrong;
            mx.found = Some(
                records
                    .iter()
                    .map(|r| format!("{} {}", r.preference, r.exchange))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            mx.publish = Some(format!("MX 10 {hostname}."));
        }
        Err(DnsError::NxDomain { .. } | DnsError::NoData { .. }) => {
            mx.status = Health::Missing;
            mx.publish = Some(format!("MX 10 {hostname}."));
        }
        Err(e) => {
            mx.status = Health::Failed;
            mx.found = Some(e.to_string());
        }
    }
    rows.push(mx);
    rows.push(txt_check(resolver, "SPF", domain, "v=spf1", "v=spf1 mx -all".into(), false).await);
    for key in keys.iter().filter(|k| k.state != DkimState::Retired) {
        let mut r = row("DKIM", &key.record_name(), Health::Found);
        match check_key(resolver, key).await {
            DnsCheck::Published => {}
            DnsCheck::Missing => r.status = Health::Missing,
            DnsCheck::Different(found) => {
                r.status = Health::Wrong;
                r.found = Some(found);
            }
            DnsCheck::Failed(why) => {
                r.status = Health::Failed;
                r.found = Some(why);
            }
        }
        if matches!(r.status, Health::Missing | Health::Wrong) {
            r.publish = Some(format!("TXT {}", key.record_zone()));
        }
        rows.push(r);
    }
    let dmarc = format!("_dmarc.{domain}");
    let report = format!("mailto:postmaster@{domain}");
    rows.push(
        txt_check(
            resolver,
            "DMARC",
            &dmarc,
            "v=DMARC1",
            format!("v=DMARC1; p=none; rua={report}"),
            false,
        )
        .await,
    );
    let sts = format!("_mta-sts.{domain}");
    rows.push(txt_check(resolver, "MTA-STS", &sts, "v=STSv1", "v=STSv1; id=1".into(), true).await);
    let rpt = format!("_smtp._tls.{domain}");
    rows.push(
        txt_check(
            resolver,
            "TLS-RPT",
            &rpt,
            "v=TLSRPTv1",
            format!("v=TLSRPTv1; rua={report}"),
            true,
        )
        .await,
    );
    rows.extend(check_reverse(resolver, &hostname, &[]).await);
    rows
}

/// The reverse DNS of the addresses this server sends from — `sending`, or when empty (no
/// outbound source address is configured) the addresses `hostname` resolves to — confirmed
/// forward: each address's PTR must name `hostname`, and `hostname` must resolve back to the
/// address (RFC 1912 §2.1; Gmail, Microsoft and most receivers refuse or junk mail from an
/// address without such a name). The PTR record is the address owner's to publish: the row says
/// what to ask the hosting provider for.
pub async fn check_reverse(
    resolver: &dyn Resolver,
    hostname: &str,
    sending: &[IpAddr],
) -> Vec<HealthRow> {
    let hostname = hostname.trim_end_matches('.').to_ascii_lowercase();
    let mut forward: Vec<IpAddr> = Vec::new();
    let mut forward_failed = None;
    match resolver.ipv4(&hostname).await {
        Ok(ips) => forward.extend(ips.into_iter().map(IpAddr::V4)),
        Err(DnsError::NxDomain { .. } | DnsError::NoData { .. }) => {}
        Err(e) => forward_failed = Some(e.to_string()),
    }
    match resolver.ipv6(&hostname).await {
        Ok(ips) => forward.extend(ips.into_iter().map(IpAddr::V6)),
        Err(DnsError::NxDomain { .. } | DnsError::NoData { .. }) => {}
        Err(e) => forward_failed = forward_failed.or(Some(e.to_string())),
    }
    let addresses = if sending.is_empty() { forward.clone() } else { sending.to_vec() };
    if addresses.is_empty() {
        let mut r = row("rDNS", &hostname, Health::Missing);
        match forward_failed {
            Some(why) => {
                r.status = Health::Failed;
                r.found = Some(why);
            }
            None => {
                r.publish = Some(format!(
                    "A (or AAAA) record for {hostname} with this server's address, and a PTR \
                     record of that address naming {hostname}."
                ));
            }
        }
        return vec![r];
    }
    let mut rows = Vec::new();
    for ip in addresses {
        let mut r = row("rDNS", &reverse_name(ip), Health::Found);
        let ptr = format!("PTR {hostname}.");
        match resolver.ptr(ip).await {
            Ok(names) if names.contains(&hostname) => {
                if !forward.contains(&ip) {
                    if let Some(why) = &forward_failed {
                        r.status = Health::Failed;
                        r.found = Some(why.clone());
                    } else {
                        let kind = if ip.is_ipv4() { "A" } else { "AAAA" };
                        r.status = Health::Wrong;
                        r.found = Some(format!(
                            "{ip} is named {hostname}, but {hostname} does not resolve to {ip}"
                        ));
                        r.publish = Some(format!("{kind} {ip} at {hostname}"));
                    }
                }
            }
            Ok(names) => {
                r.status = Health::Wrong;
                r.found = Some(names.join(", "));
                r.publish = Some(ptr);
            }
            Err(DnsError::NxDomain { .. } | DnsError::NoData { .. }) => {
                r.status = Health::Missing;
                r.publish = Some(ptr);
            }
            Err(e) => {
                r.status = Health::Failed;
                r.found = Some(e.to_string());
            }
        }
        rows.push(r);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::ScriptedResolver;
    use postern_store::model::{DkimAlgorithm, dkim_generate};

    fn key(selector: &str) -> DkimKey {
        let made = dkim_generate(DkimAlgorithm::Ed25519, 256).unwrap();
        DkimKey {
            domain: "example.test".parse().unwrap(),
            selector: selector.into(),
            algorithm: DkimAlgorithm::Ed25519,
            bits: 256,
            public_key: made.public_key,
            private_key: made.private_key,
            state: DkimState::Active,
            created_at: 0,
            activated_at: Some(0),
            retiring_at: None,
            retire_after: None,
            retired_at: None,
            dns_checked_at: None,
            dns: None,
        }
    }

    #[tokio::test]
    async fn a_missing_dmarc_and_a_wrong_dkim_record_come_with_the_records_to_publish() {
        let good = key("good");
        let wrong = key("wrong");
        let resolver = ScriptedResolver::new()
            .mx("example.test", 10, "mail.example.test")
            .txt("example.test", "v=spf1 mx -all")
            .txt("example.test", "google-site-verification=x")
            .txt(&good.record_name(), &good.record_value())
            .txt(&wrong.record_name(), "v=DKIM1; k=ed25519; p=AAAA")
            .txt("_smtp._tls.example.test", "v=TLSRPTv1; rua=mailto:tls@example.test")
            .temporary("_mta-sts.example.test");
        let rows =
            check_domain(&resolver, "mail.example.test", "example.test", &[good, wrong.clone()])
                .await;
        let by = |check: &str, name: &str| {
            rows.iter().find(|r| r.check == check && r.name == name).cloned().unwrap()
        };
        assert_eq!(by("MX", "example.test").status, Health::Found);
        assert_eq!(by("SPF", "example.test").status, Health::Found);
        assert_eq!(by("DKIM", "good._domainkey.example.test").status, Health::Found);
        let dkim = by("DKIM", "wrong._domainkey.example.test");
        assert_eq!(dkim.status, Health::Wrong);
        assert_eq!(dkim.found.as_deref(), Some("v=DKIM1; k=ed25519; p=AAAA"));
        assert_eq!(dkim.publish, Some(format!("TXT {}", wrong.record_zone())));
        let dmarc = by("DMARC", "_dmarc.example.test");
        assert_eq!(dmarc.status, Health::Missing);
        assert_eq!(
            dmarc.publish.as_deref(),
            Some("TXT \"v=DMARC1; p=none; rua=mailto:postmaster@example.test\"")
        );
        assert_eq!(by("MTA-STS", "_mta-sts.example.test").status, Health::Failed);
        assert_eq!(by("TLS-RPT", "_smtp._tls.example.test").status, Health::Found);

        let elsewhere =
            ScriptedResolver::new().mx("other.test", 5, "mx.provider.test").exists("other.test");
        let rows = check_domain(&elsewhere, "mail.example.test", "other.test", &[]).await;
        assert_eq!(rows[0].status, Health::Wrong);
        assert_eq!(rows[0].found.as_deref(), Some("5 mx.provider.test"));
        assert_eq!(rows[0].publish.as_deref(), Some("MX 10 mail.example.test."));
        assert_eq!(rows[1].publish.as_deref(), Some("TXT \"v=spf1 mx -all\""));
        let rdns = rows.iter().find(|r| r.check == "rDNS").unwrap();
        assert_eq!((rdns.status, rdns.name.as_str()), (Health::Missing, "mail.example.test"));
    }

    #[tokio::test]
    async fn the_sending_address_must_name_the_host_and_the_host_the_address() {
        let v4: IpAddr = "192.0.2.25".parse().unwrap();
        let v6: IpAddr = "2001:db8::25".parse().unwrap();
        let good = ScriptedResolver::new()
            .address("mail.example.test", v4)
            .address("mail.example.test", v6)
            .ptr(v4, "mail.example.test.")
            .ptr(v6, "host-25.provider.test");
        let rows = check_reverse(&good, "Mail.Example.Test.", &[]).await;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "25.2.0.192.in-addr.arpa");
        assert_eq!(rows[0].status, Health::Found);
        assert_eq!(rows[1].status, Health::Wrong);
        assert!(rows[1].name.ends_with(".8.b.d.0.1.0.0.2.ip6.arpa"), "{}", rows[1].name);
        assert_eq!(rows[1].found.as_deref(), Some("host-25.provider.test"));
        assert_eq!(rows[1].publish.as_deref(), Some("PTR mail.example.test."));

        // A configured source address that is named after us, but that our name does not
        // resolve to, is not forward-confirmed; one without a PTR is missing one.
        let other: IpAddr = "198.51.100.7".parse().unwrap();
        let bare: IpAddr = "198.51.100.8".parse().unwrap();
        let rows = check_reverse(
            &good.ptr(other, "mail.example.test"),
            "mail.example.test",
            &[other, bare],
        )
        .await;
        assert_eq!(rows[0].status, Health::Wrong);
        assert_eq!(rows[0].publish.as_deref(), Some("A 198.51.100.7 at mail.example.test"));
        assert_eq!(rows[1].status, Health::Missing);
        assert_eq!(rows[1].publish.as_deref(), Some("PTR mail.example.test."));

        let broken = ScriptedResolver::new().temporary("mail.example.test");
        let rows = check_reverse(&broken, "mail.example.test", &[]).await;
        assert_eq!(rows[0].status, Health::Failed);
    }
}
