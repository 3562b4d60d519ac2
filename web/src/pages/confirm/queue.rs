//! What deleting or bouncing queued mail asks before it acts, with JavaScript off.

use super::{Question, field};

/// What deleting or bouncing queued mail asks: one message (`/queue/{id}/{action}`), the checked
/// ones or every one matching the filter (`/queue/act`). The handler checks the ID and the
/// administrator's scope, so nothing here reads the store or names more than the form did.
pub(super) fn question(segments: &[String], fields: &[(String, String)]) -> Option<Question> {
    let (action, what, cancel) = match segments {
        [_, act, action] if act != "act" => (
            action.as_str(),
            format!("message {act}"),
            format!("/queue/{}", crate::pages::link::encode(act)),
        ),
        [_, _] => {
            let what = match field(fields, "scope") {
                "filter" => "every message that matches the filter".to_string(),
                _ => match fields.iter().filter(|(k, _)| k == "id").count() {
                    0 => return None,
                    1 => "the checked message".to_string(),
                    n => format!("the {n} checked messages"),
                },
            };
            (field(fields, "action"), what, "/queue".to_string())
        }
        _ => return None,
    };
    let (verb, button, consequence) = match action {
        "delete" => (
            "Delete",
            "Delete",
            "It leaves the queue for the recipients in your scope and is neither delivered nor \
             returned to its sender.",
        ),
        "bounce" => (
            "Bounce",
            "Bounce",
            "Its sender gets a delivery status notification for the recipients in your scope, \
             and it leaves the queue for them.",
        ),
        _ => return None,
    };
    Some(Question {
        section: "queue",
        title: format!("{verb} {what}?"),
        question: format!("{verb} {what}? {consequence}"),
        details: Vec::new(),
        button: button.to_string(),
        cancel,
    })
}
