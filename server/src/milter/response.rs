//! What a milter answers: a verdict on the step just sent (`SMFIR_ACCEPT`, `CONTINUE`,
//! `REJECT`, `TEMPFAIL`, `DISCARD`, `REPLYCODE`, `SKIP`), a `PROGRESS` keep-alive, or, at the
//! end of a message, one of the modifications it asked for (`mfdef.h`, `SMFIR_*`).

use super::wire::{Packet, Reader, WireError, rsp};

/// One packet from a milter, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Continue,
    /// No more of this message (or of this connection, at connect or HELO) for this milter.
    Accept,
    Reject,
    Tempfail,
    /// Accept the message and drop it.
    Discard,
    /// No more body chunks, please.
    Skip,
    /// Refuse with this SMTP reply: the code and each line's text after the code.
    ReplyCode {
        code: u16,
        lines: Vec<String>,
    },
    /// Still working: wait again (the timeout starts over).
    Progress,
    Modify(Modification),
}

/// A change to the message, taken at the end of the message only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modification {
    /// Append a header field (`smfi_addheader`).
    AddHeader {
        name: String,
        value: Vec<u8>,
    },
    /// Insert a header field before the `index`-th (0 is the top; `smfi_insheader`).
    InsertHeader {
        index: u32,
        name: String,
        value: Vec<u8>,
    },
    /// Change the `index`-th field called `name` (1-based); an empty value deletes it
    /// (`smfi_chgheader`).
    ChangeHeader {
        index: u32,
        name: String,
        value: Vec<u8>,
    },
    AddRecipient(String),
    DeleteRecipient(String),
    /// A new envelope sender (`smfi_chgfrom`); its ESMTP arguments are ignored.
    ChangeSender(String),
    /// A piece of the new body; the pieces of one end of message make the whole new body.
    ReplaceBody(Vec<u8>),
    /// Hold the message in the queue, for this reason.
    Quarantine(String),
}

impl Modification {
    /// The `SMFIF_*` action the milter must have negotiated to send this.
    pub fn action(&self) -> u32 {
        use super::negotiate::act;
        match self {
            Modification::AddHeader { .. } => act::ADDHDRS,
            Modification::InsertHeader { .. } | Modification::ChangeHeader { .. } => {
                act::CHGHDRS | act::ADDHDRS
            }
            Modification::AddRecipient(_) => act::ADDRCPT | act::ADDRCPT_PAR,
            Modification::DeleteRecipient(_) => act::DELRCPT,
            Modification::ChangeSender(_) => act::CHGFROM,
            Modification::ReplaceBody(_) => act::CHGBODY,
            Modification::Quarantine(_) => act::QUARANTINE,
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An address as a milter writes it, with or without angle brackets.
fn address(bytes: &[u8]) -> String {
    let t = text(bytes);
    let t = t.trim();
    t.strip_prefix('<').and_then(|a| a.strip_suffix('>')).unwrap_or(t).to_string()
}

fn header_name(bytes: &[u8]) -> Result<String, WireError> {
    // RFC 5322 §2.2: printable ASCII but the colon.
    if bytes.is_empty()
        || bytes.len() > 200
        || !bytes.iter().all(|&b| (33..=126).contains(&b) && b != b':')
    {
        return Err(WireError::Protocol(format!("bad header name {:?}", text(bytes))));
    }
    Ok(text(bytes))
}

/// `SMFIR_REPLYCODE`: `"550 5.7.1 text"`, or several lines `"550-5.7.1 a\r\n550 5.7.1 b"`,
/// with a 4xx or 5xx code on every line.
fn reply_code(data: &[u8]) -> Result<Response, WireError> {
    let all = text(data.strip_suffix(b"\0").unwrap_or(data));
    let bad = || WireError::Protocol(format!("bad reply code {all:?}"));
    let mut code = None;
    let mut lines = Vec::new();
    for line in all.split('\n').map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
        let (c, rest) = line.split_at_checked(3).ok_or_else(bad)?;
        let c: u16 = c.parse().map_err(|_| bad())?;
        if !(400..600).contains(&c) || code.is_some_and(|k| k != c) {
            return Err(bad());
        }
        code = Some(c);
        lines.push(rest.get(1..).unwrap_or("").to_string());
    }
    Ok(Response::ReplyCode { code: code.ok_or_else(bad)?, lines })
}

impl Response {
    pub fn decode(packet: &Packet) -> Result<Response, WireError> {
        let mut r = Reader::new(&packet.data);
        Ok(match packet.code {
            rsp::CONTINUE => Response::Continue,
            rsp::ACCEPT => Response::Accept,
            rsp::REJECT => Response::Reject,
            rsp::TEMPFAIL => Response::Tempfail,
            rsp::DISCARD => Response::Discard,
            rsp::SKIP => Response::Skip,
            rsp::PROGRESS => Response::Progress,
            rsp::REPLYCODE => reply_code(&packet.data)?,
            rsp::ADDHEADER => Response::Modify(Modification::AddHeader {
                name: header_name(r.str()?)?,
                value: r.str()?.to_vec(),
            }),
            rsp::INSHEADER => Response::Modify(Modification::InsertHeader {
                index: r.u32()?,
                name: header_name(r.str()?)?,
                value: r.str()?.to_vec(),
            }),
            rsp::CHGHEADER => {
                let index = r.u32()?;
                let name = header_name(r.str()?)?;
                // A deletion may come without the empty value's NUL.
                let value = if r.is_empty() { Vec::new() } else { r.str()?.to_vec() };
                Response::Modify(Modification::ChangeHeader { index, name, value })
            }
            rsp::ADDRCPT | rsp::ADDRCPT_PAR => {
                Response::Modify(Modification::AddRecipient(address(r.str()?)))
            }
            rsp::DELRCPT => Response::Modify(Modification::DeleteRecipient(address(r.str()?))),
            rsp::CHGFROM => Response::Modify(Modification::ChangeSender(address(r.str()?))),
            rsp::REPLBODY => Response::Modify(Modification::ReplaceBody(r.rest().to_vec())),
            rsp::QUARANTINE => {
                let reason = if r.is_empty() { String::new() } else { text(r.str()?) };
                Response::Modify(Modification::Quarantine(reason))
            }
            rsp::SHUTDOWN | rsp::CONN_FAIL => {
                return Err(WireError::Protocol("closed the connection".into()));
            }
            other => {
                return Err(WireError::Protocol(format!("unknown reply {:?}", other as char)));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(code: u8, data: &[u8]) -> Result<Response, WireError> {
        Response::decode(&Packet::new(code, data.to_vec()))
    }

    #[test]
    fn verdicts() {
        assert_eq!(d(b'c', b"").unwrap(), Response::Continue);
        assert_eq!(d(b'a', b"").unwrap(), Response::Accept);
        assert_eq!(d(b'r', b"").unwrap(), Response::Reject);
        assert_eq!(d(b't', b"").unwrap(), Response::Tempfail);
        assert_eq!(d(b'd', b"").unwrap(), Response::Discard);
        assert_eq!(d(b's', b"").unwrap(), Response::Skip);
        assert_eq!(d(b'p', b"").unwrap(), Response::Progress);
        assert_eq!(
            d(b'y', b"554 5.7.1 Virus found: Eicar\0").unwrap(),
            Response::ReplyCode { code: 554, lines: vec!["5.7.1 Virus found: Eicar".into()] }
        );
        assert_eq!(
            d(b'y', b"451-4.7.1 a\r\n451 4.7.1 b\0").unwrap(),
            Response::ReplyCode { code: 451, lines: vec!["4.7.1 a".into(), "4.7.1 b".into()] }
        );
        for bad in [&b"250 ok\0"[..], b"55", b"", b"550 a\r\n450 b", b"abc def"] {
            assert!(d(b'y', bad).is_err(), "{bad:?}");
        }
        assert!(d(b'4', b"").is_err());
        assert!(d(b'Z', b"").is_err());
    }

    #[test]
    fn modifications() {
        use Modification::*;
        let m = |code, data: &[u8]| match d(code, data).unwrap() {
            Response::Modify(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            m(b'h', b"X-Spam\0yes\0"),
            AddHeader { name: "X-Spam".into(), value: b"yes".to_vec() }
        );
        assert_eq!(
            m(b'i', b"\0\0\0\0DKIM-Signature\0v=1\0"),
            InsertHeader { index: 0, name: "DKIM-Signature".into(), value: b"v=1".to_vec() }
        );
        assert_eq!(
            m(b'm', b"\0\0\0\x02Subject\0\0"),
            ChangeHeader { index: 2, name: "Subject".into(), value: vec![] }
        );
        assert_eq!(
            m(b'm', b"\0\0\0\x01Subject"),
            ChangeHeader { index: 1, name: "Subject".into(), value: vec![] }
        );
        assert_eq!(m(b'+', b"<a@b.example>\0"), AddRecipient("a@b.example".into()));
        assert_eq!(m(b'2', b"<a@b.example>\0NOTIFY=NEVER\0"), AddRecipient("a@b.example".into()));
        assert_eq!(m(b'-', b"a@b.example\0"), DeleteRecipient("a@b.example".into()));
        assert_eq!(m(b'e', b"<s@x.example>\0SIZE=1\0"), ChangeSender("s@x.example".into()));
        assert_eq!(m(b'b', b"new body\r\n"), ReplaceBody(b"new body\r\n".to_vec()));
        assert_eq!(m(b'q', b"spam\0"), Quarantine("spam".into()));
        assert!(d(b'h', b"Bad Name\0v\0").is_err());
        assert!(d(b'h', b"X:y\0v\0").is_err());
        assert!(d(b'i', b"\0\0").is_err());
    }
}
