//! Reading one command line with a hard length limit: a line past the limit is consumed to its
//! end without being buffered, so a client cannot make us hold an unbounded line.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What one read of a command line produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line, with its CRLF (or bare LF) removed.
    Text(Vec<u8>),
    /// The line was longer than the limit; it has been read and thrown away.
    TooLong,
    /// The client closed the connection.
    Eof,
}

/// Reads up to and including the next LF. RFC 5321 §4.5.3.1.4 limits a command line to 512
/// octets, but ESMTP parameters (RFC 1869 §4.1.2) make longer ones legal; like Postfix we allow
/// up to `limit` (2048) and refuse the rest.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if line.is_empty() && !too_long {
                Line::Eof
            } else if too_long {
                Line::TooLong
            } else {
                Line::Text(line)
            });
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let used = chunk.len();
        if !too_long {
            if line.len() + chunk.len() > limit + 2 {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if done {
            if too_long {
                return Ok(Line::TooLong);
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Line::Text(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::BufReader;

    use super::*;

    #[tokio::test]
    async fn lines_and_limits() {
        let mut input = b"EHLO a\r\nNOOP\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        input.extend_from_slice(b"\r\nQUIT\r\n");
        let mut r = BufReader::with_capacity(64, &input[..]);
        assert_eq!(read_line(&mut r, 2048).await.unwrap(), Line::Text(b"EHLO a".to_vec()));
        assert_eq!(read_line(&mut r, 2048).await.unwrap(), Line::Text(b"NOOP".to_vec()));
        assert_eq!(read_line(&mut r, 2048).await.unwrap(), Line::TooLong);
        assert_eq!(read_line(&mut r, 2048).await.unwrap(), Line::Text(b"QUIT".to_vec()));
        assert_eq!(read_line(&mut r, 2048).await.unwrap(), Line::Eof);
    }
}
