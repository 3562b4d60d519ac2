//! What to do with an inbound message, from the checks' [`Verdict`] and the administrator's
//! [`MailAuthPolicy`]: refuse it, ask for a retry, hold it, or accept it (perhaps with a tag).
//! A DNS failure never leads to a permanent refusal (RFC 7208 §8.6, RFC 7489 §6.6.2).

use postern_store::model::{
    DmarcQuarantineAction, DmarcRejectAction, MailAuthPolicy, SpfFailAction, TempErrorAction,
};

use super::verify::{DmarcVerdict, PublishedPolicy, Verdict};

/// The header field a tag adds: one name for every reason, so that one filter rule finds them.
pub const TAG_FIELD: &str = "X-Postern-Auth-Warning";

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Refused at the end of DATA: `550` with this enhanced code and text.
    Reject { code: &'static str, text: String },
    /// Not now: `451` with this enhanced code and text.
    Defer { code: &'static str, text: String },
    /// Queued; `held` keeps it for an administrator to release; `tags` are the
    /// `X-Postern-Auth-Warning:` values to add.
    Accept { held: bool, tags: Vec<String> },
}

/// Applies `policy` to `verdict`.
pub fn decide(verdict: &Verdict, policy: &MailAuthPolicy) -> Disposition {
    let mut held = false;
    let mut tags = Vec::new();
    if let DmarcVerdict::Fail { domain, policy: published } = &verdict.dmarc {
        let quarantine = match published {
            PublishedPolicy::Reject => match policy.dmarc_reject {
                // RFC 7489 §6.6.3 / §10.3: refused at the end of DATA.
                DmarcRejectAction::Reject => {
                    return Disposition::Reject {
                        code: "5.7.1",
                        text: format!(
                            "Message rejected: it fails DMARC for {domain} whose owner asks to \
                             reject it (p=reject)"
                        ),
                    };
                }
                DmarcRejectAction::Quarantine => true,
                DmarcRejectAction::Record => false,
            },
            PublishedPolicy::Quarantine => true,
            PublishedPolicy::None => false,
        };
        if quarantine {
            match policy.dmarc_quarantine {
                DmarcQuarantineAction::Hold => held = true,
                DmarcQuarantineAction::Tag => tags.push(format!("dmarc=fail header.from={domain}")),
                DmarcQuarantineAction::Record => {}
            }
        }
    }
    if verdict.spf_fail {
        match policy.spf_fail {
            // RFC 7372 §3.2: 5.7.23, SPF validation failed.
            SpfFailAction::Reject => {
                return Disposition::Reject {
                    code: "5.7.23",
                    text: "Message rejected: the sender's SPF record does not list this client \
                           (spf=fail)"
                        .into(),
                };
            }
            SpfFailAction::Tag => tags.push("spf=fail".into()),
            SpfFailAction::Record => {}
        }
    }
    if verdict.temperror {
        match policy.temperror {
            // RFC 7372 §3.2: 4.7.24, SPF validation error (a DNS failure here).
            TempErrorAction::Defer => {
                return Disposition::Defer {
                    code: "4.7.24",
                    text: "Cannot check the sender's SPF or DMARC records now (DNS failure); \
                           try again later"
                        .into(),
                };
            }
            TempErrorAction::Accept => tags.push("temperror (DNS failure during checks)".into()),
        }
    }
    Disposition::Accept { held, tags }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(dmarc: DmarcVerdict, spf_fail: bool, temperror: bool) -> Verdict {
        Verdict { message: Vec::new(), dmarc, spf_fail, temperror, summary: String::new() }
    }

    fn fail(policy: PublishedPolicy) -> DmarcVerdict {
        DmarcVerdict::Fail { domain: "example.org".into(), policy }
    }

    #[test]
    fn dmarc_reject_follows_the_policy() {
        let v = verdict(fail(PublishedPolicy::Reject), false, false);
        let mut p = MailAuthPolicy::default();
        assert!(matches!(decide(&v, &p), Disposition::Reject { code: "5.7.1", .. }));
        p.dmarc_reject = DmarcRejectAction::Quarantine;
        p.dmarc_quarantine = DmarcQuarantineAction::Hold;
        assert_eq!(decide(&v, &p), Disposition::Accept { held: true, tags: vec![] });
        p.dmarc_reject = DmarcRejectAction::Record;
        assert_eq!(decide(&v, &p), Disposition::Accept { held: false, tags: vec![] });
    }

    #[test]
    fn a_dns_failure_is_never_permanent() {
        let v = verdict(DmarcVerdict::NoFailure, false, true);
        let mut p = MailAuthPolicy::default();
        for reject in DmarcRejectAction::ALL {
            for spf in SpfFailAction::ALL {
                p.dmarc_reject = *reject;
                p.spf_fail = *spf;
                p.temperror = TempErrorAction::Defer;
                assert!(matches!(decide(&v, &p), Disposition::Defer { code: "4.7.24", .. }));
                p.temperror = TempErrorAction::Accept;
                assert!(matches!(decide(&v, &p), Disposition::Accept { held: false, .. }));
            }
        }
    }

    #[test]
    fn spf_fail_and_quarantine_tag() {
        let v = verdict(fail(PublishedPolicy::Quarantine), true, false);
        let p = MailAuthPolicy {
            spf_fail: SpfFailAction::Tag,
            dmarc_quarantine: DmarcQuarantineAction::Tag,
            ..MailAuthPolicy::default()
        };
        assert_eq!(
            decide(&v, &p),
            Disposition::Accept {
                held: false,
                tags: vec!["dmarc=fail header.from=example.org".into(), "spf=fail".into()]
            }
        );
        let p = MailAuthPolicy { spf_fail: SpfFailAction::Reject, ..p };
        assert!(matches!(decide(&v, &p), Disposition::Reject { code: "5.7.23", .. }));
    }
}
