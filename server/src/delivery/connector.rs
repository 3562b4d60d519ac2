//! Outbound connections behind a small trait, so that tests can point a delivery at a peer of
//! their choosing; [`DirectConnector`] is the real thing (TCP, or a Unix socket for LMTP).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use postern_store::model::{DomainName, Host, LmtpTarget};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::dns::Resolver;

/// A byte stream to a peer: TCP, Unix, or TLS over either.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub type BoxStream = Box<dyn Stream>;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Tcp {
        host: Host,
        port: u16,
    },
    /// An address DNS gave for a host name, as for an MX host: the connection goes to `ip`,
    /// and a certificate is checked against `name` (RFC 7672 §3.2.2 and RFC 8461 §4.1 name
    /// the MX host, not its address, as the identity to verify).
    Resolved {
        name: DomainName,
        ip: IpAddr,
        port: u16,
    },
    Unix(PathBuf),
}

impl Target {
    /// True for a Unix socket or a loopback address: traffic that never leaves the machine.
    pub fn is_local(&self) -> bool {
        match self {
            Target::Unix(_) => true,
            Target::Tcp { host: Host::Ip(ip), .. } => ip.is_loopback(),
            Target::Tcp { host: Host::Name(name), .. } => name.as_str() == "localhost",
            Target::Resolved { ip, .. } => ip.is_loopback(),
        }
    }

    /// The host a certificate must match, when there is one.
    pub fn host(&self) -> Option<Host> {
        match self {
            Target::Tcp { host, .. } => Some(host.clone()),
            Target::Resolved { name, .. } => Some(Host::Name(name.clone())),
            Target::Unix(_) => None,
        }
    }
}

impl From<&LmtpTarget> for Target {
    fn from(target: &LmtpTarget) -> Target {
        match target {
            LmtpTarget::Tcp { host, port } => Target::Tcp { host: host.clone(), port: *port },
            LmtpTarget::Unix(path) => Target::Unix(PathBuf::from(path)),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp { host, port } => write!(f, "{host}:{port}"),
            // Postfix's spelling: mx1.example.com[192.0.2.1]:25.
            Target::Resolved { name, ip, port } => write!(f, "{name}[{ip}]:{port}"),
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

pub type ConnectFuture<'a> = Pin<Box<dyn Future<Output = io::Result<BoxStream>> + Send + 'a>>;

/// Opens a connection to a target.
pub trait Connector: Send + Sync {
    fn connect<'a>(&'a self, target: &'a Target) -> ConnectFuture<'a>;
}

/// Real TCP and Unix-socket connections, with a time limit on the connect.
#[derive(Clone)]
pub struct DirectConnector {
    pub timeout: Duration,
    /// Where a next hop's host name is looked up (the process's resolver, `[dns] servers`);
    /// without one, the system's (`getaddrinfo`).
    pub resolver: Option<Arc<dyn Resolver>>,
}

impl Default for DirectConnector {
    fn default() -> Self {
        // Postfix's smtp_connect_timeout.
        DirectConnector { timeout: Duration::from_secs(30), resolver: None }
    }
}

impl fmt::Debug for DirectConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectConnector")
            .field("timeout", &self.timeout)
            .field("resolver", &self.resolver.is_some())
            .finish()
    }
}

impl DirectConnector {
    pub fn with_resolver(resolver: Arc<dyn Resolver>) -> DirectConnector {
        DirectConnector { resolver: Some(resolver), ..DirectConnector::default() }
    }

    /// A next hop named by host name (a smarthost, an LMTP server): its addresses from the
    /// resolver, IPv6 and IPv4 alike, each tried in turn as Postfix's smtp does, so that one
    /// dead address does not fail the delivery. A name DNS does not know (NXDOMAIN, or no
    /// address of either family) is looked up by the system too, so that names in
    /// /etc/hosts keep working; a temporary DNS failure is not, and stays temporary.
    async fn connect_name(&self, name: &DomainName, port: u16) -> io::Result<TcpStream> {
        let Some(resolver) = &self.resolver else {
            return TcpStream::connect((name.as_str(), port)).await;
        };
        let (v6, v4) = tokio::join!(resolver.ipv6(name.as_str()), resolver.ipv4(name.as_str()));
        let mut addresses: Vec<IpAddr> = Vec::new();
        let mut temporary = None;
        for found in [
            v6.map(|a| a.into_iter().map(IpAddr::V6).collect::<Vec<_>>()),
            v4.map(|a| a.into_iter().map(IpAddr::V4).collect()),
        ] {
            match found {
                Ok(found) => addresses.extend(found),
                Err(e) if e.is_temporary() => temporary = Some(e),
                Err(_) => {}
            }
        }
        if addresses.is_empty() {
            return match temporary {
                Some(e) => Err(io::Error::other(e.to_string())),
                None => TcpStream::connect((name.as_str(), port)).await,
            };
        }
        let mut last = None;
        for ip in addresses {
            match TcpStream::connect((ip, port)).await {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    last = Some(io::Error::new(e.kind(), format!("{name}[{ip}]:{port}: {e}")))
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other(format!("{name}: no address to try"))))
    }
}

impl Connector for DirectConnector {
    fn connect<'a>(&'a self, target: &'a Target) -> ConnectFuture<'a> {
        Box::pin(async move {
            let attempt = async {
                let stream: BoxStream = match target {
                    // MX lookups happen before a target is chosen; a named next hop is
                    // resolved here.
                    Target::Tcp { host: Host::Name(name), port } => {
                        Box::new(self.connect_name(name, *port).await?)
                    }
                    Target::Tcp { host: Host::Ip(ip), port }
                    | Target::Resolved { ip, port, .. } => {
                        Box::new(tokio::net::TcpStream::connect((*ip, *port)).await?)
                    }
                    Target::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
                };
                Ok(stream)
            };
            tokio::time::timeout(self.timeout, attempt)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::ScriptedResolver;

    fn named(name: &str, port: u16) -> Target {
        Target::Tcp { host: Host::Name(name.parse().unwrap()), port }
    }

    #[tokio::test]
    async fn a_named_next_hop_is_found_through_the_resolver() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dns = ScriptedResolver::new()
            .address("smarthost.test", "127.0.0.1".parse().unwrap())
            .temporary("broken.test");
        let dns = Arc::new(dns);
        let connector = DirectConnector::with_resolver(dns.clone());
        connector.connect(&named("smarthost.test", port)).await.expect("connected");
        assert!(dns.queries().iter().any(|q| q.contains("smarthost.test")), "{:?}", dns.queries());

        // A temporary DNS failure stays one: not handed to the system resolver to guess.
        let e = connector.connect(&named("broken.test", port)).await.err().expect("refused");
        assert!(e.to_string().contains("broken.test"), "{e}");
        // A name DNS does not know is the system's to find (/etc/hosts), and not found there.
        assert!(connector.connect(&named("nowhere.invalid", port)).await.is_err());
    }
}
