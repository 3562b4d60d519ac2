//! The live tests of the Blocklists and Greylisting pages and their API: what the configured
//! lists say about an address or a domain now (asked through the engine's resolver, handed in
//! by `postern serve` as a [`DnsblCheck`], since this crate never depends on the engine), and
//! what greylisting would do with a triplet now (judged here from the stored record by the
//! model's state machine, without recording anything).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use postern_store::model::{DnsblReport, DomainName, GreylistVerdict, ListKind, Triplet, judge};
use serde::Serialize;

use crate::error::WebError;
use crate::state::AppState;

/// What a blocklist test asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsblSubject {
    Client(IpAddr),
    Domain(DomainName),
}

impl DnsblSubject {
    pub fn parse(input: &str) -> Result<DnsblSubject, WebError> {
        let input = input.trim().trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = input.parse::<IpAddr>() {
            return Ok(DnsblSubject::Client(ip));
        }
        input.parse().map(DnsblSubject::Domain).map_err(|_| {
            WebError::invalid("subject", format!("{input:?} is neither an IP address nor a domain"))
        })
    }
}

pub type DnsblFuture<'a> = Pin<Box<dyn Future<Output = DnsblReport> + Send + 'a>>;

/// Asks the lists of `dnsbl` about `subject` (address lists for an address, domain lists for a
/// domain): the engine's checker, through its resolver.
pub trait DnsblCheck: Send + Sync {
    fn check<'a>(
        &'a self,
        dnsbl: &'a postern_store::model::Dnsbl,
        subject: &'a DnsblSubject,
    ) -> DnsblFuture<'a>;
}

/// A blocklist test's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DnsblTest {
    /// What was asked about, as understood.
    pub subject: String,
    /// `ip` or `domain`.
    pub kind: String,
    /// `reject` (the score reaches the threshold), `note` (listed below it: accepted with an
    /// `X-Postern-DNSBL:` field), `accept` (listed nowhere), `whitelisted` (never checked).
    pub verdict: String,
    /// The reply a client would get at RCPT, when refused.
    pub reply: Option<String>,
    pub score: i64,
    pub threshold: i64,
    /// The lists that list it: `zone`, `weight`, the `query` name and its counted `answers`.
    #[schema(value_type = Vec<Object>)]
    pub hits: Vec<postern_store::model::DnsblHit>,
    /// The lists that could not be asked (they count for nothing).
    #[schema(value_type = Vec<Object>)]
    pub failures: Vec<postern_store::model::DnsblFailure>,
}

pub async fn test_dnsbl(state: &AppState, input: &str) -> Result<DnsblTest, WebError> {
    let subject = DnsblSubject::parse(input)?;
    let dnsbl = state.store.dnsbl().await?;
    let (shown, kind, whitelisted) = match &subject {
        DnsblSubject::Client(ip) => (ip.to_string(), ListKind::Ip, dnsbl.is_whitelisted(*ip, None)),
        DnsblSubject::Domain(d) => (
            d.to_string(),
            ListKind::Domain,
            dnsbl.whitelist.iter().any(
                |w| matches!(w, postern_store::model::WhitelistEntry::Domain(p) if d.is_within(p)),
            ),
        ),
    };
    let report = if whitelisted {
        DnsblReport { threshold: dnsbl.threshold, ..Default::default() }
    } else {
        let Some(checker) = state.dnsbl_check.clone() else {
            return Err(WebError::Conflict(
                "this process has no DNS resolver: run `postern dnsbl test` on the engine's host"
                    .into(),
            ));
        };
        checker.check(&dnsbl, &subject).await
    };
    let verdict = if whitelisted {
        "whitelisted"
    } else if report.blocked() {
        "reject"
    } else if report.hits.is_empty() {
        "accept"
    } else {
        "note"
    };
    let reply = report.worst().filter(|_| report.blocked()).map(|worst| {
        let what = match &subject {
            DnsblSubject::Client(ip) => format!("client [{ip}]"),
            DnsblSubject::Domain(d) => format!("sender domain {d}"),
        };
        format!("554 5.7.1 Service unavailable; {what} blocked using {}", worst.zone)
    });
    Ok(DnsblTest {
        subject: shown,
        kind: kind.to_string(),
        verdict: verdict.into(),
        reply,
        score: report.score,
        threshold: report.threshold,
        hits: report.hits,
        failures: report.failures,
    })
}

/// A greylisting test's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GreylistTest {
    /// The triplet as greylisting keys it (the client's /24 or /64, lower-case addresses).
    pub client_network: String,
    pub sender: String,
    pub recipient: String,
    /// `defer`, `pass`, `off` (the recipient's domain is not greylisted) or `exempt` (a
    /// trusted network).
    pub verdict: String,
    /// Seconds until a retry is accepted, when deferred.
    pub wait: Option<i64>,
    /// In words.
    pub explanation: String,
    /// When this triplet was first seen and when it passed, if it is stored.
    pub first_seen: Option<i64>,
    pub passed_at: Option<i64>,
}

pub async fn test_greylist(
    state: &AppState,
    client: &str,
    sender: &str,
    recipient: &str,
) -> Result<GreylistTest, WebError> {
    let ip: IpAddr = client
        .trim()
        .parse()
        .map_err(|_| WebError::invalid("client", format!("{client:?} is not an IP address")))?;
    let sender = sender.trim().trim_start_matches('<').trim_end_matches('>');
    let recipient = recipient.trim().trim_start_matches('<').trim_end_matches('>');
    let Some((_, domain)) = recipient.rsplit_once('@') else {
        return Err(WebError::invalid("recipient", "a recipient address is needed (user@domain)"));
    };
    if !sender.is_empty() && !sender.contains('@') {
        return Err(WebError::invalid("sender", "an address (user@domain), or empty for <>"));
    }
    let triplet = Triplet::new(ip, sender, recipient);
    let config = state.store.load_config().await?;
    let stored = state.store.greylist_record(&triplet).await?;
    let mut test = GreylistTest {
        client_network: triplet.client.clone(),
        sender: triplet.sender.clone(),
        recipient: triplet.recipient.clone(),
        verdict: String::new(),
        wait: None,
        explanation: String::new(),
        first_seen: stored.as_ref().map(|r| r.first_seen),
        passed_at: stored.as_ref().and_then(|r| r.passed_at),
    };
    if config.is_trusted(ip) {
        test.verdict = "exempt".into();
        test.explanation = "the client is in a trusted network: never greylisted".into();
        return Ok(test);
    }
    if !config.greylisting.covers(domain) {
        test.verdict = "off".into();
        test.explanation = format!("greylisting is off for {}", domain.to_ascii_lowercase());
        return Ok(test);
    }
    let now = postern_store::now();
    let judgement = judge(&triplet, stored.as_ref(), now, &config.greylisting.settings);
    match judgement.verdict {
        GreylistVerdict::Defer { wait, first } => {
            test.verdict = "defer".into();
            test.wait = Some(wait);
            test.explanation = if first {
                format!("a first attempt: 450 4.7.1 Greylisted, try again in {wait} seconds")
            } else {
                format!("retried too early: 450 4.7.1 Greylisted, try again in {wait} seconds")
            };
        }
        GreylistVerdict::Pass { first_pass } => {
            test.verdict = "pass".into();
            test.explanation = if first_pass {
                "a retry after the delay: accepted, and remembered".into()
            } else {
                "passed before: accepted at once".into()
            };
        }
    }
    Ok(test)
}
