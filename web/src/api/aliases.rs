//! `/aliases`: addresses (or `@domain` catch-alls) that forward to other addresses.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::AliasChoice;
use postern_store::model::{Address, Alias, AliasSource, DomainName};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath, ApiQuery, ListParams};
use crate::auth::Principal;
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(show, replace, remove))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AliasView {
    /// An address, or `@domain` for a catch-all.
    pub source: String,
    /// In the order given.
    pub destinations: Vec<String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// After a change only: what is doubtful without being wrong, such as a destination in one
    /// of our domains that is not a mailbox or alias yet (its mail is refused until it is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl From<Alias> for AliasView {
    fn from(a: Alias) -> AliasView {
        AliasView {
            source: a.source.to_string(),
            destinations: a.destinations.iter().map(ToString::to_string).collect(),
            created_at: a.created_at,
            warnings: Vec::new(),
        }
    }
}

/// What to do when the source is a mailbox of ours (an alias wins over a mailbox of the same
/// name). Without a choice such an alias is refused with 422.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailboxChoice {
    /// Deliver to the mailbox as well: the source joins the destinations.
    Also,
    /// Send the mailbox's mail to the destinations only.
    Instead,
}

/// Applies `choice` to the destinations of an alias from `source`.
fn with_choice(
    source: &AliasSource,
    mut destinations: Vec<Address>,
    choice: Option<MailboxChoice>,
) -> (Vec<Address>, AliasChoice) {
    let mut out = AliasChoice::default();
    match (choice, source) {
        (Some(MailboxChoice::Also), AliasSource::Address(itself))
            if !destinations.contains(itself) =>
        {
            destinations.insert(0, itself.clone());
        }
        (Some(MailboxChoice::Instead), _) => out.divert_mailbox = true,
        _ => {}
    }
    (destinations, out)
}

/// The alias as saved, with the store's warnings about it.
async fn view_with_warnings(state: &AppState, alias: Alias) -> Result<AliasView, WebError> {
    let warnings = state.store.alias_warnings(&alias).await?;
    Ok(AliasView { warnings, ..AliasView::from(alias) })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AliasList {
    pub items: Vec<AliasView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AliasQuery {
    /// Only the aliases of this domain.
    pub domain: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlias {
    /// An address, or `@domain` for a catch-all, in a domain the caller manages.
    pub source: String,
    /// At least one address.
    pub destinations: Vec<String>,
    /// Required when the source is an existing mailbox.
    #[serde(default)]
    pub mailbox: Option<MailboxChoice>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasDestinations {
    /// The new list, replacing the old one whole.
    pub destinations: Vec<String>,
    /// Required when the source is a mailbox and the alias would newly take its mail.
    #[serde(default)]
    pub mailbox: Option<MailboxChoice>,
}

fn parse_destinations(destinations: &[String]) -> Result<Vec<Address>, WebError> {
    destinations
        .iter()
        .map(|d| {
            d.parse::<Address>()
                .map_err(|e| WebError::invalid("destinations", WebError::from(e).to_string()))
        })
        .collect()
}

/// The alias at `source`, if the caller manages its domain.
async fn find(state: &AppState, user: &Principal, source: &str) -> Result<Alias, WebError> {
    let source: AliasSource = source.parse()?;
    user.require_domain(source.domain())?;
    state
        .store
        .get_alias(&source)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("alias {source} does not exist")))
}

/// List the aliases the caller manages, by source.
#[utoipa::path(get, path = "/aliases", params(ListParams, AliasQuery, ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 if it is still current")),
    tag = "aliases",
    responses((status = 200, body = AliasList, headers(("ETag" = String, description = "Names this answer, for If-None-Match"))), (status = 304, description = "Not modified: the If-None-Match ETag is current"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiQuery(params): ApiQuery<ListParams>,
    ApiQuery(query): ApiQuery<AliasQuery>,
) -> Result<Json<AliasList>, WebError> {
    let only: Option<DomainName> = match query.domain.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) => Some(d.parse()?),
    };
    if let Some(d) = &only {
        user.require_domain(d)?;
    }
    let mut aliases: Vec<Alias> = state
        .store
        .list_aliases(only.as_ref())
        .await?
        .into_iter()
        .filter(|a| user.sees(a.source.domain()))
        .collect();
    aliases.sort_by_key(|a| a.source.to_string());
    let (page, next) = params.page(aliases, |a| a.source.to_string())?;
    Ok(Json(AliasList { items: page.into_iter().map(Into::into).collect(), next }))
}

/// Add an alias. An existing source is refused (409): change it with PUT. A source that is a
/// mailbox needs `mailbox` (422 otherwise); an alias that points only at itself is refused
/// (422). A destination in one of our domains that is not a mailbox or alias yet is accepted
/// with a warning.
#[utoipa::path(post, path = "/aliases", request_body = NewAlias, tag = "aliases",
    responses((status = 201, body = AliasView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The alias exists, or it would loop"),
        (status = 422, body = ErrorBody, description = "A bad address, an alias to itself, \
            or a mailbox's source without a `mailbox` choice")))]
async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(new): ApiJson<NewAlias>,
) -> Result<(StatusCode, Json<AliasView>), WebError> {
    user.require_write()?;
    let source: AliasSource = new.source.parse()?;
    user.require_domain(source.domain())?;
    let destinations = parse_destinations(&new.destinations)?;
    let (destinations, choice) = with_choice(&source, destinations, new.mailbox);
    let alias = state.store.create_alias_with(&user.actor, &source, &destinations, choice).await?;
    Ok((StatusCode::CREATED, Json(view_with_warnings(&state, alias).await?)))
}

/// One alias.
#[utoipa::path(get, path = "/aliases/{source}", tag = "aliases",
    params(("source" = String, Path, description = "The alias source: an address or `@domain`"), ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 if it is still current")),
    responses((status = 200, body = AliasView, headers(("ETag" = String, description = "Names this answer, for If-None-Match"))), (status = 304, description = "Not modified: the If-None-Match ETag is current"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(source): ApiPath<String>,
) -> Result<Json<AliasView>, WebError> {
    Ok(Json(find(&state, &user, &source).await?.into()))
}

/// Replace an alias's destinations.
#[utoipa::path(put, path = "/aliases/{source}", request_body = AliasDestinations, tag = "aliases",
    params(("source" = String, Path, description = "The alias source: an address or `@domain`")),
    responses((status = 200, body = AliasView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The alias would loop"),
        (status = 422, body = ErrorBody, description = "A bad address, an alias to itself, \
            or a mailbox's mail newly taken away without a `mailbox` choice")))]
async fn replace(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(source): ApiPath<String>,
    ApiJson(body): ApiJson<AliasDestinations>,
) -> Result<Json<AliasView>, WebError> {
    user.require_write()?;
    let alias = find(&state, &user, &source).await?;
    let destinations = parse_destinations(&body.destinations)?;
    let (destinations, choice) = with_choice(&alias.source, destinations, body.mailbox);
    let alias = state
        .store
        .set_alias_destinations_with(&user.actor, &alias.source, &destinations, choice)
        .await?;
    Ok(Json(view_with_warnings(&state, alias).await?))
}

/// Remove an alias.
#[utoipa::path(delete, path = "/aliases/{source}", tag = "aliases",
    params(("source" = String, Path, description = "The alias source: an address or `@domain`")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(source): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    let alias = find(&state, &user, &source).await?;
    state.store.remove_alias(&user.actor, &alias.source, &[]).await?;
    Ok(StatusCode::NO_CONTENT)
}
