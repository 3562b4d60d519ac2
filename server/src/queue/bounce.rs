//! Delivery status notifications for failed recipients (RFC 3464, RFC 3461): who is owed one,
//! and the `multipart/report` message itself. Only failures are reported; DELAY and SUCCESS
//! notices are not sent.

use std::fmt::Write as _;

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use postern_store::model::{DsnRet, NewMessage, NewRecipient, Notify, QueueId};

/// Past this size a DSN returns only the original's header section, even for RET=FULL, so
/// that a bounce never costs the sender's mailbox (or the queue) a second copy of a large
/// message.
pub const MAX_RETURNED_BODY: usize = 1 << 20;

/// A message whose recipients failed, as the DSN describes it.
#[derive(Clone, Debug)]
pub struct Original {
    pub id: QueueId,
    /// The envelope sender: the DSN's recipient.
    pub sender: String,
    /// RFC 3461 ENVID, xtext-decoded.
    pub envid: Option<String>,
    pub ret: Option<DsnRet>,
    pub received_at: i64,
}

/// One recipient that failed for good.
#[derive(Clone, Debug)]
pub struct Failure {
    pub index: u32,
    pub address: String,
    /// As stored: `addr-type;address` (RFC 3461 section 4.2).
    pub orcpt: Option<String>,
    pub notify: Notify,
    /// The reply that ended it, remote or our own, in reply form ("550 5.1.1 ...").
    pub reply: String,
    /// The remote MTA that gave `reply`, when one did.
    pub remote: Option<String>,
    /// Epoch seconds of the attempt that failed.
    pub at: i64,
}

/// Whether a failure of this recipient is reported to `sender`. Never to the null sender: a
/// bounce is never bounced (RFC 5321 section 4.5.5). RFC 3461 section 4.1: NEVER asks for
/// none, and a NOTIFY given without FAILURE asks for none on failure; no NOTIFY means the
/// default, which includes failures.
pub fn owed(sender: &str, notify: Notify) -> bool {
    if sender.is_empty() || notify.contains(Notify::NEVER) {
        return false;
    }
    !notify.is_given() || notify.contains(Notify::FAILURE)
}

/// The DSN for `failures` of `original`, ready to queue with the null sender, or `None` when
/// nobody is owed one. `body` is the original message, if it is still to be had.
pub fn build(
    hostname: &str,
    original: &Original,
    failures: &[Failure],
    body: Option<&[u8]>,
) -> Option<NewMessage> {
    let failures: Vec<&Failure> =
        failures.iter().filter(|f| owed(&original.sender, f.notify)).collect();
    if failures.is_empty() {
        return None;
    }
    let now = now();
    // RFC 3462 section 3: RET=HDRS asks for the headers only; no RET leaves it to us, and we
    // return the whole message when it is small enough.
    let want_full = original.ret != Some(DsnRet::Headers);
    let too_big = body.is_some_and(|b| b.len() > MAX_RETURNED_BODY);
    let returned = body.map(|b| if want_full && !too_big { b } else { header_section(b) });

    let mut text = format!(
        "This is the mail system at {hostname}.\r\n\r\n\
         Your message could not be delivered to one or more recipients.\r\n\
         It is attached below. The mail system replied as follows:\r\n\r\n"
    );
    for f in &failures {
        let _ = match &f.remote {
            Some(remote) => {
                write!(text, "<{}>: {remote} said: {}\r\n", f.address, one_line(&f.reply))
            }
            None => write!(text, "<{}>: {}\r\n", f.address, one_line(&f.reply)),
        };
    }
    match body {
        None => text.push_str("\r\nThe original message is no longer available.\r\n"),
        Some(_) if want_full && too_big => {
            let _ = write!(
                text,
                "\r\nThe original message is larger than {} KiB: only its headers are returned.\r\n",
                MAX_RETURNED_BODY >> 10
            );
        }
        Some(_) => {}
    }

    let mut parts = vec![
        MimePart::new("text/plain", text),
        MimePart::new(
            ContentType::new("message/delivery-status"),
            BodyPart::Binary(delivery_status(hostname, original, &failures).into_bytes().into()),
        )
        .header("Content-Transfer-Encoding", Raw::new("7bit")),
    ];
    if let Some(returned) = returned {
        let kind = if want_full && !too_big { "message/rfc822" } else { "text/rfc822-headers" };
        // RFC 2046 section 5.2.1: message/rfc822 takes no transfer encoding but 7bit or 8bit,
        // so the original goes back exactly as it came.
        let encoding = if returned.is_ascii() { "7bit" } else { "8bit" };
        parts.push(
            MimePart::new(ContentType::new(kind), BodyPart::Binary(returned.to_vec().into()))
                .header("Content-Transfer-Encoding", Raw::new(encoding)),
        );
    }
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        BodyPart::Multipart(parts),
    );
    let first = failures.first().map(|f| f.index).unwrap_or(0);
    let message = MessageBuilder::new()
        .from(("Mail Delivery System", format!("MAILER-DAEMON@{hostname}").as_str()))
        .to(original.sender.as_str())
        .subject("Undelivered Mail Returned to Sender")
        .message_id(format!("dsn.{}.{first}.{now}@{hostname}", original.id))
        // RFC 3834 section 5: an automatic reply, which auto-responders must not answer.
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report)
        .write_to_vec()
        .ok()?;
    Some(NewMessage {
        // RFC 3461 section 6.2 and RFC 5321 section 4.5.5: a DSN goes out with the null
        // reverse-path, so that it can never cause another.
        sender: String::new(),
        recipients: vec![NewRecipient {
            address: original.sender.clone(),
            orcpt: Some(format!("rfc822;{}", original.sender)),
            notify: Notify::NEVER,
        }],
        envid: None,
        ret: None,
        smtputf8: !original.sender.is_ascii(),
        eight_bit: !message.is_ascii(),
        received_at: now,
        client: "bounce".into(),
        auth_user: None,
        body: message,
    })
}

/// The `message/delivery-status` body: per-message fields, then a block per recipient
/// (RFC 3464 sections 2.2 and 2.3).
fn delivery_status(hostname: &str, original: &Original, failures: &[&Failure]) -> String {
    let mut s = format!("Reporting-MTA: dns; {hostname}\r\n");
    if let Some(envid) = &original.envid {
        let _ = write!(s, "Original-Envelope-Id: {}\r\n", one_line(envid));
    }
    let _ = write!(s, "X-Postern-Queue-ID: {}\r\n", original.id);
    let _ = write!(s, "Arrival-Date: {}\r\n", rfc5322_date(original.received_at));
    for f in failures {
        s.push_str("\r\n");
        if let Some(orcpt) = &f.orcpt {
            let _ = write!(s, "Original-Recipient: {}\r\n", one_line(orcpt));
        }
        let _ = write!(s, "Final-Recipient: rfc822; {}\r\n", f.address);
        s.push_str("Action: failed\r\n");
        let _ = write!(s, "Status: {}\r\n", status(&f.reply));
        if let Some(remote) = &f.remote {
            let _ = write!(s, "Remote-MTA: dns; {remote}\r\n");
            let _ = write!(s, "Diagnostic-Code: smtp; {}\r\n", one_line(&f.reply));
        }
        let _ = write!(s, "Last-Attempt-Date: {}\r\n", rfc5322_date(f.at));
    }
    s
}

/// The RFC 3463 enhanced status code in a reply ("550 5.1.1 ..." or "5.0.0 ..."), or 5.0.0
/// when it has none (RFC 3464 section 2.3.4 requires one).
pub fn status(reply: &str) -> &str {
    reply.split_whitespace().take(2).find(|t| is_enhanced(t)).unwrap_or("5.0.0")
}

fn is_enhanced(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The header section of a message, with the blank line that ends it.
fn header_section(body: &[u8]) -> &[u8] {
    if body.starts_with(b"\r\n") {
        return &body[..2];
    }
    match body.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => &body[..at + 4],
        None => body,
    }
}

/// A reply or an ID as one header line: folded lines joined, and never longer than a line may
/// be (RFC 5322 section 2.1.1).
fn one_line(text: &str) -> String {
    let joined = text.split(['\r', '\n']).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(900) {
        Some((at, _)) => format!("{}...", &joined[..at]),
        None => joined,
    }
}

fn rfc5322_date(epoch: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc2822).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 +0000".into())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
