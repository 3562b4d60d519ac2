//! Postfix's `header_checks` and `body_checks` (header_checks(5)) as Postern's content checks:
//! each `/pattern/ ACTION` line of a `regexp:` or `pcre:` table one rule, in file order (the
//! first match decides for a field or line in both). REJECT, DISCARD, HOLD, WARN, IGNORE and
//! REPLACE map as they are (INFO as WARN); the rest is reported with the reason.

use std::path::Path;

use postern_store::model::{CheckPart, Config, NewContentCheck};

use super::main_cf::MainCf;
use super::plan::Plan;
use super::regexp;

/// Adds the rules of `header_checks` and `body_checks` to `plan`.
pub fn import(cf: &MainCf, dir: &Path, config: &Config, plan: &mut Plan) {
    for (param, part) in [("header_checks", CheckPart::Header), ("body_checks", CheckPart::Body)] {
        for spec in cf.list(param) {
            let (kind, name) = spec.split_once(':').unwrap_or(("", &spec));
            if !matches!(kind, "regexp" | "pcre") {
                plan.unmapped.push(format!(
                    "{param} {spec}: only regexp: and pcre: tables are imported (a {} table \
                     matches whole lines exactly; write them as patterns)",
                    if kind.is_empty() { "hash" } else { kind }
                ));
                continue;
            }
            let table = match regexp::read(Path::new(name), dir) {
                Ok(t) => t,
                Err(why) => {
                    plan.unmapped.push(format!("{param} {spec}: {why}"));
                    continue;
                }
            };
            for why in table.unreadable {
                plan.unmapped.push(format!("{param} {spec} {why}"));
            }
            for e in table.entries {
                let origin = format!("{param} {spec} line {}", e.line);
                let action = match action(&e.result) {
                    Ok(a) => a,
                    Err(why) => {
                        plan.unmapped.push(format!("{origin} {}: {why}", e.result));
                        continue;
                    }
                };
                let description: String = format!("Postfix {origin}").chars().take(200).collect();
                let new = match NewContentCheck::parse(
                    part.as_str(),
                    &e.pattern,
                    &action,
                    &description,
                ) {
                    Ok(n) => n,
                    Err(err) => {
                        plan.unmapped.push(format!("{origin} {} {}: {err}", e.pattern, e.result));
                        continue;
                    }
                };
                let label = format!("check {} {} {}", new.part, e.pattern, new.action);
                let exists = config.content_checks.rules.iter().any(|r| {
                    r.part == new.part && r.pattern == new.pattern && r.action == new.action
                });
                if exists || plan.checks.contains(&new) {
                    plan.unchanged.push(label);
                } else {
                    plan.checks.push(new);
                }
            }
        }
    }
    for param in ["mime_header_checks", "nested_header_checks"] {
        // Both default to $header_checks; set apart, they apply to MIME part and attached
        // message headers, which Postern's header rules do not see.
        if cf.is_set(param) && cf.get(param) != cf.get("header_checks") {
            for spec in cf.list(param) {
                plan.unmapped.push(format!(
                    "{param} {spec}: Postern's header rules see the message's own header only, \
                     not those of MIME parts or attached messages"
                ));
            }
        }
    }
}

/// A header_checks(5) result as Postern's action text.
fn action(result: &str) -> Result<String, String> {
    let (word, rest) = result.split_once(char::is_whitespace).unwrap_or((result, ""));
    let rest = rest.trim();
    Ok(match word.to_ascii_uppercase().as_str() {
        "REJECT" | "WARN" | "IGNORE" | "REPLACE" => result.trim().to_string(),
        // The optional text is only logged by Postfix; Postern's actions take none.
        "DISCARD" => "DISCARD".into(),
        "HOLD" => "HOLD".into(),
        "INFO" => format!("WARN {rest}"),
        "DUNNO" | "OK" => {
            return Err("Postern's checks have no action that passes a field or line on \
                        unchanged and stops there: later rules would match it"
                .into());
        }
        "PREPEND" => {
            return Err("PREPEND adds a field before the one that matched: Postern's checks \
                        replace or remove fields (REPLACE, IGNORE), they do not add"
                .into());
        }
        "REDIRECT" | "BCC" => {
            return Err(format!(
                "{word}: content checks do not re-address mail; an access rule can \
                 (REDIRECT, BCC) by envelope"
            ));
        }
        "FILTER" => return Err("FILTER: Postern routes by transport, not per message".into()),
        "DEFER" => {
            return Err("DEFER: content checks refuse for good (REJECT) or hold (HOLD)".into());
        }
        "STRIP" => return Err("STRIP: Postern does not remove attachments".into()),
        _ => return Err(format!("{word} is not a header_checks(5) action Postern has")),
    })
}
