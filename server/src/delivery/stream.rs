//! A message body too large to hold, read from the queue a chunk at a time as it is delivered
//! (`postern_store::spool`): Maildir copies it into the mailbox's tmp file, the SMTP and LMTP
//! client dot-stuffs it on its way to the socket (`wire::Stuffer`).

use postern_store::Store;
use postern_store::model::QueueId;
use postern_store::spool::BodyReader;

/// Where to read a spooled message from, and its size.
#[derive(Clone)]
pub struct BodyStream {
    store: Store,
    id: QueueId,
    /// The whole message's size, as queued.
    pub size: u64,
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream").field("id", &self.id).field("size", &self.size).finish()
    }
}

impl BodyStream {
    pub fn new(store: Store, id: QueueId, size: u64) -> BodyStream {
        BodyStream { store, id, size }
    }

    /// The message from its first byte.
    pub async fn open(&self) -> Result<Box<dyn BodyReader>, String> {
        match self.store.queue_body_reader(self.id).await {
            Ok(Some(reader)) => Ok(reader),
            Ok(None) => Err("the message body is missing from the queue".into()),
            Err(e) => Err(format!("cannot read the message body: {e}")),
        }
    }

    /// Copies the message into `out`, from a thread that may block (Maildir delivery runs in
    /// `spawn_blocking`), a chunk at a time.
    pub fn copy_blocking(&self, out: &mut impl std::io::Write) -> std::io::Result<u64> {
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let mut reader = runtime.block_on(self.open()).map_err(std::io::Error::other)?;
        let mut copied = 0u64;
        while let Some(chunk) =
            runtime.block_on(reader.next_chunk()).map_err(std::io::Error::other)?
        {
            out.write_all(&chunk)?;
            copied += chunk.len() as u64;
        }
        if copied != self.size {
            return Err(std::io::Error::other(format!(
                "the spooled message has {copied} bytes, {} expected",
                self.size
            )));
        }
        Ok(copied)
    }
}
