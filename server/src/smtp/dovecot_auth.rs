//! SMTP AUTH checked by Dovecot's authentication service (`[auth] backend = "dovecot"`), as
//! Postfix's `smtpd_sasl_type = dovecot` does: one connection to Dovecot's client socket per
//! check, speaking its authentication protocol version 1.2 (Dovecot's "Authentication
//! Protocol" design document): handshake, then one `AUTH` with the PLAIN response (RFC 4616)
//! whatever mechanism the SMTP client used, since we hold the password in the clear either way.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The whole exchange; Dovecot's own failure delay (auth_failure_delay, 2 s) fits well inside.
const TIMEOUT: Duration = Duration::from_secs(15);
/// A line from Dovecot longer than this is not one we asked for.
const LINE_LIMIT: usize = 16 * 1024;

/// What Dovecot answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right; Dovecot's canonical name for the user.
    Accepted(String),
    /// Wrong password or unknown user.
    Refused,
    /// Dovecot could not decide now (its `temp` flag, or it cannot be reached): a temporary
    /// failure, never "wrong password".
    Unavailable(String),
}

/// The client's side of one check: who is connecting, for Dovecot's logs and its own limits.
pub struct Request<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub remote: IpAddr,
    pub secured: bool,
}

/// Asks Dovecot at `socket` whether `request`'s password is right.
pub async fn check(socket: &Path, request: &Request<'_>) -> Verdict {
    match tokio::time::timeout(TIMEOUT, exchange(socket, request)).await {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(e)) => Verdict::Unavailable(format!("{}: {e}", socket.display())),
        Err(_) => {
            Verdict::Unavailable(format!("{}: no answer within {TIMEOUT:?}", socket.display()))
        }
    }
}

async fn exchange(socket: &Path, request: &Request<'_>) -> std::io::Result<Verdict> {
    let stream = UnixStream::connect(socket).await?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(format!("VERSION\t1\t2\nCPID\t{}\n", std::process::id()).as_bytes()).await?;
    // The server's handshake ends with DONE; its major version must be ours.
    let mut plain = false;
    loop {
        let line = read_line(&mut read).await?;
        let mut fields = line.split('\t');
        match fields.next() {
            Some("VERSION") if fields.next() != Some("1") => {
                return Ok(Verdict::Unavailable(format!("unsupported protocol: {line}")));
            }
            Some("MECH") if fields.next().is_some_and(|m| m.eq_ignore_ascii_case("PLAIN")) => {
                plain = true;
            }
            Some("DONE") => break,
            _ => {}
        }
    }
    if !plain {
        return Ok(Verdict::Unavailable("Dovecot does not offer PLAIN".into()));
    }
    let mut response = Vec::with_capacity(request.user.len() + request.password.len() + 2);
    response.push(0);
    response.extend_from_slice(request.user.as_bytes());
    response.push(0);
    response.extend_from_slice(request.password.as_bytes());
    let mut auth = format!("AUTH\t1\tPLAIN\tservice=smtp\tnologin\trip={}", request.remote);
    if request.secured {
        auth.push_str("\tsecured");
    }
    auth.push_str(&format!("\tresp={}\n", BASE64.encode(response)));
    write.write_all(auth.as_bytes()).await?;
    let line = read_line(&mut read).await?;
    Ok(verdict(&line))
}

/// Reads one line without its LF, refusing one without end.
async fn read_line(
    read: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
) -> std::io::Result<String> {
    let mut line = Vec::new();
    let n = (&mut *read).take(LINE_LIMIT as u64).read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "Dovecot closed"));
    }
    if line.pop() != Some(b'\n') {
        return Err(std::io::Error::other("an over-long line from Dovecot"));
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// The answer to our `AUTH` (id 1): `OK`, `FAIL` (with `temp` when Dovecot could not decide),
/// or anything else, which we did not ask for.
fn verdict(line: &str) -> Verdict {
    let mut fields = line.split('\t');
    let (kind, id) = (fields.next(), fields.next());
    if id != Some("1") {
        return Verdict::Unavailable(format!("unexpected answer: {}", first_word(line)));
    }
    let params: Vec<&str> = fields.collect();
    let user = params.iter().find_map(|p| p.strip_prefix("user="));
    match kind {
        Some("OK") => match user {
            Some(user) => Verdict::Accepted(user.to_string()),
            None => Verdict::Unavailable("OK without a user name".into()),
        },
        Some("FAIL") if params.contains(&"temp") => Verdict::Unavailable(
            params
                .iter()
                .find_map(|p| p.strip_prefix("reason="))
                .unwrap_or("temporary failure")
                .into(),
        ),
        Some("FAIL") => Verdict::Refused,
        // CONT would ask for more than PLAIN needs.
        _ => Verdict::Unavailable(format!("unexpected answer: {}", first_word(line))),
    }
}

fn first_word(line: &str) -> &str {
    line.split('\t').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(
            verdict("OK\t1\tuser=ann@example.test"),
            Verdict::Accepted("ann@example.test".into())
        );
        assert_eq!(verdict("FAIL\t1\tuser=ann@example.test"), Verdict::Refused);
        assert!(
            matches!(verdict("FAIL\t1\ttemp\treason=db down"), Verdict::Unavailable(r) if r == "db down")
        );
        assert!(matches!(verdict("OK\t2\tuser=x"), Verdict::Unavailable(_)));
        assert!(matches!(verdict("CONT\t1\t"), Verdict::Unavailable(_)));
        assert!(matches!(verdict("OK\t1"), Verdict::Unavailable(_)));
    }

    /// A stand-in Dovecot on a socket: the handshake, then whatever `answer` is.
    async fn fake(dir: &Path, mechs: &'static str, answer: &'static str) -> std::path::PathBuf {
        let path = dir.join("auth-client");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            write
                .write_all(format!("VERSION\t1\t2\n{mechs}SPID\t1\nCUID\t1\nDONE\n").as_bytes())
                .await
                .unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("AUTH\t1\tPLAIN\t") {
                    assert!(rest.contains("service=smtp") && rest.contains("rip=192.0.2.1"));
                    let resp = rest.split('\t').find_map(|p| p.strip_prefix("resp=")).unwrap();
                    assert_eq!(BASE64.decode(resp).unwrap(), b"\0ann@example.test\0pw");
                    write.write_all(answer.as_bytes()).await.unwrap();
                }
            }
        });
        path
    }

    fn request() -> Request<'static> {
        Request {
            user: "ann@example.test",
            password: "pw",
            remote: "192.0.2.1".parse().unwrap(),
            secured: true,
        }
    }

    #[tokio::test]
    async fn speaks_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let socket =
            fake(dir.path(), "MECH\tPLAIN\tplaintext\n", "OK\t1\tuser=ann@example.test\n").await;
        assert_eq!(check(&socket, &request()).await, Verdict::Accepted("ann@example.test".into()));
    }

    #[tokio::test]
    async fn no_plain_or_no_dovecot_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let socket = fake(dir.path(), "MECH\tCRAM-MD5\n", "OK\t1\tuser=x\n").await;
        assert!(matches!(check(&socket, &request()).await, Verdict::Unavailable(_)));
        let missing = dir.path().join("nothing-here");
        assert!(
            matches!(check(&missing, &request()).await, Verdict::Unavailable(r) if r.contains("nothing-here"))
        );
    }
}
