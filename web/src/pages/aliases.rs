//! The aliases pages: a list by domain with the add form, and one page per alias to change its
//! destinations or remove it. Loops and other refusals of the store show next to the field.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
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
}

async fn add(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<AliasForm>,
) -> Response {
    let result: Result<AliasSource, WebError> = async {
        let source: AliasSource = form.source.parse()?;
        user.principal.require_domain(source.domain())?;
        let destinations = parse_destinations(&form.destinations)?;
        Ok(state.store.create_alias(&user.principal.actor, &source, &destinations).await?.source)
    }
    .await;
    match result {
        Ok(source) => saved(&state, &format!("Alias {source} added")).await.redirect("/aliases"),
        Err(e) => match placed(e) {
            Ok((status, e)) => {
                let typed = FormState::with(&[
                    ("source", &form.source),
                    ("destinations", &form.destinations),
                ]);
                let form = typed.fail(&e, &["source", "destinations"]);
                match list_page(&state, &user, &headers, String::new(), form).await {
                    Ok(page) => render(status, &page),
                    Err(e) => error_page(e),
                }
            }
            Err(e) => error_page(e),
        },
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
}

async fn update(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(source): Path<String>,
    Form(form): Form<DestinationsForm>,
) -> Response {
    let result: Result<AliasSource, WebError> = async {
        let alias = find(&state, &user, &source).await?;
        let destinations = parse_destinations(&form.destinations)?;
        state
            .store
            .set_alias_destinations(&user.principal.actor, &alias.source, &destinations)
            .await?;
        Ok(alias.source)
    }
    .await;
    match result {
        Ok(source) => saved(&state, &format!("Alias {source} saved"))
            .await
            .redirect(&format!("/aliases/{}", encode(&source.to_string()))),
        Err(e) => match placed(e) {
            Ok((status, e)) => {
                let typed = FormState::with(&[("destinations", &form.destinations)]);
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
