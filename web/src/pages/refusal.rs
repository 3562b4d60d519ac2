//! Where a refused change lands on a form: next to the field it is about, with the status that
//! says what kind of refusal it was.

use axum::http::StatusCode;

use crate::error::WebError;

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
