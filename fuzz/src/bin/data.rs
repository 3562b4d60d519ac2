//! AFL++ target: the DATA reader and body checks (`server/src/smtp/data.rs` and `body.rs`,
//! compiled here as they are) on any byte stream, read through buffers of every size the first
//! byte picks. It may not panic; it ends exactly after the first `<CRLF>.<CRLF>` (or a `.<CRLF>`
//! at the very start) and nowhere else; and what it accepts has no bare CR or LF, no NUL and no
//! line over 998 octets.

#[allow(dead_code)]
#[path = "../../../server/src/smtp/body.rs"]
mod body;
#[allow(dead_code)]
#[path = "../../../server/src/smtp/data.rs"]
mod data;

use body::Body;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    afl::fuzz!(|input: &[u8]| {
        let Some((&first, stream)) = input.split_first() else { return };
        let capacity = usize::from(first % 64) + 1;
        runtime.block_on(async {
            let mut reader = tokio::io::BufReader::with_capacity(capacity, stream);
            let mut body = Body::new(1 << 20);
            let ended = data::read_data(&mut reader, &mut body).await.unwrap();
            let mut rest = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut rest).await.unwrap();
            let used = stream.len() - rest.len();
            let terminator = if stream.starts_with(b".\r\n") {
                Some(3)
            } else {
                stream.windows(5).position(|w| w == b"\r\n.\r\n").map(|p| p + 5)
            };
            match terminator {
                Some(end) => {
                    assert!(ended, "the terminator at {end} was missed");
                    assert_eq!(used, end, "the data ended elsewhere than at its terminator");
                }
                None => assert!(!ended, "the data ended without a terminator"),
            }
            if let Ok(stored) = body.finish() {
                assert!(!stored.contains(&0));
                for line in stored.split(|&b| b == b'\n') {
                    assert!(line.len() <= 999, "a stored line of {} octets", line.len());
                    let text = line.strip_suffix(b"\r").unwrap_or(line);
                    assert!(!text.contains(&b'\r'), "a bare CR stored");
                }
            }
        });
    });
}
