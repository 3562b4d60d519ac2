//! Header and body checks in the session, once the message is whole: the snapshot's compiled
//! rules (`postern_store::model::ContentChecks`, the same code as the console's live test)
//! turned into a refusal, a dropped message, or an accepted one — held, with header fields
//! removed or replaced, and every rule that matched in the log and in the delivery log's note.

use postern_store::model::{ContentChecks, ContentDecision};

use super::Effects;
use crate::smtp::Reply;

/// What becomes of the message.
#[derive(Debug)]
pub enum Outcome {
    /// Queue it (rewritten when a rule removed or replaced a header field); `held` when a HOLD
    /// rule matched.
    Accept { message: Vec<u8>, held: bool },
    /// Refuse it with this reply (RFC 5321 §4.2.5: after the final dot, nothing is queued);
    /// the text names the rule, for the delivery log (`header check 3`).
    Refuse(Reply, String),
    /// Say 250 and drop it (DISCARD): the rule, named as in `Refuse`.
    Discard { rule: i64, reason: String },
}

/// Applies `checks` to `message` for the client `who`; notes for accepted messages go into
/// `effects.notes`.
pub fn apply(
    checks: &ContentChecks,
    message: Vec<u8>,
    effects: &mut Effects,
    who: &str,
    sender: &str,
) -> Outcome {
    if checks.is_empty() {
        return Outcome::Accept { message, held: false };
    }
    let verdict = checks.check(&message);
    for hit in &verdict.hits {
        tracing::info!(
            rule = hit.rule,
            part = %hit.part,
            action = %hit.action,
            line = %hit.line,
            from = %sender,
            client = who,
            "content check matched"
        );
    }
    match verdict.decision {
        ContentDecision::Reject { reply, rule } => {
            // The rule's enhanced code leads the text, as the access rules' refusals do.
            Outcome::Refuse(
                Reply::plain(reply.code, vec![format!("{} {}", reply.enhanced, reply.text)]),
                named(&verdict.hits, rule),
            )
        }
        ContentDecision::Discard { rule } => {
            Outcome::Discard { rule, reason: named(&verdict.hits, rule) }
        }
        ContentDecision::Accept => {
            for hit in &verdict.hits {
                let keyword = hit.action.split(' ').next().unwrap_or("");
                effects.notes.push(format!("{} check {} matched ({keyword})", hit.part, hit.rule));
            }
            let held = verdict.hold.is_some();
            Outcome::Accept { message: verdict.rewritten.unwrap_or(message), held }
        }
    }
}

/// A content rule as the delivery log names it: `header check 3`, `body check 5`.
fn named(hits: &[postern_store::model::ContentHit], rule: i64) -> String {
    match hits.iter().find(|h| h.rule == rule) {
        Some(hit) => format!("{} check {rule}", hit.part),
        None => format!("content check {rule}"),
    }
}

#[cfg(test)]
mod tests {
    use postern_store::model::{ContentCheck, NewContentCheck};

    use super::*;

    fn checks(rules: &[(&str, &str, &str)]) -> ContentChecks {
        ContentChecks::new(
            rules
                .iter()
                .enumerate()
                .map(|(i, (part, pattern, action))| {
                    let n = NewContentCheck::parse(part, pattern, action, "").unwrap();
                    ContentCheck {
                        id: i as i64 + 1,
                        position: i as i64 + 1,
                        part: n.part,
                        pattern: n.pattern,
                        action: n.action,
                        description: String::new(),
                        created_at: 0,
                    }
                })
                .collect(),
        )
    }

    const MESSAGE: &[u8] = b"Subject: hello\r\nX-Tracker: 1\r\n\r\nwin a prize\r\n";

    #[test]
    fn each_action() {
        let mut e = Effects::default();
        let c = checks(&[("header", "^Subject: hello", "REJECT 554 5.7.0 no hellos")]);
        match apply(&c, MESSAGE.to_vec(), &mut e, "c", "s") {
            Outcome::Refuse(r, why) => {
                assert_eq!(r.to_string(), "554 5.7.0 no hellos");
                assert_eq!(why, "header check 1");
            }
            other => panic!("{other:?}"),
        }
        let c = checks(&[("body", "prize", "DISCARD")]);
        assert!(matches!(
            apply(&c, MESSAGE.to_vec(), &mut e, "c", "s"),
            Outcome::Discard { rule: 1, ref reason } if reason == "body check 1"
        ));
        assert!(e.notes.is_empty());

        let c = checks(&[
            ("header", "^X-Tracker:", "IGNORE"),
            ("header", "^Subject:", "REPLACE Subject: [tagged] hello"),
            ("body", "prize", "HOLD"),
            ("body", "win", "WARN"),
        ]);
        match apply(&c, MESSAGE.to_vec(), &mut e, "c", "s") {
            Outcome::Accept { message, held } => {
                assert!(held);
                assert_eq!(message, b"Subject: [tagged] hello\r\n\r\nwin a prize\r\n");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e.notes,
            [
                "header check 2 matched (REPLACE)",
                "header check 1 matched (IGNORE)",
                "body check 3 matched (HOLD)"
            ]
        );
        let mut e = Effects::default();
        let c = checks(&[("body", "win", "WARN spammy")]);
        match apply(&c, MESSAGE.to_vec(), &mut e, "c", "s") {
            Outcome::Accept { message, held } => {
                assert!(!held);
                assert_eq!(message, MESSAGE);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.notes, ["body check 1 matched (WARN)"]);
    }
}
