//! BDAT's arguments (RFC 3030 §2): apart from the verb, with nothing of the session, so that the
//! fuzzing targets (`fuzz/`) compile this same file.

/// `BDAT <size> [LAST]`, with a size that must fit in 64 bits.
pub(super) fn parse(args: &[u8]) -> Option<(u64, bool)> {
    let text = std::str::from_utf8(args).ok()?;
    let mut words = text.split_ascii_whitespace();
    let size = words
        .next()
        .filter(|s| s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return None,
    };
    words.next().is_none().then_some((size, last))
}
