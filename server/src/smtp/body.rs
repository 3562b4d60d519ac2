//! Collecting a message body from DATA or BDAT while enforcing what must hold for it to be passed
//! on safely: no bare CR or LF (SMTP smuggling), no NUL, no line longer than 998 octets on the way
//! out (RFC 5321 §4.5.3.1.6), a size limit, and a mail-loop limit on Received: headers.
//!
//! A body is held in memory up to [`INLINE_MAX`]; past it, with a store to spill to
//! ([`Body::spooling`]), what was taken goes to a spool writer (a file, or chunk rows on
//! Postgres) and from then on every [`CHUNK`] bytes, so that a session holds at most its first
//! part (kept for the header checks) and one chunk, whatever the message's size.

use postern_store::Store;
use postern_store::spool::{BodyWriter, CHUNK, INLINE_MAX};

/// Longest line we store, without its CRLF.
pub const MAX_LINE: usize = 998;
/// More Received: headers than this means a mail loop (RFC 5321 §6.3 suggests about 100).
pub const MAX_RECEIVED: usize = 100;

/// Why a body is refused, once it has been read to its real end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    TooBig,
    BareLineEnding,
    Nul,
    Loop,
    /// The spool could not take it (a full disk, a lost database): a temporary failure.
    Storage,
}

/// Takes body bytes (already dot-unstuffed for DATA) and keeps a normalised copy.
pub struct Body {
    /// What was taken and not yet spilled.
    data: Vec<u8>,
    limit: usize,
    /// Octets taken so far (line endings included, our folds not): what the limit applies to,
    /// the size the client announced with SIZE= (RFC 1870 §4).
    size: usize,
    /// Bytes since the last CRLF that we stored.
    line_len: usize,
    prev_cr: bool,
    in_headers: bool,
    /// The first bytes of the current header line, to spot `Received:` without keeping the
    /// line (it may have been spilled already); `lead_len == LEAD` once decided.
    lead: [u8; LEAD],
    lead_len: usize,
    received: usize,
    error: Option<BodyError>,
    spill: Option<Spill>,
}

const LEAD: usize = 9;

type Writer = std::sync::Mutex<Box<dyn BodyWriter>>;

fn unwrap_writer(writer: Writer) -> Box<dyn BodyWriter> {
    writer.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where a large body goes, and what of it stays.
struct Spill {
    store: Store,
    /// In a mutex only to be `Sync` (the session is shared across awaits); never contended,
    /// reached through `get_mut`.
    writer: Option<Writer>,
    /// The first [`INLINE_MAX`] bytes, kept when the writer starts.
    head: Vec<u8>,
    written: u64,
}

impl Drop for Spill {
    /// A body abandoned half-way (the client gone, a timeout) leaves no spool file behind.
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(unwrap_writer(writer).abort());
        }
    }
}

/// A body read to its end without a refusal.
pub enum Finished {
    /// Held in memory, whole.
    Whole(Vec<u8>),
    /// Written to the spool, not yet durable.
    Spooled(Spooled),
}

/// A body in the spool, its writer still open: [`Spooled::commit`] makes it durable; dropped,
/// it is thrown away.
pub struct Spooled {
    /// The first [`INLINE_MAX`] bytes of the body, for what reads only the header block.
    pub head: Vec<u8>,
    pub len: u64,
    spill: Spill,
}

impl Spooled {
    /// Makes the body durable (the file fsynced; its directory is fsynced by the queue writer
    /// for a whole batch) and returns its `body_ref`.
    pub async fn commit(mut self) -> Result<String, postern_store::StoreError> {
        let writer = self.spill.writer.take();
        match writer {
            Some(writer) => unwrap_writer(writer).commit().await,
            None => Err(postern_store::StoreError::Spool {
                path: "spool".into(),
                source: std::io::Error::other("the body was already committed"),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.spill.store
    }
}

impl Body {
    pub fn new(limit: usize) -> Body {
        Body {
            data: Vec::with_capacity(limit.min(64 * 1024)),
            limit,
            size: 0,
            line_len: 0,
            prev_cr: false,
            in_headers: true,
            lead: [0; LEAD],
            lead_len: 0,
            received: 0,
            error: None,
            spill: None,
        }
    }

    /// A body that goes to `store`'s spool once it passes [`INLINE_MAX`] (with `None`, one
    /// held whole, as [`Body::new`]).
    pub fn spooling(limit: usize, store: Option<&Store>) -> Body {
        let mut body = Body::new(limit);
        body.spill = store.map(|store| Spill {
            store: store.clone(),
            writer: None,
            head: Vec::new(),
            written: 0,
        });
        body
    }

    /// Size of what was taken so far.
    pub fn len(&self) -> usize {
        self.size
    }

    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    fn fail(&mut self, error: BodyError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
        // Keep reading to the real end, but stop storing.
        self.data = Vec::new();
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        while let Some((&b, rest)) = bytes.split_first() {
            if self.error.is_some() {
                // Only bare line endings matter after a failure: nothing more is stored.
                self.prev_cr = bytes.last() == Some(&b'\r');
                return;
            }
            // Inside a line, past its lead, with room before the fold: a run without CR, LF or
            // NUL is taken whole. Everything else goes a byte at a time.
            if !self.prev_cr && self.lead_len == LEAD && self.line_len < MAX_LINE {
                let run = memchr::memchr3(b'\r', b'\n', 0, bytes).unwrap_or(bytes.len());
                let take = run.min(MAX_LINE - self.line_len);
                if take > 0 {
                    self.data.extend_from_slice(&bytes[..take]);
                    self.line_len += take;
                    self.grow(take);
                    if self.error.is_some() {
                        return;
                    }
                    bytes = &bytes[take..];
                    continue;
                }
            }
            bytes = rest;
            if !self.push_byte(b) {
                return;
            }
        }
    }

    /// One byte of [`Body::push`]; `false` once the body has failed on it.
    fn push_byte(&mut self, b: u8) -> bool {
        match (self.prev_cr, b) {
            (true, b'\n') => {
                self.prev_cr = false;
                self.end_line();
                return self.error.is_none();
            }
            (true, _) => {
                self.fail(BodyError::BareLineEnding);
                return false;
            }
            (false, b'\n') => {
                self.fail(BodyError::BareLineEnding);
                return false;
            }
            (false, b'\r') => {
                self.prev_cr = true;
                return true;
            }
            (false, 0) => {
                self.fail(BodyError::Nul);
                return false;
            }
            _ => {}
        }
        if self.line_len == MAX_LINE {
            // Fold as Postfix does: CRLF SPACE keeps a header line a header continuation.
            self.data.extend_from_slice(b"\r\n ");
            self.line_len = 1;
        }
        if self.lead_len < LEAD {
            self.lead_start(b);
            if self.error.is_some() {
                return false;
            }
        }
        self.data.push(b);
        self.line_len += 1;
        self.grow(1);
        self.error.is_none()
    }

    /// One more byte at the start of a header line: a line that starts `Received:` counts.
    fn lead_start(&mut self, b: u8) {
        if !self.in_headers {
            self.lead_len = LEAD;
            return;
        }
        self.lead[self.lead_len] = b;
        self.lead_len += 1;
        if self.lead_len == LEAD && self.lead.eq_ignore_ascii_case(b"received:") {
            self.received += 1;
            if self.received > MAX_RECEIVED {
                self.fail(BodyError::Loop);
            }
        }
    }

    /// Counts `n` more octets; one past the limit fails the body (`552 5.3.4`).
    fn grow(&mut self, n: usize) {
        self.size += n;
        if self.size > self.limit {
            self.fail(BodyError::TooBig);
        }
    }

    fn end_line(&mut self) {
        self.grow(2);
        if self.error.is_some() {
            return;
        }
        // A fold counts as a byte of the line, so only a line really empty ends the headers.
        if self.in_headers && self.line_len == 0 {
            self.in_headers = false;
        }
        self.data.extend_from_slice(b"\r\n");
        self.line_len = 0;
        self.lead_len = 0;
    }

    /// With a spool, moves what was taken there once it is large enough: the first time at
    /// [`INLINE_MAX`], then a [`CHUNK`] at a time. Called between reads, so that the session's
    /// memory stays bounded; a spool that fails refuses the message (`451 4.3.0`) once it is
    /// read to its end, and a refused body's spooled part is thrown away at once.
    pub async fn spill(&mut self) {
        let Some(spill) = &mut self.spill else { return };
        if self.error.is_some() {
            if let Some(writer) = spill.writer.take() {
                unwrap_writer(writer).abort().await;
            }
            return;
        }
        let threshold = if spill.writer.is_some() { CHUNK } else { INLINE_MAX };
        if self.data.len() < threshold {
            return;
        }
        if spill.writer.is_none() {
            match spill.store.body_writer().await {
                Ok(writer) => {
                    spill.writer = Some(std::sync::Mutex::new(writer));
                    spill.head = self.data[..INLINE_MAX.min(self.data.len())].to_vec();
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot spool a message body");
                    return self.fail(BodyError::Storage);
                }
            }
        }
        if let Err(e) = write(spill, &self.data).await {
            tracing::error!(error = %e, "cannot spool a message body");
            return self.fail(BodyError::Storage);
        }
        self.data.clear();
    }

    /// The stored body, or why it is refused. A body that does not end with CRLF gets one.
    /// A body that went to the spool is [`Finished::Spooled`], its last part written.
    pub async fn finish_streamed(mut self) -> Result<Finished, BodyError> {
        if self.prev_cr && self.error.is_none() {
            self.fail(BodyError::BareLineEnding);
        }
        if let Some(e) = self.error {
            // Dropping the spill aborts its writer.
            if let Some(writer) = self.spill.as_mut().and_then(|s| s.writer.take()) {
                unwrap_writer(writer).abort().await;
            }
            return Err(e);
        }
        if self.line_len > 0 {
            self.data.extend_from_slice(b"\r\n");
        }
        let spilled = self.spill.as_ref().is_some_and(|s| s.writer.is_some());
        if !spilled {
            return Ok(Finished::Whole(std::mem::take(&mut self.data)));
        }
        let Some(mut spill) = self.spill.take() else { return Err(BodyError::Storage) };
        if let Err(e) = write(&mut spill, &self.data).await {
            tracing::error!(error = %e, "cannot spool a message body");
            return Err(BodyError::Storage);
        }
        Ok(Finished::Spooled(Spooled {
            head: std::mem::take(&mut spill.head),
            len: spill.written,
            spill,
        }))
    }

    /// [`Body::finish_streamed`] for a body held in memory (no spool).
    pub fn finish(mut self) -> Result<Vec<u8>, BodyError> {
        if self.prev_cr && self.error.is_none() {
            self.fail(BodyError::BareLineEnding);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.line_len > 0 {
            self.data.extend_from_slice(b"\r\n");
        }
        Ok(std::mem::take(&mut self.data))
    }
}

async fn write(spill: &mut Spill, data: &[u8]) -> Result<(), postern_store::StoreError> {
    if data.is_empty() {
        return Ok(());
    }
    let Some(writer) = spill.writer.as_mut() else { return Ok(()) };
    let writer = writer.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
    let written = writer.write(data).await;
    if written.is_err()
        && let Some(writer) = spill.writer.take()
    {
        unwrap_writer(writer).abort().await;
    }
    written?;
    spill.written += data.len() as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(input: &[u8]) -> Result<Vec<u8>, BodyError> {
        let mut b = Body::new(10_000);
        for chunk in input.chunks(3) {
            b.push(chunk);
        }
        b.finish()
    }

    #[test]
    fn keeps_crlf_text() {
        assert_eq!(body(b"Subject: x\r\n\r\nhello\r\n").unwrap(), b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(body(b"no final newline").unwrap(), b"no final newline\r\n");
    }

    #[test]
    fn refuses_bare_endings_and_nul() {
        assert_eq!(body(b"a\nb\r\n"), Err(BodyError::BareLineEnding));
        assert_eq!(body(b"a\rb\r\n"), Err(BodyError::BareLineEnding));
        assert_eq!(body(b"a\r"), Err(BodyError::BareLineEnding));
        assert_eq!(body(b"a\0b\r\n"), Err(BodyError::Nul));
    }

    #[test]
    fn folds_long_lines() {
        let long = vec![b'x'; 2500];
        let out = body(&[&long[..], b"\r\n"].concat()).unwrap();
        for line in out.split(|&b| b == b'\n') {
            assert!(line.len() <= MAX_LINE + 1, "{}", line.len());
        }
        assert_eq!(out.iter().filter(|&&b| b == b'x').count(), 2500);
    }

    #[test]
    fn the_limit_counts_line_endings_and_not_folds() {
        let exact = |limit: usize, input: &[u8]| {
            let mut b = Body::new(limit);
            b.push(input);
            b.finish().map(|_| ())
        };
        // 10 octets with the CRLF: at the limit, then one over.
        assert_eq!(exact(10, b"01234567\r\n"), Ok(()));
        assert_eq!(exact(9, b"01234567\r\n"), Err(BodyError::TooBig));
        // A 2,000-octet line is folded in storage, but counts what was sent.
        let long = [&vec![b'x'; 2000][..], b"\r\n"].concat();
        assert_eq!(exact(2002, &long), Ok(()));
        assert_eq!(exact(2001, &long), Err(BodyError::TooBig));
    }

    #[test]
    fn limits_size_and_received() {
        let mut b = Body::new(10);
        b.push(b"0123456789abc\r\n");
        assert_eq!(b.finish(), Err(BodyError::TooBig));
        let many = "Received: from x\r\n".repeat(MAX_RECEIVED + 1);
        assert_eq!(
            body(format!("{many}\r\nbody\r\n").as_bytes()).map(|_| ()),
            Err(BodyError::Loop)
        );
        let ok = "Received: from x\r\n".repeat(MAX_RECEIVED);
        let mut b = Body::new(100_000);
        b.push(format!("{ok}\r\nReceived: in the body does not count\r\n").as_bytes());
        assert!(b.finish().is_ok());
    }
}
