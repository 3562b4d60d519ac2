//! BDAT (RFC 3030 CHUNKING): the body in chunks of a stated size. The bytes of every chunk are
//! read, whatever the reply, so that the session stays in step with the client.

use tokio::io::{AsyncRead, AsyncWrite};

use super::bdat_args::parse;
use super::data::body_error;
use crate::smtp::body::Body;
use crate::smtp::data::read_chunk;
use crate::smtp::reply::Reply;
use crate::smtp::session::Session;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(in crate::smtp) async fn bdat(&mut self, args: &[u8]) -> std::io::Result<Reply> {
        let Some((size, last)) = parse(args) else {
            // Without a size we cannot know where the chunk ends: stop here.
            self.closing = true;
            return Ok(Reply::new(
                501,
                "5.5.4",
                "Syntax: BDAT size [LAST]; closing the connection",
            ));
        };
        let usable = matches!(&self.tx, Some(tx) if !tx.failed && !tx.recipients.is_empty());
        // The data-stage access rules, before the first chunk; the chunk is still read, to
        // stay in step, and the transaction is over (later chunks need a new MAIL).
        let refusal = if usable { self.data_policy() } else { None };
        let refusal = match refusal {
            None if usable && self.tx.as_ref().is_some_and(|tx| tx.chunks.is_none()) => {
                self.milter_data().await
            }
            refusal => refusal,
        };
        let usable = usable && refusal.is_none();
        let limit = self.ctx.limits.max_message_size;
        let mut body = match self.tx.as_mut() {
            Some(tx) if usable => {
                tx.chunks.take().unwrap_or_else(|| Body::spooling(limit, self.ctx.sink.spool()))
            }
            _ => Body::new(0),
        };
        let read = tokio::time::timeout(
            self.ctx.limits.data_timeout,
            read_chunk(&mut self.conn, size, &mut body),
        )
        .await;
        if let Some(reply) = self.body_read(read)? {
            return Ok(reply);
        }
        if let Some(reply) = refusal {
            return Ok(reply);
        }
        if !usable {
            return Ok(match &self.tx {
                None => Reply::new(503, "5.5.1", "Error: need MAIL command"),
                Some(tx) if tx.failed => {
                    Reply::new(503, "5.5.1", "Error: earlier BDAT failed; send RSET")
                }
                Some(_) => Reply::new(554, "5.5.1", "Error: no valid recipients"),
            });
        }
        if last {
            let tx = self.tx.take().expect("usable implies a transaction");
            return Ok(self.finish_message(tx, body).await);
        }
        if body.failed() {
            // Over the size limit already: the rest of the transaction is refused (RFC 3030 §2).
            if let Some(tx) = &mut self.tx {
                tx.failed = true;
            }
            return Ok(body_error(
                body.finish().err().unwrap_or(crate::smtp::body::BodyError::TooBig),
            ));
        }
        let received = body.len();
        if let Some(tx) = &mut self.tx {
            tx.chunks = Some(body);
        }
        Ok(Reply::new(250, "2.0.0", format!("{size} octets received ({received} in all)")))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn sizes() {
        assert_eq!(parse(b" 100 LAST"), Some((100, true)));
        assert_eq!(parse(b" 0 last"), Some((0, true)));
        assert_eq!(parse(b" 7"), Some((7, false)));
        assert_eq!(parse(b" 99999999999999999999999"), None);
        assert_eq!(parse(b" 18446744073709551616"), None);
        assert_eq!(parse(b" -1"), None);
        assert_eq!(parse(b" 5 LAST x"), None);
        assert_eq!(parse(b""), None);
    }
}
