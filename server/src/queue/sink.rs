//! The queue as the SMTP session's [`MessageSink`]: an accepted message becomes a queue entry.

use std::future::Future;
use std::pin::Pin;

use postern_store::model::{NewMessage, QueueId};

use super::{Queue, QueueError};
use crate::smtp::MessageSink;

impl MessageSink for Queue {
    fn accept(
        &self,
        message: NewMessage,
    ) -> Pin<Box<dyn Future<Output = Result<QueueId, QueueError>> + Send + '_>> {
        Box::pin(self.enqueue(message))
    }

    fn spool(&self) -> Option<&postern_store::Store> {
        Some(&self.store)
    }

    fn accept_spooled(
        &self,
        message: NewMessage,
        spooled: postern_store::spool::SpooledBody,
    ) -> Pin<Box<dyn Future<Output = Result<QueueId, QueueError>> + Send + '_>> {
        Box::pin(self.enqueue_spooled(message, spooled))
    }
}
