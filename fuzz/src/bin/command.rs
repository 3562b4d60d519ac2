//! AFL++ target: one SMTP command line as the session hands it to smtp-proto
//! (`server/src/smtp/session.rs`: the line without its CRLF, then an LF), and the BDAT
//! arguments as our own parser reads them. Neither may panic; a parsed BDAT size fits in 64 bits
//! and is what the digits say.

fn main() {
    afl::fuzz!(|line: &[u8]| {
        let mut with_lf = line.to_vec();
        with_lf.push(b'\n');
        if let Ok(request) = smtp_proto::Request::parse(&mut with_lf.iter()) {
            let _ = request.into_owned();
        }
        if let Some((size, _last)) = bdat(line) {
            let digits = std::str::from_utf8(line).unwrap().split_ascii_whitespace().next().unwrap();
            assert_eq!(digits.parse::<u64>().unwrap(), size);
        }
    });
}

/// A copy of `server/src/smtp/verbs/bdat.rs`'s `parse` (that file is an `impl Session` block
/// that needs the whole server).
fn bdat(args: &[u8]) -> Option<(u64, bool)> {
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
