//! One mail transaction on an open session: MAIL, RCPT for each recipient (pipelined when the
//! peer offers it, RFC 2920), DATA, and the reply or, for LMTP, replies after the final dot.

use smtp_proto::{EXT_8BIT_MIME, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8};

use super::client::{Client, Protocol, lost, outcome_of};
use super::reply::Reply;
use super::{Delivery, Outcome, wire};

/// The MAIL FROM command with the parameters the message needs and the peer offers.
fn mail_command(client: &Client, d: &Delivery<'_>, size: usize, utf8: bool) -> String {
    let mut line = format!("MAIL FROM:{}", wire::path(d.sender));
    if client.offers(EXT_SIZE) {
        line.push_str(&format!(" SIZE={size}"));
    }
    if utf8 {
        line.push_str(" SMTPUTF8");
    }
    // RFC 6152 asks for BODY=8BITMIME when offered; a peer without it gets the 8-bit body
    // anyway, as Postfix sends it, since downgrading would rewrite (and unsign) the message.
    if d.eight_bit && client.offers(EXT_8BIT_MIME) {
        line.push_str(" BODY=8BITMIME");
    }
    if client.takes_dsn() {
        match d.ret_full {
            Some(true) => line.push_str(" RET=FULL"),
            Some(false) => line.push_str(" RET=HDRS"),
            None => {}
        }
        if let Some(envid) = d.envid {
            line.push_str(&format!(" ENVID={}", wire::xtext(envid)));
        }
    }
    line.push_str("\r\n");
    line
}

/// The RCPT command, with the recipient's NOTIFY and ORCPT when the peer takes DSN parameters
/// (RFC 3461 §4.1, §4.2: ORCPT's address is xtext).
fn rcpt_command(client: &Client, d: &Delivery<'_>, recipient: &str) -> String {
    let mut line = format!("RCPT TO:{}", wire::path(recipient));
    if client.takes_dsn()
        && let Some(dsn) = d.dsn_of(recipient)
    {
        if dsn.notify.is_given() {
            line.push_str(&format!(" NOTIFY={}", dsn.notify));
        }
        if let Some((kind, address)) = dsn.orcpt.and_then(|o| o.split_once(';')) {
            line.push_str(&format!(" ORCPT={kind};{}", wire::xtext(address)));
        }
    }
    line.push_str("\r\n");
    line
}

/// How much of the message goes to the socket at a time, each block under the data-block
/// time limit (RFC 5321 §4.5.3.2.5: 3 minutes per block).
const DATA_BLOCK: usize = 64 * 1024;

pub(super) async fn run(client: &mut Client, d: &Delivery<'_>) -> Vec<Outcome> {
    let n = d.recipients.len();
    // Checked whole before anything is sent; stuffed on the way out (`wire::DataBlocks`).
    let data_len = match d.stream {
        None => match wire::check_data(d.body) {
            Ok(len) => len,
            Err(e) => return vec![Outcome::failed(e.reply()); n],
        },
        // Checked as it is sent (`wire::Stuffer`); the size is the message's own.
        Some(stream) => usize::try_from(stream.size).unwrap_or(usize::MAX).saturating_add(3),
    };
    // RFC 1870 §3: the size before dot-stuffing, with CRLF line ends.
    let size = data_len.saturating_sub(3);
    let target = client.target.clone();
    if client.offers(EXT_SIZE) && client.caps.size > 0 && size > client.caps.size {
        let text = format!(
            "message of {size} octets is larger than {target} accepts ({} octets)",
            client.caps.size
        );
        return vec![Outcome::failed(Reply::new(552, [5, 3, 4], text)); n];
    }
    let utf8 = wire::needs_smtputf8(d.sender, d.recipients, d.body, d.smtputf8);
    if utf8 && !client.offers(EXT_SMTP_UTF8) {
        let text = format!("message needs SMTPUTF8 (RFC 6531), which {target} does not support");
        return vec![Outcome::failed(Reply::new(553, [5, 6, 7], text)); n];
    }

    let mail = mail_command(client, d, size, utf8);
    let rcpts: Vec<String> = d.recipients.iter().map(|r| rcpt_command(client, d, r)).collect();
    let handoff = client.handoff();
    let (mail_limit, rcpt_limit) = (client.timeouts.mail, client.timeouts.rcpt);
    client.dirty = true;

    // Replies to MAIL and to each RCPT, or the outcome that ended the exchange.
    let mut rcpt_replies: Vec<Reply> = Vec::with_capacity(n);
    let mail_reply: Reply;
    if client.offers(EXT_PIPELINING) {
        // DATA stays out of the group: sent only once a recipient is accepted, so that no
        // peer ever sees a DATA with no valid recipient.
        let batch: String =
            std::iter::once(mail.as_str()).chain(rcpts.iter().map(String::as_str)).collect();
        if let Err(e) = client.wire.send(batch.as_bytes(), mail_limit).await {
            client.broken = true;
            client.lost_before_mail = true;
            return vec![lost(&target, &e, "sending MAIL and RCPT"); n];
        }
        mail_reply = match client.wire.read_reply(mail_limit).await {
            Ok(r) => r,
            Err(e) => {
                client.broken = true;
                client.lost_before_mail = true;
                return vec![lost(&target, &e, "after MAIL"); n];
            }
        };
        for _ in 0..n {
            match client.wire.read_reply(rcpt_limit).await {
                Ok(r) => rcpt_replies.push(r),
                // A peer that refused MAIL may hang up (421) without answering the RCPTs:
                // MAIL's reply still decides.
                Err(_) if mail_reply.code != 250 => {
                    client.broken = true;
                    break;
                }
                Err(e) => {
                    client.broken = true;
                    return vec![lost(&target, &e, "after RCPT"); n];
                }
            }
        }
    } else {
        mail_reply = match client.command(&mail, mail_limit, "after MAIL").await {
            Ok(r) => r,
            Err(outcome) => {
                client.lost_before_mail = true;
                return vec![outcome; n];
            }
        };
        if mail_reply.code == 250 {
            for rcpt in &rcpts {
                match client.command(rcpt, rcpt_limit, "after RCPT").await {
                    Ok(r) => rcpt_replies.push(r),
                    Err(outcome) => return vec![outcome; n],
                }
            }
        }
    }
    if mail_reply.code != 250 {
        // RFC 5321 §3.8: a 421 here is a server closing the session (an idle one it timed
        // out, say), not a judgement on this message.
        client.lost_before_mail = mail_reply.code == 421;
        // The RCPT replies to a refused MAIL say only "need MAIL first": MAIL's reply decides.
        return vec![client.refused(&mail_reply, "answered MAIL with"); n];
    }

    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(n);
    let mut accepted = Vec::new();
    for (i, reply) in rcpt_replies.iter().enumerate() {
        if reply.code == 250 || reply.code == 251 {
            accepted.push(i);
            outcomes.push(None);
        } else {
            outcomes.push(Some(outcome_of(reply, &target, handoff)));
            client.answered[i] = true;
        }
    }
    if accepted.is_empty() {
        return outcomes.into_iter().flatten().collect();
    }

    let pending = |outcomes: &mut Vec<Option<Outcome>>, outcome: Outcome| {
        for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
            *slot = Some(outcome.clone());
        }
    };
    let data_init = client.timeouts.data_init;
    match client.command("DATA\r\n", data_init, "after DATA").await {
        Ok(reply) if reply.code == 354 => {}
        Ok(reply) => pending(&mut outcomes, client.refused(&reply, "answered DATA with")),
        Err(outcome) => pending(&mut outcomes, outcome),
    }
    if outcomes.iter().all(Option::is_some) {
        return outcomes.into_iter().flatten().collect();
    }

    if let Some(stream) = d.stream
        && let Err(outcome) = send_stream(client, stream).await
    {
        // Half a message was sent: the connection goes, so that the peer drops it.
        client.broken = true;
        pending(&mut outcomes, outcome);
        return outcomes.into_iter().flatten().collect();
    }
    let mut blocks = wire::DataBlocks::new(d.body);
    let mut block = Vec::with_capacity(DATA_BLOCK + 8);
    let sent = loop {
        if d.stream.is_some() {
            break Ok(());
        }
        block.clear();
        if !blocks.next_into(&mut block, DATA_BLOCK) {
            break Ok(());
        }
        if let Err(e) = client.wire.send(&block, client.timeouts.data_block).await {
            break Err(e);
        }
    };
    if let Err(e) = sent {
        client.broken = true;
        pending(&mut outcomes, lost(&target, &e, "sending the message"));
        return outcomes.into_iter().flatten().collect();
    }
    // SMTP: one reply for the message. LMTP: one per accepted recipient, in RCPT order
    // (RFC 2033 §4.2).
    let replies = if client.protocol == Protocol::Lmtp { accepted.len() } else { 1 };
    for k in 0..replies {
        // A lost connection here may still have delivered (RFC 5321 §6.1): deferring risks a
        // duplicate, which is better than a loss.
        let reply = match client.wire.read_reply(client.timeouts.data_done).await {
            Ok(reply) => reply,
            Err(e) => {
                client.broken = true;
                pending(&mut outcomes, lost(&target, &e, "after the end of the message"));
                return outcomes.into_iter().flatten().collect();
            }
        };
        let outcome = outcome_of(&reply, &target, handoff);
        if client.protocol == Protocol::Lmtp {
            outcomes[accepted[k]] = Some(outcome);
            client.answered[accepted[k]] = true;
        } else {
            pending(&mut outcomes, outcome);
        }
    }
    client.dirty = false;
    outcomes.into_iter().flatten().collect()
}

/// Sends a spooled message as DATA's payload, read and stuffed a chunk at a time; the outcome
/// for the waiting recipients if it cannot be sent whole.
async fn send_stream(client: &mut Client, stream: &super::BodyStream) -> Result<(), Outcome> {
    let target = client.target.clone();
    let mut reader =
        stream.open().await.map_err(|e| Outcome::deferred(Reply::new(451, [4, 3, 0], e)))?;
    let mut stuffer = wire::Stuffer::default();
    let mut block = Vec::with_capacity(DATA_BLOCK + DATA_BLOCK / 8);
    loop {
        let chunk = reader.next_chunk().await.map_err(|e| {
            Outcome::deferred(Reply::new(
                451,
                [4, 3, 0],
                format!("cannot read the message body: {e}"),
            ))
        })?;
        block.clear();
        let last = chunk.is_none();
        let stuffed = match &chunk {
            Some(chunk) => stuffer.push(chunk, &mut block),
            None => stuffer.finish(&mut block),
        };
        stuffed.map_err(|e| Outcome::failed(e.reply()))?;
        if let Err(e) = client.wire.send(&block, client.timeouts.data_block).await {
            return Err(lost(&target, &e, "sending the message"));
        }
        if last {
            return Ok(());
        }
    }
}
