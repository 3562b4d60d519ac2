//! The queue as the SMTP session's [`MessageSink`]: an accepted message becomes a queue entry.

use std::future::Future;
use std::pin::Pin;

use postern_store::model::NewMessage;

use super::Queue;
use crate::smtp::MessageSink;

impl MessageSink for Queue {
    fn accept(
        &self,
        message: NewMessage,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            self.enqueue(message).await.map(|id| id.to_string()).map_err(|e| e.to_string())
        })
    }
}
