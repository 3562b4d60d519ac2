//! The headers we add to a message: `Received:` (RFC 5321 §4.4, protocol names from RFC 3848),
//! and for submissions that lack them `Message-ID:` and `Date:` (RFC 5322 §3.6; RFC 6409 §8.2-3).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use tokio::io::{AsyncRead, AsyncWrite};

use super::session::{Session, Transaction};

fn rfc5322_date() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".into())
}

/// Whether the header block (up to the first empty line) has a field named `name`.
fn has_header(body: &[u8], name: &[u8]) -> bool {
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return false;
        }
        if line.len() > name.len()
            && line[name.len()] == b':'
            && line[..name.len()].eq_ignore_ascii_case(name)
        {
            return true;
        }
    }
    false
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) fn add_headers(&self, tx: &Transaction, body: Vec<u8>) -> Vec<u8> {
        let head = self.our_fields(tx, &body);
        let mut message = Vec::with_capacity(head.len() + body.len());
        message.extend_from_slice(head.as_bytes());
        message.extend_from_slice(&body);
        self.sign(tx, message)
    }

    /// The fields we put in front of a message: `Received:`, the access rules' PREPENDs, and
    /// for submissions a missing `Message-ID:` or `Date:` (looked for in `body`, which may be
    /// only the message's first part, holding its header block).
    pub(super) fn our_fields(&self, tx: &Transaction, body: &[u8]) -> String {
        let tls = self.conn.get_ref().tls_description();
        let esmtp = self.helo.as_ref().is_some_and(|(_, e)| *e);
        let protocol = match (esmtp, tls.is_some(), self.auth.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let date = rfc5322_date();
        let mut head = format!(
            "Received: from {}\r\n\tby {} (Postern) with {protocol}",
            self.client_description(),
            self.ctx.hostname
        );
        if let Some(tls) = tls {
            head.push_str(&format!("\r\n\t(using {tls})"));
        }
        if let Some(user) = &self.auth {
            head.push_str(&format!("\r\n\t(authenticated as {user})"));
        }
        // Naming the recipient only when there is one keeps the others private.
        if let [only] = tx.recipients.as_slice()
            && let [dest] = only.destinations.as_slice()
        {
            head.push_str(&format!("\r\n\tfor <{dest}>"));
        }
        head.push_str(&format!("; {date}\r\n"));
        for field in &tx.effects.prepend {
            head.push_str(field);
            head.push_str("\r\n");
        }
        if self.kind.takes_auth() {
            if !has_header(body, b"Message-ID") {
                let id: u128 = rand::random();
                head.push_str(&format!("Message-ID: <{id:032x}@{}>\r\n", self.ctx.hostname));
            }
            if !has_header(body, b"Date") {
                head.push_str(&format!("Date: {date}\r\n"));
            }
        }
        head
    }

    /// Whether [`Session::sign`] may sign this session's messages: then a message too large to
    /// hold is read back whole for it, within `smtp::spooled::WHOLE_BUDGET`.
    /// Without an active key nothing is signed, and nothing need be read back for it.
    pub(super) fn may_sign(&self) -> bool {
        let snapshot = self.ctx.engine.snapshot();
        let config = &snapshot.config;
        let keys = config.dkim.iter().any(|k| k.state == postern_store::model::DkimState::Active);
        keys && (self.auth.is_some()
            || config.is_trusted(self.peer.ip())
            || config.dkim_settings.values().any(|s| s.sign_relayed))
    }

    /// `message` with the DKIM signatures it is owed in front.
    fn sign(&self, tx: &Transaction, mut message: Vec<u8>) -> Vec<u8> {
        let fields = self.signatures(tx, b"", &message);
        if !fields.is_empty() {
            message.splice(0..0, fields.into_bytes());
        }
        message
    }

    /// The DKIM signatures owed by the message made of `front` (fields we add) and then
    /// `message`, which is not copied; `From:` is looked for in `message`.
    pub(super) fn signatures(&self, tx: &Transaction, front: &[u8], message: &[u8]) -> String {
        // Ours to vouch for: what our users submit and what trusted networks relay, signed for
        // the author domain (RFC 7489 §3.1.1 aligns DKIM with From:; without one, the envelope
        // sender's). Mail relayed for others is not ours to sign, unless the author domain
        // says so (its DKIM setting `sign_relayed`: a gateway for senders we do not know).
        let snapshot = self.ctx.engine.snapshot();
        let ours = self.auth.is_some() || snapshot.config.is_trusted(self.peer.ip());
        // Most configurations sign no relayed mail: then its headers are not even read.
        let relayed = !ours && snapshot.config.dkim_settings.values().any(|s| s.sign_relayed);
        if ours || relayed {
            let mut domains = super::authors::from_domains(message);
            if domains.is_empty() {
                domains
                    .push(tx.sender.rsplit_once('@').map_or("", |(_, d)| d).to_ascii_lowercase());
            }
            if relayed {
                domains.retain(|d| {
                    d.parse::<postern_store::model::DomainName>()
                        .is_ok_and(|d| snapshot.config.signs_relayed(&d))
                });
            }
            drop(snapshot);
            let mut fields = String::new();
            for domain in domains {
                fields.push_str(&self.ctx.signer.sign(&domain, &[front, message]));
            }
            return fields;
        }
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::has_header;

    #[test]
    fn finds_headers_only_in_the_header_block() {
        let m = b"Subject: x\r\nmessage-id: <a@b>\r\n\r\nDate: not a header\r\n";
        assert!(has_header(m, b"Message-ID"));
        assert!(!has_header(m, b"Date"));
        assert!(!has_header(b"Message-IDx: y\r\n\r\n", b"Message-ID"));
    }
}
