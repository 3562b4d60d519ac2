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

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(path: &str) -> Vec<String> {
        path.trim_start_matches('/').split('/').map(str::to_string).collect()
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn only_deleting_and_bouncing_ask() {
        let one = question(&segments("/queue/ABC/delete"), &[]).unwrap();
        assert_eq!(one.title, "Delete message ABC?");
        assert_eq!(one.cancel, "/queue/ABC");
        let all = question(
            &segments("/queue/act"),
            &fields(&[("action", "bounce"), ("scope", "filter")]),
        )
        .unwrap();
        assert_eq!(all.title, "Bounce every message that matches the filter?");
        let two = question(
            &segments("/queue/act"),
            &fields(&[("action", "delete"), ("scope", "checked"), ("id", "A"), ("id", "B")]),
        )
        .unwrap();
        assert_eq!(two.title, "Delete the 2 checked messages?");
        // Nothing checked, or an action that can be undone: the handler answers.
        let none = fields(&[("action", "delete"), ("scope", "checked")]);
        assert!(question(&segments("/queue/act"), &none).is_none());
        let hold = fields(&[("action", "hold"), ("scope", "filter")]);
        assert!(question(&segments("/queue/act"), &hold).is_none());
    }
}
