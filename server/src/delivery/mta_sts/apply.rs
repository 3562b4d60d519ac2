//! What a policy means for one MX host during delivery (RFC 8461 §4, §5): whether it may be
//! used, and with which TLS; and how refusals read in replies and logs.

use postern_store::model::TlsPolicy;

use super::policy::{Mode, Policy};
use crate::delivery::{ClientOptions, Outcome, Reply};

/// How to deliver to one MX host under a domain's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    /// As without a policy.
    AsUsual,
    /// Only over TLS with a certificate valid for the host's name (enforce, §4.2, §5).
    Verified,
    /// Verified TLS first; when that fails, warn and deliver as usual (testing, §5).
    VerifiedElseUsual,
    /// Not at all: the host is not one the policy names (enforce, §4.1).
    Skip(Outcome),
}

/// The rule for MX host `host` of `domain` under `policy`.
pub fn rule(policy: Option<&Policy>, domain: &str, host: &str) -> HostRule {
    let Some(policy) = policy else { return HostRule::AsUsual };
    let listed = policy.allows(host);
    match policy.mode {
        Mode::None => HostRule::AsUsual,
        Mode::Enforce if listed => HostRule::Verified,
        Mode::Enforce => {
            tracing::info!(domain, host, "MTA-STS (enforce): MX host not in the policy; skipped");
            HostRule::Skip(Outcome::deferred(Reply::new(
                451,
                [4, 7, 0],
                format!("MTA-STS policy of {domain} (enforce) does not list MX host {host}"),
            )))
        }
        Mode::Testing if listed => HostRule::VerifiedElseUsual,
        Mode::Testing => {
            tracing::warn!(
                domain,
                host,
                "MTA-STS (testing): MX host not in the policy; enforce mode would skip it"
            );
            HostRule::AsUsual
        }
    }
}

/// `options` requiring TLS with a certificate valid for the MX host's name, as `verify` does:
/// whatever policy the route had, enforce mode asks for this (§5: no plaintext fallback).
pub fn verified(options: &ClientOptions) -> ClientOptions {
    ClientOptions { tls: TlsPolicy::Verify, ..options.clone() }
}

/// Whether a session failed for want of TLS (no STARTTLS, a failed handshake, a certificate
/// not valid): the client says so with an enhanced code 4.7.x (RFC 3463 "security").
pub fn tls_refused(outcome: &Outcome) -> bool {
    outcome
        .reply()
        .and_then(Reply::enhanced)
        .is_some_and(|[class, subject, _]| class == 4 && subject == 7)
}

/// A TLS refusal under enforce mode, reworded to name MTA-STS: still a deferral, since the
/// policy or the host's certificate may be fixed before the mail expires.
pub fn enforced(outcome: Outcome, domain: &str) -> Outcome {
    match outcome.reply() {
        Some(reply) if tls_refused(&outcome) => Outcome::deferred(Reply {
            message: format!("MTA-STS policy of {domain} (enforce): {}", reply.message),
            ..reply.clone()
        }),
        _ => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::mta_sts::policy::parse;

    fn policy(mode: &str) -> Policy {
        parse(&format!("version: STSv1\nmode: {mode}\nmx: *.example.test\nmax_age: 60\n")).unwrap()
    }

    #[test]
    fn enforce_verifies_listed_hosts_and_skips_others() {
        let p = policy("enforce");
        assert_eq!(rule(Some(&p), "example.test", "mx.example.test"), HostRule::Verified);
        let HostRule::Skip(out) = rule(Some(&p), "example.test", "mx.other.test") else {
            panic!("not skipped");
        };
        assert!(out.is_deferred() && out.text().contains("MTA-STS"), "{out:?}");
    }

    #[test]
    fn testing_and_none_deliver() {
        let p = policy("testing");
        let r = rule(Some(&p), "example.test", "mx.example.test");
        assert_eq!(r, HostRule::VerifiedElseUsual);
        assert_eq!(rule(Some(&p), "example.test", "mx.other.test"), HostRule::AsUsual);
        assert_eq!(rule(None, "example.test", "mx.other.test"), HostRule::AsUsual);
    }

    #[test]
    fn only_tls_refusals_are_reworded() {
        let tls = Outcome::deferred(Reply::new(
            451,
            [4, 7, 5],
            "TLS handshake with mx failed: bad certificate",
        ));
        assert!(tls_refused(&tls));
        let out = enforced(tls, "example.test");
        assert_eq!(
            out.text(),
            "451 4.7.5 MTA-STS policy of example.test (enforce): TLS handshake with mx failed: \
             bad certificate"
        );
        let refused = Outcome::deferred(Reply::new(451, [4, 4, 1], "connection refused by mx"));
        assert_eq!(enforced(refused.clone(), "example.test"), refused);
    }
}
