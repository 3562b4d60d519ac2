//! Reading DATA (RFC 5321 §4.1.1.4): the body ends only at `<CRLF>.<CRLF>` (or `.<CRLF>` right
//! after the 354), a leading dot is removed (§4.5.2), and every other byte goes to [`Body`], which
//! refuses bare CR and LF. So `\n.\n`, `\r.\r\n`, `\r\n.\r\r\n` and their kin never end the data
//! early: the SMTP smuggling sequences stay inside one message, which is then refused whole.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::body::Body;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After CRLF, or at the very start.
    LineStart,
    /// A dot at the start of a line.
    Dot,
    /// `.` CR at the start of a line.
    DotCr,
    /// Inside a line.
    Mid,
    /// A CR inside a line, not yet known to be followed by LF.
    Cr,
}

/// Reads the body into `body` until the terminator. Returns `false` if the client closed the
/// connection first.
pub async fn read_data<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    body: &mut Body,
) -> std::io::Result<bool> {
    let mut state = State::LineStart;
    let mut out = Vec::with_capacity(8192);
    loop {
        let input = reader.fill_buf().await?;
        if input.is_empty() {
            return Ok(false);
        }
        out.clear();
        let used = input.len();
        let mut i = 0;
        while i < input.len() {
            if state == State::Mid {
                // Inside a line only a CR can change the state: take the run up to it at once.
                let run = memchr::memchr(b'\r', &input[i..]).unwrap_or(input.len() - i);
                out.extend_from_slice(&input[i..i + run]);
                i += run;
                if i == input.len() {
                    break;
                }
            }
            let b = input[i];
            i += 1;
            state = match (state, b) {
                (State::LineStart, b'.') => State::Dot,
                (State::Dot, b'\r') => State::DotCr,
                (State::DotCr, b'\n') => {
                    body.push(&out);
                    reader.consume(i);
                    return Ok(true);
                }
                // ".\r" then something else: the dot was stuffing, the CR is data (and bare).
                (State::DotCr, b) => {
                    out.push(b'\r');
                    step(&mut out, b)
                }
                // A stuffed dot: drop it, keep what follows.
                (State::Dot | State::LineStart | State::Mid, b) => step(&mut out, b),
                (State::Cr, b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    State::LineStart
                }
                (State::Cr, b) => {
                    out.push(b'\r');
                    step(&mut out, b)
                }
            };
        }
        // A CR held back at the end of the buffer is data unless an LF follows in the next one.
        body.push(&out);
        reader.consume(used);
        body.spill().await;
    }
}

/// One byte inside a line.
fn step(out: &mut Vec<u8>, b: u8) -> State {
    if b == b'\r' {
        State::Cr
    } else {
        out.push(b);
        State::Mid
    }
}

/// Reads exactly `size` octets of a BDAT chunk (RFC 3030 §2) into `body`. Returns `false` if the
/// client closed the connection first.
pub async fn read_chunk<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    mut size: u64,
    body: &mut Body,
) -> std::io::Result<bool> {
    while size > 0 {
        let input = reader.fill_buf().await?;
        if input.is_empty() {
            return Ok(false);
        }
        let take = input.len().min(usize::try_from(size).unwrap_or(usize::MAX));
        body.push(&input[..take]);
        reader.consume(take);
        size -= take as u64;
        body.spill().await;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use tokio::io::BufReader;

    use super::super::body::BodyError;
    use super::*;

    async fn data(input: &[u8], buf: usize) -> (Result<Vec<u8>, BodyError>, Vec<u8>) {
        let mut reader = BufReader::with_capacity(buf, input);
        let mut body = Body::new(1 << 20);
        assert!(read_data(&mut reader, &mut body).await.unwrap(), "terminator not found");
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut rest).await.unwrap();
        (body.finish(), rest)
    }

    #[tokio::test]
    async fn ends_only_at_crlf_dot_crlf_and_unstuffs() {
        for buf in [1, 2, 3, 7, 4096] {
            let (body, rest) =
                data(b"Subject: t\r\n\r\n..leading\r\n.\r\nMAIL FROM:<x@y>\r\n", buf).await;
            assert_eq!(body.unwrap(), b"Subject: t\r\n\r\n.leading\r\n");
            assert_eq!(rest, b"MAIL FROM:<x@y>\r\n");
            let (body, rest) = data(b".\r\nQUIT\r\n", buf).await;
            assert_eq!(body.unwrap(), b"");
            assert_eq!(rest, b"QUIT\r\n");
            let (body, _) = data(b"..\r\n.\r\n", buf).await;
            assert_eq!(body.unwrap(), b".\r\n");
        }
    }

    /// The twelve endings from the issue: each stays inside the one message, which is refused.
    #[tokio::test]
    async fn smuggling_sequences_never_end_the_data() {
        let endings: [&[u8]; 12] = [
            b"\n.\n",
            b"\r.\r",
            b"\r.\n",
            b"\n.\r",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\r\n",
            b"\r\n.\r",
            b"\r\n\x00.\r\n",
            b"\r\n.\x00\r\n",
            b"\r\n.\r\r\n",
            b"\r\r\n.\r\r\n",
        ];
        for ending in endings {
            for buf in [1, 5, 4096] {
                let smuggled = [
                    b"Subject: one\r\n\r\nbody" as &[u8],
                    ending,
                    b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@y.test>\r\nDATA\r\nSubject: two\r\n\r\nsmuggled\r\n.\r\nQUIT\r\n",
                ]
                .concat();
                let (body, rest) = data(&smuggled, buf).await;
                assert_eq!(rest, b"QUIT\r\n", "ending {ending:?} ended the data early");
                assert!(body.is_err(), "ending {ending:?} was accepted");
            }
        }
    }

    #[tokio::test]
    async fn chunks_are_read_exactly() {
        let mut reader = BufReader::with_capacity(3, &b"hello\r\nBDAT 0 LAST\r\n"[..]);
        let mut body = Body::new(100);
        assert!(read_chunk(&mut reader, 7, &mut body).await.unwrap());
        assert_eq!(body.finish().unwrap(), b"hello\r\n");
        let mut rest = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut reader, &mut rest).await.unwrap();
        assert_eq!(rest, "BDAT 0 LAST\r\n");
    }
}
