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

// The server's own BDAT argument parser, compiled in by path (it needs nothing of the server).
#[path = "../../../server/src/smtp/verbs/bdat_args.rs"]
mod bdat_args;
use bdat_args::parse as bdat;
