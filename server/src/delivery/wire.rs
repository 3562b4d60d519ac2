//! What goes on the wire for a message: paths in their RFC 5321 spelling, and the DATA payload
//! (CRLF line ends, dot-stuffed, lines within 998 octets, ended by `<CRLF>.<CRLF>`).

use super::reply::Reply;

/// RFC 5321 §4.5.3.1.6: a line is at most 1000 octets including its CRLF.
pub const MAX_LINE: usize = 998;

/// Why a body cannot be sent as it is. Each is permanent: retrying sends the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// A CR not followed by LF. Normalising it would change the message in a way its author
    /// did not see, and a stray CR is what SMTP smuggling is made of, so we refuse it.
    BareCr { offset: usize },
    /// A line longer than [`MAX_LINE`]. Folding a body line would break DKIM signatures and,
    /// in a MIME part, the content itself; re-encoding is the submitter's job, so we refuse.
    LineTooLong { line: usize, length: usize },
}

impl BodyError {
    /// The reply a sender sees in the bounce.
    pub fn reply(&self) -> Reply {
        let text = match self {
            BodyError::BareCr { offset } => {
                format!("message has a bare CR at octet {offset}, refusing to send it")
            }
            BodyError::LineTooLong { line, length } => format!(
                "line {line} of the message is {length} octets long, over the {MAX_LINE} that \
                 SMTP allows (RFC 5321 4.5.3.1.6)"
            ),
        };
        Reply::new(554, [5, 6, 0], text)
    }
}

/// The DATA payload for `body`, including the final `.<CRLF>`, whole: for tests and small
/// messages. Delivery sends [`DataBlocks`] instead, without a second copy of the message.
///
/// A bare LF is taken as a line end and sent as CRLF (messages written by local programs often
/// have Unix line ends; RFC 5321 §2.3.8 forbids sending a bare LF). A line that starts with "."
/// gets one more, including the very first line of the body (RFC 5321 §4.5.2), which some
/// clients forget.
pub fn encode_data(body: &[u8]) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(check_data(body)?);
    let mut blocks = DataBlocks::new(body);
    while blocks.next_into(&mut out, usize::MAX) {}
    Ok(out)
}

/// Checks that `body` can be sent as [`encode_data`] describes, before anything is sent (so
/// that a refusal is permanent and the peer never sees half a message), and returns the length
/// of its DATA payload, terminator included.
pub fn check_data(body: &[u8]) -> Result<usize, BodyError> {
    let mut len = 0usize;
    let mut line_start = true;
    let mut line_len = 0usize;
    let mut line_no = 1usize;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        match b {
            b'\r' if body.get(i + 1) == Some(&b'\n') => {
                len += 2;
                i += 2;
                line_start = true;
                line_len = 0;
                line_no += 1;
                continue;
            }
            b'\r' => return Err(BodyError::BareCr { offset: i }),
            b'\n' => {
                len += 2;
                line_start = true;
                line_len = 0;
                line_no += 1;
            }
            _ => {
                if line_start && b == b'.' {
                    len += 1;
                }
                line_start = false;
                // The rest of the line, up to its CR or LF, at once.
                let run = memchr::memchr2(b'\r', b'\n', &body[i..]).unwrap_or(body.len() - i);
                line_len += run;
                if line_len > MAX_LINE {
                    return Err(BodyError::LineTooLong { line: line_no, length: line_len });
                }
                len += run;
                i += run;
                continue;
            }
        }
        i += 1;
    }
    if !line_start {
        len += 2;
    }
    Ok(len + 3)
}

/// The DATA payload of a body [`check_data`] accepted, produced a block at a time, so that
/// dot-stuffing happens on the way to the socket (RFC 5321 §4.5.2) rather than in a copy of
/// the whole message.
pub struct DataBlocks<'a> {
    body: &'a [u8],
    pos: usize,
    line_start: bool,
    finished: bool,
}

impl<'a> DataBlocks<'a> {
    pub fn new(body: &'a [u8]) -> DataBlocks<'a> {
        DataBlocks { body, pos: 0, line_start: true, finished: false }
    }

    /// Appends the next block, about `max` bytes (a line end, a stuffed dot and the
    /// terminator may take it up to 6 over), to `out`; `false` once all was given.
    pub fn next_into(&mut self, out: &mut Vec<u8>, max: usize) -> bool {
        if self.finished {
            return false;
        }
        let start = out.len();
        while self.pos < self.body.len() && out.len() - start < max {
            let b = self.body[self.pos];
            match b {
                // check_data refused a CR without its LF.
                b'\r' => {
                    out.extend_from_slice(b"\r\n");
                    self.pos += 2;
                    self.line_start = true;
                    continue;
                }
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                }
                _ => {
                    if self.line_start && b == b'.' {
                        out.push(b'.');
                    }
                    self.line_start = false;
                    // The rest of the line, up to its CR or LF or the block's end, at once.
                    let rest = &self.body[self.pos..];
                    let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                    let run = run.min(max - (out.len() - start));
                    out.extend_from_slice(&rest[..run]);
                    self.pos += run;
                    continue;
                }
            }
            self.pos += 1;
        }
        if self.pos >= self.body.len() {
            if !self.line_start {
                // The terminator needs the last line ended (RFC 5321 §4.1.1.4).
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b".\r\n");
            self.finished = true;
        }
        true
    }
}

/// [`DataBlocks`] for a body given in pieces (one read from the spool): dot-stuffs each piece
/// as it comes (RFC 5321 §4.5.2), carrying the line state across pieces, and checks what
/// [`check_data`] checks on the way, since the whole cannot be checked first. A body that fails
/// half-way is abandoned by closing the connection, so that the peer never takes half a message.
#[derive(Debug)]
pub struct Stuffer {
    line_start: bool,
    prev_cr: bool,
    line_len: usize,
    line_no: usize,
    offset: usize,
}

impl Default for Stuffer {
    fn default() -> Stuffer {
        Stuffer { line_start: true, prev_cr: false, line_len: 0, line_no: 1, offset: 0 }
    }
}

impl Stuffer {
    /// Appends `piece`, stuffed, to `out`.
    pub fn push(&mut self, piece: &[u8], out: &mut Vec<u8>) -> Result<(), BodyError> {
        let mut i = 0;
        while let Some(&b) = piece.get(i) {
            i += 1;
            if self.prev_cr {
                if b != b'\n' {
                    return Err(BodyError::BareCr { offset: self.offset - 1 });
                }
                self.prev_cr = false;
                self.end_line(out);
                self.offset += 1;
                continue;
            }
            match b {
                b'\r' => self.prev_cr = true,
                b'\n' => self.end_line(out),
                _ => {
                    if self.line_start && b == b'.' {
                        out.push(b'.');
                    }
                    self.line_start = false;
                    // This byte and the rest of the line in this piece, up to its CR or LF.
                    let rest = &piece[i - 1..];
                    let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                    if self.line_len + run > MAX_LINE {
                        return Err(BodyError::LineTooLong {
                            line: self.line_no,
                            length: MAX_LINE + 1,
                        });
                    }
                    self.line_len += run;
                    out.extend_from_slice(&rest[..run]);
                    self.offset += run;
                    i += run - 1;
                    continue;
                }
            }
            self.offset += 1;
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n");
        self.line_start = true;
        self.line_len = 0;
        self.line_no += 1;
    }

    /// Ends the payload: the last line ended, then `.<CRLF>`.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        if self.prev_cr {
            return Err(BodyError::BareCr { offset: self.offset - 1 });
        }
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        Ok(())
    }
}

/// RFC 5322 §3.2.3 atext, with RFC 6531's UTF-8 allowed.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_dot_atom(local: &str) -> bool {
    !local.is_empty() && local.split('.').all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// `<local@domain>` with the local part quoted when it is not a dot-atom (RFC 5321 §4.1.2);
/// `<>` for the null sender.
pub fn path(address: &str) -> String {
    format!("<{}>", mailbox(address))
}

/// `local@domain` as RFC 5321 §4.1.2 and RFC 5322 §3.4.1 spell it: the local part as it is
/// when it is a dot-atom, else as a quoted string (`"a b"@example.com`). Addresses are kept
/// unquoted inside Postern; this is the spelling for a path, a header field or a DSN.
pub fn mailbox(address: &str) -> String {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return address.to_string();
    };
    if is_dot_atom(local) {
        return address.to_string();
    }
    let mut quoted = String::with_capacity(local.len() + domain.len() + 4);
    quoted.push('"');
    for c in local.chars() {
        // qtextSMTP (and RFC 5322's qtext) exclude only '"' and '\' of the printable
        // characters; those go as a quoted-pair.
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted.push('@');
    quoted.push_str(domain);
    quoted
}

/// RFC 3461 §4: xtext for ENVID=; '+', '=' and anything outside '!'..'~' as "+HH".
pub fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// True when the envelope or the header section holds non-ASCII, so the next hop must offer
/// SMTPUTF8 (RFC 6531 §3.2) or the message cannot go there as it is.
pub fn needs_smtputf8(sender: &str, recipients: &[String], body: &[u8], smtputf8: bool) -> bool {
    if !sender.is_ascii() || recipients.iter().any(|r| !r.is_ascii()) {
        return true;
    }
    if !smtputf8 {
        return false;
    }
    let header_end = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(body.len());
    !body[..header_end].is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_dot_is_stuffed_too() {
        assert_eq!(encode_data(b".hidden\r\nx\r\n").unwrap(), b"..hidden\r\nx\r\n.\r\n");
        assert_eq!(encode_data(b".\r\n").unwrap(), b"..\r\n.\r\n");
    }

    #[test]
    fn the_stuffer_gives_what_data_blocks_give_whatever_the_pieces() {
        let body = b".a\r\nb\n..c\r\n\r\n.\r\nlast line without end";
        let whole = encode_data(body).unwrap();
        for size in [1, 2, 3, 5, 64] {
            let mut stuffer = Stuffer::default();
            let mut out = Vec::new();
            for piece in body.chunks(size) {
                stuffer.push(piece, &mut out).unwrap();
            }
            stuffer.finish(&mut out).unwrap();
            assert_eq!(out, whole, "pieces of {size}");
        }
        let mut out = Vec::new();
        assert!(matches!(
            Stuffer::default().push(b"a\rb", &mut out),
            Err(BodyError::BareCr { offset: 1 })
        ));
        let long = vec![b'x'; MAX_LINE + 1];
        assert!(Stuffer::default().push(&long, &mut out).is_err());
    }

    #[test]
    fn a_terminator_inside_the_body_is_stuffed() {
        let body = b"Subject: x\r\n\r\nbefore\r\n.\r\nafter\r\n..two\r\n";
        assert_eq!(
            encode_data(body).unwrap(),
            b"Subject: x\r\n\r\nbefore\r\n..\r\nafter\r\n...two\r\n.\r\n"
        );
    }

    #[test]
    fn bare_lf_becomes_crlf_and_the_last_line_is_ended() {
        assert_eq!(encode_data(b"a\nb\n.\nc").unwrap(), b"a\r\nb\r\n..\r\nc\r\n.\r\n");
        assert_eq!(encode_data(b"").unwrap(), b".\r\n");
    }

    #[test]
    fn bare_cr_is_refused() {
        assert_eq!(encode_data(b"a\rb\r\n"), Err(BodyError::BareCr { offset: 1 }));
        assert_eq!(encode_data(b"a\r\n.\r\r\n"), Err(BodyError::BareCr { offset: 4 }));
        assert_eq!(encode_data(b"end\r"), Err(BodyError::BareCr { offset: 3 }));
    }

    #[test]
    fn no_bare_cr_or_lf_ever_reaches_the_wire() {
        let out = encode_data(b"x\n\n.\r\n\n.\n").unwrap();
        for (i, b) in out.iter().enumerate() {
            if *b == b'\n' {
                assert_eq!(out[i - 1], b'\r');
            }
            if *b == b'\r' {
                assert_eq!(out[i + 1], b'\n');
            }
        }
    }

    #[test]
    fn lines_over_998_octets_are_refused() {
        let ok = [b"a".repeat(998), b"\r\n".to_vec()].concat();
        assert!(encode_data(&ok).is_ok());
        let long = [b"h\r\n".to_vec(), b"a".repeat(999), b"\r\nz\r\n".to_vec()].concat();
        assert_eq!(encode_data(&long), Err(BodyError::LineTooLong { line: 2, length: 999 }));
        // A leading dot's stuffing does not count against the author.
        let dotted = [b".".to_vec(), b"a".repeat(997), b"\r\n".to_vec()].concat();
        assert!(encode_data(&dotted).is_ok());
    }

    #[test]
    fn blocks_of_any_size_make_the_same_payload() {
        let body = b".a\r\nb\n..c\r\n\r\n.\r\nlast line without end";
        let whole = encode_data(body).unwrap();
        assert_eq!(check_data(body).unwrap(), whole.len());
        for max in [1, 2, 3, 5, 64] {
            let mut blocks = DataBlocks::new(body);
            let mut out = Vec::new();
            let mut block = Vec::new();
            while blocks.next_into(&mut block, max) {
                assert!(block.len() <= max + 6, "{max}: {}", block.len());
                out.append(&mut block);
            }
            assert_eq!(out, whole, "blocks of {max}");
        }
    }

    #[test]
    fn paths_are_quoted_when_needed() {
        assert_eq!(path(""), "<>");
        assert_eq!(path("a.b+c@example.com"), "<a.b+c@example.com>");
        assert_eq!(path("a b@example.com"), "<\"a b\"@example.com>");
        assert_eq!(path("x\"y\\z@example.com"), "<\"x\\\"y\\\\z\"@example.com>");
        assert_eq!(path("a..b@example.com"), "<\"a..b\"@example.com>");
        assert_eq!(path("a@b@example.com"), "<\"a@b\"@example.com>");
        assert_eq!(path("jösé@example.com"), "<jösé@example.com>");
        assert_eq!(mailbox("a b|c;d@ext.test"), "\"a b|c;d\"@ext.test");
        assert_eq!(mailbox("ann@example.com"), "ann@example.com");
    }

    #[test]
    fn xtext_escapes_plus_equals_and_controls() {
        assert_eq!(xtext("ab+c=d e"), "ab+2Bc+3Dd+20e");
    }
}
