//! Where a refused change lands on a form: next to the field it is about, with the status that
//! says what kind of refusal it was.

use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;

use super::{ErrorPage, ErrorShown, Layout, render};
use crate::error::WebError;
use crate::state::AppState;

/// For a refusal the user can fix in the form, the status to answer with and the error placed
/// at a field: the store's field name renamed to the form's (`renames`), or `fallback` when the
/// error names none (a duplicate, a loop, a domain that does not exist). `None` for anything
/// else (not allowed, store down) comes back as it was, for a page of its own.
pub fn place(
    e: WebError,
    renames: &[(&str, &str)],
    fallback: &str,
) -> Result<(StatusCode, WebError), WebError> {
    let status = match &e {
        // A domain named in the form that does not exist is a mistake in the form.
        WebError::Invalid { .. } | WebError::NotFound(_) => StatusCode::UNPROCESSABLE_ENTITY,
        WebError::Duplicate(_) | WebError::Conflict(_) => StatusCode::CONFLICT,
        _ => return Err(e),
    };
    let field = match e.field() {
        Some(f) => renames.iter().find(|(from, _)| *from == f).map_or(f, |(_, to)| to),
        None => fallback,
    }
    .to_string();
    Ok((status, WebError::Invalid { field: Some(field), message: e.to_string() }))
}

/// Any URL no page answers: a 404 page (with the navigation for a signed-in user, see
/// [`with_navigation`]), not a bare status.
pub async fn unknown_page(uri: Uri) -> Response {
    super::error_page(WebError::NotFound(format!("there is no page at {}", uri.path())))
}

/// Renders an error page again in the signed-in layout: the navigation stays, and the page
/// says where to go (the section the URL was in, the dashboard). Signed out, it offers the
/// sign-in page. The session is looked up only for errors, so pages that work pay nothing.
pub async fn with_navigation(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let Some(shown) = response.extensions().get::<ErrorShown>().cloned() else {
        return response;
    };
    let status = response.status();
    let user = match crate::auth::session::load(&state, &headers).await {
        Ok(user) => user,
        Err(_) => return response,
    };
    let mut page = ErrorPage {
        layout: Layout::anonymous(shown.title),
        message: shown.message,
        hint: String::new(),
        links: Vec::new(),
    };
    match &user {
        Some(user) => {
            let section = path.trim_start_matches('/').split('/').next().unwrap_or("");
            page.layout = Layout::new(user, "", shown.title, &headers);
            // The section the URL was in, if this user has it.
            if let Some(item) = page
                .layout
                .nav()
                .into_iter()
                .find(|i| i.ready && i.href != "/" && i.href.trim_start_matches('/') == section)
                && item.href != path
            {
                page.links.push((item.href.to_string(), format!("{}: the list", item.label)));
            }
            page.links.push(("/".into(), "Back to the dashboard".into()));
            if status == StatusCode::FORBIDDEN && !user.principal.is_global() {
                page.hint = "Your account manages only some domains, and some pages are for \
                             administrators of every domain: the menu lists what you can use."
                    .into();
            } else if status == StatusCode::NOT_FOUND {
                page.hint = "It may have been removed, or the address was mistyped: the menu \
                             lists every section."
                    .into();
            }
        }
        None => {
            page.links.push(("/login".into(), "Sign in".into()));
        }
    }
    let mut rendered = render(status, &page);
    for name in [axum::http::header::RETRY_AFTER, axum::http::header::SET_COOKIE] {
        for value in response.headers().get_all(&name) {
            rendered.headers_mut().append(name.clone(), value.clone());
        }
    }
    rendered
}
