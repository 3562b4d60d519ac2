//! Collecting a message body from DATA or BDAT while enforcing what must hold for it to be passed
//! on safely: no bare CR or LF (SMTP smuggling), no NUL, no line longer than 998 octets on the way
//! out (RFC 5321 §4.5.3.1.6), a size limit, and a mail-loop limit on Received: headers.

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
}

/// Takes body bytes (already dot-unstuffed for DATA) and keeps a normalised copy.
pub struct Body {
    data: Vec<u8>,
    limit: usize,
    /// Octets taken so far (line endings included, our folds not): what the limit applies to,
    /// the size the client announced with SIZE= (RFC 1870 §4).
    size: usize,
    /// Bytes since the last CRLF that we stored.
    line_len: usize,
    prev_cr: bool,
    in_headers: bool,
    header_start: usize,
    received: usize,
    error: Option<BodyError>,
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
            header_start: 0,
            received: 0,
            error: None,
        }
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

    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.error.is_some() {
                // Only bare line endings matter after a failure: nothing more is stored.
                self.prev_cr = b == b'\r';
                continue;
            }
            match (self.prev_cr, b) {
                (true, b'\n') => {
                    self.prev_cr = false;
                    self.end_line();
                    continue;
                }
                (true, _) => return self.fail(BodyError::BareLineEnding),
                (false, b'\n') => return self.fail(BodyError::BareLineEnding),
                (false, b'\r') => {
                    self.prev_cr = true;
                    continue;
                }
                (false, 0) => return self.fail(BodyError::Nul),
                _ => {}
            }
            if self.line_len == MAX_LINE {
                // Fold as Postfix does: CRLF SPACE keeps a header line a header continuation.
                self.data.extend_from_slice(b"\r\n ");
                self.line_len = 1;
            }
            self.data.push(b);
            self.line_len += 1;
            self.grow(1);
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
        if self.in_headers {
            let line = &self.data[self.header_start..];
            if line.is_empty() {
                self.in_headers = false;
            } else if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:") {
                self.received += 1;
                if self.received > MAX_RECEIVED {
                    return self.fail(BodyError::Loop);
                }
            }
        }
        self.data.extend_from_slice(b"\r\n");
        self.line_len = 0;
        self.header_start = self.data.len();
    }

    /// The stored body, or why it is refused. A body that does not end with CRLF gets one.
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
        Ok(self.data)
    }
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
