//! Confirmation pages for destructive buttons, so that they ask first with JavaScript off too.
//!
//! `console.js` asks with `window.confirm()` and then adds `confirm=yes` to the form. A POST to
//! one of the removals below without that field does not act: it answers a page that says what
//! will go (for a domain: its mailboxes and aliases, with counts) and posts the same form again
//! with `confirm=yes`. Done as a layer in front of the handlers, so that they stay as they are.

use askama::Template;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use postern_store::model::{Address, AliasSource, DomainName};

use super::{Layout, error_page, percent_decode, render};
use crate::auth::session::ConsoleUser;
use crate::state::AppState;

mod queue;

/// Most names listed on a confirmation page; the rest are counted.
const LISTED: usize = 20;

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    layout: Layout,
    question: String,
    details: Vec<String>,
    action: String,
    /// The form as it was posted, sent again with `confirm=yes`.
    fields: Vec<(String, String)>,
    button: String,
    cancel: String,
}

impl_page!(ConfirmPage);

/// What a removal asks before it acts.
struct Question {
    section: &'static str,
    title: String,
    question: String,
    details: Vec<String>,
    button: String,
    cancel: String,
}

/// The layer: removals without `confirm=yes` get a confirmation page; everything else passes.
pub async fn require_confirmation(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST || !asks(request.uri().path()) {
        return next.run(request).await;
    }
    let Some(user) = request.extensions().get::<ConsoleUser>().cloned() else {
        return next.run(request).await;
    };
    if user.admin.must_change_password {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
    };
    let fields = parse_form(&bytes);
    if fields.iter().any(|(k, v)| k == "confirm" && v == "yes") {
        return next.run(Request::from_parts(parts, Body::from(bytes))).await;
    }
    let path = parts.uri.path().to_string();
    let question = match question(&state, &user, &path, &fields).await {
        Ok(Some(q)) => q,
        // Not this user's to remove, or nothing to remove: the handler says why.
        Ok(None) => return next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(e) => return error_page(e),
    };
    let page = ConfirmPage {
        layout: Layout::new(&user, question.section, question.title, &parts.headers),
        question: question.question,
        details: question.details,
        action: path,
        fields: fields.into_iter().filter(|(k, _)| k != "confirm").collect(),
        button: question.button,
        cancel: question.cancel,
    };
    render(StatusCode::OK, &page)
}

/// The removals that ask first: `/{section}/{name}/delete` and `/{section}/delete`.
fn asks(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        // Deleting or bouncing queued mail cannot be undone; `question` lets the other queue
        // actions (hold, release, retry) through.
        ["queue", _, "delete" | "bounce"] | ["queue", "act"] => true,
        ["nodes", "drain" | "delete"] => true,
        [section, _, "delete"] => {
            matches!(*section, "domains" | "mailboxes" | "aliases" | "tokens" | "admins")
        }
        [section, "delete"] => matches!(
            *section,
            "networks"
                | "transports"
                | "certificates"
                | "policy"
                | "milters"
                | "rate-limits"
                | "content-checks"
                | "policy-services"
        ),
        ["domains", _, "mta-sts" | "directory", "delete"] => true,
        ["dnsbl", "lists" | "whitelist", "remove"] => true,
        ["mailauth", "clear"] => true,
        _ => false,
    }
}

/// The fields of a urlencoded form, decoded.
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// A rule's description, as a detail line, when it has one.
fn described(description: &str) -> Vec<String> {
    let description = description.trim();
    if description.is_empty() { Vec::new() } else { vec![format!("Described as: {description}")] }
}

/// Lists at most [`LISTED`] names, then how many more.
fn listed(one: &str, many: &str, names: Vec<String>) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    let count = names.len();
    let mut shown: Vec<String> = names.into_iter().take(LISTED).collect();
    if count > LISTED {
        shown.push(format!("and {} more", count - LISTED));
    }
    Some(format!("{count} {}: {}", if count == 1 { one } else { many }, shown.join(", ")))
}

async fn question(
    state: &AppState,
    user: &ConsoleUser,
    path: &str,
    fields: &[(String, String)],
) -> Result<Option<Question>, crate::error::WebError> {
    let segments: Vec<String> =
        path.trim_start_matches('/').split('/').map(percent_decode).collect();
    let name = segments.get(1).cloned().unwrap_or_default();
    let q = match segments.first().map(String::as_str) {
        Some("queue") => match queue::question(&segments, fields) {
            Some(q) => q,
            None => return Ok(None),
        },
        Some("domains") if segments.get(2).map(String::as_str) == Some("directory") => {
            let Ok(domain) = name.parse::<DomainName>() else { return Ok(None) };
            if !user.principal.sees(&domain) {
                return Ok(None);
            }
            Question {
                section: "domains",
                title: format!("Detach the directory of {domain}?"),
                question: format!(
                    "Detach the directory of {domain}? Addresses only the directory knows are \
                     refused from then on (550 5.1.1), and its users can no longer sign in; the \
                     directory itself is not touched."
                ),
                details: Vec::new(),
                button: "Detach the directory".into(),
                cancel: format!("/domains/{}/directory", super::link::encode(&domain.to_string())),
            }
        }
        Some("nodes") => {
            if !user.principal.is_global() {
                return Ok(None);
            }
            let node = field(fields, "node");
            if name == "drain" {
                Question {
                    section: "nodes",
                    title: format!("Drain {node}?"),
                    question: format!(
                        "Drain {node}? At its next heartbeat it stops taking SMTP (sessions get \
                         421 4.3.2), lets its deliveries in progress end, and hands its queue to \
                         the other nodes; it takes mail again only after a restart."
                    ),
                    details: Vec::new(),
                    button: format!("Drain {node}"),
                    cancel: "/nodes".into(),
                }
            } else {
                Question {
                    section: "nodes",
                    title: format!("Forget {node}?"),
                    question: format!("Forget the node {node}? It leaves the list of engines."),
                    details: Vec::new(),
                    button: format!("Forget {node}"),
                    cancel: "/nodes".into(),
                }
            }
        }
        Some("domains") if segments.get(2).map(String::as_str) == Some("mta-sts") => {
            let Ok(domain) = name.parse::<DomainName>() else { return Ok(None) };
            if !user.principal.sees(&domain) || state.store.mta_sts_policy(&domain).await?.is_none()
            {
                return Ok(None);
            }
            Question {
                section: "domains",
                title: format!("Remove the MTA-STS policy of {domain}?"),
                question: format!(
                    "Remove the MTA-STS policy of {domain}? Senders that cached it keep it until \
                     its max_age runs out; publish mode \"none\" first to withdraw it cleanly."
                ),
                details: Vec::new(),
                button: "Remove the policy".into(),
                cancel: format!("/domains/{}/mta-sts", super::link::encode(&domain.to_string())),
            }
        }
        Some("domains") => {
            let Ok(domain) = name.parse::<DomainName>() else { return Ok(None) };
            if !user.principal.is_global() || state.store.get_domain(&domain).await?.is_none() {
                return Ok(None);
            }
            let mailboxes: Vec<String> = state
                .store
                .list_mailboxes(Some(&domain))
                .await?
                .iter()
                .map(|m| m.address.to_string())
                .collect();
            let mut aliases: Vec<String> = state
                .store
                .list_aliases(Some(&domain))
                .await?
                .iter()
                .map(|a| a.source.to_string())
                .collect();
            aliases.sort();
            let cascade = field(fields, "cascade") == "true";
            let (m, a) = (mailboxes.len(), aliases.len());
            let question = if m + a == 0 {
                format!(
                    "Remove the domain {domain}? It has no mailboxes or aliases; mail to it is refused from then on."
                )
            } else if cascade {
                format!(
                    "Remove the domain {domain}? Its {m} mailbox{} and {a} alias{} go too; the \
                     mailboxes' Maildirs stay on disk.",
                    if m == 1 { "" } else { "es" },
                    if a == 1 { "" } else { "es" }
                )
            } else {
                format!(
                    "Remove the domain {domain}? It still has {m} mailbox(es) and {a} alias(es), \
                     so the removal will be refused."
                )
            };
            Question {
                section: "domains",
                title: format!("Remove {domain}?"),
                question,
                details: [
                    listed("mailbox", "mailboxes", mailboxes),
                    listed("alias", "aliases", aliases),
                ]
                .into_iter()
                .flatten()
                .collect(),
                button: format!("Remove {domain}"),
                cancel: "/domains".into(),
            }
        }
        Some("mailboxes") => {
            let Ok(address) = name.parse::<Address>() else { return Ok(None) };
            if !user.principal.sees(address.domain())
                || state.store.get_mailbox(&address).await?.is_none()
            {
                return Ok(None);
            }
            let mut to_it: Vec<String> = state
                .store
                .aliases_to(&address)
                .await?
                .iter()
                .filter(|a| user.principal.sees(a.source.domain()))
                .map(|a| a.source.to_string())
                .collect();
            to_it.sort();
            Question {
                section: "mailboxes",
                title: format!("Remove {address}?"),
                question: format!(
                    "Remove the mailbox {address}? It stops receiving mail and signing in at \
                     once; its Maildir stays on disk."
                ),
                details: listed(
                    "alias delivers to it and will point nowhere",
                    "aliases deliver to it and will point nowhere",
                    to_it,
                )
                .into_iter()
                .collect(),
                button: format!("Remove {address}"),
                cancel: format!("/mailboxes/{}", super::link::encode(&address.to_string())),
            }
        }
        Some("aliases") => {
            let Ok(source) = name.parse::<AliasSource>() else { return Ok(None) };
            if !user.principal.sees(source.domain()) {
                return Ok(None);
            }
            let Some(alias) = state.store.get_alias(&source).await? else { return Ok(None) };
            Question {
                section: "aliases",
                title: format!("Remove the alias {source}?"),
                question: format!(
                    "Remove the alias {source}? Mail to it is no longer forwarded to {}.",
                    alias
                        .destinations
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                details: Vec::new(),
                button: format!("Remove {source}"),
                cancel: format!("/aliases/{}", super::link::encode(&source.to_string())),
            }
        }
        Some("tokens") => {
            let Some(token) = state.store.get_token(&name).await? else { return Ok(None) };
            if !user.principal.is_global() && token.owner != user.admin.name {
                return Ok(None);
            }
            Question {
                section: "tokens",
                title: format!("Revoke the token {}?", token.name),
                question: format!(
                    "Revoke the API token {} of {}? Scripts that use it stop working at once.",
                    token.name, token.owner
                ),
                details: Vec::new(),
                button: "Revoke the token".into(),
                cancel: "/tokens".into(),
            }
        }
        Some("admins") => {
            if !user.principal.is_global() {
                return Ok(None);
            }
            Question {
                section: "admins",
                title: format!("Remove the administrator {name}?"),
                question: format!(
                    "Remove the administrator {name}? Their sessions end and their API tokens are \
                     revoked at once."
                ),
                details: Vec::new(),
                button: format!("Remove {name}"),
                cancel: "/admins".into(),
            }
        }
        Some("networks") => {
            if !user.principal.is_global() {
                return Ok(None);
            }
            let cidr = field(fields, "cidr");
            Question {
                section: "networks",
                title: format!("Stop trusting {cidr}?"),
                question: format!(
                    "Stop trusting {cidr}? Its clients will have to sign in to send mail out."
                ),
                details: Vec::new(),
                button: format!("Remove {cidr}"),
                cancel: "/networks".into(),
            }
        }
        Some("transports") => {
            if !user.principal.is_global() {
                return Ok(None);
            }
            let pattern = field(fields, "pattern");
            Question {
                section: "transports",
                title: format!("Remove the transport for {pattern}?"),
                question: format!(
                    "Remove the transport for {pattern}? Its mail goes the default way from then on."
                ),
                details: Vec::new(),
                button: "Remove the transport".into(),
                cancel: "/transports".into(),
            }
        }
        Some("certificates") => {
            if !user.principal.is_global() {
                return Ok(None);
            }
            let Ok(id) = field(fields, "id").trim().parse::<i64>() else { return Ok(None) };
            let certificates = state.store.list_certificates().await?;
            let Some(c) = certificates.iter().find(|c| c.id == id) else { return Ok(None) };
            Question {
                section: "certificates",
                title: "Remove the certificate?".into(),
                question: format!(
                    "Remove the certificate for {} (issued by {}, {})? Names it served get \
                     another matching certificate, or the self-signed one.",
                    c.names.join(", "),
                    c.issuer,
                    c.source
                ),
                details: Vec::new(),
                button: "Remove the certificate".into(),
                cancel: "/certificates".into(),
            }
        }
        Some("policy") => {
            if !user.principal.is_global() {
                return Ok(None);
            }
            let Ok(id) = field(fields, "id").trim().parse::<i64>() else { return Ok(None) };
            let rules = state.store.list_policy_rules().await?;
            let Some(r) = rules.iter().find(|r| r.id == id) else { return Ok(None) };
            Question {
                section: "policy",
                title: format!("Remove access rule {}?", r.position),
                question: format!(
                    "Remove access rule {} (at {}: {} → {})? Mail it decided on is judged by \
                     the rules after it from then on.",
                    r.position, r.stage, r.matches, r.action
                ),
                details: described(&r.description),
                button: "Remove the rule".into(),
                cancel: "/policy".into(),
            }
        }
        Some("milters") => {
            if !user.principal.is_global() {
                return Ok(None);
            }
            let Ok(id) = field(fields, "id").trim().parse::<i64>() else { return Ok(None) };
            let milters = state.store.list_milters().await?;
            let Some(m) = milters.iter().find(|m| m.id == id) else { return Ok(None) };
            Question {
                section: "milters",
                title: format!("Remove the milter {}?", m.name),
                question: format!(
                    "Remove the milter {} ({})? Messages are no longer passed to it.",
                    m.name, m.address
                ),
                details: Vec::new(),
                button: format!("Remove {}", m.name),
                cancel: "/milters".into(),
            }
        }
        Some("rate-limits") => {
            if !user.principal.is_global() {
                return Ok(None);
            }
            let Ok(id) = field(fields, "id").trim().parse::<i64>() else { return Ok(None) };
            let limits = state.store.list_rate_limits().await?;
            let Some(l) = limits.iter().find(|l| l.id == id) else { return Ok(None) };
            Question {
                section: "rate_limits",
                title: "Remove the rate limit?".into(),
                question: format!(
                    "Remove the rate limit {}? Clients are no longer held to it.",
                    l.summary()
                ),
                details: described(&l.description),
                button: "Remove the limit".into(),
                cancel: "/rate-limits".into(),
            }
        }
        Some("content-checks") => {
            if !user.principal.is_global() {
                return Ok(None);
            }
            let Ok(id) = field(fields, "id").trim().parse::<i64>() else { return Ok(None) };
            let checks = state.store.list_content_checks().await?;
            let Some(c) = checks.iter().find(|c| c.id == id) else { return Ok(None) };
            Question {
                section: "content-checks",
                title: format!("Remove check {}?", c.position),
                question: format!(
                    "Remove the {} check {} (/{}/ → {})? Messages are no longer tried against it.",
                    c.part, c.position, c.pattern, c.action
                ),
                details: described(&c.description),
                button: "Remove the check".into(),
                cancel: "/content-checks".into(),
            }
        }
        Some("policy-services") => {
            if !user.principal.is_global() {
                return Ok(None);
            }
            let name = field(fields, "name").trim();
            let services = state.store.list_policy_services().await?;
            let Some(p) = services.iter().find(|p| p.name == name) else { return Ok(None) };
            Question {
                section: "policy-services",
                title: format!("Remove the policy service {}?", p.name),
                question: format!(
                    "Remove the policy service {} ({}, at {})? It is no longer asked about mail.",
                    p.name, p.address, p.stage
                ),
                details: described(&p.description),
                button: format!("Remove {}", p.name),
                cancel: "/policy-services".into(),
            }
        }
        Some("dnsbl") => {
            if !user.principal.is_global() {
                return Ok(None);
            }
            let (what, cancel) = if segments.get(1).map(String::as_str) == Some("lists") {
                let zone = field(fields, "zone").trim();
                (format!("Stop asking the blocklist {zone}? Its listings no longer count."), zone)
            } else {
                let entry = field(fields, "entry").trim();
                (
                    format!(
                        "Remove {entry} from the blocklist whitelist? It is checked against the blocklists again."
                    ),
                    entry,
                )
            };
            Question {
                section: "dnsbl",
                title: format!("Remove {cancel}?"),
                question: what,
                details: Vec::new(),
                button: format!("Remove {cancel}"),
                cancel: "/dnsbl".into(),
            }
        }
        Some("mailauth") => {
            if !user.principal.is_global() {
                return Ok(None);
            }
            let domain = field(fields, "domain").trim();
            Question {
                section: "mailauth",
                title: format!("Clear the checks policy of {domain}?"),
                question: format!(
                    "Clear the SPF/DKIM/DMARC policy set for {domain}? Mail from it is judged by \
                     the defaults from then on."
                ),
                details: Vec::new(),
                button: "Clear the policy".into(),
                cancel: "/mailauth".into(),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_removals_ask() {
        assert!(asks("/domains/a.test/delete"));
        assert!(asks("/aliases/%40a.test/delete"));
        assert!(asks("/networks/delete"));
        for path in [
            "/certificates/delete",
            "/policy/delete",
            "/milters/delete",
            "/rate-limits/delete",
            "/content-checks/delete",
            "/policy-services/delete",
            "/domains/a.test/mta-sts/delete",
            "/dnsbl/lists/remove",
            "/dnsbl/whitelist/remove",
            "/mailauth/clear",
            "/queue/abc/delete",
            "/queue/abc/bounce",
            "/queue/act",
            "/domains/a.test/directory/delete",
            "/nodes/drain",
            "/nodes/delete",
        ] {
            assert!(asks(path), "{path}");
        }
        assert!(!asks("/policy/move"));
        assert!(!asks("/queue/abc/hold"));
        assert!(!asks("/domains/a.test"));
    }

    #[test]
    fn forms_decode() {
        let fields = parse_form(b"csrf=abc&cidr=10.0.0.0%2F8&description=two+words");
        assert_eq!(field(&fields, "cidr"), "10.0.0.0/8");
        assert_eq!(field(&fields, "description"), "two words");
    }

    #[test]
    fn long_lists_are_counted() {
        let names: Vec<String> = (0..25).map(|i| format!("m{i}@a.test")).collect();
        let text = listed("mailbox", "mailboxes", names).unwrap();
        assert!(text.starts_with("25 mailboxes: m0@a.test"), "{text}");
        assert!(text.ends_with("and 5 more"), "{text}");
    }
}
