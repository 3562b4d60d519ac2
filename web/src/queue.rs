//! The queue as the console and the API share it: filters as people give them (ages in hours,
//! blank meaning any), the principal's scope, actions, and a message's header block.

use postern_store::model::{
    QueueAction, QueueActor, QueueFilter, QueueId, QueuedMessage, RecipientStatus, Selection,
};

use crate::auth::Principal;
use crate::error::WebError;
use crate::state::AppState;

/// The most of a message's start read for its headers: a header block is rarely over a few
/// kilobytes, and a page must not parse a 50 MB body.
const HEADER_BLOCK_LIMIT: usize = 256 * 1024;

/// A queue filter as typed: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Criteria {
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub domain: Option<String>,
    pub status: Option<RecipientStatus>,
    /// Received more than this many hours ago.
    pub older_than_hours: Option<u32>,
    /// Received less than this many hours ago.
    pub newer_than_hours: Option<u32>,
    pub held: Option<bool>,
    pub search: Option<String>,
}

/// `None` for a blank value, so that an empty filter field means "any".
pub fn given(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

impl Criteria {
    /// The store's filter, narrowed to the messages `principal` may see.
    pub fn filter(&self, principal: &Principal, now: i64) -> QueueFilter {
        let hours_ago = |h: u32| now - i64::from(h) * 3600;
        QueueFilter {
            sender: self.sender.clone(),
            recipient: self.recipient.clone(),
            domain: self.domain.clone(),
            status: self.status,
            older_than: self.older_than_hours.map(hours_ago),
            newer_than: self.newer_than_hours.map(hours_ago),
            held: self.held,
            domains: principal.domains.clone(),
            search: self.search.clone(),
            partial: true,
        }
    }
}

/// A sender or recipient filter as typed: any part of an address (`boss@`, `@example.org`,
/// `example`), or an error that says what is wrong with it.
pub fn address_part(field: &str, text: &str) -> Result<Option<String>, WebError> {
    let Some(text) = given(Some(text.to_string())) else { return Ok(None) };
    if text.chars().count() > 254 {
        return Err(WebError::invalid(field, "an address is at most 254 characters"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(WebError::invalid(
            field,
            "no spaces in an address: give part of one, such as boss@ or example.org",
        ));
    }
    Ok(Some(text))
}

/// Whether `principal` may see `message`: one of its recipients is in the principal's domains.
pub fn sees(principal: &Principal, message: &QueuedMessage) -> bool {
    message.recipients.iter().any(|r| in_scope(principal, &r.address))
}

fn in_scope(principal: &Principal, address: &str) -> bool {
    let Some(domains) = &principal.domains else { return true };
    let domain = address.rsplit_once('@').map(|(_, d)| d.to_lowercase()).unwrap_or_default();
    domains.iter().any(|d| d.as_str() == domain)
}

/// Leaves only the recipients in `principal`'s domains: a message to several domains must not
/// show one domain's administrator who else (a Bcc, say) it goes to.
pub fn narrow(principal: &Principal, message: &mut QueuedMessage) {
    message.recipients.retain(|r| in_scope(principal, &r.address));
}

/// Whether a (narrowed) message is held as a list shows it and the `held` filter finds it: held
/// whole, or one of its recipients still to deliver held on its own.
pub fn held(message: &QueuedMessage) -> bool {
    message.held || message.recipients.iter().any(|r| r.held && !r.status.is_final())
}

pub fn parse_id(text: &str) -> Result<QueueId, WebError> {
    text.trim()
        .parse()
        .map_err(|e: postern_store::model::BadQueueId| WebError::invalid("id", e.to_string()))
}

/// A queued message `principal` may see. One outside its scope is "not found", like one that
/// is not queued, so that its existence is not disclosed.
pub async fn show(
    state: &AppState,
    principal: &Principal,
    id: QueueId,
) -> Result<QueuedMessage, WebError> {
    match state.store.queue_show(id).await? {
        Some(mut m) if sees(principal, &m) => {
            narrow(principal, &mut m);
            Ok(m)
        }
        _ => Err(WebError::NotFound(format!("message {id} is not in the queue"))),
    }
}

/// Applies `action` to the recipients `principal` may touch (every recipient for a global
/// admin; a domain-admin's own of a message that also goes elsewhere), recorded in the audit
/// log under the principal's name. Returns the IDs acted on; an ID the principal cannot see is
/// not found, and refuses the whole action.
pub async fn act(
    state: &AppState,
    principal: &Principal,
    action: QueueAction,
    selection: Selection,
) -> Result<Vec<QueueId>, WebError> {
    principal.require_write()?;
    let by = QueueActor { actor: principal.actor.clone(), domains: principal.domains.clone() };
    let ids = state.store.queue_act(&by, action, &selection).await?;
    tracing::info!(actor = %principal.actor, action = action.as_str(), count = ids.len(),
        "queue action");
    Ok(ids)
}

/// What an action did, for a person: "3 messages held", and for a domain-admin, that it was
/// only its own recipients of them.
pub fn done_for(principal: &Principal, action: QueueAction, count: usize) -> String {
    let text = done(action, count);
    if principal.domains.is_some() {
        format!("{text} (only their recipients in your domains)")
    } else {
        text
    }
}

/// What an action did, for a person: "3 messages held".
pub fn done(action: QueueAction, count: usize) -> String {
    let what = if count == 1 { "1 message".to_string() } else { format!("{count} messages") };
    let verb = match action {
        QueueAction::Retry => "to be tried again now",
        QueueAction::Hold => "held",
        QueueAction::Release => "released",
        QueueAction::Delete => "deleted without a bounce",
        QueueAction::Bounce => "bounced to their senders",
    };
    format!("{what} {verb}; the engine has been told")
}

/// The host an attempt went to, as the engine writes it into the reply it logs
/// (`mx.example.org[192.0.2.1]:25 said: 250 …`, `… (mx…:25 answered RCPT with this)`,
/// `connection refused by mx…:25`); empty when the reply names none (local delivery, or an
/// entry that is not an attempt).
pub fn attempt_host(reply: &str) -> String {
    let token = |rest: &str| rest.split_whitespace().next().unwrap_or("").to_string();
    if let Some((before, _)) = reply.split_once(" said: ") {
        return before.split_whitespace().last().unwrap_or("").to_string();
    }
    if let Some(start) = reply.rfind('(')
        && reply.ends_with(" this)")
    {
        return token(&reply[start + 1..]);
    }
    for marker in ["connection refused by ", "connection to ", "cannot connect to "] {
        if let Some((_, rest)) = reply.split_once(marker) {
            let host = token(rest);
            return host.strip_suffix(':').map(str::to_string).unwrap_or(host);
        }
    }
    String::new()
}

/// A header field as it stands in the message: its name, and its value decoded when it is
/// text (RFC 2047 encoded words), else as written, unfolded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    pub name: String,
    pub value: String,
}

/// The header block of a queued message's body, or empty when it is gone or has none. Only the
/// start of the body is read, however large the message.
pub async fn headers(state: &AppState, id: QueueId) -> Result<Vec<HeaderField>, WebError> {
    let Some(head) = state.store.queue_body_head(id, HEADER_BLOCK_LIMIT).await? else {
        return Ok(Vec::new());
    };
    Ok(parse_headers(&head))
}

/// A queued message as it will be delivered, for `principal` if it may see the message (the
/// message page's own check): streamed from the store chunk by chunk, never whole in memory,
/// as `message/rfc822` to save (`<id>.eml`), never to render.
pub async fn raw(
    state: &AppState,
    principal: &Principal,
    id: QueueId,
) -> Result<axum::response::Response, WebError> {
    use axum::http::header;
    show(state, principal, id).await?;
    let Some(reader) = state.store.queue_body_reader(id).await? else {
        return Err(WebError::NotFound(format!("message {id} is not in the queue")));
    };
    let chunks = futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(reader))),
            Ok(None) => None,
            Err(e) => {
                // The status line is gone already: the client sees a cut-short download.
                tracing::warn!(error = %e, "reading a queued message for download failed");
                Some((Err(std::io::Error::other(e.to_string())), None))
            }
        }
    });
    let response = axum::response::Response::builder()
        .header(header::CONTENT_TYPE, "message/rfc822")
        .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{id}.eml\""))
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CACHE_CONTROL, "no-store")
        .body(axum::body::Body::from_stream(chunks))
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(response)
}

pub fn parse_headers(body: &[u8]) -> Vec<HeaderField> {
    let start = &body[..body.len().min(HEADER_BLOCK_LIMIT)];
    let end = start.windows(4).position(|w| w == b"\r\n\r\n").map_or(start.len(), |p| p + 4);
    let block = &start[..end];
    let Some(message) = mail_parser::MessageParser::new().parse_headers(block) else {
        return Vec::new();
    };
    let raw = message.raw_message();
    message
        .headers()
        .iter()
        .map(|h| {
            let written = raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .map(|v| {
                    String::from_utf8_lossy(v).split_whitespace().collect::<Vec<_>>().join(" ")
                })
                .unwrap_or_default();
            let value = h.value().as_text().map(str::to_string).unwrap_or(written);
            HeaderField { name: h.name().to_string(), value }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_host_an_attempt_went_to() {
        let mx = "mx.example.org[192.0.2.1]:25";
        assert_eq!(attempt_host(&format!("250 2.0.0 {mx} said: 250 2.0.0 ok")), mx);
        assert_eq!(
            attempt_host(&format!("550 5.1.1 no such user ({mx} answered RCPT with this)")),
            mx
        );
        assert_eq!(attempt_host(&format!("451 4.4.1 connection refused by {mx}")), mx);
        assert_eq!(attempt_host(&format!("451 4.4.1 connection to {mx} timed out")), mx);
        assert_eq!(attempt_host(&format!("451 4.4.1 cannot connect to {mx}: unreachable")), mx);
        assert_eq!(attempt_host("250 2.0.0 delivered to a maildir"), "");
        assert_eq!(attempt_host(""), "");
    }

    #[test]
    fn reads_the_header_block_only() {
        let body = b"Subject: =?utf-8?q?caf=C3=A9?=\r\nTo: a@b.test,\r\n  c@d.test\r\nX-Odd: <b>\r\n\r\nSubject: not a header\r\n";
        let fields = parse_headers(body);
        let pairs: Vec<(&str, &str)> =
            fields.iter().map(|f| (f.name.as_str(), f.value.as_str())).collect();
        assert_eq!(
            pairs,
            vec![("Subject", "café"), ("To", "a@b.test, c@d.test"), ("X-Odd", "<b>")]
        );
        assert!(parse_headers(b"").is_empty());
    }
}
