//! Delivery status notifications (RFC 3464, RFC 3461): who is owed one, and the
//! `multipart/report` message itself, for failed recipients, for those still delayed after the
//! warning time, and for those delivered or relayed when the sender asked (NOTIFY=SUCCESS).

use std::fmt::Write as _;

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use postern_store::model::{DsnRet, NewMessage, NewRecipient, Notify, QueueId};
use postern_store::now;

use crate::delivery::wire::mailbox;

/// Past this size a DSN returns only the original's header section, even for RET=FULL, so
/// that a bounce never costs the sender's mailbox (or the queue) a second copy of a large
/// message.
pub const MAX_RETURNED_BODY: usize = 1 << 20;

/// A message some of whose recipients are reported, as the DSN describes it.
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

/// What a DSN says became of a recipient (RFC 3464 §2.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Failed for good.
    Failed,
    /// Still deferred after the warning time; we keep trying.
    Delayed,
    /// Delivered to its mailbox (Maildir, LMTP).
    Delivered,
    /// Handed to a next hop that does not offer DSN, beyond which nothing more will be told.
    Relayed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }

    /// The NOTIFY keyword that asks for this notice (RFC 3461 §4.1).
    fn asked_by(self) -> Notify {
        match self {
            Action::Failed => Notify::FAILURE,
            Action::Delayed => Notify::DELAY,
            Action::Delivered | Action::Relayed => Notify::SUCCESS,
        }
    }
}

/// One recipient a DSN reports on.
#[derive(Clone, Debug)]
pub struct Notice {
    pub action: Action,
    pub index: u32,
    pub address: String,
    /// As stored: `addr-type;address` (RFC 3461 section 4.2).
    pub orcpt: Option<String>,
    pub notify: Notify,
    /// The reply that decided it, remote or our own, in reply form ("550 5.1.1 ..."), or what
    /// the delivery agent said of a delivery.
    pub reply: String,
    /// The remote MTA that gave `reply`, when one did.
    pub remote: Option<String>,
    /// Epoch seconds of the attempt reported.
    pub at: i64,
}

/// Whether `action` for a recipient with `notify` is reported to `sender`. Never to the null
/// sender: a DSN is never answered with another (RFC 5321 section 4.5.5, RFC 3461 section 6.2).
/// RFC 3461 section 4.1: NEVER asks for none; a NOTIFY given asks for exactly what it names;
/// no NOTIFY means FAILURE,DELAY, so success is reported only when asked for.
pub fn owed(sender: &str, notify: Notify, action: Action) -> bool {
    if sender.is_empty() || notify.contains(Notify::NEVER) {
        return false;
    }
    match action {
        Action::Failed | Action::Delayed if !notify.is_given() => true,
        _ => notify.contains(action.asked_by()),
    }
}

/// The DSN for `notices` of `original`, ready to queue with the null sender, or `None` when
/// nobody is owed one. `body` is the original message, if it is still to be had.
pub fn build(
    hostname: &str,
    original: &Original,
    notices: &[Notice],
    body: Option<&[u8]>,
) -> Option<NewMessage> {
    let notices: Vec<&Notice> =
        notices.iter().filter(|n| owed(&original.sender, n.notify, n.action)).collect();
    if notices.is_empty() {
        return None;
    }
    let now = now();
    let failed = notices.iter().any(|n| n.action == Action::Failed);
    // RFC 3462 section 3: RET=HDRS asks for the headers only; no RET leaves it to us, and we
    // return the whole message when it is small enough. RET concerns failures (RFC 3461
    // section 4.3): a report of delays or successes returns the headers only, as Postfix
    // does, since the message is (or will be) where it was going.
    let want_full = failed && original.ret != Some(DsnRet::Headers);
    let too_big = body.is_some_and(|b| b.len() > MAX_RETURNED_BODY);
    let returned = body.map(|b| if want_full && !too_big { b } else { header_section(b) });

    let mut text = format!("This is the mail system at {hostname}.\r\n");
    for action in [Action::Failed, Action::Delayed, Action::Delivered, Action::Relayed] {
        let group: Vec<&&Notice> = notices.iter().filter(|n| n.action == action).collect();
        if group.is_empty() {
            continue;
        }
        text.push_str("\r\n");
        text.push_str(match action {
            Action::Failed => {
                "Your message could not be delivered to one or more recipients.\r\n\
                 The mail system replied as follows:\r\n\r\n"
            }
            Action::Delayed => {
                "Your message could not be delivered yet to one or more recipients. This is a\r\n\
                 warning only: you need not send it again. The mail system keeps trying.\r\n\
                 The latest replies were:\r\n\r\n"
            }
            Action::Delivered => {
                "Your message was delivered to the mailbox of these recipients, as you asked\r\n\
                 to be told:\r\n\r\n"
            }
            Action::Relayed => {
                "Your message was passed on to these recipients' mail systems, which do not\r\n\
                 report delivery, so no further notice will come:\r\n\r\n"
            }
        });
        for n in group {
            let address = mailbox(&n.address);
            let _ = match (&n.remote, action) {
                (Some(remote), Action::Failed | Action::Delayed) => {
                    write!(text, "<{address}>: {remote} said: {}\r\n", one_line(&n.reply))
                }
                (Some(remote), _) => write!(text, "<{address}>: via {remote}\r\n"),
                (None, _) => write!(text, "<{address}>: {}\r\n", one_line(&n.reply)),
            };
        }
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
            BodyPart::Binary(delivery_status(hostname, original, &notices).into_bytes().into()),
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
    let first = notices.first().map(|n| n.index).unwrap_or(0);
    let (subject, kind) = if failed {
        ("Undelivered Mail Returned to Sender", "dsn")
    } else if notices.iter().any(|n| n.action == Action::Delayed) {
        ("Delayed Mail (still being retried)", "delay")
    } else {
        ("Successful Mail Delivery Report", "success")
    };
    let message = MessageBuilder::new()
        .from(("Mail Delivery System", format!("MAILER-DAEMON@{hostname}").as_str()))
        // RFC 5322 §3.4.1: a local part that is not a dot-atom is a quoted string here too
        // (mail-builder would write the address as it is).
        .header("To", Raw::new(format!("<{}>", mailbox(&original.sender))))
        .subject(subject)
        .message_id(format!("{kind}.{}.{first}.{now}@{hostname}", original.id))
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
            orcpt: Some(format!("rfc822;{}", mailbox(&original.sender))),
            notify: Notify::NEVER,
        }],
        envid: None,
        ret: None,
        smtputf8: !original.sender.is_ascii(),
        eight_bit: !message.is_ascii(),
        received_at: now,
        client: "bounce".into(),
        auth_user: None,
        held: false,
        note: None,
        auth_results: None,
        body: message,
    })
}

/// The `message/delivery-status` body: per-message fields, then a block per recipient
/// (RFC 3464 sections 2.2 and 2.3).
fn delivery_status(hostname: &str, original: &Original, notices: &[&Notice]) -> String {
    let mut s = format!("Reporting-MTA: dns; {hostname}\r\n");
    if let Some(envid) = &original.envid {
        let _ = write!(s, "Original-Envelope-Id: {}\r\n", one_line(envid));
    }
    let _ = write!(s, "X-Postern-Queue-ID: {}\r\n", original.id);
    let _ = write!(s, "Arrival-Date: {}\r\n", rfc5322_date(original.received_at));
    for n in notices {
        s.push_str("\r\n");
        if let Some(orcpt) = &n.orcpt {
            let _ = write!(s, "Original-Recipient: {}\r\n", one_line(orcpt));
        }
        let _ = write!(s, "Final-Recipient: rfc822; {}\r\n", mailbox(&n.address));
        let _ = write!(s, "Action: {}\r\n", n.action.as_str());
        let _ = write!(s, "Status: {}\r\n", status_of(n));
        if let Some(remote) = &n.remote {
            let _ = write!(s, "Remote-MTA: dns; {remote}\r\n");
            // A remote reply is only in hand for a refusal or a deferral; for a delivery the
            // agent's detail is ours, not the remote's.
            if matches!(n.action, Action::Failed | Action::Delayed) {
                let _ = write!(s, "Diagnostic-Code: smtp; {}\r\n", one_line(&n.reply));
            }
        }
        let _ = write!(s, "Last-Attempt-Date: {}\r\n", rfc5322_date(n.at));
    }
    s
}

/// The Status field (RFC 3464 section 2.3.4): the reply's enhanced code when it is of the
/// action's class, else the class's generic code.
fn status_of(n: &Notice) -> &str {
    match n.action {
        Action::Failed => status(&n.reply),
        Action::Delayed => Some(status(&n.reply)).filter(|s| s.starts_with('4')).unwrap_or("4.0.0"),
        // RFC 3463: 2.0.0, success; the detail of a delivery is not a reply of a known form.
        Action::Delivered | Action::Relayed => "2.0.0",
    }
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

/// A reply or an ID as one header line: folded lines joined, other control characters made
/// spaces (SMTP refuses them in ENVID and ORCPT now, but a message queued before may hold
/// them), and never longer than a line may be (RFC 5322 section 2.1.1).
fn one_line(text: &str) -> String {
    let joined = text.split(['\r', '\n']).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    let joined: String = joined.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    // 900 octets, not characters: 900 characters of UTF-8 text can be 3600 octets.
    if joined.len() <= 900 {
        return joined;
    }
    let mut at = 900;
    while !joined.is_char_boundary(at) {
        at -= 1;
    }
    format!("{}...", &joined[..at])
}

fn rfc5322_date(epoch: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc2822).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 +0000".into())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
