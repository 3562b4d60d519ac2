//! The ESMTP parameters of MAIL and RCPT as the client wrote them: each at most once, and the
//! DSN ones (RFC 3461 §4) well formed and decoded here. smtp-proto parses the command too, but
//! it repairs bad xtext, lets `NOTIFY=NEVER,SUCCESS` and a second `RET` through and keeps
//! control characters, so the DSN values Postern keeps come from this module.

use postern_store::model::{DsnRet, Notify};

use super::reply::Reply;

/// RFC 3461 §4.4: an ENVID is at most 100 characters.
const MAX_ENVID: usize = 100;
/// RFC 3461 §4.2: an ORCPT is at most 500 characters.
const MAX_ORCPT: usize = 500;

/// What MAIL asked of delivery status notifications.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MailDsn {
    pub ret: Option<DsnRet>,
    /// Decoded from xtext; printable US-ASCII only.
    pub envid: Option<String>,
}

/// What one RCPT asked of delivery status notifications.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RcptDsn {
    pub notify: Notify,
    /// `addr-type;address`, the address decoded from xtext; printable US-ASCII only.
    pub orcpt: Option<String>,
}

/// The DSN parameters of a MAIL command line, or the `501 5.5.4` that refuses it.
pub fn mail(line: &[u8]) -> Result<MailDsn, Reply> {
    let mut dsn = MailDsn::default();
    for (keyword, value) in parameters(line)? {
        match keyword.as_str() {
            "RET" => dsn.ret = Some(ret(value)?),
            "ENVID" => dsn.envid = Some(envid(value)?),
            _ => {}
        }
    }
    Ok(dsn)
}

/// The DSN parameters of a RCPT command line, or the `501 5.5.4` that refuses it; `utf8` when
/// the transaction is SMTPUTF8.
pub fn rcpt(line: &[u8], utf8: bool) -> Result<RcptDsn, Reply> {
    let mut dsn = RcptDsn::default();
    for (keyword, value) in parameters(line)? {
        match keyword.as_str() {
            "NOTIFY" => dsn.notify = notify(value)?,
            "ORCPT" => dsn.orcpt = Some(orcpt(value, utf8)?),
            _ => {}
        }
    }
    Ok(dsn)
}

fn bad(text: impl Into<String>) -> Reply {
    Reply::new(501, "5.5.4", text)
}

/// The `KEYWORD[=value]` parameters after the path (RFC 5321 §4.1.2 `Mail-parameters`),
/// keywords upper-cased. A keyword given twice is refused: which one would count is anyone's
/// guess, and RFC 3461 §4 defines each DSN parameter once per command.
fn parameters(line: &[u8]) -> Result<Vec<(String, Option<String>)>, Reply> {
    let rest = String::from_utf8_lossy(after_path(line));
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for word in rest.split(' ').filter(|w| !w.is_empty()) {
        let (keyword, value) = match word.split_once('=') {
            Some((k, v)) => (k.to_ascii_uppercase(), Some(v.to_string())),
            None => (word.to_ascii_uppercase(), None),
        };
        if out.iter().any(|(k, _)| *k == keyword) {
            return Err(bad(format!("Duplicate {keyword} parameter")));
        }
        out.push((keyword, value));
    }
    Ok(out)
}

/// What follows the path of `MAIL FROM:<path>` or `RCPT TO:<path>`. A `>` inside a quoted
/// local part does not end the path.
fn after_path(line: &[u8]) -> &[u8] {
    let Some(colon) = line.iter().position(|&b| b == b':') else { return &[] };
    let mut i = colon + 1;
    while line.get(i) == Some(&b' ') {
        i += 1;
    }
    if line.get(i) != Some(&b'<') {
        let end = line[i..].iter().position(|&b| b == b' ').map_or(line.len(), |p| i + p);
        return &line[end..];
    }
    let mut quoted = false;
    while i < line.len() {
        match line[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return &line[i + 1..],
            _ => {}
        }
        i += 1;
    }
    &[]
}

/// RFC 3461 §4: `xtext = *( xchar / hexchar )`, xchar being `!`..`~` but `+` and `=`, hexchar
/// `+` and two hex digits. The RFC asks for upper-case digits; lower case is read too, as
/// Postfix does, since it is just as unambiguous. With `utf8` (an SMTPUTF8 transaction, RFC 6533
/// §3) UTF-8 characters may also stand as they are. Nothing is repaired: anything else is an
/// error.
pub fn decode_xtext(value: &str, utf8: bool) -> Result<Vec<u8>, &'static str> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .ok_or("a \"+\" not followed by two hex digits")?;
                let hex = std::str::from_utf8(hex).map_err(|_| "bad hex digits")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad hex digits")?);
                i += 3;
            }
            b'=' => return Err("a bare \"=\""),
            c @ b'!'..=b'~' => {
                out.push(c);
                i += 1;
            }
            // `value` is a str: a byte past ASCII is part of a whole UTF-8 character.
            c if utf8 && !c.is_ascii() => {
                out.push(c);
                i += 1;
            }
            _ => return Err("a character outside xtext"),
        }
    }
    Ok(out)
}

/// RFC 3461 §4.2 and §4.4: ENVID and ORCPT carry printable US-ASCII (graphic characters and
/// the space) only, since they end up in a DSN's header fields.
fn printable(bytes: &[u8]) -> Option<String> {
    bytes
        .iter()
        .all(|b| (b' '..=b'~').contains(b))
        .then(|| bytes.iter().map(|&b| char::from(b)).collect())
}

/// RFC 6533 §3: in an SMTPUTF8 transaction an ORCPT address may be UTF-8; still no control
/// characters.
fn utf8_text(bytes: Vec<u8>) -> Option<String> {
    String::from_utf8(bytes).ok().filter(|t| !t.chars().any(char::is_control))
}

/// RFC 3461 §4.3: `RET=FULL` or `RET=HDRS`.
fn ret(value: Option<String>) -> Result<DsnRet, Reply> {
    match value.map(|v| v.to_ascii_uppercase()).as_deref() {
        Some("FULL") => Ok(DsnRet::Full),
        Some("HDRS") => Ok(DsnRet::Headers),
        _ => Err(bad("Bad RET parameter: FULL or HDRS (RFC 3461 4.3)")),
    }
}

/// RFC 3461 §4.4: `ENVID=xtext`, printable US-ASCII once decoded, at most 100 characters.
fn envid(value: Option<String>) -> Result<String, Reply> {
    let refuse = |why: &str| bad(format!("Bad ENVID parameter: {why} (RFC 3461 4.4)"));
    let value = value.filter(|v| !v.is_empty()).ok_or_else(|| refuse("empty"))?;
    if value.len() > MAX_ENVID {
        return Err(refuse("longer than 100 characters"));
    }
    let decoded = decode_xtext(&value, false).map_err(refuse)?;
    printable(&decoded).ok_or_else(|| refuse("not printable US-ASCII"))
}

/// RFC 3461 §4.1: `NOTIFY=NEVER`, or a list of one or more of SUCCESS, FAILURE and DELAY.
fn notify(value: Option<String>) -> Result<Notify, Reply> {
    let refuse =
        || bad("Bad NOTIFY parameter: NEVER alone, or SUCCESS, FAILURE, DELAY (RFC 3461 4.1)");
    let value = value.ok_or_else(refuse)?;
    let mut notify = Notify(0);
    for word in value.split(',') {
        notify = notify
            | match word.to_ascii_uppercase().as_str() {
                "NEVER" => Notify::NEVER,
                "SUCCESS" => Notify::SUCCESS,
                "FAILURE" => Notify::FAILURE,
                "DELAY" => Notify::DELAY,
                _ => return Err(refuse()),
            };
    }
    if notify.contains(Notify::NEVER) && notify != Notify::NEVER {
        return Err(refuse());
    }
    Ok(notify)
}

/// RFC 3461 §4.2: `ORCPT=addr-type;xtext`, at most 500 characters, the address printable
/// US-ASCII once decoded (or, with `utf8`, UTF-8 text). Kept as `addr-type;address`, `rfc822`
/// in lower case.
fn orcpt(value: Option<String>, utf8: bool) -> Result<String, Reply> {
    let refuse = |why: &str| bad(format!("Bad ORCPT parameter: {why} (RFC 3461 4.2)"));
    let value = value.ok_or_else(|| refuse("empty"))?;
    if value.len() > MAX_ORCPT {
        return Err(refuse("longer than 500 characters"));
    }
    let (kind, address) = value.split_once(';').ok_or_else(|| refuse("no address type"))?;
    // addr-type is an atom (RFC 3461 §4.2, RFC 5322 §3.2.3).
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if kind.is_empty() || !kind.chars().all(atext) {
        return Err(refuse("bad address type"));
    }
    let address = decode_xtext(address, utf8).map_err(refuse)?;
    if address.is_empty() {
        return Err(refuse("no address"));
    }
    let address = match printable(&address) {
        Some(text) => text,
        None if utf8 => utf8_text(address).ok_or_else(|| refuse("not printable text"))?,
        None => return Err(refuse("not printable US-ASCII")),
    };
    let kind = if kind.eq_ignore_ascii_case("rfc822") { "rfc822" } else { kind };
    Ok(format!("{kind};{address}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_is_decoded_exactly_or_refused() {
        assert_eq!(decode_xtext("QQ+2B1+3Dx", false).unwrap(), b"QQ+1=x");
        assert_eq!(decode_xtext("a+2b", false).unwrap(), b"a+", "lower-case hex is read");
        for bad in ["a+4", "a+ZZ", "a+", "a=b", "a\tb", "a b", "é"] {
            assert!(decode_xtext(bad, false).is_err(), "{bad:?}");
        }
        assert_eq!(decode_xtext("jos+C3+A9é", true).unwrap(), "joséé".as_bytes());
    }

    #[test]
    fn an_smtputf8_orcpt_may_be_utf8_but_never_control_characters() {
        assert_eq!(
            orcpt(Some("rfc822;jos+C3+A9@example.test".into()), true).unwrap(),
            "rfc822;josé@example.test"
        );
        assert_eq!(
            orcpt(Some("utf-8;josé@example.test".into()), true).unwrap(),
            "utf-8;josé@example.test"
        );
        for bad in
            ["rfc822;a+C2+85b@example.test", "rfc822;a+00@example.test", "rfc822;a+FF@example.test"]
        {
            assert!(orcpt(Some(bad.into()), true).is_err(), "{bad}");
        }
        assert!(orcpt(Some("rfc822;jos+C3+A9@example.test".into()), false).is_err());
    }

    #[test]
    fn the_path_may_hide_spaces_and_brackets_in_quotes() {
        assert_eq!(after_path(b"MAIL FROM:<a@b> RET=FULL"), b" RET=FULL");
        assert_eq!(after_path(b"RCPT TO:<\"a> b\\\"c\"@d> NOTIFY=NEVER"), b" NOTIFY=NEVER");
        assert_eq!(after_path(b"MAIL FROM: <> SIZE=1"), b" SIZE=1");
        assert_eq!(after_path(b"MAIL FROM:a@b BODY=8BITMIME"), b" BODY=8BITMIME");
    }
}
