//! The queue as the SMTP session's [`MessageSink`]: an accepted message becomes a queue entry.

use std::future::Future;
use std::pin::Pin;

use postern_store::model::{DsnRet, NewMessage, NewRecipient, Notify};

use super::Queue;
use crate::smtp::{Accepted, MessageSink};

impl MessageSink for Queue {
    fn accept(
        &self,
        m: Accepted,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        let message = NewMessage {
            sender: m.sender,
            recipients: m
                .recipients
                .into_iter()
                .map(|r| NewRecipient {
                    address: r.address,
                    orcpt: r.orcpt,
                    notify: Notify(r.notify),
                })
                .collect(),
            envid: m.envid,
            ret: m.ret_full.map(|full| if full { DsnRet::Full } else { DsnRet::Headers }),
            smtputf8: m.smtputf8,
            eight_bit: m.eight_bit,
            received_at: m.received_at,
            client: m.client,
            auth_user: m.auth_user,
            body: m.body,
        };
        Box::pin(async move {
            self.enqueue(message).await.map(|id| id.to_string()).map_err(|e| e.to_string())
        })
    }
}
