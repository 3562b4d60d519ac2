//! The mailboxes pages: a list filtered by domain and a search, the add form, and one page per
//! mailbox to change its name, quota, state and send-as list, reset its password, or remove it.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::MailboxFilter;
use postern_store::model::{
    Address, DomainKind, DomainName, Mailbox, MailboxUpdate, NewMailbox, SendAs, parse_send_as,
};
use serde::Deserialize;

use super::link::encode;
use super::refusal::place;
use super::{Flash, FormState, Layout, error_page, render, saved};
use crate::auth::login;
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

/// Mailboxes per page of the list.
const PAGE: u32 = 100;
const MB: u64 = 1 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mailboxes", get(list).post(add))
        .route("/mailboxes/{address}", get(show).post(update))
        .route("/mailboxes/{address}/password", post(password))
        .route("/mailboxes/{address}/enabled", post(set_enabled))
        .route("/mailboxes/{address}/delete", post(remove))
}

/// A mailbox as the pages show it: no password hash, not even its existence.
struct Row {
    address: String,
    /// The address as a path segment.
    href: String,
    display_name: String,
    enabled: bool,
    quota: String,
    /// The send-as list, comma-separated; empty for none.
    send_as: String,
    created: String,
    updated: String,
}

impl From<&Mailbox> for Row {
    fn from(m: &Mailbox) -> Row {
        Row {
            address: m.address.to_string(),
            href: encode(&m.address.to_string()),
            display_name: m.display_name.clone(),
            enabled: m.enabled,
            quota: show_quota(m.quota_bytes),
            send_as: send_as_value(&m.send_as),
            created: time::format(m.created_at),
            updated: time::format(m.updated_at),
        }
    }
}

fn send_as_value(list: &[SendAs]) -> String {
    list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// A quota typed in the console: whole MB (MiB, as quota tools count), empty for no limit.
fn parse_quota(text: &str) -> Result<Option<u64>, WebError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let mb: u64 = text.parse().map_err(|_| {
        WebError::invalid(
            "quota",
            format!("{text:?} is not a whole number of MB (leave it empty for no limit)"),
        )
    })?;
    if mb == 0 {
        return Err(WebError::invalid(
            "quota",
            "a quota of 0 MB would refuse all mail; leave it empty for no limit",
        ));
    }
    mb.checked_mul(MB)
        .filter(|bytes| i64::try_from(*bytes).is_ok())
        .map(Some)
        .ok_or_else(|| WebError::invalid("quota", "is too large"))
}

fn show_quota(quota: Option<u64>) -> String {
    match quota {
        None => "no limit".into(),
        Some(bytes) if bytes % MB == 0 => format!("{} MB", bytes / MB),
        Some(bytes) => format!("{bytes} bytes"),
    }
}

/// The quota as the edit form shows it (a limit set in bytes elsewhere is rounded up).
fn quota_value(quota: Option<u64>) -> String {
    quota.map(|bytes| bytes.div_ceil(MB).to_string()).unwrap_or_default()
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: String,
}

#[derive(Template)]
#[template(path = "mailboxes/list.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    /// Every domain the user manages, for the filter.
    domains: Vec<String>,
    /// The local ones, where mailboxes can be added.
    local_domains: Vec<String>,
    domain: String,
    q: String,
    next: Option<String>,
    form: FormState,
}

impl_page!(ListPage);

/// The domains a list shows: the one picked (if the user manages it), else all of the user's.
fn scope(user: &ConsoleUser, domain: &str) -> Result<Option<Vec<DomainName>>, WebError> {
    if domain.trim().is_empty() {
        return Ok(user.principal.domains.clone());
    }
    let domain: DomainName = domain.parse()?;
    user.principal.require_domain(&domain)?;
    Ok(Some(vec![domain]))
}

async fn list_page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    query: ListQuery,
    form: FormState,
) -> Result<ListPage, WebError> {
    let filter = MailboxFilter {
        domains: scope(user, &query.domain)?,
        search: Some(query.q.clone()).filter(|q| !q.trim().is_empty()),
    };
    let after = Some(query.after.as_str()).filter(|a| !a.is_empty());
    let mut found = state.store.page_mailboxes(&filter, after, PAGE + 1).await?;
    let next = (found.len() > PAGE as usize).then(|| {
        found.truncate(PAGE as usize);
        let last = found.last().map(|m| m.address.to_string()).unwrap_or_default();
        format!(
            "/mailboxes?domain={}&q={}&after={}",
            encode(&query.domain),
            encode(&query.q),
            encode(&last)
        )
    });
    let seen: Vec<_> = state
        .store
        .list_domains()
        .await?
        .into_iter()
        .filter(|d| user.principal.sees(&d.name))
        .collect();
    Ok(ListPage {
        layout: Layout::new(user, "mailboxes", "Mailboxes", headers),
        rows: found.iter().map(Row::from).collect(),
        local_domains: seen
            .iter()
            .filter(|d| d.kind == DomainKind::Local)
            .map(|d| d.name.to_string())
            .collect(),
        domains: seen.iter().map(|d| d.name.to_string()).collect(),
        domain: query.domain,
        q: query.q,
        next,
        form,
    })
}

async fn list(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    super::respond(
        StatusCode::OK,
        list_page(&state, &user, &headers, query, FormState::default()).await,
    )
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    address: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    quota: String,
}

async fn add(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<AddForm>,
) -> Response {
    // Every field is checked before anything is refused, so that every mistake shows at once
    // (in the form's order: the first takes the focus).
    let address = form.address.parse::<Address>().map_err(WebError::from);
    let name =
        address.as_ref().map_or_else(|_| form.address.trim().to_string(), Address::to_string);
    let password = postern_store::model::check_new_password(&name, &form.password).map_err(|e| {
        match WebError::from(e) {
            WebError::Invalid { message, .. } => WebError::invalid("password", message),
            other => other,
        }
    });
    let quota = parse_quota(&form.quota);
    let result: Result<Address, Vec<WebError>> = match (address, password, quota) {
        (Ok(address), Ok(()), Ok(quota_bytes)) => {
            let added: Result<Address, WebError> = async {
                user.principal.require_domain(address.domain())?;
                // Refuse a taken address or a relay domain before paying for a password hash.
                state.store.check_new_mailbox(&address).await?;
                let password_hash =
                    login::hash(&state, &address.to_string(), &form.password).await?;
                let new = NewMailbox {
                    address,
                    display_name: form.display_name.trim().to_string(),
                    enabled: true,
                    quota_bytes,
                    password_hash,
                };
                Ok(state.store.add_mailbox(&user.principal.actor, new).await?.address)
            }
            .await;
            added.map_err(|e| vec![e])
        }
        (address, password, quota) => {
            Err([address.err(), password.err(), quota.err()].into_iter().flatten().collect())
        }
    };
    match result {
        Ok(address) => {
            saved(&state, &format!("Mailbox {address} added")).await.redirect("/mailboxes")
        }
        Err(errors) => {
            let mut shown = Vec::new();
            let mut status = StatusCode::UNPROCESSABLE_ENTITY;
            for e in errors {
                match place(e, &[("domain", "address")], "address") {
                    Ok((s, e)) => {
                        status = s;
                        shown.push(e);
                    }
                    Err(e) => return error_page(e),
                }
            }
            // The password goes back into this response only, and only when it was not what
            // was wrong: a bad quota must not make the user type it again.
            let typed = FormState::with(&[
                ("address", &form.address),
                ("display_name", &form.display_name),
                ("quota", &form.quota),
            ]);
            let form = typed
                .fail_all(&shown, &["address", "password", "display_name", "quota"])
                .keep_secret("password", &form.password);
            match list_page(&state, &user, &headers, ListQuery::default(), form).await {
                Ok(page) => render(status, &page),
                Err(e) => error_page(e),
            }
        }
    }
}

#[derive(Template)]
#[template(path = "mailboxes/show.html")]
struct ShowPage {
    layout: Layout,
    mailbox: Row,
    form: FormState,
    /// The aliases that deliver here: (source, its path segment), by source.
    aliases: Vec<(String, String)>,
    /// An alias of the same name that takes this mailbox's mail elsewhere (it does not list
    /// the mailbox): its path segment.
    diverted_by: Option<String>,
}

impl_page!(ShowPage);

/// The mailbox at `address` (as it came in the path), if the user manages its domain.
async fn find(state: &AppState, user: &ConsoleUser, address: &str) -> Result<Mailbox, WebError> {
    let address: Address = address
        .parse()
        .map_err(|_| WebError::NotFound(format!("mailbox {address} does not exist")))?;
    user.principal.require_domain(address.domain())?;
    state
        .store
        .get_mailbox(&address)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("mailbox {address} does not exist")))
}

async fn show_page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    address: &str,
    form: Option<FormState>,
) -> Result<ShowPage, WebError> {
    let mailbox = find(state, user, address).await?;
    let form = form.unwrap_or_else(|| {
        let enabled = if mailbox.enabled { "on" } else { "" };
        FormState::with(&[
            ("display_name", &mailbox.display_name),
            ("quota", &quota_value(mailbox.quota_bytes)),
            ("send_as", &send_as_value(&mailbox.send_as)),
            ("enabled", enabled),
        ])
    });
    let mut aliases: Vec<(String, String)> = state
        .store
        .aliases_to(&mailbox.address)
        .await?
        .into_iter()
        .filter(|a| user.principal.sees(a.source.domain()))
        .map(|a| (a.source.to_string(), super::link::encode(&a.source.to_string())))
        .collect();
    aliases.sort();
    let own = postern_store::model::AliasSource::Address(mailbox.address.clone());
    let diverted_by = state
        .store
        .get_alias(&own)
        .await?
        .filter(|a| !a.destinations.contains(&mailbox.address))
        .map(|a| super::link::encode(&a.source.to_string()));
    Ok(ShowPage {
        layout: Layout::new(user, "mailboxes", format!("Mailbox {}", mailbox.address), headers),
        mailbox: Row::from(&mailbox),
        form,
        aliases,
        diverted_by,
    })
}

async fn show(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(address): Path<String>,
) -> Response {
    super::respond(StatusCode::OK, show_page(&state, &user, &headers, &address, None).await)
}

/// Answers a change on the mailbox page: back to it with the flash, or the page again with the
/// refusal next to its field.
async fn after_change(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    address: &str,
    result: Result<String, WebError>,
    typed: FormState,
    fields: &[&str],
) -> Response {
    let here = format!("/mailboxes/{}", encode(address));
    match result {
        Ok(what) => saved(state, &what).await.redirect(&here),
        Err(e) => match place(e, &[], fields[0]) {
            Ok((status, e)) => {
                let form = typed.fail(&e, fields);
                match show_page(state, user, headers, address, Some(form)).await {
                    Ok(page) => render(status, &page),
                    Err(e) => error_page(e),
                }
            }
            Err(e) => error_page(e),
        },
    }
}

#[derive(Deserialize)]
struct DetailsForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    quota: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    enabled: Option<String>,
    /// Absent (a form without the field) leaves the list as it is.
    #[serde(default)]
    send_as: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(address): Path<String>,
    Form(form): Form<DetailsForm>,
) -> Response {
    let result = async {
        let mailbox = find(&state, &user, &address).await?;
        let send_as = match &form.send_as {
            Some(text) => {
                let list = parse_send_as(text)?;
                user.principal
                    .require_send_as(&list)
                    .map_err(|e| WebError::invalid("send_as", e.to_string()))?;
                Some(list)
            }
            None => None,
        };
        let update = MailboxUpdate {
            display_name: Some(form.display_name.trim().to_string()),
            enabled: Some(form.enabled.is_some()),
            quota_bytes: Some(parse_quota(&form.quota)?),
            password_hash: None,
            send_as,
        };
        state.store.update_mailbox(&user.principal.actor, &mailbox.address, update).await?;
        Ok(format!("Mailbox {} saved", mailbox.address))
    }
    .await;
    let typed = FormState::with(&[
        ("display_name", &form.display_name),
        ("quota", &form.quota),
        ("send_as", form.send_as.as_deref().unwrap_or_default()),
        ("enabled", form.enabled.as_deref().map_or("", |_| "on")),
    ]);
    let fields = ["display_name", "quota", "send_as"];
    after_change(&state, &user, &headers, &address, result, typed, &fields).await
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    password: String,
}

async fn password(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(address): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Response {
    let result = async {
        let mailbox = find(&state, &user, &address).await?;
        let hash = login::hash(&state, &mailbox.address.to_string(), &form.password).await?;
        let update = MailboxUpdate { password_hash: Some(hash), ..MailboxUpdate::default() };
        state.store.update_mailbox(&user.principal.actor, &mailbox.address, update).await?;
        Ok(format!("New password for {} set", mailbox.address))
    }
    .await;
    after_change(&state, &user, &headers, &address, result, FormState::default(), &["password"])
        .await
}

#[derive(Deserialize)]
struct EnabledForm {
    #[serde(default)]
    enabled: String,
}

/// The list's one-click enable or disable.
async fn set_enabled(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(address): Path<String>,
    Form(form): Form<EnabledForm>,
) -> Response {
    let result: Result<String, WebError> = async {
        let mailbox = find(&state, &user, &address).await?;
        let enabled = form.enabled == "true";
        let update = MailboxUpdate { enabled: Some(enabled), ..MailboxUpdate::default() };
        state.store.update_mailbox(&user.principal.actor, &mailbox.address, update).await?;
        Ok(format!("Mailbox {} {}", mailbox.address, if enabled { "enabled" } else { "disabled" }))
    }
    .await;
    match result {
        Ok(what) => saved(&state, &what).await.redirect("/mailboxes"),
        Err(e @ WebError::NotFound(_)) => Flash::error(e.to_string()).redirect("/mailboxes"),
        Err(e) => error_page(e),
    }
}

async fn remove(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(address): Path<String>,
) -> Response {
    let result: Result<Address, WebError> = async {
        let mailbox = find(&state, &user, &address).await?;
        state.store.remove_mailbox(&user.principal.actor, &mailbox.address).await?;
        Ok(mailbox.address)
    }
    .await;
    match result {
        Ok(address) => {
            saved(&state, &format!("Mailbox {address} removed; its Maildir stays on disk"))
                .await
                .redirect("/mailboxes")
        }
        // A catch-all that would loop without this mailbox, say: shown where it was asked.
        Err(e @ WebError::Conflict(_)) => {
            Flash::error(e.to_string()).redirect(&format!("/mailboxes/{}", encode(&address)))
        }
        Err(e @ WebError::NotFound(_)) => Flash::error(e.to_string()).redirect("/mailboxes"),
        Err(e) => error_page(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_are_whole_megabytes() {
        assert_eq!(parse_quota("").unwrap(), None);
        assert_eq!(parse_quota(" 500 ").unwrap(), Some(500 * MB));
        assert!(parse_quota("0").is_err());
        assert!(parse_quota("1.5").is_err());
        assert!(parse_quota("99999999999999").is_err());
        assert_eq!(show_quota(Some(2 * MB)), "2 MB");
        assert_eq!(show_quota(Some(1000)), "1000 bytes");
        assert_eq!(quota_value(Some(MB + 1)), "2");
    }
}
