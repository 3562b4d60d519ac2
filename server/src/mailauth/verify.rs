//! Inbound checks on port 25: SPF (RFC 7208) for the client and MAIL FROM, DKIM (RFC 6376),
//! ARC (RFC 8617) and DMARC (RFC 7489), through the process's resolver; the results go into an
//! `Authentication-Results:` field (RFC 8601) with our host name as authserv-id, after any field
//! that already claims that id is removed (§5: only we may speak for us). A DMARC failure of a
//! domain whose policy is `p=reject` is refused with `550 5.7.1`; a DNS failure is a
//! `temperror`, and never a permanent refusal.

use std::net::IpAddr;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MessageAuthenticator,
    SpfResult,
};

/// Verifies inbound mail with one resolver (the process's, see `dns.rs`).
pub struct Verifier {
    authenticator: MessageAuthenticator,
    /// Our host name: the authserv-id of the fields we add.
    authserv_id: String,
}

/// What the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The message with foreign claims to our authserv-id removed and our
    /// `Authentication-Results:` on top.
    pub message: Vec<u8>,
    /// DMARC's verdict (RFC 7489 §6.6.2).
    pub dmarc: DmarcVerdict,
    /// SPF said `fail` (RFC 7208 §8.4): the client is not among the sender's hosts.
    pub spf_fail: bool,
    /// A DNS failure left SPF or DMARC without an answer (RFC 7208 §8.6, RFC 7489 §6.6.2), and
    /// DMARC did not pass otherwise.
    pub temperror: bool,
    /// The results in one line (`spf=pass dkim=pass arc=none dmarc=pass`), for the log, the
    /// queue and the console.
    pub summary: String,
}

/// DMARC's outcome for the author domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmarcVerdict {
    /// It passed, or the domain publishes no policy, or DNS did not say.
    NoFailure,
    /// It failed; `domain` publishes `policy`.
    Fail { domain: String, policy: PublishedPolicy },
}

/// The `p=` (or `sp=`) the author domain publishes (RFC 7489 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishedPolicy {
    None,
    Quarantine,
    Reject,
}

impl Verifier {
    pub fn new(resolver: hickory_resolver::TokioResolver, authserv_id: &str) -> Verifier {
        Verifier {
            authenticator: MessageAuthenticator(resolver),
            authserv_id: authserv_id.to_ascii_lowercase(),
        }
    }

    /// Checks `message` from `ip`, which said `helo` and `MAIL FROM:<mail_from>`.
    pub async fn verify(&self, ip: IpAddr, helo: &str, mail_from: &str, message: &[u8]) -> Verdict {
        let stripped = strip_ours(message, &self.authserv_id);
        let host = self.authserv_id.as_str();
        let spf = if mail_from.is_empty() {
            self.authenticator.verify_spf(SpfParameters::verify_ehlo(ip, helo, host)).await
        } else {
            self.authenticator
                .verify_spf(SpfParameters::verify_mail_from(ip, helo, host, mail_from))
                .await
        };
        let mail_from_domain =
            mail_from.rsplit_once('@').map_or(helo, |(_, d)| d).to_ascii_lowercase();
        let Some(parsed) = AuthenticatedMessage::parse(&stripped) else {
            // Not a message mail-auth can read (no header block): SPF only.
            let results = AuthenticationResults::new(host)
                .with_spf_mailfrom_result(&spf, ip, mail_from, helo);
            return Verdict {
                message: prepend(results.to_header(), &stripped),
                dmarc: DmarcVerdict::NoFailure,
                spf_fail: spf.result() == SpfResult::Fail,
                temperror: spf.result() == SpfResult::TempError,
                summary: format!("spf={}", spf_word(spf.result())),
            };
        };
        let dkim = self.authenticator.verify_dkim(&parsed).await;
        let arc = self.authenticator.verify_arc(&parsed).await;
        let dmarc = self
            .authenticator
            .verify_dmarc(DmarcParameters::new(&parsed, &dkim, &mail_from_domain, &spf))
            .await;
        let header_from =
            parsed.from.first().and_then(|f| f.rsplit_once('@')).map_or("", |(_, d)| d);
        let results = AuthenticationResults::new(host)
            .with_dkim_results(&dkim, header_from)
            .with_spf_mailfrom_result(&spf, ip, mail_from, helo)
            .with_arc_result(&arc, ip)
            .with_dmarc_result(&dmarc);
        // DMARC fails only when the domain has a policy and neither identifier passes aligned
        // (RFC 7489 §4.2); a temperror on either side is no verdict (§6.6.2).
        let dmarc_result = dmarc.result();
        let dmarc_verdict = match dmarc_result {
            DmarcResult::Fail(_) => DmarcVerdict::Fail {
                domain: dmarc.domain().to_string(),
                policy: match dmarc.policy() {
                    Policy::Reject => PublishedPolicy::Reject,
                    Policy::Quarantine => PublishedPolicy::Quarantine,
                    Policy::None | Policy::Unspecified => PublishedPolicy::None,
                },
            },
            _ => DmarcVerdict::NoFailure,
        };
        let temperror = matches!(dmarc_result, DmarcResult::TempError(_))
            || (spf.result() == SpfResult::TempError && dmarc_result != DmarcResult::Pass);
        let summary = format!(
            "spf={} dkim={} arc={} dmarc={}",
            spf_word(spf.result()),
            dkim_word(&dkim),
            dkim_result_word(arc.result()),
            match &dmarc_result {
                DmarcResult::Pass => "pass".to_string(),
                DmarcResult::Fail(_) => format!("fail (p={})", policy_word(dmarc.policy())),
                DmarcResult::TempError(_) => "temperror".to_string(),
                DmarcResult::PermError(_) => "permerror".to_string(),
                DmarcResult::None => "none".to_string(),
            }
        );
        Verdict {
            message: prepend(results.to_header(), &stripped),
            dmarc: dmarc_verdict,
            spf_fail: spf.result() == SpfResult::Fail,
            temperror,
            summary,
        }
    }
}

fn spf_word(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dkim_result_word(result: &DkimResult) -> &'static str {
    match result {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

/// One word for all signatures: `pass` if one passes (RFC 6376 §6.1: each is judged alone),
/// else the first's result, `none` for no signature.
fn dkim_word(outputs: &[mail_auth::DkimOutput<'_>]) -> &'static str {
    if outputs.iter().any(|o| *o.result() == DkimResult::Pass) {
        return "pass";
    }
    outputs.first().map_or("none", |o| dkim_result_word(o.result()))
}

fn policy_word(policy: Policy) -> &'static str {
    match policy {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    }
}

fn prepend(field: String, message: &[u8]) -> Vec<u8> {
    let mut out = field.into_bytes();
    out.extend_from_slice(message);
    out
}

/// Removes the `Authentication-Results:` fields of the header block whose authserv-id is ours
/// (RFC 8601 §5); the rest of the message is left byte for byte.
pub fn strip_ours(message: &[u8], authserv_id: &str) -> Vec<u8> {
    let end = match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => end + 2,
        None => message.len(),
    };
    let (head, body) = message.split_at(end);
    let mut out = Vec::with_capacity(message.len());
    let mut dropping = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            dropping = claims(line, authserv_id);
        }
        if !dropping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(body);
    out
}

/// Whether a field's first line is an `Authentication-Results:` naming `authserv_id`.
fn claims(line: &[u8], authserv_id: &str) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else { return false };
    if !line[..colon].trim_ascii().eq_ignore_ascii_case(b"Authentication-Results") {
        return false;
    }
    let value = String::from_utf8_lossy(&line[colon + 1..]);
    // authserv-id = value (RFC 8601 §2.2), possibly after a comment.
    let mut rest = value.trim_start();
    while let Some(after) = rest.strip_prefix('(') {
        rest = after.split_once(')').map_or("", |(_, r)| r).trim_start();
    }
    let id: String =
        rest.chars().take_while(|c| !c.is_whitespace() && *c != ';').collect::<String>();
    id.trim_matches('"').eq_ignore_ascii_case(authserv_id)
}

#[cfg(test)]
mod tests {
    use super::strip_ours;

    #[test]
    fn only_fields_claiming_our_id_are_removed() {
        let m = b"Authentication-Results: mx.example.test;\r\n\tspf=pass\r\n\
Authentication-Results: other.test; dkim=pass\r\n\
authentication-results : (forged) MX.example.test; dmarc=pass\r\n\
Subject: x\r\n\r\nAuthentication-Results: mx.example.test; in the body\r\n";
        let out = String::from_utf8(strip_ours(m, "mx.example.test")).unwrap();
        assert_eq!(
            out,
            "Authentication-Results: other.test; dkim=pass\r\nSubject: x\r\n\r\n\
Authentication-Results: mx.example.test; in the body\r\n"
        );
    }
}
