//! SMTP replies: a code, an enhanced status code (RFC 3463, announced by ENHANCEDSTATUSCODES,
//! RFC 2034) and text, written as one line or as a multi-line reply (RFC 5321 §4.2.1).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// `None` only for the greeting and EHLO/HELO replies (RFC 2034 §3).
    pub status: Option<&'static str>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Reply {
        Reply { code, status: Some(status), lines: vec![text.into()] }
    }

    pub fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply { code, status: None, lines }
    }

    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// Closes the connection after it is sent (421 always does, RFC 5321 §3.8).
    pub fn closes(&self) -> bool {
        self.code == 421 || self.code == 221
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            // A reply line never carries a CR or LF of its own: texts can hold client input.
            let clean: String =
                line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            match self.status {
                Some(status) => out.extend_from_slice(
                    format!("{}{sep}{status} {clean}\r\n", self.code).as_bytes(),
                ),
                None => out.extend_from_slice(format!("{}{sep}{clean}\r\n", self.code).as_bytes()),
            }
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} {status} {}", self.code, self.lines.join(" / ")),
            None => write!(f, "{} {}", self.code, self.lines.join(" / ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_single_and_multi_line() {
        let mut out = Vec::new();
        Reply::new(250, "2.1.0", "Ok").write_to(&mut out);
        Reply::plain(250, vec!["mx.example.com".into(), "PIPELINING".into(), "8BITMIME".into()])
            .write_to(&mut out);
        Reply::new(550, "5.1.1", "<a\r\nb@x>: unknown").write_to(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "250 2.1.0 Ok\r\n250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n550 5.1.1 <a  b@x>: unknown\r\n"
        );
    }
}
