//! Local delivery from the queue: Maildir, for the recipients that are enabled mailboxes of the
//! configuration current at delivery time.

use std::collections::HashMap;

use postern_store::model::Config;

use crate::delivery::{Delivery, Maildir, Outcome, Reply};

/// Maildir delivery, for the recipients that are enabled mailboxes now.
pub(super) async fn deliver(
    config: &Config,
    maildir: &Maildir,
    recovered: bool,
    addresses: &[String],
    delivery: Delivery<'_>,
) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; addresses.len()];
    let mut deliverable = Vec::new();
    for (i, address) in addresses.iter().enumerate() {
        let parsed: Option<postern_store::model::Address> = address.parse().ok();
        let mailbox = parsed.as_ref().and_then(|a| config.mailboxes.get(a));
        match mailbox {
            // A directory user, accepted at RCPT after the directory found it: its Maildir is
            // where a mailbox of that address would have it.
            None if parsed
                .as_ref()
                .is_some_and(|a| config.directories.contains_key(a.domain())) =>
            {
                deliverable.push(i)
            }
            None => {
                outcomes[i] = Some(Outcome::failed(Reply::new(
                    550,
                    [5, 1, 1],
                    format!("<{address}>: no such mailbox"),
                )))
            }
            Some(m) if !m.enabled => {
                outcomes[i] = Some(Outcome::failed(Reply::new(
                    550,
                    [5, 2, 1],
                    format!("<{address}>: mailbox disabled"),
                )))
            }
            Some(_) => deliverable.push(i),
        }
    }
    if !deliverable.is_empty() {
        let recipients: Vec<String> = deliverable.iter().map(|&i| addresses[i].clone()).collect();
        let quotas: HashMap<String, Option<u64>> = recipients
            .iter()
            .map(|a| {
                (
                    a.clone(),
                    a.parse()
                        .ok()
                        .and_then(|a| config.mailboxes.get(&a))
                        .and_then(|m| m.quota_bytes),
                )
            })
            .collect();
        let maildir = maildir.clone();
        let owned = (
            delivery.queue_id.to_string(),
            delivery.sender.to_string(),
            delivery.body.to_vec(),
            delivery.smtputf8,
            delivery.eight_bit,
            delivery.stream.cloned(),
        );
        // Maildir delivery is file I/O with fsyncs: off the async workers.
        let results = tokio::task::spawn_blocking(move || {
            let (queue_id, sender, body, smtputf8, eight_bit, stream) = owned;
            let d = Delivery {
                queue_id: &queue_id,
                sender: &sender,
                recipients: &recipients,
                body: &body,
                stream: stream.as_ref(),
                smtputf8,
                eight_bit,
                envid: None,
                ret_full: None,
                rcpt_dsn: &[],
            };
            maildir.deliver(&d, |a| quotas.get(a).copied().flatten(), recovered)
        })
        .await
        .unwrap_or_else(|_| {
            vec![
                Outcome::deferred(Reply::new(451, [4, 3, 0], "local delivery failed"));
                deliverable.len()
            ]
        });
        for (i, outcome) in deliverable.into_iter().zip(results) {
            outcomes[i] = Some(outcome);
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::deferred(Reply::new(451, [4, 3, 0], "no outcome"))))
        .collect()
}
