//! The checks on a client that need the network or the store, made at RCPT: the DNS blocklists
//! and built-in greylisting. RCPT, as Postfix's `reject_rbl_client` in
//! `smtpd_recipient_restrictions` (with `smtpd_delay_reject = yes`) and postgrey do, rather
//! than at connect: the sender's domain and the HELO name are known by then (RHSBLs), greylisting
//! needs the recipient, a refused recipient of ours (unknown user, relay denied) was refused
//! before any lookup, the log names the envelope, and a client refused at the greeting would
//! only reconnect. Trusted networks and authenticated clients are never checked.

use std::net::IpAddr;
use std::sync::Arc;

use postern_store::Store;
use postern_store::model::{Config, DomainName, GreylistVerdict, Triplet};

use super::dnsbl::{Blocklists, Subject};
use super::greylist::Greylist;
use super::{Clock, Effects};
use crate::dns::Resolver;
use crate::smtp::Reply;

/// The header field a listing below the threshold adds (`zone=weight, …; score=S; threshold=T`).
pub const DNSBL_FIELD: &str = "X-Postern-DNSBL";

/// What the session knows at RCPT.
#[derive(Debug, Clone, Copy)]
pub struct RcptCheck<'a> {
    pub client: IpAddr,
    /// The client as the log names it.
    pub who: &'a str,
    pub helo: Option<&'a str>,
    /// The envelope sender, "" for `<>`.
    pub sender: &'a str,
    /// The recipient as the client named it.
    pub recipient: &'a str,
    /// Authenticated, or in a trusted network: never checked.
    pub exempt: bool,
}

/// One engine's blocklist checker and greylist, shared by its sessions.
pub struct Screen {
    pub blocklists: Blocklists,
    pub greylist: Greylist,
}

impl Screen {
    pub fn new(store: Store, resolver: Arc<dyn Resolver>, clock: Clock) -> Screen {
        Screen {
            blocklists: Blocklists::new(resolver, clock.clone()),
            greylist: Greylist::new(store, clock),
        }
    }

    /// Whether anything is configured to check: without lists or greylisted domains, RCPT
    /// costs nothing more.
    pub fn wanted(config: &Config) -> bool {
        !config.dnsbl.lists.is_empty() || !config.greylisting.domains.is_empty()
    }

    /// Checks one recipient: `Some` is the refusal (`554 5.7.1` for a listed client, `450 4.7.1`
    /// while greylisted) with what decided, for the delivery log; a listing below the threshold, a list that could not be asked and a
    /// greylisted message that passed go into `effects` (a header field and delivery-log notes).
    pub async fn rcpt(
        &self,
        config: &Config,
        ask: &RcptCheck<'_>,
        effects: &mut Effects,
    ) -> Option<(Reply, String)> {
        if ask.exempt {
            return None;
        }
        if !config.dnsbl.lists.is_empty()
            && let Some(reply) = self.blocklists(config, ask, effects).await
        {
            return Some(reply);
        }
        let domain = ask.recipient.rsplit_once('@').map_or("", |(_, d)| d);
        if config.greylisting.covers(domain) {
            return self.greylisting(config, ask, effects).await;
        }
        None
    }

    async fn blocklists(
        &self,
        config: &Config,
        ask: &RcptCheck<'_>,
        effects: &mut Effects,
    ) -> Option<(Reply, String)> {
        let sender_domain =
            ask.sender.rsplit_once('@').and_then(|(_, d)| d.parse::<DomainName>().ok());
        if config.dnsbl.is_whitelisted(ask.client, sender_domain.as_ref()) {
            tracing::debug!(client = %ask.client, sender = ask.sender, "whitelisted: blocklists not asked");
            return None;
        }
        let mut subjects = vec![Subject::Client(ask.client)];
        if let Some(name) = &sender_domain {
            subjects.push(Subject::Domain { role: "sender domain", name: name.clone() });
        }
        // An address literal ([192.0.2.1]) is no domain to look up.
        if let Some(helo) = ask.helo.and_then(|h| h.parse::<DomainName>().ok())
            && Some(&helo) != sender_domain.as_ref()
        {
            subjects.push(Subject::Domain { role: "HELO name", name: helo });
        }
        let report = self.blocklists.check(&config.dnsbl, &subjects).await;
        for failure in &report.failures {
            push_once(
                &mut effects.notes,
                format!("blocklist {} not asked ({})", failure.zone, failure.error),
            );
        }
        if report.blocked() {
            let worst = report.worst()?;
            let what = if worst.listed == ask.client.to_string() {
                format!("client [{}]", ask.client)
            } else if sender_domain.as_ref().is_some_and(|d| d.as_str() == worst.listed) {
                format!("sender domain {}", worst.listed)
            } else {
                format!("HELO name {}", worst.listed)
            };
            tracing::info!(
                client = %ask.client,
                client_name = ask.who,
                sender = ask.sender,
                recipient = ask.recipient,
                zone = %worst.zone,
                score = report.score,
                threshold = report.threshold,
                lists = %report.summary(),
                "refused by DNS blocklists"
            );
            let reason = format!(
                "DNS blocklist {}: {what} listed, score {} of {} ({})",
                worst.zone,
                report.score,
                report.threshold,
                report.summary()
            );
            return Some((
                Reply::new(
                    554,
                    "5.7.1",
                    format!("Service unavailable; {what} blocked using {}", worst.zone),
                ),
                reason,
            ));
        }
        if !report.hits.is_empty() {
            tracing::info!(
                client = %ask.client,
                client_name = ask.who,
                score = report.score,
                threshold = report.threshold,
                lists = %report.summary(),
                "listed below the blocklist threshold; accepted with a note"
            );
            let field = format!(
                "{DNSBL_FIELD}: {}; score={}; threshold={}",
                report.summary(),
                report.score,
                report.threshold
            );
            push_once(&mut effects.prepend, field);
            push_once(
                &mut effects.notes,
                format!(
                    "blocklist score {} below {} ({})",
                    report.score,
                    report.threshold,
                    report.summary()
                ),
            );
        } else {
            tracing::debug!(client = %ask.client, "listed by no blocklist");
        }
        None
    }

    async fn greylisting(
        &self,
        config: &Config,
        ask: &RcptCheck<'_>,
        effects: &mut Effects,
    ) -> Option<(Reply, String)> {
        let triplet = Triplet::new(ask.client, ask.sender, ask.recipient);
        let settings = &config.greylisting.settings;
        match self.greylist.check(settings, &triplet).await {
            Ok(judgement) => match judgement.verdict {
                GreylistVerdict::Defer { wait, first } => {
                    tracing::info!(
                        client = %ask.client,
                        client_name = ask.who,
                        sender = ask.sender,
                        recipient = ask.recipient,
                        wait,
                        first,
                        "greylisted"
                    );
                    Some((
                        Reply::new(
                            450,
                            "4.7.1",
                            format!("Greylisted, try again in {wait} seconds"),
                        ),
                        match first {
                            true => "greylisting: first attempt".to_string(),
                            false => format!("greylisting: retried too soon, {wait} s to wait"),
                        },
                    ))
                }
                GreylistVerdict::Pass { first_pass } => {
                    if first_pass {
                        let waited =
                            judgement.record.passed_at.unwrap_or(judgement.record.first_seen)
                                - judgement.record.first_seen;
                        tracing::info!(
                            client = %ask.client,
                            sender = ask.sender,
                            recipient = ask.recipient,
                            waited,
                            "greylisting passed"
                        );
                        push_once(
                            &mut effects.notes,
                            format!("greylisting passed after {waited} s"),
                        );
                    }
                    None
                }
            },
            Err(why) => {
                tracing::warn!(error = %why, recipient = ask.recipient, "greylisting skipped: the store failed");
                push_once(
                    &mut effects.notes,
                    "greylisting skipped (store unavailable)".to_string(),
                );
                None
            }
        }
    }
}

fn push_once(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}
