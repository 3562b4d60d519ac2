//! A domain's DKIM page: its keys, the exact records to publish, which records may be removed
//! and by when, and the rollout's actions (generate, rotate, check now, activate by force).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::model::{DkimAlgorithm, DkimKey, DkimState, DomainName};
use serde::Deserialize;

use super::{Flash, Layout, error_page, saved};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/domains/{name}/dkim", get(show).post(generate))
        .route("/domains/{name}/dkim/rotate", post(rotate))
        .route("/domains/{name}/dkim/check", post(check))
        .route("/domains/{name}/dkim/activate", post(activate))
        .route("/domains/{name}/dkim/settings", post(settings))
}

struct Row {
    selector: String,
    algorithm: String,
    state: String,
    /// What to do with the record, in words.
    publish: String,
    record_name: String,
    record_zone: String,
    check: String,
    pending: bool,
}

#[derive(Template)]
#[template(path = "dkim/list.html")]
struct DkimPage {
    layout: Layout,
    domain: String,
    rows: Vec<Row>,
    can_check: bool,
    /// Automatic rotation period in days, empty when off.
    rotate_days: String,
    sign_relayed: bool,
}

impl_page!(DkimPage);

fn row(k: &DkimKey) -> Row {
    let publish = match (k.state, k.retire_after) {
        (DkimState::Pending, _) => {
            "publish it: signing switches to this key once it is seen".into()
        }
        (DkimState::Active, _) => "keep it published".into(),
        (DkimState::Retiring, Some(at)) => {
            format!(
                "keep it published until {} (mail in flight still refers to it)",
                time::format(at)
            )
        }
        (DkimState::Retiring, None) => "keep it published".into(),
        (DkimState::Retired, _) => "may be removed".into(),
    };
    let check = match (&k.dns, k.dns_checked_at) {
        (Some(c), Some(at)) => match c.found() {
            Some(found) => format!("{} ({}): {found}", c.status(), time::format(at)),
            None => format!("{} ({})", c.status(), time::format(at)),
        },
        _ => "not checked yet".into(),
    };
    Row {
        selector: k.selector.clone(),
        algorithm: format!("{}-{}", k.algorithm, k.bits),
        state: k.state.to_string(),
        publish,
        record_name: k.record_name(),
        record_zone: k.record_zone(),
        check,
        pending: k.state == DkimState::Pending,
    }
}

fn domain(user: &ConsoleUser, name: &str) -> Result<DomainName, WebError> {
    let name: DomainName = name.parse().map_err(WebError::from)?;
    user.principal.require_domain(&name)?;
    Ok(name)
}

async fn show(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let result: Result<DkimPage, WebError> = async {
        let name = domain(&user, &name)?;
        if state.store.get_domain(&name).await?.is_none() {
            return Err(WebError::NotFound(format!("domain {name} does not exist")));
        }
        let keys = state.store.list_dkim_keys(Some(&name)).await?;
        let settings = state.store.dkim_settings(&name).await?;
        Ok(DkimPage {
            rotate_days: settings.rotate_days.map(|d| d.to_string()).unwrap_or_default(),
            sign_relayed: settings.sign_relayed,
            layout: Layout::new(&user, "domains", format!("DKIM keys of {name}"), &headers),
            domain: name.to_string(),
            rows: keys.iter().map(row).collect(),
            can_check: state.dkim_check.is_some(),
        })
    }
    .await;
    super::respond(StatusCode::OK, result)
}

/// After an action: back to the page, with what happened or why not.
async fn done(state: &AppState, name: &str, result: Result<String, WebError>) -> Response {
    let location = format!("/domains/{name}/dkim");
    match result {
        Ok(what) => saved(state, &what).await.redirect(&location),
        Err(e @ WebError::Forbidden(_)) => error_page(e),
        Err(e) => Flash::error(e.to_string()).redirect(&location),
    }
}

#[derive(Deserialize)]
struct GenerateForm {
    #[serde(default)]
    algorithm: String,
    #[serde(default)]
    bits: String,
    #[serde(default)]
    selector: String,
}

async fn generate(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(name): Path<String>,
    Form(form): Form<GenerateForm>,
) -> Response {
    let result = async {
        user.principal.require_write()?;
        let domain = domain(&user, &name)?;
        let invalid = |field, message: String| {
            WebError::from(postern_store::StoreError::Invalid { field, message })
        };
        let algorithm = match form.algorithm.trim() {
            "" => DkimAlgorithm::Rsa,
            a => a.parse().map_err(|m| invalid("algorithm", m))?,
        };
        let bits = match form.bits.trim() {
            "" => None,
            b => Some(
                b.parse::<u32>().map_err(|_| invalid("bits", format!("{b:?} is not a number")))?,
            ),
        };
        let selector = Some(form.selector.trim()).filter(|s| !s.is_empty());
        let key = state
            .store
            .generate_dkim_key(&user.principal.actor, &domain, algorithm, bits, selector)
            .await?;
        Ok(format!("Key {} generated: publish its record", key.record_name()))
    }
    .await;
    done(&state, &name, result).await
}

async fn rotate(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(name): Path<String>,
    Form(form): Form<GenerateForm>,
) -> Response {
    let result = async {
        user.principal.require_write()?;
        let domain = domain(&user, &name)?;
        let algorithm = match form.algorithm.trim() {
            "" => None,
            a => Some(a.parse::<DkimAlgorithm>().map_err(|m| {
                WebError::from(postern_store::StoreError::Invalid {
                    field: "algorithm",
                    message: m,
                })
            })?),
        };
        let key = state.store.rotate_dkim_key(&user.principal.actor, &domain, algorithm).await?;
        Ok(format!("Next key {} generated: publish its record", key.record_name()))
    }
    .await;
    done(&state, &name, result).await
}

async fn check(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(name): Path<String>,
) -> Response {
    let result = async {
        user.principal.require_write()?;
        let domain = domain(&user, &name)?;
        let checker = state.dkim_check.clone().ok_or_else(|| {
            WebError::Conflict("this process has no DNS resolver: the engine checks hourly".into())
        })?;
        let keys = checker.check(&user.principal.actor, &domain).await?;
        let published = keys
            .iter()
            .filter(|k| k.dns == Some(postern_store::model::DnsCheck::Published))
            .count();
        Ok(format!("Records checked: {published} of {} published", keys.len()))
    }
    .await;
    done(&state, &name, result).await
}

#[derive(Deserialize)]
struct ActivateForm {
    #[serde(default)]
    selector: String,
}

async fn activate(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(name): Path<String>,
    Form(form): Form<ActivateForm>,
) -> Response {
    let result = async {
        user.principal.require_write()?;
        let domain = domain(&user, &name)?;
        let key = state
            .store
            .activate_dkim_key(&user.principal.actor, &domain, form.selector.trim())
            .await?;
        Ok(format!("Key {} signs from now on", key.record_name()))
    }
    .await;
    done(&state, &name, result).await
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    rotate_days: String,
    /// A checkbox: present when checked.
    #[serde(default)]
    sign_relayed: Option<String>,
}

async fn settings(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(name): Path<String>,
    Form(form): Form<SettingsForm>,
) -> Response {
    let result = async {
        user.principal.require_write()?;
        let domain = domain(&user, &name)?;
        let rotate_days = postern_store::model::parse_rotate_every(&form.rotate_days)
            .map_err(|m| WebError::invalid("rotate_days", m))?;
        let settings = postern_store::model::DkimSettings {
            rotate_days,
            sign_relayed: form.sign_relayed.is_some(),
        };
        state.store.set_dkim_settings(&user.principal.actor, &domain, settings).await?;
        Ok(match rotate_days {
            Some(days) => format!("Keys of {domain} rotate every {days} days"),
            None => format!("Keys of {domain} rotate only by hand"),
        })
    }
    .await;
    done(&state, &name, result).await
}
