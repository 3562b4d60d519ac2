//! The author fields of a submitted message (RFC 5322 §3.6.2: `From:`, which may list several
//! mailboxes, and `Sender:`): an authenticated user may name only addresses it may send as, so
//! that a mailbox cannot put `From: "CEO" <ceo@…>` on what it sends.

use mail_parser::{HeaderName, HeaderValue, MessageParser};
use postern_store::model::{Address, Config};

use super::reply::Reply;

/// The header block: everything up to and including the first empty line (the whole message
/// when it has no body).
fn header_block(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 4],
        None => message,
    }
}

/// Whether a field's name is `From` or `Sender`, also in the obsolete form with white space
/// before the colon (RFC 5322 §4.5.3), which some readers still show.
fn is_author_field(line: &[u8]) -> Option<&'static str> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line[..colon].trim_ascii_end();
    if name.eq_ignore_ascii_case(b"From") {
        Some("From")
    } else if name.eq_ignore_ascii_case(b"Sender") {
        Some("Sender")
    } else {
        None
    }
}

/// Every address in the author fields, or the reply refusing the message: a field that names
/// no address, or an address that does not parse, cannot be vouched for.
fn authors(message: &[u8]) -> Result<Vec<(&'static str, Address)>, Reply> {
    let block = header_block(message);
    let mut out = Vec::new();
    // Each author field is parsed on its own: a field mail-parser would not recognise (such as
    // `From :`) is still checked, and one field's syntax cannot hide another.
    let mut fields: Vec<(&'static str, Vec<u8>)> = Vec::new();
    for line in block.split_inclusive(|&b| b == b'\n') {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            // A folded continuation (RFC 5322 §2.2.3) of the field before it.
            if let Some((_, field)) = fields.last_mut() {
                field.extend_from_slice(line);
            }
            continue;
        }
        match is_author_field(line) {
            Some(name) => {
                let colon = line.iter().position(|&b| b == b':').expect("a field has a colon");
                let mut field = format!("{name}:").into_bytes();
                field.extend_from_slice(&line[colon + 1..]);
                fields.push((name, field));
            }
            // Not an author field: later continuation lines must not join the previous one.
            None => fields.push(("", Vec::new())),
        }
    }
    for (name, mut field) in fields.into_iter().filter(|(n, _)| !n.is_empty()) {
        field.extend_from_slice(b"\r\n");
        let refused = || {
            Reply::new(
                550,
                "5.7.1",
                format!("Error: the {name}: header names no address we can check"),
            )
        };
        let parsed = MessageParser::new().parse_headers(&field).ok_or_else(refused)?;
        let header = parsed
            .headers()
            .iter()
            .find(|h| matches!(h.name, HeaderName::From | HeaderName::Sender))
            .ok_or_else(refused)?;
        let HeaderValue::Address(list) = &header.value else { return Err(refused()) };
        let mut any = false;
        for addr in list.iter() {
            let Some(text) = addr.address.as_deref() else { return Err(refused()) };
            let address = text.parse::<Address>().map_err(|_| {
                Reply::new(
                    550,
                    "5.7.1",
                    format!(
                        "<{}>: {name}: header address rejected: not a valid address",
                        clean(text)
                    ),
                )
            })?;
            out.push((name, address));
            any = true;
        }
        if !any {
            return Err(refused());
        }
    }
    Ok(out)
}

/// The distinct domains of the `From:` addresses, lower case; none when there is no `From:` or
/// it does not parse.
pub(super) fn from_domains(message: &[u8]) -> Vec<String> {
    let mut domains: Vec<String> = Vec::new();
    for (name, address) in authors(message).unwrap_or_default() {
        let domain = address.domain().as_str().to_ascii_lowercase();
        if name == "From" && !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    domains
}

/// An address from a message, fit to quote in a reply line.
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// `None` when every address in the message's author fields is one `user` may send as; else the
/// `550 5.7.1` that names the first that is not.
pub(super) fn check(config: &Config, user: &Address, message: &[u8]) -> Option<Reply> {
    let authors = match authors(message) {
        Ok(a) => a,
        Err(reply) => return Some(reply),
    };
    authors.into_iter().find(|(_, a)| !config.may_send_as(user, a)).map(|(name, address)| {
        Reply::new(
            550,
            "5.7.1",
            format!("<{address}>: {name}: header address rejected: not owned by user {user}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(message: &str) -> Result<Vec<String>, String> {
        authors(message.as_bytes())
            .map(|v| v.into_iter().map(|(n, a)| format!("{n} {a}")).collect())
            .map_err(|r| r.to_string())
    }

    #[test]
    fn finds_every_author_address() {
        assert_eq!(
            names(
                "Subject: x\r\nFrom: \"CEO\" <ceo@b.test>, ann@a.test\r\n\r\nFrom: not@header\r\n"
            )
            .unwrap(),
            ["From ceo@b.test", "From ann@a.test"]
        );
        assert_eq!(
            names("from : Ann\r\n <ann@a.test>\r\nSENDER: x@c.test\r\nTo: y@d.test\r\n").unwrap(),
            ["From ann@a.test", "Sender x@c.test"]
        );
        assert_eq!(
            names("From: a@a.test\r\nFrom: b@b.test\r\n\r\n").unwrap(),
            ["From a@a.test", "From b@b.test"]
        );
        assert_eq!(names("Subject: none\r\n\r\nbody\r\n").unwrap(), Vec::<String>::new());
        assert!(names("From: CEO\r\n\r\n").is_err());
        assert!(names("From: undisclosed:;\r\n\r\n").is_err());
    }
}
