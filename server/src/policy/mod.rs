//! Access policy in the SMTP session: the stored access rules (`postern_store::model::Policy`,
//! parsed and compiled once per snapshot) turned into replies and into what happens to an
//! accepted message. The session asks [`decide`] at each stage; a refusal is a reply with the
//! rule's enhanced status code (RFC 3463), anything else is an [`Effects`] change that the
//! session carries to the queue. Every decision is logged with the rule's id.

mod clock;
pub mod content;
pub mod delegate;
pub mod dnsbl;
pub mod greylist;
pub mod rate;
mod rdns;
pub mod refusals;
mod screen;

use std::net::IpAddr;

use postern_store::model::{Policy, PolicyAction, PolicyEnvelope, PolicyStage};

pub use clock::Clock;
pub use rate::RateLimiter;
pub use rdns::reverse_name;
pub use refusals::RefusalLog;
pub use screen::{DNSBL_FIELD, RcptCheck, Screen};

use crate::smtp::Reply;

/// What accepted rules do to a message: set by rules at connect and HELO for every message of
/// the session, by rules at MAIL, RCPT and DATA for the current one. Rule id 0 marks what a
/// policy service decided (not an access rule): `notes` says which service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Accept and drop, by this rule.
    pub discard: Option<i64>,
    /// Accept and hold in the queue, by this rule.
    pub hold: Option<i64>,
    /// Deliver to this address instead, by this rule.
    pub redirect: Option<(i64, String)>,
    /// Deliver a copy to these addresses too, by these rules.
    pub bcc: Vec<(i64, String)>,
    /// Header fields (`Name: value`, without the line ending) to add on top of the message, below
    /// our `Received:`: a policy service's `PREPEND`, a blocklist or greylisting note.
    pub prepend: Vec<String>,
    /// What else decided about this message, for the delivery log (a blocklist's score, a
    /// policy service's answer, a milter's verdict), each a short phrase.
    pub notes: Vec<String>,
}

impl Effects {
    /// The delivery log's note on a message these effects changed.
    pub fn note(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(id) = self.hold.filter(|&id| id != 0) {
            parts.push(format!("held by policy rule {id}"));
        }
        if let Some((id, to)) = self.redirect.as_ref().filter(|(id, _)| *id != 0) {
            parts.push(format!("redirected to {to} by policy rule {id}"));
        }
        for (id, to) in self.bcc.iter().filter(|(id, _)| *id != 0) {
            parts.push(format!("copy to {to} by policy rule {id}"));
        }
        parts.extend(self.notes.iter().cloned());
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// What the session does after a stage's rules were evaluated.
#[derive(Debug)]
pub enum Decision {
    /// No rule matched, or OK: go on as usual.
    Continue,
    /// Refuse the command with this reply; the text says what decided, for the delivery log
    /// (`access rule 7`, `policy service postgrey`).
    Refuse(Reply, String),
}

/// Evaluates `stage` for the client at `ip` (`who` names it in the log) and records what an
/// accepting rule does in `effects`.
pub fn decide(
    policy: &Policy,
    stage: PolicyStage,
    env: &PolicyEnvelope<'_>,
    effects: &mut Effects,
    client: IpAddr,
    who: &str,
) -> Decision {
    let Some(hit) = policy.evaluate(stage, env) else { return Decision::Continue };
    let rule = hit.rule;
    tracing::info!(
        rule = rule.id,
        %stage,
        action = %rule.action,
        %client,
        client_name = who,
        why = %hit.why,
        "policy rule matched"
    );
    match &rule.action {
        PolicyAction::Ok => Decision::Continue,
        PolicyAction::Reject(r) | PolicyAction::Defer(r) => {
            // RFC 5321 §3.1 and §3.8: at the greeting a refusal is 554, and a temporary one
            // is 421 (and the connection closes).
            let code = match stage {
                PolicyStage::Connect if r.code >= 500 => 554,
                PolicyStage::Connect => 421,
                _ => r.code,
            };
            // Reply's status is static; the rule's enhanced code leads the text instead, which
            // puts the same bytes on the wire.
            Decision::Refuse(
                Reply::plain(code, vec![format!("{} {}", r.enhanced, r.text)]),
                match rule.description.trim() {
                    "" => format!("access rule {} {}", rule.id, rule.action.keyword()),
                    d => format!("access rule {} {} ({d})", rule.id, rule.action.keyword()),
                },
            )
        }
        PolicyAction::Discard => {
            effects.discard.get_or_insert(rule.id);
            Decision::Continue
        }
        PolicyAction::Hold => {
            effects.hold.get_or_insert(rule.id);
            Decision::Continue
        }
        PolicyAction::Redirect(to) => {
            effects.redirect.get_or_insert((rule.id, to.to_string()));
            Decision::Continue
        }
        PolicyAction::Bcc(to) => {
            if !effects.bcc.iter().any(|(_, a)| a.eq_ignore_ascii_case(&to.to_string())) {
                effects.bcc.push((rule.id, to.to_string()));
            }
            Decision::Continue
        }
    }
}
