//! Filters of list pages as bound parameters: the data stays data, never SQL text.

use crate::model::DomainName;

/// A domain restriction as one parameter, ` a.test b.test `, matched with
/// `$n LIKE '% ' || domain || ' %'`; `None` for any domain. No domains is a lone space, which no
/// domain matches. A column that comes off the wire (a recipient's domain) may hold LIKE's own
/// `%` or `_`: queries on such columns confirm the match literally (see `queue_rows`).
pub(crate) fn domain_param(domains: &Option<Vec<DomainName>>) -> Option<String> {
    domains.as_ref().map(|d| match d.is_empty() {
        true => " ".to_string(),
        false => format!(" {} ", d.iter().map(DomainName::as_str).collect::<Vec<_>>().join(" ")),
    })
}

/// A case-insensitive pattern for `LOWER(column) LIKE $n ESCAPE '\'` that matches `text` whole,
/// with the user's `%`, `_` and `\` taken literally.
pub(crate) fn literal(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_").to_lowercase()
}

/// A case-insensitive substring pattern for `LOWER(column) LIKE $n ESCAPE '\'`, with the
/// user's `%`, `_` and `\` taken literally.
pub(crate) fn like(search: &Option<String>) -> Option<String> {
    search.as_ref().map(|s| s.trim()).filter(|s| !s.is_empty()).map(|s| {
        let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        format!("%{}%", escaped.to_lowercase())
    })
}
