//! The aliases pages: a list by domain with the add form, and one page per alias to change its
//! destinations or remove it. Loops and other refusals of the store show next to the field.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::AliasChoice;
use postern_store::model::{Address, Alias, AliasSource, DomainName};
use serde::Deserialize;

use super::link::encode;
use super::refusal::place;
use super::{Flash, FormState, Layout, error_page, render, saved};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/aliases", get(list).post(add))
        .route("/aliases/{source}", get(show).post(update))
        .route("/aliases/{source}/delete", post(remove))
}

struct Row {
    source: String,
    /// The source as a path segment.
    href: String,
    destinations: Vec<String>,
    created: String,
}

impl From<&Alias> for Row {
    fn from(a: &Alias) -> Row {
        Row {
            source: a.source.to_string(),
            href: encode(&a.source.to_string()),
            destinations: a.destinations.iter().map(ToString::to_string).collect(),
            created: time::format(a.created_at),
        }
    }
}

/// Destinations as typed: one per line or separated by commas.
fn parse_destinations(text: &str) -> Result<Vec<Address>, WebError> {
    let destinations = text
        .split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<Address>()
                .map_err(|e| WebError::invalid("destinations", WebError::from(e).to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if destinations.is_empty() {
        return Err(WebError::invalid("destinations", "name at least one destination address"));
    }
    Ok(destinations)
}

/// Where a refusal of an alias form goes: a loop is about the destinations, anything else that
/// names no field (a duplicate, a missing domain) about the source.
fn placed(e: WebError) -> Result<(StatusCode, WebError), WebError> {
    let fallback = if matches!(e, WebError::Conflict(_)) { "destinations" } else { "source" };
    place(e, &[("domain", "source")], fallback)
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    domain: String,
}

#[derive(Template)]
#[template(path = "aliases/list.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    domains: Vec<String>,
    domain: String,
    form: FormState,
}

impl_page!(ListPage);

async fn list_page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    domain: String,
    form: FormState,
) -> Result<ListPage, WebError> {
    let only: Option<DomainName> = match domain.trim() {
        "" => None,
        d => Some(d.parse()?),
    };
    if let Some(d) = &only {
        user.principal.require_domain(d)?;
    }
    let mut aliases: Vec<Alias> = state
        .store
        .list_aliases(only.as_ref())
        .await?
        .into_iter()
        .filter(|a| user.principal.sees(a.source.domain()))
        .collect();
    aliases.sort_by_key(|a| a.source.to_string());
    let domains = state
        .store
        .list_domains()
        .await?
        .into_iter()
        .filter(|d| user.principal.sees(&d.name))
        .map(|d| d.name.to_string())
        .collect();
    Ok(ListPage {
        layout: Layout::new(user, "aliases", "Aliases", headers),
        rows: aliases.iter().map(Row::from).collect(),
        domains,
        domain,
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
        list_page(&state, &user, &headers, query.domain, FormState::default()).await,
    )
}

#[derive(Deserialize)]
struct AliasForm {
    #[serde(default)]
    source: String,
    #[serde(default)]
    destinations: String,
    /// When the source is a mailbox: `also` delivers to it as well (the source joins the
    /// destinations), `instead` sends its mail to the destinations only.
    #[serde(default)]
    mailbox: String,
}

/// Applies the "if the source is a mailbox" choice to the destinations.
fn with_choice(
    source: &AliasSource,
    mut destinations: Vec<Address>,
    mailbox: &str,
) -> (Vec<Address>, AliasChoice) {
    let mut choice = AliasChoice::default();
    match (mailbox, source) {
        ("also", AliasSource::Address(itself)) if !destinations.contains(itself) => {
            destinations.insert(0, itself.clone());
        }
        ("instead", _) => choice.divert_mailbox = true,
        _ => {}
    }
    (destinations, choice)
}

/// After a change: the engine's word, and what is doubtful about the alias.
async fn saved_alias(state: &AppState, alias: &Alias, what: &str) -> Flash {
    let flash = saved(state, what).await;
    match state.store.alias_warnings(alias).await {
        Ok(warnings) if !warnings.is_empty() && flash.kind != "error" => {
            Flash::warn(format!("{} Note: {}.", flash.text, warnings.join("; ")))
        }
        _ => flash,
    }
}

async fn add(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<AliasForm>,
) -> Response {
    // Both fields are checked before anything is refused, so that every mistake shows at once.
    let source = form.source.parse::<AliasSource>().map_err(WebError::from);
    let destinations = parse_destinations(&form.destinations);
    let result: Result<Alias, Vec<WebError>> = match (source, destinations) {
        (Ok(source), Ok(destinations)) => {
            let created: Result<Alias, WebError> = async {
                user.principal.require_domain(source.domain())?;
                let (destinations, choice) = with_choice(&source, destinations, &form.mailbox);
                Ok(state
                    .store
                    .create_alias_with(&user.principal.actor, &source, &destinations, choice)
                    .await?)
            }
            .await;
            created.map_err(|e| vec![e])
        }
        (source, destinations) => {
            Err([source.err(), destinations.err()].into_iter().flatten().collect())
        }
    };
    match result {
        Ok(alias) => saved_alias(&state, &alias, &format!("Alias {} added", alias.source))
            .await
            .redirect("/aliases"),
        Err(errors) => {
            let mut placed_errors = Vec::new();
            let mut status = StatusCode::UNPROCESSABLE_ENTITY;
            for e in errors {
                match placed(e) {
                    Ok((s, e)) => {
                        status = s;
                        placed_errors.push(e);
                    }
                    Err(e) => return error_page(e),
                }
            }
            let typed = FormState::with(&[
                ("source", &form.source),
                ("destinations", &form.destinations),
                ("mailbox", &form.mailbox),
            ]);
            let form = typed.fail_all(&placed_errors, &["source", "destinations"]);
            match list_page(&state, &user, &headers, String::new(), form).await {
                Ok(page) => render(status, &page),
                Err(e) => error_page(e),
            }
        }
    }
}

#[derive(Template)]
#[template(path = "aliases/show.html")]
struct ShowPage {
    layout: Layout,
    alias: Row,
    form: FormState,
}

impl_page!(ShowPage);

/// The alias at `source` (as it came in the path), if the user manages its domain.
async fn find(state: &AppState, user: &ConsoleUser, source: &str) -> Result<Alias, WebError> {
    let missing = || WebError::NotFound(format!("alias {source} does not exist"));
    let parsed: AliasSource = source.parse().map_err(|_| missing())?;
    user.principal.require_domain(parsed.domain())?;
    state.store.get_alias(&parsed).await?.ok_or_else(missing)
}

async fn show_page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    source: &str,
    form: Option<FormState>,
) -> Result<ShowPage, WebError> {
    let alias = find(state, user, source).await?;
    let alias = Row::from(&alias);
    let form = form
        .unwrap_or_else(|| FormState::with(&[("destinations", &alias.destinations.join("\n"))]));
    Ok(ShowPage {
        layout: Layout::new(user, "aliases", format!("Alias {}", alias.source), headers),
        alias,
        form,
    })
}

async fn show(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(source): Path<String>,
) -> Response {
    super::respond(StatusCode::OK, show_page(&state, &user, &headers, &source, None).await)
}

#[derive(Deserialize)]
struct DestinationsForm {
    #[serde(default)]
    destinations: String,
    #[serde(default)]
    mailbox: String,
}

async fn update(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(source): Path<String>,
    Form(form): Form<DestinationsForm>,
) -> Response {
    let result: Result<Alias, WebError> = async {
        let alias = find(&state, &user, &source).await?;
        let destinations = parse_destinations(&form.destinations)?;
        let (destinations, choice) = with_choice(&alias.source, destinations, &form.mailbox);
        Ok(state
            .store
            .set_alias_destinations_with(
                &user.principal.actor,
                &alias.source,
                &destinations,
                choice,
            )
            .await?)
    }
    .await;
    match result {
        Ok(alias) => saved_alias(&state, &alias, &format!("Alias {} saved", alias.source))
            .await
            .redirect(&format!("/aliases/{}", encode(&alias.source.to_string()))),
        Err(e) => match placed(e) {
            Ok((status, e)) => {
                let typed = FormState::with(&[
                    ("destinations", &form.destinations),
                    ("mailbox", &form.mailbox),
                ]);
                let form = typed.fail(&e, &["destinations"]);
                match show_page(&state, &user, &headers, &source, Some(form)).await {
                    Ok(page) => render(status, &page),
                    Err(e) => error_page(e),
                }
            }
            Err(e) => error_page(e),
        },
    }
}

async fn remove(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(source): Path<String>,
) -> Response {
    let result: Result<AliasSource, WebError> = async {
        let alias = find(&state, &user, &source).await?;
        state.store.remove_alias(&user.principal.actor, &alias.source, &[]).await?;
        Ok(alias.source)
    }
    .await;
    match result {
        Ok(source) => saved(&state, &format!("Alias {source} removed")).await.redirect("/aliases"),
        Err(e @ WebError::Conflict(_)) => {
            Flash::error(e.to_string()).redirect(&format!("/aliases/{}", encode(&source)))
        }
        Err(e @ WebError::NotFound(_)) => Flash::error(e.to_string()).redirect("/aliases"),
        Err(e) => error_page(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_one_per_line_or_comma_separated() {
        let parsed = parse_destinations("a@x.test, b@x.test\r\n\nC@Y.test,").unwrap();
        let shown: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["a@x.test", "b@x.test", "c@y.test"]);
        let err = parse_destinations("a@x.test\nnot an address").unwrap_err();
        assert_eq!(err.field(), Some("destinations"));
        assert!(err.to_string().contains("not an address"), "{err}");
        assert!(parse_destinations(" , \n").is_err());
    }
}
