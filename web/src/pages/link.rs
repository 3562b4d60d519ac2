//! Values put into the console's links: addresses, patterns and filters as path segments and
//! query values.

/// Percent-encodes everything but RFC 3986's unreserved characters and `@`, which are safe in
/// a path segment and a query value alike: `ann@example.com` stays readable, while a `/`, `?`,
/// `#`, `%` or `&` in a local part cannot change what the link points to.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_addresses_readable_and_links_whole() {
        assert_eq!(super::encode("ann@example.com"), "ann@example.com");
        assert_eq!(super::encode("a/b?c#d%e&f g@x.test"), "a%2Fb%3Fc%23d%25e%26f%20g@x.test");
        assert_eq!(super::encode("192.0.2.0/24"), "192.0.2.0%2F24");
    }
}
