//! The HTTP-01 responder on `[acme] http_listen` (port 80): answers
//! `/.well-known/acme-challenge/<token>` with the key authorization (RFC 8555 §8.3) and
//! redirects every other request to the console over HTTPS, so that port 80 is useful to a
//! person too. A few lines of HTTP/1.1 rather than a web framework: one GET per connection,
//! then close.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::challenge::Http01Tokens;

const PREFIX: &str = "/.well-known/acme-challenge/";
/// A request line and headers fit in this; a CA's validation request is a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// The whole request must arrive within this.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait to be accepted (the kernel's backlog).
const MAX_CONNECTIONS: usize = 128;

/// Where everything that is not a challenge goes.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// Used when the request names no usable `Host`.
    pub hostname: String,
    /// The console's HTTPS port; 443 is left out of the URL.
    pub https_port: u16,
}

/// Serves until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    tokens: Arc<Http01Tokens>,
    redirect: Redirect,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let redirect = Arc::new(redirect);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = slots.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else { return };
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "the ACME HTTP-01 responder cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (tokens, redirect) = (tokens.clone(), redirect.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(HEAD_TIMEOUT, answer(stream, &tokens, &redirect)).await;
            drop(permit);
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    tokens: &Http01Tokens,
    redirect: &Redirect,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return reply(&mut stream, "431 Request Header Fields Too Large", &[], "", true).await;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let response = respond(&head, tokens, redirect);
    let headers: Vec<(&str, &str)> =
        response.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let with_body = !head.starts_with("HEAD ");
    reply(&mut stream, response.status, &headers, &response.body, with_body).await
}

/// What to answer a request whose head is `head`.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn respond(head: &str, tokens: &Http01Tokens, redirect: &Redirect) -> Response {
    let bad = |status: &'static str| Response { status, headers: vec![], body: String::new() };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return bad("400 Bad Request");
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return bad("400 Bad Request");
    }
    if method != "GET" && method != "HEAD" {
        return bad("405 Method Not Allowed");
    }
    if let Some(token) = target.strip_prefix(PREFIX) {
        // RFC 8555 §8.3: the body is the key authorization, nothing else.
        return match tokens.get(token) {
            Some(key_authorization) => Response {
                status: "200 OK",
                headers: vec![("Content-Type", "application/octet-stream".into())],
                body: key_authorization,
            },
            None => bad("404 Not Found"),
        };
    }
    let host = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.trim())
        .map(|h| {
            h.rsplit_once(':').map_or(h, |(name, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) { name } else { h }
            })
        })
        // Only a plain host name goes into the Location header, nothing that could end it.
        .filter(|h| {
            !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        })
        .unwrap_or(&redirect.hostname);
    let port = match redirect.https_port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let target: String = target.chars().filter(|c| c.is_ascii_graphic()).collect();
    Response {
        status: "301 Moved Permanently",
        headers: vec![("Location", format!("https://{host}{port}{target}"))],
        body: String::new(),
    }
}

async fn reply(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &str,
    with_body: bool,
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    // A HEAD reply says how long the body would be, and sends none (RFC 9110 §9.3.2).
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    if with_body {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect() -> Redirect {
        Redirect { hostname: "mail.example.test".into(), https_port: 443 }
    }

    #[test]
    fn challenges_are_answered_and_the_rest_redirected() {
        let tokens = Http01Tokens::new();
        tokens.insert("tok-1", "tok-1.thumb");
        let get = |head: &str| respond(head, &tokens, &redirect());
        let ok = get("GET /.well-known/acme-challenge/tok-1 HTTP/1.1\r\nHost: a.example\r\n\r\n");
        assert_eq!((ok.status, ok.body.as_str()), ("200 OK", "tok-1.thumb"));
        let missing = get("GET /.well-known/acme-challenge/nope HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(missing.status, "404 Not Found");
        let page = get("GET /login?x=1 HTTP/1.1\r\nhost: b.example:80\r\n\r\n");
        assert_eq!(page.status, "301 Moved Permanently");
        assert_eq!(page.headers, vec![("Location", "https://b.example/login?x=1".to_string())]);
        // A Host that could smuggle a header is not copied; the host name is used instead.
        let odd = get("GET / HTTP/1.1\r\nHost: evil\rX: y\r\n\r\n");
        assert_eq!(odd.headers, vec![("Location", "https://mail.example.test/".to_string())]);
        let port = respond(
            "GET /a HTTP/1.0\r\n\r\n",
            &tokens,
            &Redirect { hostname: "h.example".into(), https_port: 8443 },
        );
        assert_eq!(port.headers, vec![("Location", "https://h.example:8443/a".to_string())]);
        assert_eq!(get("POST / HTTP/1.1\r\n\r\n").status, "405 Method Not Allowed");
        assert_eq!(get("nonsense\r\n\r\n").status, "400 Bad Request");
    }

    #[tokio::test]
    async fn the_responder_answers_over_tcp() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tokens = Http01Tokens::new();
        tokens.insert("t", "t.k");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, tokens, redirect(), shutdown.clone()));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /.well-known/acme-challenge/t HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nt.k"), "{text}");
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"HEAD /.well-known/acme-challenge/t HTTP/1.1\r\n\r\n").await.unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        assert!(text.ends_with("Content-Length: 3\r\n\r\n"), "no body: {text}");
        shutdown.cancel();
        task.await.unwrap();
    }
}
