//! What the console and the API say about certificates beyond what the store holds: which
//! names each one serves now (the engine's SNI choice, `choose_certificate`, applied to the
//! stored set), which order last touched it, and which ones in use expire soon.

use postern_store::model::{AcmeOrder, CertificateInfo, choose_certificate};

/// A certificate in use this close to its end is a dashboard problem.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// The names `cert` is served for now: each of its names that the SNI choice gives it, with
/// `*` standing for any one label of a wildcard; `None` in the list means clients that name
/// nothing covered (and the host name's default).
pub fn served_for(
    certs: &[CertificateInfo],
    cert: &CertificateInfo,
    hostname: &str,
    now: i64,
) -> (Vec<String>, bool) {
    let chosen = |sni: Option<&str>| {
        choose_certificate(certs, |c| c, sni, hostname, now).is_some_and(|c| c.id == cert.id)
    };
    let names = cert
        .names
        .iter()
        .filter(|name| {
            // Any one label stands for the wildcard's: one no exact certificate names.
            let probe = match name.strip_prefix("*.") {
                Some(parent) => format!("postern-wildcard-probe.{parent}"),
                None => name.to_string(),
            };
            chosen(Some(&probe))
        })
        .cloned()
        .collect();
    (names, chosen(None))
}

/// Whether clients get `cert` for some name now.
pub fn in_use(certs: &[CertificateInfo], cert: &CertificateInfo, hostname: &str, now: i64) -> bool {
    let (names, default) = served_for(certs, cert, hostname, now);
    default || !names.is_empty()
}

/// The newest order that produced `cert` or renews it.
pub fn last_order<'a>(orders: &'a [AcmeOrder], cert: &CertificateInfo) -> Option<&'a AcmeOrder> {
    orders.iter().find(|o| o.certificate_id == Some(cert.id) || o.replaces == Some(cert.id))
}

/// The certificates in use that expire within [`EXPIRY_WARNING_DAYS`], with the days left.
pub fn expiring(
    certs: &[CertificateInfo],
    hostname: &str,
    now: i64,
) -> Vec<(CertificateInfo, i64)> {
    certs
        .iter()
        .filter(|c| {
            c.not_after - now < EXPIRY_WARNING_DAYS * 86_400 && in_use(certs, c, hostname, now)
        })
        .map(|c| (c.clone(), (c.not_after - now).div_euclid(86_400)))
        .collect()
}

/// The sentence the console and the API give when ACME is off.
pub const ACME_OFF: &str = "ACME is off: add an [acme] section to postern.toml and restart \
    postern serve to order certificates, or import one";
