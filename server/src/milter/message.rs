//! The message as milters see and change it: its header fields one by one (name and raw value,
//! folding kept) and its body, and the header and body modifications applied the way Sendmail
//! and Postfix apply them (`smfi_addheader`, `smfi_insheader`, `smfi_chgheader`,
//! `smfi_replacebody`).

/// One header field: its name and everything after the colon, folds included, CRLF-separated,
/// without the final line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub fields: Vec<Field>,
    /// Whether an empty line separated the header from the body.
    separated: bool,
    pub body: Vec<u8>,
}

/// Whether `line` starts a header field: a name of printable characters, then a colon.
fn field_name(line: &[u8]) -> Option<usize> {
    let colon = line.iter().position(|&b| b == b':')?;
    (colon > 0 && line[..colon].iter().all(|&b| (33..=126).contains(&b))).then_some(colon)
}

impl Message {
    /// Splits a message (CRLF line endings, as the session collected it). Anything that is not a
    /// header field or its continuation ends the header, as in Postfix's cleanup.
    pub fn parse(message: &[u8]) -> Message {
        let mut fields: Vec<Field> = Vec::new();
        let mut at = 0;
        while at < message.len() {
            let end = message[at..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(message.len(), |p| at + p);
            let line = &message[at..end];
            let next = (end + 2).min(message.len());
            if line.is_empty() {
                return Message { fields, separated: true, body: message[next..].to_vec() };
            }
            if matches!(line[0], b' ' | b'\t')
                && let Some(last) = fields.last_mut()
            {
                last.raw.extend_from_slice(b"\r\n");
                last.raw.extend_from_slice(line);
            } else if let Some(colon) = field_name(line) {
                fields.push(Field {
                    name: String::from_utf8_lossy(&line[..colon]).into_owned(),
                    raw: line[colon + 1..].to_vec(),
                });
            } else {
                break;
            }
            at = next;
        }
        Message { fields, separated: false, body: message[at.min(message.len())..].to_vec() }
    }

    /// [`Message::to_bytes`] without copying the body: the header block goes in front of it.
    pub fn into_bytes(self) -> Vec<u8> {
        let mut head = Vec::with_capacity(64 * self.fields.len() + 2);
        for f in &self.fields {
            head.extend_from_slice(f.name.as_bytes());
            head.push(b':');
            head.extend_from_slice(&f.raw);
            head.extend_from_slice(b"\r\n");
        }
        if self.separated {
            head.extend_from_slice(b"\r\n");
        }
        let mut body = self.body;
        body.splice(0..0, head);
        body
    }

    #[cfg(test)]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64 * self.fields.len() + 2);
        for f in &self.fields {
            out.extend_from_slice(f.name.as_bytes());
            out.push(b':');
            out.extend_from_slice(&f.raw);
            out.extend_from_slice(b"\r\n");
        }
        if self.separated {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.body);
        out
    }

    /// The value a milter is sent for `field`: folds as bare LF (as Sendmail and Postfix send
    /// them), and without the leading blanks unless the milter asked for them
    /// (`SMFIP_HDR_LEADSPC`).
    pub fn value_for_milter(field: &Field, leading_space: bool) -> Vec<u8> {
        let raw: &[u8] = if leading_space {
            &field.raw
        } else {
            let start = field.raw.iter().position(|&b| b != b' ' && b != b'\t');
            &field.raw[start.unwrap_or(field.raw.len())..]
        };
        let mut out = Vec::with_capacity(raw.len());
        for (i, &b) in raw.iter().enumerate() {
            if b == b'\r' && raw.get(i + 1) == Some(&b'\n') {
                continue;
            }
            out.push(b);
        }
        out
    }

    /// A field from a milter's value: LF-folded values get CRLF, and a space after the colon
    /// unless the milter writes its own leading blanks.
    fn field(name: &str, value: &[u8], leading_space: bool) -> Field {
        let mut raw = Vec::with_capacity(value.len() + 8);
        if !leading_space {
            raw.push(b' ');
        }
        for &b in value {
            match b {
                b'\r' => {}
                b'\n' => raw.extend_from_slice(b"\r\n"),
                // A NUL or lone control would be refused later or break the header.
                0 => raw.push(b' '),
                _ => raw.push(b),
            }
        }
        // A fold must continue with a blank, or the next line would become a field of its own.
        let mut fixed = Vec::with_capacity(raw.len());
        for (i, &b) in raw.iter().enumerate() {
            fixed.push(b);
            if b == b'\n' && !matches!(raw.get(i + 1), Some(b' ' | b'\t')) {
                fixed.push(b'\t');
            }
        }
        Field { name: name.to_string(), raw: fixed }
    }

    pub fn add_header(&mut self, name: &str, value: &[u8], leading_space: bool) {
        self.fields.push(Message::field(name, value, leading_space));
    }

    /// Inserts before the `index`-th field (0 is the top); past the end appends.
    pub fn insert_header(&mut self, index: u32, name: &str, value: &[u8], leading_space: bool) {
        let at = (index as usize).min(self.fields.len());
        self.fields.insert(at, Message::field(name, value, leading_space));
    }

    /// Changes the `index`-th (1-based) field called `name`, deleting it when `value` is empty;
    /// a field that is not there is added (an empty value then does nothing), as libmilter
    /// documents for `smfi_chgheader`.
    pub fn change_header(&mut self, index: u32, name: &str, value: &[u8], leading_space: bool) {
        let found = self
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name.eq_ignore_ascii_case(name))
            .nth((index.max(1) - 1) as usize)
            .map(|(i, _)| i);
        match (found, value.is_empty()) {
            (Some(i), true) => {
                self.fields.remove(i);
            }
            (Some(i), false) => {
                let name = self.fields[i].name.clone();
                self.fields[i] = Message::field(&name, value, leading_space);
            }
            (None, true) => {}
            (None, false) => self.add_header(name, value, leading_space),
        }
    }

    /// A new body, with bare line endings made CRLF (our queue refuses bare CR or LF).
    pub fn replace_body(&mut self, body: &[u8]) {
        let mut out = Vec::with_capacity(body.len() + body.len() / 32);
        for (i, &b) in body.iter().enumerate() {
            match b {
                b'\r' if body.get(i + 1) != Some(&b'\n') => out.extend_from_slice(b"\r\n"),
                b'\n' if i == 0 || body[i - 1] != b'\r' => out.extend_from_slice(b"\r\n"),
                0 => out.push(b' '),
                _ => out.push(b),
            }
        }
        self.separated = true;
        self.body = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &[u8] =
        b"From: a@example.com\r\nSubject: one\r\n two\r\nX-A: 1\r\nx-a:2\r\n\r\nBody\r\n";

    #[test]
    fn parses_and_writes_back_the_same_bytes() {
        let m = Message::parse(M);
        assert_eq!(m.fields.len(), 4);
        assert_eq!(m.fields[1].raw, b" one\r\n two");
        assert_eq!(m.body, b"Body\r\n");
        assert_eq!(m.to_bytes(), M);
        assert_eq!(Message::value_for_milter(&m.fields[1], false), b"one\n two");
        assert_eq!(Message::value_for_milter(&m.fields[1], true), b" one\n two");
        // No empty line: the first line that is not a field starts the body.
        let odd = b"X: 1\r\nnot a header\r\nmore\r\n";
        let m = Message::parse(odd);
        assert_eq!(m.fields.len(), 1);
        assert_eq!(m.body, b"not a header\r\nmore\r\n");
        assert_eq!(m.to_bytes(), odd);
        assert_eq!(Message::parse(b"").to_bytes(), b"");
    }

    #[test]
    fn header_changes_follow_libmilter() {
        let mut m = Message::parse(M);
        m.add_header("X-Spam", b"yes", false);
        m.insert_header(0, "DKIM-Signature", b"v=1;\n\tb=abc", false);
        m.change_header(2, "X-A", b"", false);
        m.change_header(1, "subject", b"[SPAM] one", false);
        m.change_header(3, "X-Missing", b"", false);
        m.change_header(1, "X-New", b"added", false);
        m.insert_header(99, "X-Last", b"z\nno-blank", false);
        let text = String::from_utf8(m.to_bytes()).unwrap();
        assert_eq!(
            text,
            "DKIM-Signature: v=1;\r\n\tb=abc\r\nFrom: a@example.com\r\nSubject: [SPAM] one\r\n\
             X-A: 1\r\nX-Spam: yes\r\nX-New: added\r\nX-Last: z\r\n\tno-blank\r\n\r\nBody\r\n"
        );
        m.replace_body(b"new\nbody\r\nend\r");
        assert_eq!(m.body, b"new\r\nbody\r\nend\r\n");
    }
}
